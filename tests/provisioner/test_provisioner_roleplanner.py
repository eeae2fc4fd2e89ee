"""Table-driven role planner tests: one YAML file per case under ``tests/cases/roles/``.

A case holds the object (``kind``, default IRSARole; ``name``, default s3-reader; ``namespace``,
default production; its ``spec``), the controller's ``guardrails`` (camelCase fields of
``rolemodel.Guardrails``), the world it starts from and the ``expected`` plan:

* ``start: converged`` (default) applies the plan for ``convergedWith`` (a merge patch of
  ``{spec, guardrails}``; default: the case's own) to an empty world, in memory; ``start: empty``
  starts from nothing of ours (``tests/support/roleworld.empty_state``);
* ``drift`` is an RFC 7386 merge patch of that world (``null`` removes), in the YAML form of
  ``tests/support/roleworld``: what happened out of band, or what was there before;
* ``delete: true`` plans the deletion instead;
* ``expected``: ``invalid`` (a substring of the object's one-line error: nothing is planned), or
  ``changes`` as ``{action, target}`` in order, each optionally with a ``summary`` substring and
  ``diff`` substrings; ``notes`` (substrings, one per note, in order); ``blocked`` (a substring),
  its ``reason``, and ``waiting`` (default false).

Every case is also checked for what must hold whatever the case: each change is one action on a
target with a one-line summary; the in-memory world refuses what must never happen (see
``roleworld``); a ServiceAccount we created keeps its mark (else it could never be deleted); and
once the plan is applied, planning again gives no change at all.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from tests.support.cases import load_yaml
from tests.support.paths import CASES
from tests.support.provisioning import Refused, merge_patch
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
from webhook.oidc.errors import InputError
from webhook.provisioner.model import OWNER_TAG
from webhook.provisioner.rolemodel import (
    CREATED_BY_ANNOTATION,
    ROLE_KIND,
    AnnotateServiceAccount,
    DeleteRole,
    DeleteServiceAccount,
    DetachPolicy,
    Guardrails,
    RolePlan,
    RoleSpec,
    TagRole,
    UntagRole,
    UpdateMaxSessionDuration,
)
from webhook.provisioner.roleplanner import plan_role, plan_role_deletion
from webhook.provisioner.rolespec import read_role

CASES_DIR = CASES / "roles"
CASE_KEYS = {
    "description",
    "kind",
    "name",
    "namespace",
    "spec",
    "guardrails",
    "start",
    "convergedWith",
    "drift",
    "delete",
    "expected",
}
EXPECTED_KEYS = {"invalid", "changes", "notes", "blocked", "reason", "waiting"}
CHANGE_KEYS = {"action", "target", "summary", "diff"}
ACTION_RE = re.compile(r"(iam|k8s):[A-Z][A-Za-z]+")
PARAMS = [pytest.param(path, id=path.stem) for path in sorted(CASES_DIR.glob("*.yaml"))]


def _spec(case: dict[str, Any], raw: Any) -> RoleSpec:
    kind = case.get("kind", ROLE_KIND)
    obj = role_object(raw, kind=kind, name=case.get("name", "s3-reader"), namespace=case.get("namespace", "production"))
    return read_role(obj, CLUSTER)


def _plan(spec: RoleSpec, state: dict[str, Any], guardrails: Guardrails, delete: bool) -> RolePlan:
    observed = observed_from(state)
    if delete:
        return plan_role_deletion(spec, observed, ANNOTATION)
    return plan_role(spec, observed, ANNOTATION, guardrails)


def test_cases_exist() -> None:
    assert len(PARAMS) >= 40, f"expected at least 40 role planner cases in {CASES_DIR}"


@pytest.mark.parametrize("path", PARAMS)
def test_role_case(path: Path) -> None:
    case = load_yaml(path)
    assert set(case) <= CASE_KEYS, f"unknown case keys: {set(case) - CASE_KEYS}"
    assert {"description", "spec", "expected"} <= set(case)
    expected = case["expected"]
    assert set(expected) <= EXPECTED_KEYS, f"unknown expected keys: {set(expected) - EXPECTED_KEYS}"
    if "invalid" in expected:
        assert set(expected) == {"invalid"}
        with pytest.raises(InputError) as caught:
            _spec(case, case["spec"])
        assert expected["invalid"] in str(caught.value)
        assert "\n" not in str(caught.value)
        return
    spec = _spec(case, case["spec"])
    guardrails = guardrails_of(case.get("guardrails"))

    if case.get("start", "converged") == "converged":
        before = merge_patch(
            {"spec": case["spec"], "guardrails": case.get("guardrails")}, case.get("convergedWith") or {}
        )
        state = converged(_spec(case, before["spec"]), guardrails_of(before.get("guardrails")))
    else:
        assert case["start"] == "empty", case["start"]
        assert "convergedWith" not in case
        state = empty_state(spec)
    state = merge_patch(state, case.get("drift") or {})

    delete = bool(case.get("delete"))
    plan = _plan(spec, state, guardrails, delete)

    want = expected.get("changes") or []
    assert [(c.action, c.target) for c in plan.changes] == [(w["action"], w["target"]) for w in want], [
        f"{c.action} {c.target}: {c.summary}" for c in plan.changes
    ]
    for change, wanted in zip(plan.changes, want, strict=True):
        assert set(wanted) <= CHANGE_KEYS, f"unknown change keys: {set(wanted) - CHANGE_KEYS}"
        assert wanted.get("summary", "") in change.summary, change.summary
        for text in wanted.get("diff", []):
            assert text in change.diff, change.diff
    notes = expected.get("notes") or []
    assert len(plan.notes) == len(notes), plan.notes
    for note, text in zip(plan.notes, notes, strict=True):
        assert text in note, note
    if expected.get("blocked"):
        assert plan.blocked is not None
        assert expected["blocked"] in plan.blocked, plan.blocked
        assert "\n" not in plan.blocked
        assert plan.changes == ()
        assert plan.reason == expected["reason"]
    else:
        assert plan.blocked is None, plan.blocked
        assert "reason" not in expected
    assert plan.waiting is expected.get("waiting", False)

    for change in plan.changes:
        assert ACTION_RE.fullmatch(change.action), change.action
        assert change.target
        assert change.summary
        assert "\n" not in change.summary
    after = apply_role_changes(state, plan.changes, spec)
    if not delete:
        for ref, account in state.get("serviceAccounts", {}).items():
            if (account.get("annotations") or {}).get(CREATED_BY_ANNOTATION) == spec.owner:
                kept = after["serviceAccounts"][ref].get("annotations") or {}
                assert kept.get(CREATED_BY_ANNOTATION) == spec.owner, (
                    f"{ref} lost the mark of a ServiceAccount we created"
                )
    again = _plan(spec, after, guardrails, delete)
    assert again.changes == (), f"applying the plan does not converge: {[c.summary for c in again.changes]}"


# --- the in-memory world refuses what must never happen (so the cases above cannot pass vacuously) --

ROLE = "arn:aws:iam::111122223333:role/production-s3-reader"
S3RO = "arn:aws:iam::aws:policy/AmazonS3ReadOnlyAccess"


def _world(raw: dict[str, Any] | None = None) -> tuple[RoleSpec, dict[str, Any]]:
    case = {"spec": raw or {"issuerRef": "main", "serviceAccounts": [{"name": "s3-reader"}]}}
    spec = _spec(case, case["spec"])
    return spec, converged(spec)


def _refused(state: dict[str, Any], spec: RoleSpec, *changes: Any) -> str:
    with pytest.raises(Refused) as caught:
        apply_role_changes(state, changes, spec)
    return str(caught.value)


def test_world_refuses_modifying_a_role_not_ours() -> None:
    spec, state = _world()
    state["role"]["tags"] = {}
    change = UpdateMaxSessionDuration("iam:UpdateRole", ROLE, "s", role_name=spec.role_name, max_session_duration=7200)
    assert "does not carry our owner tag" in _refused(state, spec, change)
    claim = TagRole("iam:TagRole", ROLE, "s", role_name=spec.role_name, tags={OWNER_TAG: spec.owner})
    assert "claimed without adoption: Always" in _refused(state, spec, claim)
    state["role"]["tags"] = {OWNER_TAG: "test/irsarole/staging/s3-reader"}
    assert "does not carry our owner tag" in _refused(state, spec, claim)


def test_world_refuses_removing_the_owner_tag_and_deleting_with_policies() -> None:
    spec, state = _world({"issuerRef": "main", "serviceAccounts": [{"name": "s3-reader"}], "managedPolicyARNs": [S3RO]})
    untag = UntagRole("iam:UntagRole", ROLE, "s", role_name=spec.role_name, keys=(OWNER_TAG,))
    assert "the owner tag removed" in _refused(state, spec, untag)
    delete = DeleteRole("iam:DeleteRole", ROLE, "s", role_name=spec.role_name)
    assert "DeleteConflict" in _refused(state, spec, delete)
    detach = DetachPolicy("iam:DetachRolePolicy", ROLE, "s", role_name=spec.role_name, policy_arn=S3RO)
    assert apply_role_changes(state, [detach, delete], spec)["role"] is None


def test_world_refuses_service_account_trespass() -> None:
    spec, state = _world()
    state["serviceAccounts"]["production/other"] = {"exists": True, "annotations": {ANNOTATION: "theirs"}, "ours": []}
    state["serviceAccounts"]["staging/s3-reader"] = {"exists": True, "annotations": {}, "ours": []}
    target = "serviceaccount/production/other"
    overwrite = AnnotateServiceAccount(
        "k8s:PatchServiceAccount", target, "s", namespace="production", name="other", annotations={ANNOTATION: ROLE}
    )
    assert "of someone else overwritten" in _refused(state, spec, overwrite)
    delete = DeleteServiceAccount("k8s:DeleteServiceAccount", target, "s", namespace="production", name="other")
    assert "we did not create it" in _refused(state, spec, delete)
    elsewhere = AnnotateServiceAccount(
        "k8s:PatchServiceAccount", "serviceaccount/staging/s3-reader", "s", namespace="staging", name="s3-reader"
    )
    assert "an IRSARole of production wrote ServiceAccount staging/s3-reader" in _refused(state, spec, elsewhere)
