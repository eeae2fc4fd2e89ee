"""Table-driven mutation tests: one YAML file per case under ``tests/cases/mutation/``.

A case holds its inputs (mutation ``settings``, ``namespace``, the raw ``serviceAccount`` manifest or
null for "not found", the raw ``pod``) and the ``expected`` outcome: the full mutated pod (or
``unchanged: true``), the warning kinds in order (optionally with a ``contains`` substring of the
message), the decision and whether the pod is allowed. Outcomes are asserted, never patch bytes.

EKS Pod Identity: ``podIdentity: true`` lists the pod's namespace/ServiceAccount in the Pod Identity
file, and the identity is what the real chain composes from that source and the ServiceAccount.
``jitter: N`` is what the random source returns for a jittered token lifetime; the runner asserts
that it was asked, for [79200, 86400], and that a case without ``jitter`` (every IRSA case among
them) never asks it.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest

from tests.support.cases import check_mutation, load_yaml, pod_request
from tests.support.paths import CASES
from webhook.core.annotations import parse_service_account
from webhook.core.decide import Decision, decide
from webhook.core.mutate import JITTER_MIN, JITTERED_EXPIRATION
from webhook.core.records import Identity
from webhook.core.settings import Settings
from webhook.sources.chain import IdentityChain
from webhook.sources.podidentity import PodIdentityFile
from webhook.sources.resolver import Resolver
from webhook.sources.store import IdentityStore

CASES_DIR = CASES / "mutation"
CASE_KEYS = {"description", "settings", "namespace", "serviceAccount", "pod", "expected", "podIdentity", "jitter"}
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


class RecordingJitter:
    """The mutation's random source: answers ``value`` and records each (low, high) it was asked for."""

    def __init__(self, value: int | None) -> None:
        self.value = value
        self.calls: list[tuple[int, int]] = []

    def __call__(self, low: int, high: int) -> int:
        self.calls.append((low, high))
        assert self.value is not None, "the token lifetime was jittered, but the case gives no jitter value"
        return self.value


def pod_identity_listing(identity: Identity | None, namespace: str, service_account: str, settings: Settings) -> Any:
    """The chain's answer when the Pod Identity file lists the pair (``identity``: the ServiceAccount's)."""
    source = PodIdentityFile("/nonexistent/identities.json", settings)
    source.replace([(namespace, service_account)])
    return IdentityChain(Resolver(IdentityStore()), pod_identity=source).compose(namespace, service_account, identity)


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
    request = pod_request(pod, namespace, settings)
    identity = None
    if account is not None:
        identity = parse_service_account(account, settings)
        # A typo in a case's names would silently test "not found" semantics with an SA present.
        assert (identity.namespace, identity.name) == (request.namespace, request.service_account)
    if case.get("podIdentity"):
        identity = pod_identity_listing(identity, request.namespace, request.service_account, settings)
    jitter = RecordingJitter(case.get("jitter"))

    def run(p: dict[str, Any]) -> Decision:
        return decide(pod_request(p, namespace, settings), identity, settings, jitter)

    result = check_mutation(pod, run)
    if "jitter" in case:
        # Once per pass that adds the volume: the first, and the second too when the first was denied.
        assert jitter.calls, "the case gives a jitter value, but the token lifetime was not jittered"
        assert set(jitter.calls) == {(JITTER_MIN, JITTERED_EXPIRATION)}
        assert JITTER_MIN <= case["jitter"] <= JITTERED_EXPIRATION
    else:
        assert jitter.calls == [], "the token lifetime was jittered"

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
