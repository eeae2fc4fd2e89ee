"""The only code that turns a planned workload-role change into a write, in order: one IAM call per
AWS change, and per ServiceAccount change the reads and the one write of
:mod:`webhook.kube.serviceaccountwrites`: an annotation is applied to the object as read now (never
creating one); a creation makes the ServiceAccount with our mark, then applies the role annotation
under our field manager, so that it is owned and retracted exactly as on a ServiceAccount we did not
create; a deletion takes the object as read now, and only while it carries our mark.

As in :mod:`webhook.provisioner.executor`, the first failure stops the run: it is raised as
:class:`~webhook.provisioner.executor.ExecutionStopped`, which says which change failed and which were
applied before it. A Kubernetes failure is carried the same way, with the same three kinds
(``retryable``, ``access-denied``, ``terminal``), so a front end handles both alike.

A removal whose target is already gone (IAM's NoSuchEntity on a detach, an inline policy or
boundary deletion, an untag, the role's deletion) counts as made: the state it was for holds, and a
run cut short and repeated must not stop there. Every IAM call is counted by the clients' tally.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

from kubernetes import client

from webhook.aws.errors import AwsError, translated
from webhook.aws.session import AwsClients
from webhook.kube.serviceaccountwrites import (
    FieldConflict,
    ServiceAccountError,
    apply_annotations,
    create_service_account,
    delete_service_account,
    read_service_account,
)
from webhook.provisioner.executor import ExecutionStopped
from webhook.provisioner.model import Change
from webhook.provisioner.rolemodel import (
    CREATED_BY_ANNOTATION,
    FIELD_MANAGER,
    AnnotateServiceAccount,
    AttachPolicy,
    CreateRole,
    CreateServiceAccount,
    DeleteInlinePolicy,
    DeletePermissionsBoundary,
    DeleteRole,
    DeleteServiceAccount,
    DetachPolicy,
    PutInlinePolicy,
    PutPermissionsBoundary,
    TagRole,
    UntagRole,
    UpdateMaxSessionDuration,
    UpdateTrustPolicy,
)

# The API action each kind of change is made with (what its ``action`` should say; errors are named
# by this). The Kubernetes ones are spelled like the AWS ones, ``service:Operation``.
ACTIONS: dict[type[Change], str] = {
    CreateRole: "iam:CreateRole",
    UpdateTrustPolicy: "iam:UpdateAssumeRolePolicy",
    UpdateMaxSessionDuration: "iam:UpdateRole",
    PutPermissionsBoundary: "iam:PutRolePermissionsBoundary",
    DeletePermissionsBoundary: "iam:DeleteRolePermissionsBoundary",
    AttachPolicy: "iam:AttachRolePolicy",
    DetachPolicy: "iam:DetachRolePolicy",
    PutInlinePolicy: "iam:PutRolePolicy",
    DeleteInlinePolicy: "iam:DeleteRolePolicy",
    TagRole: "iam:TagRole",
    UntagRole: "iam:UntagRole",
    DeleteRole: "iam:DeleteRole",
    CreateServiceAccount: "kubernetes:CreateServiceAccount",
    AnnotateServiceAccount: "kubernetes:ApplyServiceAccount",
    DeleteServiceAccount: "kubernetes:DeleteServiceAccount",
}
_REMOVALS = (DetachPolicy, DeleteInlinePolicy, DeletePermissionsBoundary, UntagRole, DeleteRole)
_KUBERNETES = (CreateServiceAccount, AnnotateServiceAccount, DeleteServiceAccount)
_NO_ENTITY = "NoSuchEntity"


def execute_role(
    changes: Sequence[Change], aws: AwsClients, kube_api: client.ApiClient | None, annotation_key: str
) -> list[Change]:
    """Apply ``changes`` in order; return them (all applied), or raise ExecutionStopped.
    ``annotation_key`` is the webhook's role-arn annotation; ``kube_api`` None: no cluster (a
    ServiceAccount change then stops the run)."""
    applied: list[Change] = []
    for change in changes:
        try:
            apply_role_change(change, aws, kube_api, annotation_key)
        except AwsError as exc:
            raise ExecutionStopped(exc, change, applied) from exc
        applied.append(change)
    return applied


def apply_role_change(change: Change, aws: AwsClients, kube_api: client.ApiClient | None, annotation_key: str) -> None:
    """Make the write of one change; AwsError when AWS or the API server refuses it."""
    action = ACTIONS.get(type(change), change.action)
    if isinstance(change, _KUBERNETES):
        _kubernetes(change, kube_api, annotation_key, action)
        return
    try:
        with translated(action, change.target):
            _iam(change, aws)
    except AwsError as exc:
        if exc.code == _NO_ENTITY and isinstance(change, _REMOVALS):
            return  # already gone: what the removal was for holds
        raise


def _iam(change: Change, aws: AwsClients) -> None:
    iam = aws.iam
    match change:
        case CreateRole():
            optional: dict[str, Any] = {}
            if change.permissions_boundary:
                optional["PermissionsBoundary"] = change.permissions_boundary
            if change.tags:
                optional["Tags"] = _tags(change.tags)
            iam.create_role(
                RoleName=change.role_name,
                Path=change.path,
                AssumeRolePolicyDocument=json.dumps(change.trust_policy),
                MaxSessionDuration=change.max_session_duration,
                **optional,
            )
        case UpdateTrustPolicy():
            iam.update_assume_role_policy(RoleName=change.role_name, PolicyDocument=json.dumps(change.trust_policy))
        case UpdateMaxSessionDuration():
            iam.update_role(RoleName=change.role_name, MaxSessionDuration=change.max_session_duration)
        case PutPermissionsBoundary():
            iam.put_role_permissions_boundary(RoleName=change.role_name, PermissionsBoundary=change.boundary)
        case DeletePermissionsBoundary():
            iam.delete_role_permissions_boundary(RoleName=change.role_name)
        case AttachPolicy():
            iam.attach_role_policy(RoleName=change.role_name, PolicyArn=change.policy_arn)
        case DetachPolicy():
            iam.detach_role_policy(RoleName=change.role_name, PolicyArn=change.policy_arn)
        case PutInlinePolicy():
            iam.put_role_policy(
                RoleName=change.role_name, PolicyName=change.policy_name, PolicyDocument=json.dumps(change.document)
            )
        case DeleteInlinePolicy():
            iam.delete_role_policy(RoleName=change.role_name, PolicyName=change.policy_name)
        case TagRole():
            iam.tag_role(RoleName=change.role_name, Tags=_tags(change.tags))
        case UntagRole():
            iam.untag_role(RoleName=change.role_name, TagKeys=list(change.keys))
        case DeleteRole():
            iam.delete_role(RoleName=change.role_name)
        case _:
            raise TypeError(f"no call for a change of type {type(change).__name__}")


def _tags(tags: Mapping[str, str]) -> list[dict[str, str]]:
    return [{"Key": key, "Value": value} for key, value in sorted(tags.items())]


def _kubernetes(change: Change, api: client.ApiClient | None, annotation_key: str, action: str) -> None:
    if api is None:
        raise AwsError(
            "terminal", action, f"{change.target}: no cluster to write ServiceAccounts to (give --kubeconfig)"
        )
    try:
        match change:
            case CreateServiceAccount():
                mark = {k: v for k, v in change.annotations.items() if k != annotation_key}
                role = {k: v for k, v in change.annotations.items() if k == annotation_key}
                create_service_account(api, change.namespace, change.name, mark, FIELD_MANAGER, applied=role)
            case AnnotateServiceAccount():
                written = apply_annotations(api, change.namespace, change.name, change.annotations, FIELD_MANAGER)
                if written is None and change.annotations:
                    raise ServiceAccountError(
                        "retryable",
                        "patch",
                        f"ServiceAccount {change.namespace}/{change.name} does not exist (deleted since it was "
                        "read): not annotated",
                    )
            case DeleteServiceAccount():
                _delete_ours(api, change)
    except FieldConflict as exc:
        raise AwsError(exc.kind, action, exc.message, "FieldManagerConflict") from exc
    except ServiceAccountError as exc:
        raise AwsError(exc.kind, action, exc.message, str(exc.status) if exc.status else "") from exc


def _delete_ours(api: client.ApiClient, change: DeleteServiceAccount) -> None:
    """Delete the ServiceAccount only as read now, and only while it carries our mark (it may have
    been deleted and recreated by someone else since the plan was made)."""
    current = read_service_account(api, change.namespace, change.name)
    if current is None:
        return
    meta = current.get("metadata") or {}
    if CREATED_BY_ANNOTATION not in (meta.get("annotations") or {}):
        raise ServiceAccountError(
            "retryable",
            "delete",
            f"ServiceAccount {change.namespace}/{change.name} no longer carries {CREATED_BY_ANNOTATION}: "
            "it is not ours, not deleted",
        )
    uid = meta.get("uid")
    if not isinstance(uid, str) or not uid:  # without a uid the precondition would hold for any object
        raise ServiceAccountError(
            "terminal", "delete", f"ServiceAccount {change.namespace}/{change.name} has no metadata.uid"
        )
    delete_service_account(api, change.namespace, change.name, uid)
