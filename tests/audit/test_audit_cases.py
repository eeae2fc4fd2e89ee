"""Table-driven tests of the audit's per-pod decision: one YAML file per case under ``tests/cases/audit/``.

A case holds the mutation ``settings`` (the webhook's flags), the ``scope`` (``webhookConfiguration``:
the MutatingWebhookConfiguration as the cluster holds it, by default the shipped one of manifests/base;
``namespaceLabels``: namespace -> labels; ``excludedNamespaces``), the raw ``serviceAccount``
manifest (null: not found), optionally ``configMap`` (the ConfigMap's ``config`` value) and
``podIdentity: true`` (the pod's namespace/ServiceAccount listed in the Pod Identity file), and the
stored ``pod``. ``expected`` is
either ``skipped: <reason>`` or ``problems``: the problems exactly as ``-o json`` prints them
(optionally ``owner``, and ``verdict``: why evicting would not help, one of the VERDICTS, or null
when it would). The identity is what the real identity chain composes from those sources.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest

from tests.support.cases import load_yaml
from tests.support.kubeapi.http import shipped_configuration
from tests.support.paths import CASES
from webhook.audit.findings import SKIP_REASONS, VERDICTS, Scope, examine, skip_reason
from webhook.audit.report import finding_json
from webhook.audit.selection import selection
from webhook.core.annotations import parse_service_account
from webhook.core.records import Identity
from webhook.core.settings import Settings
from webhook.sources.chain import IdentityChain
from webhook.sources.configmap import ConfigMapSource
from webhook.sources.podidentity import PodIdentityFile
from webhook.sources.resolver import Resolver
from webhook.sources.store import IdentityStore

CASES_DIR = CASES / "audit"
CASE_KEYS = {"description", "settings", "scope", "serviceAccount", "configMap", "podIdentity", "pod", "expected"}
SCOPE_KEYS = {"webhookConfiguration", "namespaceLabels", "excludedNamespaces"}
PATHS = sorted(CASES_DIR.glob("*.yaml"))
PARAMS = [pytest.param(path, id=path.stem) for path in PATHS]


def test_cases_exist() -> None:
    assert len(PARAMS) >= 30, f"expected at least 30 audit cases in {CASES_DIR}"


def test_every_skip_reason_has_a_case() -> None:
    reasons = {load_yaml(path)["expected"].get("skipped") for path in PATHS}
    assert set(SKIP_REASONS) <= reasons


def test_every_verdict_has_a_case() -> None:
    verdicts = {load_yaml(path)["expected"].get("verdict") for path in PATHS}
    assert set(VERDICTS) | {None} <= verdicts


def scope_of(raw: dict[str, Any] | None) -> Scope:
    raw = raw or {}
    assert set(raw) <= SCOPE_KEYS, f"unknown scope keys: {set(raw) - SCOPE_KEYS}"
    return Scope(
        selection=selection(raw.get("webhookConfiguration") or shipped_configuration()),
        namespace_labels=raw.get("namespaceLabels", {}),
        excluded_namespaces=frozenset(raw.get("excludedNamespaces", ())),
    )


def chain_of(case: dict[str, Any], settings: Settings, namespace: str, name: str) -> IdentityChain:
    store = IdentityStore()
    if case.get("serviceAccount") is not None:
        store.replace_all([parse_service_account(case["serviceAccount"], settings)])
    pod_identity = None
    if case.get("podIdentity"):
        pod_identity = PodIdentityFile("/nonexistent/identities.json", settings)
        pod_identity.replace([(namespace, name)])
    config_map = None
    if "configMap" in case:
        config_map = ConfigMapSource(settings)
        config_map.replace({"data": {"config": case["configMap"]}})
    return IdentityChain(Resolver(store), pod_identity=pod_identity, config_map=config_map)


@pytest.mark.parametrize("path", PARAMS)
def test_audit_case(path: Path) -> None:
    case = load_yaml(path)
    assert set(case) <= CASE_KEYS, f"unknown case keys: {set(case) - CASE_KEYS}"
    assert {"description", "pod", "expected"} <= set(case), "a case needs description, pod and expected"
    expected = case["expected"]
    assert ("skipped" in expected) != ("problems" in expected), "expected needs exactly one of skipped/problems"
    settings = Settings(**(case.get("settings") or {}))
    pod = case["pod"]
    before = copy.deepcopy(pod)

    scope = scope_of(case.get("scope"))
    reason = skip_reason(pod, scope)
    if "skipped" in expected:
        assert reason == expected["skipped"]
        return
    assert reason is None, f"the pod is skipped ({reason})"

    asked: list[tuple[str, str]] = []

    def lookup(namespace: str, name: str) -> Identity | None:
        asked.append((namespace, name))
        chain = chain_of(case, settings, namespace, name)
        return chain.compose(namespace, name, chain.service_accounts.cached(namespace, name))

    finding = examine(pod, lookup, settings, scope.calls(pod, pod["metadata"]["namespace"]))
    assert pod == before, "the stored pod was modified"
    assert len(asked) == 1
    if case.get("serviceAccount") is not None:
        # A typo in a case's names would silently test "not found" with a ServiceAccount present.
        meta = case["serviceAccount"]["metadata"]
        assert asked[0] == (meta["namespace"], meta["name"])
    got = finding_json(finding)["problems"] if finding is not None else []
    assert got == expected["problems"]
    if "verdict" in expected:
        assert finding is not None
        assert (finding.verdict.result if finding.verdict is not None else None) == expected["verdict"]
    if "owner" in expected:
        assert finding is not None
        assert finding_json(finding)["owner"] == expected["owner"]
    if finding is not None:
        assert (finding.namespace, finding.pod, finding.uid) == (
            pod["metadata"]["namespace"],
            pod["metadata"]["name"],
            pod["metadata"]["uid"],
        )
