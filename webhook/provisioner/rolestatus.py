"""An IRSARole's or ClusterIRSARole's ``.status``: the role, its ServiceAccounts, and conditions whose
messages say what to do.

Built whole from what was observed after a reconcile and the plan made from it (what is still
pending), like the issuer's (``status``, whose condition and Event helpers this reuses):

* ``roleARN``: the role's ARN, once a role of ours exists;
* ``serviceAccounts``: each bound ServiceAccount with its state (``rolebindings.Binding``):
  ``Created``, ``Annotated``, ``Pending``, ``Conflict`` or ``Missing``;
* conditions, in order: ``IssuerReady`` (the issuer is Ready, or the OIDC provider of
  ``issuerURL`` exists), ``TrustPolicySynced``, ``PoliciesSynced`` (managed and inline policies and
  the boundary), ``ServiceAccountsBound``, and ``Ready`` (all of them, and nothing else pending);
* ``terminal``: ``{reason, message}`` when nothing will happen until the object changes (an invalid
  object, a guardrail, a role that is not ours). Waiting for the issuer is not terminal.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from webhook.provisioner.model import JSON, OWNER_TAG, Change
from webhook.provisioner.rolebindings import Binding, binding, matched
from webhook.provisioner.rolemodel import (
    AttachPolicy,
    CreateRole,
    DeleteInlinePolicy,
    DeletePermissionsBoundary,
    DetachPolicy,
    ObservedRoleState,
    PutInlinePolicy,
    PutPermissionsBoundary,
    RolePlan,
    RoleSpec,
    UpdateTrustPolicy,
)
from webhook.provisioner.roleplanner import desired_arn, issuer_wait
from webhook.provisioner.status import Verdict, condition, events_for, invalid_status, pending_message

__all__ = ["ROLE_CONDITION_TYPES", "events_for", "invalid_role_status", "role_status"]

ROLE_CONDITION_TYPES = ("IssuerReady", "TrustPolicySynced", "PoliciesSynced", "ServiceAccountsBound", "Ready")
_TRUST_CHANGES = (CreateRole, UpdateTrustPolicy)
_POLICY_CHANGES = (
    AttachPolicy,
    DetachPolicy,
    PutInlinePolicy,
    DeleteInlinePolicy,
    PutPermissionsBoundary,
    DeletePermissionsBoundary,
)


def role_status(
    spec: RoleSpec,
    observed_after: ObservedRoleState,
    plan_after: RolePlan,
    *,
    annotation_key: str,
    previous: Mapping[str, Any] | None,
    now: datetime,
    error: str | None = None,
) -> JSON:
    """The object's whole new ``.status`` (see the module docstring)."""
    role = observed_after.role
    ours = role is not None and role.tags.get(OWNER_TAG) == spec.owner
    arn = desired_arn(spec, observed_after)
    pairs = matched(spec, observed_after)
    bindings = [binding(spec, bound, sa, annotation_key, arn) for bound, sa in pairs]
    # A wildcard entry no existing ServiceAccount matches yet (an entry without wildcards always has a record).
    unmatched = [f"{b.namespace}/{b.name}" for b in spec.service_accounts if b not in {bound for bound, _ in pairs}]
    status: JSON = {"observedGeneration": spec.generation}
    if ours:
        status["roleARN"] = arn
    status["serviceAccounts"] = [_shown(b) for b in bindings]
    found = [
        ("IssuerReady", _issuer_ready(spec, observed_after)),
        ("TrustPolicySynced", _synced(plan_after, _TRUST_CHANGES, ours, error, _trusted(spec, arn))),
        ("PoliciesSynced", _synced(plan_after, _POLICY_CHANGES, ours, error, _policies(spec))),
        ("ServiceAccountsBound", _bound(plan_after, bindings, unmatched, annotation_key, arn, error=error)),
    ]
    found.append(("Ready", _ready(found, plan_after, arn, len(bindings), error)))
    before = {c.get("type"): c for c in (previous or {}).get("conditions", []) if isinstance(c, Mapping)}
    status["conditions"] = [condition(kind, value, before.get(kind), spec.generation, now) for kind, value in found]
    if plan_after.blocked and not plan_after.waiting:
        status["terminal"] = {"reason": plan_after.reason, "message": plan_after.blocked}
    return status


