"""The pure planner of workload roles: an IRSARole or ClusterIRSARole and what was observed in, the
changes that make them agree out.

No I/O, as the issuer's planner: ``plan``, ``apply`` and the controller take their changes from here.
Every comparison is semantic (``documents.same_policy``: IAM hands policies back URL-encoded and
re-serialised), so a converged role plans nothing and costs no write per resync.

Blocked, in this order (:class:`~webhook.provisioner.rolemodel.RolePlan`): a guardrail violation,
a role of the name that is not ours, a role of ours whose path differs (IAM cannot move a role), all
terminal; then the issuer not Ready or the OIDC provider of ``issuerURL`` missing, which only wait.

Ownership: a role is ours when it carries our owner tag. ``adoption: Always`` takes a role without
any owner tag (the first change tags it ours, so it is claimed before it is modified); a role
tagged with another owner, another object's or another cluster's, is never taken, whatever
``adoption`` says. ``Never`` and ``IfOwned`` behave the same (only a role tagged ours is managed)
and differ in what they tell the user to do.

On a role we own, everything converges exactly to the object, tags included (``roleconverge``).

The order is the order the writes must happen in: the role (created with its trust policy,
boundary, maximum session and tags in one call, or else repaired in that order), its policies,
then the ServiceAccounts (``rolebindings``), which must never name a role before it exists.
"""

from __future__ import annotations

from webhook.core.arn import oidc_provider_arn, role_arn
from webhook.oidc.errors import InputError
from webhook.oidc.issuer import host_path
from webhook.oidc.policy import parse
from webhook.oidc.policylint import lint
from webhook.oidc.trustpolicy import ServiceAccountRef, trust_policy
from webhook.provisioner.documents import json_diff
from webhook.provisioner.model import JSON, OWNER_TAG, Change
from webhook.provisioner.rolebindings import binding_changes
from webhook.provisioner.roleconverge import desired_tags, policy_changes, role_changes
from webhook.provisioner.roledeletion import plan_role_deletion
from webhook.provisioner.rolemodel import (
    CreateRole,
    Guardrails,
    ObservedRole,
    ObservedRoleState,
    RolePlan,
    RoleSpec,
)
from webhook.provisioner.rolespec import check_guardrails

__all__ = [
    "desired_arn",
    "desired_tags",
    "desired_trust",
    "issuer_wait",
    "ownership_problem",
    "plan_role",
    "plan_role_deletion",
    "trusted_issuer",
]


def plan_role(
    spec: RoleSpec, observed: ObservedRoleState, annotation_key: str, guardrails: Guardrails | None = None
) -> RolePlan:
    """The changes that make the role and its ServiceAccounts what ``spec`` says, in order."""
    violation = check_guardrails(spec, guardrails or Guardrails())
    if violation:
        return RolePlan(changes=(), blocked=violation, reason="GuardrailViolation")
    role = observed.role
    problem = ownership_problem(spec, role)
    if problem:
        return RolePlan(changes=(), blocked=problem[1], reason=problem[0])
    waiting = issuer_wait(spec, observed)
    if waiting:
        return RolePlan(changes=(), blocked=waiting[1], reason=waiting[0], waiting=True)
    trust = desired_trust(spec, *trusted_issuer(spec, observed))
    arn = desired_arn(spec, observed)
    changes: list[Change] = []
    if role is None:
        changes.append(_create(spec, arn, trust))
        changes += policy_changes(spec, arn, (), {})
    else:
        changes += role_changes(spec, role, trust)
        changes += policy_changes(spec, arn, role.managed_policy_arns, role.inline_policies)
    changes += binding_changes(spec, observed, annotation_key, arn)
    return RolePlan(changes=tuple(changes), notes=tuple(_lint_notes(trust)))


