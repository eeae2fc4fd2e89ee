"""The role planner's pure tests: IAM and the cluster's ServiceAccounts as plain YAML, and an
in-memory world that applies a plan's changes.

The state a role case starts from, written (or patched) as a person reads it back from ``aws iam``
and ``kubectl``:

    account: "111122223333"
    partition: aws
    issuer: {ready, issuerURL, providerARN, message}        # what the role needs of its issuer
    role: {arn, path, trustPolicy, maxSessionDuration, permissionsBoundary, tags,
           managedPolicyARNs, inlinePolicies} | null
    serviceAccounts:
      <namespace>/<name>: {exists, annotations, ours: [annotation keys our field manager owns]}

Every ServiceAccount of the state is reported to the planner, whatever its namespace: the worst
an observer could do, so a plan that touches a ServiceAccount it must not is caught.

:func:`apply_role_changes` makes a plan's changes the way IAM and kube-apiserver (server-side
apply) would, and refuses what the provisioner must never do whatever the plan says: modify or
delete a role that is not ours (``adoption: Always`` may claim an untagged one, by tagging it
first), take a role from another owner, remove the owner tag, delete a role that still has
policies (IAM: DeleteConflict), pass IAM's default quota of managed policies, overwrite someone
else's annotation, touch a ServiceAccount of another namespace from an IRSARole, delete a
ServiceAccount we did not create.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Iterable, Mapping
from typing import Any
from urllib.parse import quote

from webhook.core.arn import oidc_provider_arn, role_arn
from webhook.core.settings import Settings
from webhook.oidc.issuer import host_path
from webhook.provisioner.documents import load_policy
from webhook.provisioner.model import OWNER_TAG, Change
from webhook.provisioner.rolemodel import (
    CREATED_BY_ANNOTATION,
    ROLE_KIND,
    AnnotateServiceAccount,
    AttachPolicy,
    CreateRole,
    CreateServiceAccount,
    DeleteInlinePolicy,
    DeletePermissionsBoundary,
    DeleteRole,
    DeleteServiceAccount,
    DetachPolicy,
    Guardrails,
    IssuerFacts,
    ObservedRole,
    ObservedRoleState,
    ObservedServiceAccount,
    PutInlinePolicy,
    PutPermissionsBoundary,
    RoleSpec,
    TagRole,
    UntagRole,
    UpdateMaxSessionDuration,
    UpdateTrustPolicy,
)
from webhook.provisioner.roleplanner import plan_role

from .provisioning import Refused

ACCOUNT = "111122223333"
CLUSTER = "test"
ANNOTATION = Settings().annotation("role-arn")  # eks.amazonaws.com/role-arn
ISSUER_URL = "https://irsa-test.s3.us-east-1.amazonaws.com/cluster-a"
PROVIDER_ARN = oidc_provider_arn("aws", ACCOUNT, host_path(ISSUER_URL))
IAM_POLICY_QUOTA = 10  # managed policies per role, IAM's default
_GUARDRAIL_FIELDS = {
    "requirePermissionsBoundary": "require_permissions_boundary",
    "allowedPolicyARNs": "allowed_policy_arns",
    "forbidInlinePolicies": "forbid_inline_policies",
    "rolePath": "role_path",
    "roleNamePrefix": "role_name_prefix",
}


def role_object(
    spec: Mapping[str, Any],
    *,
    kind: str = ROLE_KIND,
    name: str = "s3-reader",
    namespace: str | None = "production",
    generation: int = 1,
) -> dict[str, Any]:
    metadata: dict[str, Any] = {"name": name, "generation": generation}
    if kind == ROLE_KIND:
        metadata["namespace"] = namespace
    return {
        "apiVersion": "irsa-webhook.io/v1alpha1",
        "kind": kind,
        "metadata": metadata,
        "spec": copy.deepcopy(dict(spec)),
    }


def guardrails_of(raw: Mapping[str, Any] | None) -> Guardrails:
    """The controller's guardrails from their YAML form (the camelCase of the fields)."""
    raw = raw or {}
    unknown = set(raw) - set(_GUARDRAIL_FIELDS)
    assert not unknown, f"unknown guardrails {unknown}"
    values = {_GUARDRAIL_FIELDS[key]: value for key, value in raw.items()}
    for key in ("require_permissions_boundary", "allowed_policy_arns"):
        if key in values:
            values[key] = tuple(values[key])
    return Guardrails(**values)


# --- the state as YAML ----------------------------------------------------------------------------


def empty_state(spec: RoleSpec) -> dict[str, Any]:
    """Nothing of ours: the issuer Ready, no role, and each ServiceAccount the role binds without
    ``create`` already there (the user's own, unannotated); one it may create is missing."""
    issuer: dict[str, Any] = {"ready": True, "issuerURL": ISSUER_URL, "providerARN": PROVIDER_ARN}
    if spec.issuer_url is not None:
        provider = oidc_provider_arn("aws", ACCOUNT, host_path(spec.issuer_url))
        issuer = {"ready": True, "issuerURL": spec.issuer_url, "providerARN": provider}
    accounts = {
        f"{sa.namespace}/{sa.name}": {"exists": True, "annotations": {}, "ours": []}
        for sa in spec.service_accounts
        if not sa.create and not any(ch in sa.namespace for ch in "*?")
    }
    return {"account": ACCOUNT, "partition": "aws", "issuer": issuer, "role": None, "serviceAccounts": accounts}


