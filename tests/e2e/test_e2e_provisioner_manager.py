"""The kinds of the provisioner in one process, against the real API server, with stand-in engines:
a role waiting for its issuer is reconciled as soon as the issuer's status changes (through the real
watch: here someone else writes that status, and only IRSARoles are run, so the issuers are watched
read only), and a kind whose CRD is not installed (ClusterIRSARole, not installed here) is reported
and does not hold readiness back. The IRSARole CRD is the test-only stand-in of tests/support until
the shipped one is merged."""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from typing import Any

import pytest

from tests.support import kuberest as k
from tests.support.controlplane import ControlPlane
from tests.support.crds import issuer_crd, role_crd
from tests.support.engines import ScriptedEngine, outcome
from tests.support.waits import wait_for
from webhook.provisioner.manager import Manager
from webhook.provisioner.model import API_GROUP, API_VERSION, ISSUER_KIND, ISSUER_PLURAL
from webhook.provisioner.rolemodel import CLUSTER_ROLE_KIND, ROLE_KIND, ROLE_PLURAL

from .shared import NamespaceFactory

pytestmark = pytest.mark.e2e

JSON = dict[str, Any]
VERSION = f"{API_GROUP}/{API_VERSION}"
ISSUERS = f"/apis/{VERSION}/{ISSUER_PLURAL}"
RUN_LABEL = "irsa-e2e.test/manager-run"


@pytest.fixture(scope="module")
def crds(control_plane: ControlPlane) -> Iterator[None]:
    """IRSAIssuer and IRSARole installed, ClusterIRSARole not; removed after the module."""
    with issuer_crd(control_plane), role_crd(control_plane):
        yield


@pytest.fixture
def made(kube: k.KubeRest, crds: None) -> Iterator[list[str]]:
    """Paths of the objects a test made, deleted after it (finalizers stripped first)."""
    paths: list[str] = []
    yield paths
    for path in reversed(paths):
        try:
            kube.merge_patch(path, {"metadata": {"finalizers": None}})
            kube.delete(path)
        except k.KubeApiError as exc:
            if exc.status != 404:
                raise


def is_ready(issuer: JSON | None) -> bool:
    conditions = ((issuer or {}).get("status") or {}).get("conditions") or []
    return any(c.get("type") == "Ready" and c.get("status") == "True" for c in conditions)


def test_a_role_follows_its_issuer_and_a_missing_crd_holds_nothing_back(
    api_client: Any, kube: k.KubeRest, make_namespace: NamespaceFactory, made: list[str]
) -> None:
    run = secrets.token_hex(4)
    labels = {RUN_LABEL: run}
    manager = Manager(api_client, "irsa-e2e", identity="e2e", resync=3600.0, label_selector=f"{RUN_LABEL}={run}")
    roles = ScriptedEngine()
    seen: list[bool] = []
    issuer_name = f"e2e-{run}"

    def answer(obj: JSON) -> Any:
        ready = is_ready(manager.issuer(obj["spec"]["issuerRef"]))
        seen.append(ready)
        # Terminal while waiting: only a change of its issuer brings it back before the hourly resync.
        return outcome(obj) if ready else outcome(obj, ready=False, retry="terminal", reason="IssuerNotReady")

    manager.run(ROLE_KIND, roles)
    manager.run(CLUSTER_ROLE_KIND, ScriptedEngine())
    namespace = make_namespace(labels={})
    roles.script[f"{namespace}/reader"] = answer
    manager.start()
    try:
        wait_for(lambda: manager.ready()[0], timeout=15, what="ready without the ClusterIRSARole CRD")
        assert manager.not_served() == ["clusterirsaroles"]

        issuer = {"apiVersion": VERSION, "kind": ISSUER_KIND, "metadata": {"name": issuer_name, "labels": labels}}
        kube.create(ISSUERS, dict(issuer, spec={"issuerURL": "https://issuer.example", "deletionPolicy": "Retain"}))
        made.append(f"{ISSUERS}/{issuer_name}")
        wait_for(lambda: manager.issuer(issuer_name), timeout=10, what="the issuer in the cache")
        role_path = f"/apis/{VERSION}/namespaces/{namespace}/{ROLE_PLURAL}"
        meta = {"name": "reader", "labels": labels}
        kube.create(
            role_path,
            {
                "apiVersion": VERSION,
                "kind": ROLE_KIND,
                "metadata": meta,
                "spec": {"issuerRef": issuer_name, "serviceAccounts": [{"name": "app"}]},
            },
        )
        made.append(f"{role_path}/reader")
        manager.started_leading()
        # The add event and started_leading may each bring a pass (both before the issuer is Ready):
        # wait until the role settled, terminal with nothing scheduled, so the next pass is the
        # issuer's doing.
        queue = manager.controllers[ROLE_KIND].queue
        key = f"{namespace}/reader"
        settled: list[int] = []

        def role_settled() -> bool:
            if not seen or any(seen) or queue.scheduled(key) is not None:
                settled.clear()
                return False
            settled.append(len(seen))
            return len(settled) >= 5 and len(set(settled[-5:])) == 1

        wait_for(
            role_settled,
            timeout=20,
            what="the role to find its issuer not Ready and settle",
            on_timeout=lambda: f"passes {seen}, scheduled in {queue.scheduled(key)}",
        )
        passes = len(seen)

        condition = {
            "type": "Ready",
            "status": "True",
            "reason": "Reconciled",
            "message": "ready",
            "lastTransitionTime": "2026-01-01T00:00:00Z",
        }
        status = {"issuerURL": "https://issuer.example", "providerARN": "arn:aws:iam::1:oidc-provider/x"}
        kube.merge_patch(f"{ISSUERS}/{issuer_name}/status", {"status": dict(status, conditions=[condition])})
        wait_for(
            lambda: len(seen) > passes and seen[-1],
            timeout=30,
            what="the role to follow its issuer",
            on_timeout=lambda: f"passes {seen} ({passes} before the issuer was Ready)",
        )
    finally:
        manager.stop()
