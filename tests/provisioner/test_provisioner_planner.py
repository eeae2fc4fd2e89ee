"""Table-driven planner tests: one YAML file per case under ``tests/cases/provisioner/``.

A case holds the IRSAIssuer's ``spec`` (and optionally its ``name``), kube-apiserver's keys
(``cluster: {keys: [rsa, ec] | null, signing: rsa, error: ...}``, default: ``[rsa]`` signing with
``rsa``), the AWS state it starts from and the ``expected`` plan:

* ``start: converged`` (default) applies the plan for ``convergedWith`` (a merge patch of the
  ``spec`` and/or another ``cluster``; default: the case's own) to an empty account, in memory;
  ``start: empty`` starts from nothing of ours (``tests/support/provisioning.empty_state``);
* ``drift`` is an RFC 7386 merge patch of that state (``null`` removes), in the YAML form of
  ``tests/support/provisioning``: what happened out of band;
* ``delete: true`` plans the deletion instead;
* ``expected``: ``changes`` as ``{action, target}`` in order, each optionally with a ``summary``
  substring, ``diff`` substrings and the ``sids`` of the bucket policy it writes; ``notes``
  (substrings, one per note, in order); ``blocked`` (a substring) and ``desiredKids``.

Every case is also checked for what must hold whatever the case: each change is one AWS action on a
target with a one-line summary; the in-memory AWS refuses what must never happen (deleting or
modifying what is not ours, a key set without keys); and once the plan is applied, planning again
gives no change at all.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from tests.support.cases import load_yaml
from tests.support.paths import CASES
from tests.support.provisioning import (
    CLUSTER,
    apply_changes,
    cluster_keys,
    converged,
    empty_state,
    issuer_object,
    merge_patch,
    observed_from,
    with_test_keys,
)
from webhook.provisioner.model import ClusterKeys, IssuerSpec, Plan, PutBucketPolicy, PutObject
from webhook.provisioner.planner import plan_deletion, plan_issuer
from webhook.provisioner.spec import read_issuer

CASES_DIR = CASES / "provisioner"
CASE_KEYS = {"description", "name", "spec", "cluster", "start", "convergedWith", "drift", "delete", "expected"}
EXPECTED_KEYS = {"changes", "notes", "blocked", "desiredKids"}
CHANGE_KEYS = {"action", "target", "summary", "diff", "sids"}
ACTION_RE = re.compile(r"(s3|iam):[A-Z][A-Za-z]+")
PARAMS = [pytest.param(path, id=path.stem) for path in sorted(CASES_DIR.glob("*.yaml"))]


def _spec(raw: Any, name: str) -> IssuerSpec:
    return read_issuer(issuer_object(with_test_keys(raw), name), CLUSTER)


def _cluster(raw: Any) -> ClusterKeys:
    raw = {"keys": ["rsa"], "signing": "rsa"} if raw is None else raw
    return cluster_keys(raw.get("keys"), raw.get("signing"), raw.get("error"))


def _plan(spec: IssuerSpec, state: dict[str, Any], cluster: ClusterKeys, delete: bool) -> Plan:
    return (plan_deletion if delete else plan_issuer)(spec, observed_from(state, cluster))


def test_cases_exist() -> None:
    assert len(PARAMS) >= 30, f"expected at least 30 planner cases in {CASES_DIR}"


@pytest.mark.parametrize("path", PARAMS)
def test_planner_case(path: Path) -> None:
    case = load_yaml(path)
    assert set(case) <= CASE_KEYS, f"unknown case keys: {set(case) - CASE_KEYS}"
    assert {"description", "spec", "expected"} <= set(case)
    expected = case["expected"]
    assert set(expected) <= EXPECTED_KEYS, f"unknown expected keys: {set(expected) - EXPECTED_KEYS}"
    name = case.get("name", "main")
    spec = _spec(case["spec"], name)
    cluster = _cluster(case.get("cluster"))

    if case.get("start", "converged") == "converged":
        before = case.get("convergedWith") or {}
        first_spec = _spec(merge_patch(case["spec"], before["spec"]), name) if "spec" in before else spec
        first_cluster = _cluster(before["cluster"]) if "cluster" in before else cluster
        state = converged(first_spec, first_cluster)
    else:
        assert case["start"] == "empty", case["start"]
        assert "convergedWith" not in case
        state = empty_state(spec)
    state = merge_patch(state, case.get("drift") or {})

    delete = bool(case.get("delete"))
    plan = _plan(spec, state, cluster, delete)

    want = expected.get("changes") or []
    assert [(c.action, c.target) for c in plan.changes] == [(w["action"], w["target"]) for w in want], [
        c.summary for c in plan.changes
    ]
    for change, wanted in zip(plan.changes, want, strict=True):
        assert set(wanted) <= CHANGE_KEYS, f"unknown change keys: {set(wanted) - CHANGE_KEYS}"
        assert wanted.get("summary", "") in change.summary, change.summary
        for text in wanted.get("diff", []):
            assert text in change.diff, change.diff
        if "sids" in wanted:
            assert isinstance(change, PutBucketPolicy)
            assert sorted(s["Sid"] for s in change.policy["Statement"]) == sorted(wanted["sids"])
    notes = expected.get("notes") or []
    assert len(plan.notes) == len(notes), plan.notes
    for note, text in zip(plan.notes, notes, strict=True):
        assert text in note, note
    if expected.get("blocked"):
        assert plan.blocked is not None
        assert expected["blocked"] in plan.blocked, plan.blocked
        assert plan.changes == ()
    else:
        assert plan.blocked is None, plan.blocked
    if "desiredKids" in expected:
        assert list(plan.desired_kids) == expected["desiredKids"]

    for change in plan.changes:
        assert ACTION_RE.fullmatch(change.action), change.action
        assert change.target
        assert change.summary
        assert "\n" not in change.summary
    after = apply_changes(state, plan.changes, spec.owner)
    assert _plan(spec, after, cluster, delete).changes == (), "applying the plan does not converge"


@pytest.mark.parametrize("keys", [None, [], ["rsa"], ["ec", "rsa"]], ids=["unknown", "empty", "one", "two"])
@pytest.mark.parametrize("start", [None, [], ["rsa"]], ids=["from-nothing", "from-empty-set", "from-rsa"])
@pytest.mark.parametrize("static", [[], ["@ec"]], ids=["apiserver", "apiserver+static"])
def test_no_key_set_without_keys_is_ever_planned(keys: list[str] | None, start: list[str] | None, static: list[str]):
    spec = _spec(
        {
            "discovery": {"s3": {"bucket": "irsa-test", "region": "us-east-1", "createBucket": True}},
            "keys": {"publicKeys": static},
        },
        "main",
    )
    state = empty_state(spec)
    if start:
        state = converged(spec, cluster_keys(start))
    plan = plan_issuer(spec, observed_from(state, cluster_keys(keys)))
    written = [c for c in plan.changes if isinstance(c, PutObject)]
    for change in written:
        if change.key.endswith("keys.json"):
            assert json.loads(change.body)["keys"], "a key set without keys was planned"
    if keys is None:
        assert written == [], "documents written while kube-apiserver's key set is unknown"
    if not keys and not static:
        assert written == [], "an empty key set was published"
        assert plan.notes, "an empty key set must be explained in the notes"