def observed_from(state: Mapping[str, Any], key: str = ANNOTATION) -> ObservedRoleState:
    issuer = state.get("issuer") or {}
    role = state.get("role")
    accounts = []
    for ref, raw in (state.get("serviceAccounts") or {}).items():
        namespace, name = ref.split("/")
        annotations = dict(raw.get("annotations") or {})
        accounts.append(
            ObservedServiceAccount(
                namespace=namespace,
                name=name,
                exists=raw.get("exists", True),
                annotations=annotations,
                annotation_managed_by_us=key in (raw.get("ours") or []),
                created_by=annotations.get(CREATED_BY_ANNOTATION),
            )
        )
    return ObservedRoleState(
        account=state.get("account", ACCOUNT),
        partition=state.get("partition", "aws"),
        issuer=IssuerFacts(
            ready=issuer.get("ready", False),
            issuer_url=issuer.get("issuerURL"),
            provider_arn=issuer.get("providerARN"),
            message=issuer.get("message", ""),
        ),
        role=None if role is None else _role(role),
        service_accounts=tuple(accounts),
    )


def _role(raw: Mapping[str, Any]) -> ObservedRole:
    # IAM hands documents back URL-encoded: parsed the way the observer parses them.
    def as_iam_returns(document: Any) -> Any:
        return load_policy(quote(json.dumps(document)))

    return ObservedRole(
        arn=raw["arn"],
        path=raw.get("path", "/"),
        trust_policy=as_iam_returns(raw["trustPolicy"]),
        max_session_duration=raw.get("maxSessionDuration", 3600),
        permissions_boundary=raw.get("permissionsBoundary"),
        tags=dict(raw.get("tags") or {}),
        managed_policy_arns=tuple(raw.get("managedPolicyARNs") or ()),
        inline_policies={name: as_iam_returns(doc) for name, doc in (raw.get("inlinePolicies") or {}).items()},
    )


def converged(spec: RoleSpec, guardrails: Guardrails | None = None, key: str = ANNOTATION) -> dict[str, Any]:
    """A world where ``spec`` was applied once (in memory), starting from :func:`empty_state`."""
    plan = plan_role(spec, observed_from(empty_state(spec), key), key, guardrails)
    assert plan.blocked is None, plan.blocked
    state = apply_role_changes(empty_state(spec), plan.changes, spec, key)
    assert plan_role(spec, observed_from(state, key), key, guardrails).changes == (), "one apply does not converge"
    return state


# --- the in-memory world --------------------------------------------------------------------------


def apply_role_changes(
    state: Mapping[str, Any], changes: Iterable[Change], spec: RoleSpec, key: str = ANNOTATION
) -> dict[str, Any]:
    """``state`` (YAML form) after ``changes``, made as IAM and kube-apiserver would make them."""
    result = copy.deepcopy(dict(state))
    for change in changes:
        if change.action.startswith("k8s:"):
            _apply_k8s(result, change, spec, key)
        else:
            _apply_iam(result, change, spec)
    return result


def _apply_iam(state: dict[str, Any], change: Change, spec: RoleSpec) -> None:
    role = state.get("role")
    if isinstance(change, CreateRole):
        if role is not None:
            raise Refused(f"CreateRole {change.role_name}: it exists (IAM: EntityAlreadyExists)")
        arn = role_arn(state["partition"], state["account"], change.path, change.role_name)
        assert change.target == arn, (change.target, arn)
        if change.tags.get(OWNER_TAG) != spec.owner:
            raise Refused(f"role {change.role_name} created without our owner tag")
        state["role"] = {
            "arn": arn,
            "path": change.path,
            "trustPolicy": copy.deepcopy(change.trust_policy),
            "maxSessionDuration": change.max_session_duration,
            "permissionsBoundary": change.permissions_boundary,
            "tags": dict(change.tags),
            "managedPolicyARNs": [],
            "inlinePolicies": {},
        }
        return
    if role is None or not role["arn"].endswith("/" + getattr(change, "role_name", "?")):
        raise AssertionError(f"{change.action} on {change.target}: no such role (IAM: NoSuchEntity)")
    assert change.target == role["arn"], (change.target, role["arn"])
    owner = role["tags"].get(OWNER_TAG)
    if isinstance(change, TagRole) and owner is None and change.tags.get(OWNER_TAG) == spec.owner:
        if spec.adoption != "Always":
            raise Refused(f"role {role['arn']} claimed without adoption: Always")
    elif owner != spec.owner:
        raise Refused(f"{change.action} on {role['arn']}, which does not carry our owner tag")
    _change_role(state, role, change)