def ownership_problem(spec: RoleSpec, role: ObservedRole | None) -> tuple[str, str] | None:
    """(reason, message) when a role of the name exists and may not be managed (module docstring)."""
    if role is None:
        return None
    owner = role.tags.get(OWNER_TAG)
    if owner is not None and owner != spec.owner:
        return (
            "RoleOwnedElsewhere",
            f"role {spec.role_name} belongs to {owner} ({OWNER_TAG}): a role is never taken over from another "
            "object or cluster; choose another spec.roleName",
        )
    if owner is None and spec.adoption == "Never":
        return (
            "RoleNotOurs",
            f"role {spec.role_name} exists and is not ours (adoption: Never): choose another spec.roleName, "
            "or delete the role",
        )
    if owner is None and spec.adoption == "IfOwned":
        return (
            "RoleNotOurs",
            f"role {spec.role_name} exists and is not ours: tag it {OWNER_TAG}={spec.owner} to hand it over, "
            "or set spec.adoption: Always to take it",
        )
    if role.path != spec.path:
        return (
            "PathImmutable",
            f"role {spec.role_name} exists with path {role.path}, not {spec.path}: IAM cannot move a role; "
            f"set spec.path: {role.path}, or delete the role to have it recreated",
        )
    return None


def issuer_wait(spec: RoleSpec, observed: ObservedRoleState) -> tuple[str, str] | None:
    """(reason, message) while the role must wait for its issuer (or the provider of ``issuerURL``)."""
    facts = observed.issuer
    if spec.issuer_ref is not None:
        waiting = f"waiting for IRSAIssuer {spec.issuer_ref}"
        if not facts.ready:
            return "IssuerNotReady", f"{waiting}: {facts.message or 'it is not Ready'}"
        if not facts.issuer_url or not facts.provider_arn:
            return "IssuerNotReady", f"{waiting}: its status has no issuerURL and providerARN yet"
        return None
    if not facts.ready:
        why = facts.message or "create it (eksctl utils associate-iam-oidc-provider, or an IRSAIssuer for this URL)"
        return "ProviderMissing", f"waiting for the IAM OIDC provider of {host_path(spec.issuer_url or '')}: {why}"
    return None


def trusted_issuer(spec: RoleSpec, observed: ObservedRoleState) -> tuple[str, str]:
    """(issuer URL, provider ARN) the trust policy names; only once :func:`issuer_wait` is None."""
    facts = observed.issuer
    if spec.issuer_ref is not None:
        if not facts.issuer_url or not facts.provider_arn:
            raise ValueError(f"IRSAIssuer {spec.issuer_ref} is not ready: ask issuer_wait first")
        return facts.issuer_url, facts.provider_arn
    url = spec.issuer_url or ""  # read_role requires exactly one of issuerRef and issuerURL
    return url, facts.provider_arn or oidc_provider_arn(observed.partition, observed.account, host_path(url))


def desired_trust(spec: RoleSpec, issuer_url: str, provider: str) -> JSON:
    """The trust policy, built by the project's one trust-policy generator (never assembled here)."""
    refs = [ServiceAccountRef(namespace=sa.namespace, name=sa.name) for sa in spec.service_accounts]
    return trust_policy(issuer_url, provider, refs, [spec.audience])


def desired_arn(spec: RoleSpec, observed: ObservedRoleState) -> str:
    """The role's ARN: as IAM reports it when the role exists, else as it will be created."""
    if observed.role is not None:
        return observed.role.arn
    return role_arn(observed.partition, observed.account, spec.path, spec.role_name)


def _lint_notes(trust: JSON) -> list[str]:
    # Linted as `trust-policy check` lints: a ClusterIRSARole may share a role across namespaces or
    # use wildcards, which is allowed but should be seen in every plan.
    try:
        statements = parse(trust, "trust policy")
    except InputError:  # pragma: no cover - the generator's own output always parses
        return []
    return [f"trust policy: {finding.describe()}" for finding in lint(statements)]


def _create(spec: RoleSpec, arn: str, trust: JSON) -> CreateRole:
    extras = f", boundary {spec.permissions_boundary}" if spec.permissions_boundary else ""
    return CreateRole(
        action="iam:CreateRole",
        target=arn,
        summary=f"create role {spec.role_name} (max session {spec.max_session_duration}s{extras}), "
        f"tagged {OWNER_TAG}={spec.owner}",
        diff=json_diff(None, trust, "trust policy"),
        role_name=spec.role_name,
        path=spec.path,
        trust_policy=trust,
        max_session_duration=spec.max_session_duration,
        permissions_boundary=spec.permissions_boundary,
        tags=desired_tags(spec),
    )
