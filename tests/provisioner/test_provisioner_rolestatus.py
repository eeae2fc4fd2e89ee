"""The status of an IRSARole or ClusterIRSARole: the role, its ServiceAccounts, conditions that say what
to do, the terminal flag, and Events on transitions."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from tests.support.provisioning import merge_patch
from tests.support.roleworld import (
    ANNOTATION,
    CLUSTER,
    apply_role_changes,
    converged,
    empty_state,
    guardrails_of,
    observed_from,
    role_object,
)
from webhook.provisioner.rolemodel import CLUSTER_ROLE_KIND, Guardrails, RolePlan, RoleSpec
from webhook.provisioner.roleplanner import plan_role
from webhook.provisioner.rolespec import read_role
from webhook.provisioner.rolestatus import ROLE_CONDITION_TYPES, events_for, invalid_role_status, role_status

T0 = datetime(2025, 1, 1, 12, 0, 0, tzinfo=UTC)
ROLE = "arn:aws:iam::111122223333:role/production-s3-reader"
SPEC = {
    "issuerRef": "main",
    "serviceAccounts": [{"name": "s3-reader", "create": True}, {"name": "s3-batch"}],
    "managedPolicyARNs": ["arn:aws:iam::aws:policy/AmazonS3ReadOnlyAccess"],
}


def spec_of(raw: dict[str, Any] | None = None, generation: int = 3) -> RoleSpec:
    return read_role(role_object(raw or SPEC, generation=generation), CLUSTER)


def status_of(
    spec: RoleSpec,
    state: dict[str, Any],
    *,
    guardrails: Guardrails | None = None,
    previous: dict[str, Any] | None = None,
    now: datetime = T0,
    error: str | None = None,
    plan: RolePlan | None = None,
) -> dict[str, Any]:
    observed = observed_from(state)
    plan = plan_role(spec, observed, ANNOTATION, guardrails) if plan is None else plan
    return role_status(spec, observed, plan, annotation_key=ANNOTATION, previous=previous, now=now, error=error)


def conditions(status: dict[str, Any]) -> dict[str, tuple[str, str, str]]:
    return {c["type"]: (c["status"], c["reason"], c["message"]) for c in status["conditions"]}


def test_converged_role_is_ready() -> None:
    spec = spec_of()
    status = status_of(spec, converged(spec))
    assert status["observedGeneration"] == 3
    assert status["roleARN"] == ROLE
    assert status["serviceAccounts"] == [
        {"namespace": "production", "name": "s3-reader", "state": "Created"},
        {"namespace": "production", "name": "s3-batch", "state": "Annotated"},
    ]
    assert [c["type"] for c in status["conditions"]] == list(ROLE_CONDITION_TYPES)
    found = conditions(status)
    assert all(state == "True" for state, _, _ in found.values()), found
    assert found["IssuerReady"][2] == (
        "IRSAIssuer main is Ready (OIDC provider "
        "arn:aws:iam::111122223333:oidc-provider/irsa-test.s3.us-east-1.amazonaws.com/cluster-a)"
    )
    assert found["TrustPolicySynced"][2] == (
        f"role {ROLE} trusts ServiceAccount(s) production/s3-reader, production/s3-batch for audience sts.amazonaws.com"
    )
    assert found["ServiceAccountsBound"][2] == f"2 ServiceAccount(s) annotated {ANNOTATION}={ROLE}"
    assert found["Ready"] == ("True", "Ready", f"role {ROLE} is in sync and bound to 2 ServiceAccount(s)")
    assert "terminal" not in status
    assert all(
        c["observedGeneration"] == 3 and c["lastTransitionTime"] == "2025-01-01T12:00:00Z" for c in status["conditions"]
    )


def test_before_the_first_apply_everything_is_pending() -> None:
    spec = spec_of()
    status = status_of(spec, empty_state(spec), error="Throttling: Rate exceeded")
    found = conditions(status)
    assert "roleARN" not in status
    assert [sa["state"] for sa in status["serviceAccounts"]] == ["Pending", "Pending"]
    assert found["IssuerReady"][0] == "True"
    assert found["TrustPolicySynced"] == (
        "False",
        "ChangesPending",
        "1 change(s) pending, first: create role production-s3-reader (max session 3600s), tagged "
        "irsa-webhook.io/owner=test/irsarole/production/s3-reader; last error: Throttling: Rate exceeded",
    )
    assert found["PoliciesSynced"][:2] == ("False", "ChangesPending")
    assert found["ServiceAccountsBound"][:2] == ("False", "ChangesPending")
    assert found["Ready"] == ("False", "ReconcileError", "Throttling: Rate exceeded")


def test_waiting_for_the_issuer_is_not_terminal() -> None:
    spec = spec_of()
    state = merge_patch(empty_state(spec), {"issuer": {"ready": False, "message": "bucket irsa-test does not exist"}})
    status = status_of(spec, state)
    found = conditions(status)
    message = "waiting for IRSAIssuer main: bucket irsa-test does not exist"
    assert found["IssuerReady"] == ("False", "IssuerNotReady", message)
    assert found["TrustPolicySynced"] == ("False", "IssuerNotReady", message)
    assert found["Ready"] == ("False", "IssuerNotReady", f"IssuerReady: {message}")
    assert "terminal" not in status


def test_issuer_url_provider() -> None:
    spec = spec_of({"issuerURL": "https://oidc.eks.eu-west-1.amazonaws.com/id/X", "serviceAccounts": [{"name": "a"}]})
    assert conditions(status_of(spec, converged(spec)))["IssuerReady"] == (
        "True",
        "ProviderFound",
        "the IAM OIDC provider of https://oidc.eks.eu-west-1.amazonaws.com/id/X exists",
    )
    missing = merge_patch(empty_state(spec), {"issuer": {"ready": False}})
    state, reason, message = conditions(status_of(spec, missing))["IssuerReady"]
    assert (state, reason) == ("False", "ProviderMissing")
    assert message.startswith("waiting for the IAM OIDC provider of oidc.eks.eu-west-1.amazonaws.com/id/X: create it")


def test_guardrail_violation_is_terminal() -> None:
    spec = spec_of()
    guardrails = guardrails_of({"forbidInlinePolicies": True, "roleNamePrefix": "tenant-"})
    status = status_of(spec, empty_state(spec), guardrails=guardrails)
    message = (
        "the cluster's guardrails refuse this role: role name production-s3-reader does not start with tenant-: "
        "set spec.roleName to tenant-..."
    )
    assert status["terminal"] == {"reason": "GuardrailViolation", "message": message}
    found = conditions(status)
    assert found["TrustPolicySynced"] == ("False", "GuardrailViolation", message)
    assert found["Ready"] == ("False", "GuardrailViolation", f"TrustPolicySynced: {message}")


def test_role_not_ours_is_terminal_and_not_reported_as_ours() -> None:
    spec = spec_of()
    state = merge_patch(converged(spec), {"role": {"tags": {"irsa-webhook.io/owner": None}}})
    status = status_of(spec, state)
    assert "roleARN" not in status
    assert status["terminal"]["reason"] == "RoleNotOurs"
    assert status["terminal"]["message"].startswith("role production-s3-reader exists and is not ours: tag it")
    assert conditions(status)["ServiceAccountsBound"][:2] == ("False", "RoleNotOurs")


def test_conflicting_annotation_says_what_to_do() -> None:
    spec = spec_of()
    theirs = "arn:aws:iam::111122223333:role/theirs"
    drift = {"serviceAccounts": {"production/s3-batch": {"annotations": {ANNOTATION: theirs}, "ours": []}}}
    status = status_of(spec, merge_patch(converged(spec), drift))
    assert status["serviceAccounts"][1] == {
        "namespace": "production",
        "name": "s3-batch",
        "state": "Conflict",
        "roleARN": theirs,
    }
    assert conditions(status)["ServiceAccountsBound"] == (
        "False",
        "Conflict",
        f"ServiceAccount production/s3-batch is annotated {ANNOTATION}={theirs} by someone else and is never "
        f"overwritten: remove that annotation (kubectl annotate serviceaccount -n production s3-batch {ANNOTATION}-) "
        "or bind another ServiceAccount",
    )
    assert "terminal" not in status
    ours = {"serviceAccounts": {"production/s3-batch": {"ours": [ANNOTATION]}}}
    message = conditions(status_of(spec, merge_patch(merge_patch(converged(spec), drift), ours)))
    assert "by irsa-webhook for another role object" in message["ServiceAccountsBound"][2]


def test_missing_service_account() -> None:
    spec = spec_of()
    status = status_of(spec, merge_patch(converged(spec), {"serviceAccounts": {"production/s3-batch": None}}))
    assert status["serviceAccounts"][1]["state"] == "Missing"
    assert conditions(status)["ServiceAccountsBound"] == (
        "False",
        "ServiceAccountMissing",
        "ServiceAccount production/s3-batch does not exist: create it, or set create: true for it in "
        "spec.serviceAccounts",
    )


def test_only_tags_pending_keeps_ready_false() -> None:
    spec = spec_of()
    status = status_of(spec, merge_patch(converged(spec), {"role": {"tags": {"extra": "x"}}}))
    found = conditions(status)
    assert found["TrustPolicySynced"][0] == found["PoliciesSynced"][0] == found["ServiceAccountsBound"][0] == "True"
    assert found["Ready"][:2] == ("False", "ChangesPending")
    assert "remove tag extra" in found["Ready"][2]


def test_policy_drift_pending() -> None:
    spec = spec_of()
    found = conditions(status_of(spec, merge_patch(converged(spec), {"role": {"managedPolicyARNs": []}})))
    assert found["PoliciesSynced"][:2] == ("False", "ChangesPending")
    assert "attach arn:aws:iam::aws:policy/AmazonS3ReadOnlyAccess" in found["PoliciesSynced"][2]
    assert found["TrustPolicySynced"][0] == "True"


def test_wildcard_without_a_match_yet() -> None:
    raw = {"issuerRef": "main", "allowWildcards": True, "serviceAccounts": [{"namespace": "team-*", "name": "r"}]}
    spec = read_role(role_object(raw, kind=CLUSTER_ROLE_KIND, name="team-reader"), CLUSTER)
    status = status_of(spec, converged(spec))
    assert status["serviceAccounts"] == []
    assert conditions(status)["ServiceAccountsBound"] == (
        "True",
        "Bound",
        f"0 ServiceAccount(s) annotated {ANNOTATION}=arn:aws:iam::111122223333:role/team-reader; "
        "no ServiceAccount matches team-*/r yet",
    )


def test_transition_times_and_events() -> None:
    spec = spec_of()
    first = status_of(spec, empty_state(spec))
    assert {e.reason for e in events_for(None, first)} == {"IssuerReady", "ChangesPending"}
    state = converged(spec)
    later = T0 + timedelta(minutes=5)
    second = status_of(spec, state, previous=first, now=later)
    times = {c["type"]: c["lastTransitionTime"] for c in second["conditions"]}
    assert times["IssuerReady"] == "2025-01-01T12:00:00Z", "unchanged status keeps its time"
    assert times["Ready"] == "2025-01-01T12:05:00Z"
    events = events_for(first, second)
    assert [(e.type, e.reason) for e in events] == [
        ("Normal", "Synced"),
        ("Normal", "Synced"),
        ("Normal", "Bound"),
        ("Normal", "Ready"),
    ]
    assert events_for(second, status_of(spec, state, previous=second, now=later)) == []


def test_status_after_apply_of_the_plan() -> None:
    spec = spec_of()
    plan = plan_role(spec, observed_from(empty_state(spec)), ANNOTATION)
    after = apply_role_changes(empty_state(spec), plan.changes, spec)
    assert conditions(status_of(spec, after))["Ready"][0] == "True"


def test_invalid_status_is_terminal_and_aws_errors_are_not() -> None:
    obj = role_object(SPEC, generation=7)
    previous = {"roleARN": ROLE, "conditions": [{"type": "IssuerReady", "status": "True"}]}
    status = invalid_role_status(obj, "spec.path '/x' is not an IAM path", previous, T0)
    assert status["terminal"] == {"reason": "InvalidSpec", "message": "spec.path '/x' is not an IAM path"}
    assert status["roleARN"] == ROLE
    assert status["observedGeneration"] == 7
    assert status["conditions"][-1]["type"] == "Ready"
    assert status["conditions"][-1]["reason"] == "InvalidSpec"
    again = invalid_role_status(obj, "AccessDenied", status, T0, reason="AccessDenied", terminal=False)
    assert "terminal" not in again, "a terminal flag of an earlier invalid spec outlived it"
    assert again["conditions"][-1]["reason"] == "AccessDenied"
