"""Table-driven mutation tests: one YAML file per case under ``tests/cases/mutation/``.

A case holds its inputs (mutation ``settings``, ``namespace``, the raw ``serviceAccount`` manifest or
null for "not found", the raw ``pod``) and the ``expected`` outcome: the full mutated pod (or
``unchanged: true``), the warning kinds in order (optionally with a ``contains`` substring of the
message), the decision and whether the pod is allowed. Outcomes are asserted, never patch bytes.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest

from webhook.identity import parse_service_account
from webhook.settings import Settings

from ..helpers import check_mutation, decide_with, load_yaml, pod_request

CASES_DIR = Path(__file__).resolve().parent.parent / "cases" / "mutation"
CASE_KEYS = {"description", "settings", "namespace", "serviceAccount", "pod", "expected"}
EXPECTED_KEYS = {"pod", "unchanged", "warnings", "decision", "allowed"}

# Cases where the code disagrees with the documented behaviour: the case says what the docs say,
# the code is to be fixed.
# {case id: reason}
KNOWN_DISAGREEMENTS: dict[str, str] = {}


def _params() -> list[Any]:
    params = []
    for path in sorted(CASES_DIR.glob("*.yaml")):
        marks = []
        if path.stem in KNOWN_DISAGREEMENTS:
            marks.append(pytest.mark.xfail(reason=KNOWN_DISAGREEMENTS[path.stem], strict=True))
        params.append(pytest.param(path, id=path.stem, marks=marks))
    return params


PARAMS = _params()


def _expected_warnings(raw: list[Any]) -> list[tuple[str, str]]:
    """``[kind, ...]`` or ``[{kind: ..., contains: ...}, ...]`` → [(kind, substring)]."""
    out = []
    for item in raw:
        if isinstance(item, str):
            out.append((item, ""))
        else:
            assert set(item) <= {"kind", "contains"}, f"unknown warning keys {set(item)}"
            out.append((item["kind"], item.get("contains", "")))
    return out


def test_cases_exist() -> None:
    assert len(PARAMS) >= 30, f"expected at least 30 mutation cases in {CASES_DIR}"
    assert KNOWN_DISAGREEMENTS.keys() <= {p.id for p in PARAMS}, "a disagreement names no case"


@pytest.mark.parametrize("path", PARAMS)
def test_mutation_case(path: Path) -> None:
    case = load_yaml(path)
    assert set(case) <= CASE_KEYS, f"unknown case keys: {set(case) - CASE_KEYS}"
    assert {"description", "pod", "expected"} <= set(case), "a case needs description, pod and expected"
    expected = case["expected"]
    assert set(expected) <= EXPECTED_KEYS, f"unknown expected keys: {set(expected) - EXPECTED_KEYS}"
    assert ("pod" in expected) != bool(expected.get("unchanged")), "expected needs exactly one of pod/unchanged"

    settings = Settings(**(case.get("settings") or {}))
    namespace = case.get("namespace", "default")
    pod = case["pod"]
    account = case.get("serviceAccount")
    identity = None
    if account is not None:
        identity = parse_service_account(account, settings)
        request = pod_request(pod, namespace)
        # A typo in a case's names would silently test "not found" semantics with an SA present.
        assert (identity.namespace, identity.name) == (request.namespace, request.service_account)

    result = check_mutation(pod, decide_with(identity, settings, namespace))

    want_pod = copy.deepcopy(pod) if expected.get("unchanged") else expected["pod"]
    assert result.pod == want_pod
    if expected.get("unchanged"):
        assert result.patch == []
    else:
        assert result.patch, "expected a mutation but the patch is empty"
    want = _expected_warnings(expected.get("warnings") or [])
    assert [w.kind for w in result.warnings] == [kind for kind, _ in want], [w.message for w in result.warnings]
    for warning, (_, contains) in zip(result.warnings, want, strict=True):
        assert contains in warning.message
    assert result.decision == expected["decision"]
    assert result.allowed is expected.get("allowed", True)
    if not result.allowed:
        assert result.message, "a denial carries a message"