def _change_role(state: dict[str, Any], role: dict[str, Any], change: Change) -> None:
    if isinstance(change, UpdateTrustPolicy):
        role["trustPolicy"] = copy.deepcopy(change.trust_policy)
    elif isinstance(change, UpdateMaxSessionDuration):
        role["maxSessionDuration"] = change.max_session_duration
    elif isinstance(change, PutPermissionsBoundary):
        role["permissionsBoundary"] = change.boundary
    elif isinstance(change, DeletePermissionsBoundary):
        role["permissionsBoundary"] = None
    elif isinstance(change, TagRole):
        if OWNER_TAG in change.tags and role["tags"].get(OWNER_TAG) not in (None, change.tags[OWNER_TAG]):
            raise Refused(f"the owner tag of {role['arn']} changed from {role['tags'][OWNER_TAG]}")
        role["tags"].update(change.tags)
    elif isinstance(change, UntagRole):
        if OWNER_TAG in change.keys:
            raise Refused(f"the owner tag removed from {role['arn']}")
        role["tags"] = {k: v for k, v in role["tags"].items() if k not in change.keys}
    elif isinstance(change, AttachPolicy):
        attached = role["managedPolicyARNs"]
        assert change.policy_arn not in attached, f"{change.policy_arn} attached twice"
        if len(attached) >= IAM_POLICY_QUOTA:
            raise Refused(f"{change.policy_arn} attached past IAM's quota of {IAM_POLICY_QUOTA} (LimitExceeded)")
        attached.append(change.policy_arn)
    elif isinstance(change, DetachPolicy):
        assert change.policy_arn in role["managedPolicyARNs"], f"{change.policy_arn} is not attached"
        role["managedPolicyARNs"].remove(change.policy_arn)
    elif isinstance(change, PutInlinePolicy):
        role["inlinePolicies"][change.policy_name] = copy.deepcopy(change.document)
    elif isinstance(change, DeleteInlinePolicy):
        assert change.policy_name in role["inlinePolicies"], f"no inline policy {change.policy_name}"
        del role["inlinePolicies"][change.policy_name]
    elif isinstance(change, DeleteRole):
        if role["managedPolicyARNs"] or role["inlinePolicies"]:
            raise Refused(f"role {role['arn']} deleted with policies still on it (IAM: DeleteConflict)")
        state["role"] = None
    else:
        raise AssertionError(f"the in-memory IAM does not know {type(change).__name__}")


def _apply_k8s(state: dict[str, Any], change: Change, spec: RoleSpec, key: str) -> None:
    namespace, name = getattr(change, "namespace", ""), getattr(change, "name", "")
    assert change.target == f"serviceaccount/{namespace}/{name}", change.target
    if spec.kind == ROLE_KIND and namespace != spec.namespace:
        raise Refused(f"an IRSARole of {spec.namespace} wrote ServiceAccount {namespace}/{name}")
    accounts = state.setdefault("serviceAccounts", {})
    found = accounts.get(f"{namespace}/{name}")
    exists = found is not None and found.get("exists", True)
    if isinstance(change, CreateServiceAccount):
        if exists:
            raise Refused(f"ServiceAccount {namespace}/{name} created but it exists (AlreadyExists)")
        if change.annotations.get(CREATED_BY_ANNOTATION) != spec.owner:
            raise Refused(f"ServiceAccount {namespace}/{name} created without {CREATED_BY_ANNOTATION}")
        accounts[f"{namespace}/{name}"] = {
            "exists": True,
            "annotations": dict(change.annotations),
            "ours": sorted(change.annotations),
        }
        return
    assert found is not None, f"{change.action} on ServiceAccount {namespace}/{name}, which does not exist"
    assert exists, f"{change.action} on ServiceAccount {namespace}/{name}, which does not exist"
    annotations = found.setdefault("annotations", {})
    if isinstance(change, DeleteServiceAccount):
        if annotations.get(CREATED_BY_ANNOTATION) != spec.owner:
            raise Refused(f"ServiceAccount {namespace}/{name} deleted but we did not create it")
        accounts[f"{namespace}/{name}"] = {"exists": False}
    elif isinstance(change, AnnotateServiceAccount):
        _server_side_apply(found, change.annotations, spec, key)
    else:
        raise AssertionError(f"the in-memory cluster does not know {type(change).__name__}")


def _server_side_apply(found: dict[str, Any], intent: Mapping[str, str], spec: RoleSpec, key: str) -> None:
    """Our field manager's apply of exactly ``intent``: what we owned and left out goes; someone
    else's value is never overwritten (kube-apiserver: a conflict, which we never force)."""
    annotations, ours = found["annotations"], set(found.get("ours") or [])
    for name, value in intent.items():
        current = annotations.get(name)
        if current not in (None, value) and name not in ours:
            raise Refused(f"annotation {name}={current} of someone else overwritten with {value}")
        if name == key and current not in (None, value) and annotations.get(CREATED_BY_ANNOTATION) != spec.owner:
            raise Refused(f"annotation {name}={current} of another role object overwritten with {value}")
    for name in ours - set(intent):
        annotations.pop(name, None)
    annotations.update(intent)
    found["ours"] = sorted(intent)
