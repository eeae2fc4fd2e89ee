"""What IAM and the cluster hold for one workload role, read and never written: the only code that
fills an ObservedRole, an ObservedServiceAccount and IssuerFacts.

The role (:func:`observe_role`): GetRole (NoSuchEntity: there is none), then its tags, managed
policies and inline policies, each list followed page by page: IAM may end a page early
(``IsTruncated`` with fewer than ``MaxItems``), and GetRole's own ``Tags`` are not documented to be
complete, so ListRoleTags is read instead. Policy documents come back URL-encoded JSON; botocore
decodes them into dicts, and a string it could not decode is decoded here.

The issuer (:func:`issuer_facts_from_status`) is what its IRSAIssuer's status says, read by the
caller; the provider it names must exist in IAM (:func:`provider_exists`).

Every failure other than "there is none" raises :class:`~webhook.aws.errors.AwsError`, classified;
a ServiceAccount that cannot be read raises :class:`~webhook.kube.serviceaccountwrites.ServiceAccountError`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from kubernetes import client

from webhook.aws.errors import AwsError, translated
from webhook.aws.session import AwsClients
from webhook.kube.serviceaccountwrites import (
    ServiceAccountError,
    annotated_by,
    list_service_accounts,
    read_service_account,
)
from webhook.oidc.conditions import like_pattern
from webhook.provisioner.documents import load_policy
from webhook.provisioner.model import JSON
from webhook.provisioner.rolemodel import (
    CREATED_BY_ANNOTATION,
    FIELD_MANAGER,
    IssuerFacts,
    ObservedRole,
    ObservedServiceAccount,
    RoleSpec,
)

# Items asked for per page of a list (IAM's own default and maximum is 100 for these three calls).
PAGE_SIZE = 100
_NO_ENTITY = "NoSuchEntity"


def observe_role(role_name: str, aws: AwsClients) -> ObservedRole | None:
    """The role ``role_name`` with its tags and policies; None when IAM has no such role."""
    try:
        with translated("iam:GetRole", role_name):
            role = aws.iam.get_role(RoleName=role_name)["Role"]
    except AwsError as exc:
        if exc.code == _NO_ENTITY:
            return None
        raise
    boundary = role.get("PermissionsBoundary") or {}
    tags = {t["Key"]: t["Value"] for t in _pages(aws, "ListRoleTags", "Tags", role_name)}
    managed = tuple(p["PolicyArn"] for p in _pages(aws, "ListAttachedRolePolicies", "AttachedPolicies", role_name))
    names = list(_pages(aws, "ListRolePolicies", "PolicyNames", role_name))
    return ObservedRole(
        arn=str(role["Arn"]),
        path=str(role.get("Path") or "/"),
        trust_policy=_document(role.get("AssumeRolePolicyDocument"), "iam:GetRole", f"the trust policy of {role_name}"),
        max_session_duration=int(role.get("MaxSessionDuration") or 3600),
        permissions_boundary=boundary.get("PermissionsBoundaryArn"),
        tags=tags,
        managed_policy_arns=managed,
        inline_policies={name: _inline_policy(aws, role_name, name) for name in names},
    )


def provider_exists(arn: str, aws: AwsClients) -> bool:
    """Whether IAM has the OIDC provider ``arn`` (the one a role's trust policy names)."""
    try:
        with translated("iam:GetOpenIDConnectProvider", arn):
            aws.iam.get_open_id_connect_provider(OpenIDConnectProviderArn=arn)
    except AwsError as exc:
        if exc.code == _NO_ENTITY:
            return False
        raise
    return True


def observe_service_account(
    api: client.ApiClient, namespace: str, name: str, annotation_key: str
) -> ObservedServiceAccount:
    """The ServiceAccount as a role sees it: whether it exists, its annotations, whether our field
    manager owns the role-arn annotation ``annotation_key``, and who created it (our mark)."""
    sa = read_service_account(api, namespace, name)
    if sa is None:
        return ObservedServiceAccount(namespace=namespace, name=name, exists=False)
    annotations = (sa.get("metadata") or {}).get("annotations") or {}
    return ObservedServiceAccount(
        namespace=namespace,
        name=name,
        exists=True,
        annotations=dict(annotations),
        annotation_managed_by_us=annotated_by(sa, annotation_key, FIELD_MANAGER),
        created_by=annotations.get(CREATED_BY_ANNOTATION),
    )


def observe_service_accounts(
    spec: RoleSpec, api: client.ApiClient, annotation_key: str, role_arn: str
) -> tuple[ObservedServiceAccount, ...]:
    """What :mod:`webhook.provisioner.rolebindings` needs: one record per bound ServiceAccount named
    without wildcards (``exists=False`` when missing), every existing ServiceAccount a wildcard entry
    matches, and any other ServiceAccount that carries ``role_arn`` in the annotation (bound once, or
    by hand: what a deletion must find), from one list of the object's namespace (IRSARole) or of
    the cluster (ClusterIRSARole)."""
    try:
        listed = list_service_accounts(api, spec.namespace)
    except ServiceAccountError as exc:
        raise AwsError(exc.kind, "kubernetes:ListServiceAccounts", exc.message) from exc
    by_key = {(_ns(sa), _sa_name(sa)): sa for sa in listed}
    wanted: dict[tuple[str, str], None] = {}
    for bound in spec.service_accounts:
        if any(ch in bound.namespace for ch in "*?"):
            wanted |= {
                key: None for key in by_key if like_pattern(bound.namespace).fullmatch(key[0]) and key[1] == bound.name
            }
        else:
            wanted[(bound.namespace, bound.name)] = None
    for key, sa in by_key.items():
        if ((sa.get("metadata") or {}).get("annotations") or {}).get(annotation_key) == role_arn:
            wanted[key] = None
    records = []
    for namespace, name in wanted:
        records.append(_observed(namespace, name, by_key.get((namespace, name)), annotation_key))
    return tuple(records)


def _observed(namespace: str, name: str, sa: Mapping[str, Any] | None, annotation_key: str) -> ObservedServiceAccount:
    if sa is None:
        return ObservedServiceAccount(namespace=namespace, name=name, exists=False)
    annotations = (sa.get("metadata") or {}).get("annotations") or {}
    return ObservedServiceAccount(
        namespace=namespace,
        name=name,
        exists=True,
        annotations=dict(annotations),
        annotation_managed_by_us=annotated_by(sa, annotation_key, FIELD_MANAGER),
        created_by=annotations.get(CREATED_BY_ANNOTATION),
    )


def _ns(sa: Mapping[str, Any]) -> str:
    return str((sa.get("metadata") or {}).get("namespace", ""))


def _sa_name(sa: Mapping[str, Any]) -> str:
    return str((sa.get("metadata") or {}).get("name", ""))


def issuer_facts_from_status(issuer_obj: Mapping[str, Any] | None, name: str) -> IssuerFacts:
    """What the IRSAIssuer ``name`` (as read, None: there is none) offers a role: ready only when its
    status is of its current generation, Ready is True, and it names its provider and issuer URL."""
    if issuer_obj is None:
        return IssuerFacts(
            False, None, None, f"IRSAIssuer {name} does not exist: create it, or name an existing one in spec.issuerRef"
        )
    status = _mapping(issuer_obj.get("status"))
    url, arn = _text(status.get("issuerURL")), _text(status.get("providerARN"))
    why = _not_ready(_mapping(issuer_obj.get("metadata")), status)
    if why is None and (url is None or arn is None):
        why = "is Ready but its status names no issuerURL or providerARN"
    if why is not None:
        return IssuerFacts(False, url, arn, f"IRSAIssuer {name} {why}")
    return IssuerFacts(True, url, arn)


def _not_ready(meta: Mapping[str, Any], status: Mapping[str, Any]) -> str | None:
    """Why an issuer's status cannot be relied on, None when it can."""
    if meta.get("deletionTimestamp"):
        return "is being deleted"
    conditions = status.get("conditions")
    listed = conditions if isinstance(conditions, list) else []
    ready = next((c for c in listed if isinstance(c, Mapping) and c.get("type") == "Ready"), None)
    if ready is None:
        return "has no Ready condition yet: is the provisioner's controller running?"
    generation = meta.get("generation")
    if isinstance(generation, int) and status.get("observedGeneration") != generation:
        # Its status describes an earlier spec (maybe another issuer URL): wait for the current one.
        return "has changed since its status was written: waiting for it to be reconciled"
    if ready.get("status") != "True":
        return f"is not Ready ({ready.get('reason') or 'no reason'}: {ready.get('message') or ''})"
    return None


# --- reading ----------------------------------------------------------------------------------------


def _pages(aws: AwsClients, operation: str, field: str, role_name: str) -> list[Any]:
    """Every item of ``field`` of the IAM list ``operation`` for the role, page after page."""
    items: list[Any] = []
    with translated(f"iam:{operation}", role_name):
        paginator = aws.iam.get_paginator(_snake(operation))
        for page in paginator.paginate(RoleName=role_name, PaginationConfig={"PageSize": PAGE_SIZE}):
            items.extend(page.get(field, []))
    return items


def _inline_policy(aws: AwsClients, role_name: str, policy_name: str) -> JSON:
    with translated("iam:GetRolePolicy", f"{role_name}/{policy_name}"):
        got = aws.iam.get_role_policy(RoleName=role_name, PolicyName=policy_name)
    return _document(got.get("PolicyDocument"), "iam:GetRolePolicy", f"inline policy {policy_name} of {role_name}")


def _document(value: object, action: str, what: str) -> JSON:
    """A policy document as botocore hands it over: a dict (decoded), or the URL-encoded JSON text
    it could not decode, decoded here."""
    if isinstance(value, dict):
        return value
    try:
        return load_policy(str(value))
    except ValueError as exc:
        raise AwsError("terminal", action, f"{what} is not a JSON policy document: {exc}") from exc


def _snake(operation: str) -> str:
    return "".join(f"_{c.lower()}" if c.isupper() else c for c in operation).lstrip("_")


def _mapping(value: object) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def _text(value: object) -> str | None:
    return value if isinstance(value, str) and value else None