def invalid_role_status(
    obj: Mapping[str, Any],
    message: str,
    previous: Mapping[str, Any] | None,
    now: datetime,
    *,
    reason: str = "InvalidSpec",
    terminal: bool = True,
) -> JSON:
    """The status when nothing could be observed: the object is invalid (``terminal``), or AWS or
    the cluster refused or failed (``reason`` AccessDenied, AWSUnavailable, ...; not terminal).
    What was known before is kept, and ``Ready`` says what stopped the reconcile."""
    status = invalid_status(obj, message, previous, now, reason=reason)
    status.pop("terminal", None)
    if terminal:
        status["terminal"] = {"reason": reason, "message": message}
    return status


def _shown(b: Binding) -> JSON:
    shown: JSON = {"namespace": b.namespace, "name": b.name, "state": b.state}
    if b.other is not None:
        shown["roleARN"] = b.other
    return shown


def _pending(plan: RolePlan, kinds: tuple[type[Change], ...]) -> list[str]:
    return [change.summary for change in plan.changes if isinstance(change, kinds)]


def _issuer_ready(spec: RoleSpec, observed: ObservedRoleState) -> Verdict:
    waiting = issuer_wait(spec, observed)
    if waiting:
        return "False", waiting[0], waiting[1]
    provider = observed.issuer.provider_arn
    if spec.issuer_ref is not None:
        return "True", "IssuerReady", f"IRSAIssuer {spec.issuer_ref} is Ready (OIDC provider {provider})"
    return "True", "ProviderFound", f"the IAM OIDC provider of {spec.issuer_url} exists"


def _trusted(spec: RoleSpec, arn: str) -> str:
    subjects = ", ".join(f"{sa.namespace}/{sa.name}" for sa in spec.service_accounts)
    return f"role {arn} trusts ServiceAccount(s) {subjects} for audience {spec.audience}"


def _policies(spec: RoleSpec) -> str:
    boundary = f", boundary {spec.permissions_boundary}" if spec.permissions_boundary else ""
    managed, inline = len(spec.managed_policy_arns), len(spec.inline_policies)
    return f"{managed} managed and {inline} inline polic(ies) as listed{boundary}"


def _synced(plan: RolePlan, kinds: tuple[type[Change], ...], ours: bool, error: str | None, in_sync: str) -> Verdict:
    if plan.blocked:
        return "False", plan.reason, plan.blocked
    pending = _pending(plan, kinds)
    if pending:
        return "False", "ChangesPending", pending_message(pending, error)
    if not ours:
        return "False", "RoleMissing", "the role does not exist yet" + (f"; last error: {error}" if error else "")
    return "True", "Synced", in_sync


def _bound(
    plan: RolePlan, bindings: Sequence[Binding], unmatched: Sequence[str], key: str, arn: str, *, error: str | None
) -> Verdict:
    if plan.blocked:
        return "False", plan.reason, f"no ServiceAccount is annotated until the role can be: {plan.blocked}"
    for b in bindings:
        if b.state == "Conflict":
            who = (
                "by irsa-webhook for another role object (or before this role's name or path changed)"
                if b.ours
                else "by someone else"
            )
            return (
                "False",
                "Conflict",
                f"ServiceAccount {b.namespace}/{b.name} is annotated {key}={b.other} {who} and is never overwritten: "
                f"remove that annotation (kubectl annotate serviceaccount -n {b.namespace} {b.name} {key}-) "
                "or bind another ServiceAccount",
            )
    missing = [f"{b.namespace}/{b.name}" for b in bindings if b.state == "Missing"]
    if missing:
        return (
            "False",
            "ServiceAccountMissing",
            f"ServiceAccount {', '.join(missing)} does not exist: create it, or set create: true for it in "
            "spec.serviceAccounts",
        )
    pending = [change.summary for change in plan.changes if change.action.startswith("k8s:")]
    if pending:
        return "False", "ChangesPending", pending_message(pending, error)
    if any(b.state == "Pending" for b in bindings):
        return "False", "ChangesPending", "the ServiceAccounts are annotated once the role exists"
    message = f"{len(bindings)} ServiceAccount(s) annotated {key}={arn}"
    if unmatched:
        message += f"; no ServiceAccount matches {', '.join(unmatched)} yet"
    return "True", "Bound", message


def _ready(found: Sequence[tuple[str, Verdict]], plan: RolePlan, arn: str, bound: int, error: str | None) -> Verdict:
    if error:
        return "False", "ReconcileError", error
    for kind, (state, reason, message) in found:
        if state != "True":
            return state, reason, f"{kind}: {message}"
    if plan.changes:
        return "False", "ChangesPending", pending_message([change.summary for change in plan.changes], error)
    return "True", "Ready", f"role {arn} is in sync and bound to {bound} ServiceAccount(s)"
