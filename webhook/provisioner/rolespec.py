"""An IRSARole or ClusterIRSARole object, read once and checked: the raw dict becomes a RoleSpec.

Every mistake is an :class:`InputError` of one line that names the field and says what to write
instead; unknown fields are refused (see ``fields``). Beyond the shapes IAM and Kubernetes impose:

* an IRSARole binds ServiceAccounts of its own namespace only (a namespace omitted is its own):
  whoever may create one in a namespace must not obtain a role another namespace's workloads can
  assume; a ClusterIRSARole (admin-only, cluster-scoped) names every namespace explicitly;
* wildcards (IAM's ``*`` and ``?``) only in the namespace of a ClusterIRSARole that says
  ``allowWildcards: true``, never in names, never with ``create: true`` (no single ServiceAccount
  to create);
* the owner tag's key prefix ``irsa-webhook.io/`` is ours and ``aws:`` is AWS's: neither in
  ``spec.tags``.

The IAM parts (path, session, policies, tags) are read by ``roleiam`` against IAM's own limits.
The role's name defaults to ``<namespace>-<name>`` (IRSARole) or ``<name>`` (ClusterIRSARole),
shortened deterministically when longer than IAM's 64 characters (:func:`default_role_name`).

:func:`check_guardrails` applies the controller's guardrails to a namespaced IRSARole. It only
checks, never fills in: the role's name and path come from the object alone, so a change of the
guardrails can never make the controller look for (or delete) another role than the one it made.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from typing import Any, cast

from webhook.core.arn import ROLE_NAME_RE
from webhook.core.settings import DEFAULT_AUDIENCE
from webhook.oidc.conditions import like_pattern
from webhook.oidc.errors import InputError
from webhook.oidc.issuer import validate_issuer
from webhook.oidc.trustpolicy import valid_namespace, valid_service_account_name
from webhook.provisioner.fields import generation, known, mapping, string, unique
from webhook.provisioner.model import API_GROUP, API_VERSION, DeletionPolicy, owner_value
from webhook.provisioner.roleiam import (
    MAX_TAG_VALUE,
    read_boundary,
    read_inline,
    read_managed,
    read_path,
    read_session,
    read_tags,
)
from webhook.provisioner.rolemodel import (
    CLUSTER_ROLE_KIND,
    ROLE_KIND,
    Adoption,
    BoundServiceAccount,
    Guardrails,
    RoleSpec,
)

KINDS = (ROLE_KIND, CLUSTER_ROLE_KIND)
TOP_LEVEL_FIELDS = ("apiVersion", "kind", "metadata", "spec", "status")
SPEC_FIELDS = (
    "issuerRef",
    "issuerURL",
    "serviceAccounts",
    "allowWildcards",
    "roleName",
    "path",
    "maxSessionDuration",
    "permissionsBoundary",
    "managedPolicyARNs",
    "inlinePolicies",
    "tags",
    "audience",
    "adoption",
    "deletionPolicy",
)
SERVICE_ACCOUNT_FIELDS = ("name", "namespace", "create")
ADOPTIONS: tuple[Adoption, ...] = ("Never", "IfOwned", "Always")
DELETION_POLICIES: tuple[DeletionPolicy, ...] = ("Delete", "Retain")

# The default name, when longer than IAM allows: a prefix and a hash of the whole name, so that
# two long names that share their first 55 characters still get different roles.
MAX_ROLE_NAME = 64
_HASH_CHARS = 8
_KEPT_CHARS = MAX_ROLE_NAME - _HASH_CHARS - 1


def default_role_name(kind: str, namespace: str | None, name: str) -> str:
    """``<namespace>-<name>`` (IRSARole) or ``<name>`` (ClusterIRSARole); over 64 characters, its
    first 55, ``-`` and the first 8 hex digits of the SHA-256 of the whole name."""
    full = f"{namespace}-{name}" if kind == ROLE_KIND else name
    if len(full) <= MAX_ROLE_NAME:
        return full
    return f"{full[:_KEPT_CHARS]}-{hashlib.sha256(full.encode()).hexdigest()[:_HASH_CHARS]}"


def read_role(obj: Mapping[str, Any], cluster: str) -> RoleSpec:
    """The IRSARole or ClusterIRSARole ``obj`` checked and normalised (see the module docstring)."""
    if not isinstance(obj, Mapping):
        raise InputError(f"an {ROLE_KIND} must be a mapping, not {type(obj).__name__}")
    kind, namespace, name = _identity(obj)
    try:
        return _read(obj, kind, namespace, name, cluster)
    except InputError as exc:
        shown = f"{namespace}/{name}" if namespace else name
        raise InputError(f"{kind} {shown}: {exc}") from exc


def _identity(obj: Mapping[str, Any]) -> tuple[str, str | None, str]:
    kind = obj.get("kind")
    if kind not in KINDS:
        raise InputError(f"kind is {kind!r}, expected {' or '.join(KINDS)}")
    api_version = f"{API_GROUP}/{API_VERSION}"
    if obj.get("apiVersion") != api_version:
        raise InputError(f"apiVersion is {obj.get('apiVersion')!r}: an {kind} needs apiVersion: {api_version}")
    metadata = obj.get("metadata")
    metadata = metadata if isinstance(metadata, Mapping) else {}
    name = metadata.get("name")
    if not isinstance(name, str) or not name:
        raise InputError(f"the {kind} has no metadata.name: give it one")
    namespace = metadata.get("namespace")
    if kind == ROLE_KIND and (not isinstance(namespace, str) or not namespace):
        raise InputError(f"{kind} {name} has no metadata.namespace: an {kind} is namespaced, give it one")
    if kind == CLUSTER_ROLE_KIND and namespace is not None:
        raise InputError(
            f"{kind} {name} has metadata.namespace {namespace!r}: a {kind} is cluster-scoped, remove it "
            f"(or make it an {ROLE_KIND})"
        )
    return kind, namespace, name


def _read(obj: Mapping[str, Any], kind: str, namespace: str | None, name: str, cluster: str) -> RoleSpec:
    if not cluster:
        raise InputError("the cluster name is empty: pass --cluster-name (it goes into the owner tag)")
    known(obj, TOP_LEVEL_FIELDS, "the object")
    spec = mapping(obj.get("spec"), "spec")
    known(spec, SPEC_FIELDS, "spec")
    owner = owner_value(cluster, kind, f"{namespace}/{name}" if kind == ROLE_KIND else name)
    if len(owner) > MAX_TAG_VALUE:
        raise InputError(
            f"the owner tag value {owner[:40]!r}... is longer than IAM's {MAX_TAG_VALUE} characters: "
            "shorten metadata.name or the cluster name"
        )
    issuer_ref, issuer_url = _issuer(spec)
    role_name = _role_name(spec, kind, namespace, name)
    return RoleSpec(
        kind=kind,
        name=name,
        namespace=namespace,
        generation=generation(obj["metadata"]),
        owner=owner,
        issuer_ref=issuer_ref,
        issuer_url=issuer_url,
        service_accounts=_service_accounts(spec, kind, namespace),
        role_name=role_name,
        path=read_path(spec),
        max_session_duration=read_session(spec),
        permissions_boundary=read_boundary(spec),
        managed_policy_arns=read_managed(spec),
        inline_policies=read_inline(spec),
        tags=read_tags(spec),
        audience=string(spec.get("audience", DEFAULT_AUDIENCE), "spec.audience"),
        adoption=cast(Adoption, _one_of(spec, "adoption", ADOPTIONS, "IfOwned")),
        deletion_policy=cast(DeletionPolicy, _one_of(spec, "deletionPolicy", DELETION_POLICIES, "Delete")),
    )


def _one_of(spec: Mapping[str, Any], field: str, allowed: tuple[str, ...], default: str) -> str:
    value = spec.get(field, default)
    if value not in allowed:
        raise InputError(f"spec.{field} is {value!r}: use {', '.join(allowed)}")
    return cast(str, value)


def _issuer(spec: Mapping[str, Any]) -> tuple[str | None, str | None]:
    given = [field for field in ("issuerRef", "issuerURL") if spec.get(field) is not None]
    if len(given) != 1:
        which = "both" if given else "neither"
        raise InputError(
            f"spec has {which} of issuerRef and issuerURL: give exactly one (issuerRef: an IRSAIssuer's name, "
            "issuerURL: the URL of an issuer with an IAM OIDC provider, such as EKS's)"
        )
    if given == ["issuerRef"]:
        ref = string(spec["issuerRef"], "spec.issuerRef")
        if not valid_service_account_name(ref):  # the same rule: an object name, an RFC 1123 subdomain
            raise InputError(f"spec.issuerRef {ref!r} is not a valid object name: give an IRSAIssuer's metadata.name")
        return ref, None
    return None, validate_issuer(string(spec["issuerURL"], "spec.issuerURL"), "spec.issuerURL")


def _service_accounts(spec: Mapping[str, Any], kind: str, own: str | None) -> tuple[BoundServiceAccount, ...]:
    raw = spec.get("serviceAccounts")
    if not isinstance(raw, list) or not raw:
        raise InputError("spec.serviceAccounts must list at least one ServiceAccount ({name: ..., namespace: ...})")
    wildcards = spec.get("allowWildcards", False)
    if not isinstance(wildcards, bool):
        raise InputError(f"spec.allowWildcards is {wildcards!r}: use true or false")
    if wildcards and kind == ROLE_KIND:
        raise InputError(f"spec.allowWildcards: only a {CLUSTER_ROLE_KIND} may use wildcards; remove it")
    bound = [
        _service_account(mapping(item, f"spec.serviceAccounts[{i}]"), i, kind, own, wildcards)
        for i, item in enumerate(raw)
    ]
    unique([f"{sa.namespace}/{sa.name}" for sa in bound], "spec.serviceAccounts")
    return tuple(bound)


def _service_account(
    item: Mapping[str, Any], index: int, kind: str, own: str | None, wildcards: bool
) -> BoundServiceAccount:
    where = f"spec.serviceAccounts[{index}]"
    known(item, SERVICE_ACCOUNT_FIELDS, where)
    name = string(item.get("name"), f"{where}.name")
    if any(ch in name for ch in "*?"):
        raise InputError(f"{where}.name {name!r}: names are never wildcards (only a namespace may be)")
    if not valid_service_account_name(name):
        raise InputError(f"{where}.name {name!r} is not a valid ServiceAccount name (an RFC 1123 subdomain)")
    create = item.get("create", False)
    if not isinstance(create, bool):
        raise InputError(f"{where}.create is {create!r}: use true or false")
    if kind == ROLE_KIND:
        namespace = item.get("namespace", own)
        if namespace != own:
            raise InputError(
                f"{where}.namespace is {namespace!r}: an {ROLE_KIND} binds ServiceAccounts of its own namespace "
                f"({own}) only; leave namespace out, or ask an admin for a {CLUSTER_ROLE_KIND}"
            )
        assert own is not None  # _identity requires it of an IRSARole; narrows the type
        return BoundServiceAccount(namespace=own, name=name, create=create)
    namespace = string(item.get("namespace"), f"{where}.namespace")
    wild = any(ch in namespace for ch in "*?")
    if wild and not wildcards:
        raise InputError(
            f"{where}.namespace {namespace!r} has a wildcard: set spec.allowWildcards: true to allow it "
            "(the trust policy then matches subjects with StringLike)"
        )
    if not valid_namespace(namespace, wildcard=wild):
        raise InputError(f"{where}.namespace {namespace!r} is not a valid namespace name (or pattern)")
    if wild and create:
        raise InputError(f"{where}: create: true needs a namespace without wildcards (there is no one to create)")
    return BoundServiceAccount(namespace=namespace, name=name, create=create)


def _role_name(spec: Mapping[str, Any], kind: str, namespace: str | None, name: str) -> str:
    if spec.get("roleName") is None:
        return default_role_name(kind, namespace, name)
    role_name = string(spec["roleName"], "spec.roleName")
    if not ROLE_NAME_RE.fullmatch(role_name):
        raise InputError(
            f"spec.roleName {role_name!r} is not an IAM role name: use at most {MAX_ROLE_NAME} letters, digits "
            "and + = , . @ _ -"
        )
    return role_name


# --- guardrails -----------------------------------------------------------------------------------


def check_guardrails(spec: RoleSpec, guardrails: Guardrails) -> str | None:
    """Why the controller's guardrails refuse ``spec`` (every violation, one line), or None.

    Only namespaced IRSARoles are subject to them: a ClusterIRSARole is for admins.
    """
    if spec.kind != ROLE_KIND:
        return None
    found: list[str] = []
    wanted = guardrails.require_permissions_boundary
    if wanted and spec.permissions_boundary is None:
        found.append(f"a permissions boundary is required: set spec.permissionsBoundary to {_either(wanted)}")
    elif wanted and spec.permissions_boundary and not _matches(wanted, spec.permissions_boundary):
        found.append(f"spec.permissionsBoundary {spec.permissions_boundary} is not allowed: use {_either(wanted)}")
    allowed = guardrails.allowed_policy_arns
    refused = [arn for arn in spec.managed_policy_arns if allowed and not _matches(allowed, arn)]
    if refused:
        found.append(f"spec.managedPolicyARNs: {', '.join(refused)} not allowed (allowed: {', '.join(allowed)})")
    if guardrails.forbid_inline_policies and spec.inline_policies:
        found.append("inline policies are not allowed: remove spec.inlinePolicies and use managed policies")
    path = guardrails.role_path
    if path is not None and not spec.path.startswith(path.rstrip("/") + "/"):
        found.append(f"spec.path {spec.path} is not allowed: set spec.path: {path} (or a path under it)")
    prefix = guardrails.role_name_prefix
    if prefix is not None and not spec.role_name.startswith(prefix):
        found.append(f"role name {spec.role_name} does not start with {prefix}: set spec.roleName to {prefix}...")
    if not found:
        return None
    return "the cluster's guardrails refuse this role: " + "; ".join(found)


def _matches(patterns: tuple[str, ...], arn: str) -> bool:
    # IAM's wildcards, case-sensitive as ARNs in IAM policies are: the guardrail is never looser than written.
    return any(like_pattern(pattern).fullmatch(arn) for pattern in patterns)


def _either(patterns: tuple[str, ...]) -> str:
    return " or ".join(patterns)
