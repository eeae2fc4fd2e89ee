"""A rollout of the webhook's own Deployment while pods are created continuously, on a real node.

The webhook is installed by the chart as shipped (two replicas, maxSurge 1 / maxUnavailable 0, the
PodDisruptionBudget, /readyz and the drain on SIGTERM); a pod of an annotated ServiceAccount is
created every half second while `kubectl rollout restart` replaces both replicas.

- failurePolicy Fail: every pod that was stored has AWS_ROLE_ARN (none is admitted without its
  credentials), and none is refused: the chart's rollout (maxSurge 1, maxUnavailable 0, /readyz,
  the drain on SIGTERM) leaves no moment without a replica that answers.
- failurePolicy Ignore: a pod stored without credentials is what "Ignore" lets slip through; the test
  counts them, prints the figure, and holds them to the rollout's window.

The pods carry a scheduling gate: admission is what is measured, and none of them needs to run.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from tests.cluster import chart_values, install_webhook, kubectl
from tests.deploy import helm as chart
from tests.support.node import cluster as node

pytestmark = [pytest.mark.node, pytest.mark.timeout(1200)]

NAMESPACE = "rollout"
ROLE_ARN = "arn:aws:iam::123456789012:role/rollout"
INTERVAL = 0.5  # one pod created every half second
AFTER = 10.0  # seconds of creations after the rollout is complete, which must all be admitted


@dataclass
class Attempt:
    name: str
    at: float
    refused: str | None  # the API server's message when the pod was not created


@dataclass
class Creator:
    """Creates a gated pod of the annotated ServiceAccount every INTERVAL until stopped."""

    api: client.CoreV1Api
    prefix: str
    attempts: list[Attempt] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)

    def run(self) -> None:
        number = 0
        while not self._stop.is_set():
            name = f"{self.prefix}-{number}"
            number += 1
            began = time.monotonic()
            try:
                self.api.create_namespaced_pod(NAMESPACE, pod(name), _request_timeout=30)  # type: ignore[arg-type]
                self.attempts.append(Attempt(name, began, None))
            except ApiException as exc:
                self.attempts.append(Attempt(name, began, f"{exc.status}: {exc.body}"))
            self._stop.wait(max(0.0, INTERVAL - (time.monotonic() - began)))

    def stop(self) -> None:
        self._stop.set()


def pod(name: str) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name},
        "spec": {
            "serviceAccountName": "app",
            "schedulingGates": [{"name": "irsa-webhook.test/never"}],
            "containers": [{"name": "app", "image": node.PAUSE_IMAGE, "imagePullPolicy": "Never"}],
        },
    }


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[node.LocalCluster]:
    reason = node.unavailable()
    if reason is not None:
        pytest.skip(reason)
    local = node.LocalCluster(tmp_path_factory.mktemp("rollout-node"), node.NodeAssets.find())
    local.start()
    try:
        yield local
    finally:
        left = local.stop()
        assert left == [], left


@pytest.fixture(scope="module")
def api(cluster: node.LocalCluster) -> Iterator[client.CoreV1Api]:
    assert cluster.control_plane is not None
    kubeconfig = cluster.kubeconfig
    install_webhook(kubeconfig, "--set", "mutatingWebhook.failurePolicy=Fail")
    kubectl(kubeconfig, "create", "namespace", NAMESPACE)
    kubectl(kubeconfig, "create", "serviceaccount", "app", "-n", NAMESPACE)
    kubectl(kubeconfig, "annotate", "serviceaccount", "app", "-n", NAMESPACE, f"eks.amazonaws.com/role-arn={ROLE_ARN}")
    with cluster.control_plane.api_client_as(None) as api_client:
        yield client.CoreV1Api(api_client)


def role_arns(kubeconfig: Path, names: set[str]) -> dict[str, str | None]:
    """{stored pod: its container's AWS_ROLE_ARN, None without it}, for the pods in ``names``."""
    items = json.loads(kubectl(kubeconfig, "get", "pods", "-n", NAMESPACE, "-o", "json", timeout=120).stdout)["items"]
    found: dict[str, str | None] = {}
    for item in items:
        if item["metadata"]["name"] in names:
            env = {e["name"]: e.get("value") for e in item["spec"]["containers"][0].get("env", [])}
            found[item["metadata"]["name"]] = env.get("AWS_ROLE_ARN")
    return found


@dataclass(frozen=True)
class Rollout:
    attempts: list[Attempt]
    began: float
    ended: float


def roll_while_creating(api: client.CoreV1Api, kubeconfig: Path, prefix: str) -> Rollout:
    creator = Creator(api, prefix)
    thread = threading.Thread(target=creator.run, name=f"creator-{prefix}", daemon=True)
    thread.start()
    try:
        time.sleep(3.0)  # a few creations before the rollout: the webhook answers
        began = time.monotonic()
        kubectl(kubeconfig, "rollout", "restart", "deployment/irsa-webhook", "-n", "irsa-webhook")
        kubectl(
            kubeconfig,
            "rollout",
            "status",
            "deployment/irsa-webhook",
            "-n",
            "irsa-webhook",
            "--timeout=300s",
            timeout=330,
        )
        ended = time.monotonic()
        time.sleep(AFTER)
    finally:
        creator.stop()
        thread.join(60)
    return Rollout(list(creator.attempts), began, ended)


def summary(label: str, rollout: Rollout, stored: dict[str, str | None]) -> str:
    refused = [a for a in rollout.attempts if a.refused]
    bare = [name for name, arn in stored.items() if arn is None]
    return (
        f"{label}: {len(rollout.attempts)} pods created every {INTERVAL}s across a rollout of "
        f"{rollout.ended - rollout.began:.1f}s: {len(stored)} stored, {len(refused)} refused, "
        f"{len(bare)} stored without AWS_ROLE_ARN"
    )


def test_fail_no_pod_without_credentials(api: client.CoreV1Api, cluster: node.LocalCluster) -> None:
    rollout = roll_while_creating(api, cluster.kubeconfig, "fail")
    created = {a.name for a in rollout.attempts if a.refused is None}
    stored = role_arns(cluster.kubeconfig, created)
    print(summary("failurePolicy Fail", rollout, stored))
    assert rollout.attempts, "no pod creation was attempted"
    assert set(stored) == created
    assert {name: arn for name, arn in stored.items() if arn != ROLE_ARN} == {}
    # The chart's rollout leaves no moment without a ready replica (a new pod Ready before an old one
    # goes; an old one keeps answering through its drain while it leaves the endpoints): with Fail,
    # a refusal would be a pod creation the rollout broke.
    refused = [(a.name, round(a.at - rollout.began, 1), a.refused) for a in rollout.attempts if a.refused]
    assert refused == []
    assert any(a.at > rollout.ended for a in rollout.attempts), "no creation after the rollout was measured"


def test_ignore_counts_what_slips_through(api: client.CoreV1Api, cluster: node.LocalCluster) -> None:
    helm = chart.find_helm()
    chart.run(
        helm,
        *("upgrade", chart.RELEASE, str(chart.CHART), "--namespace", "irsa-webhook"),
        *("--kubeconfig", str(cluster.kubeconfig), "--wait", "--timeout", "180s"),
        *chart_values(failure_policy="Ignore"),
        timeout=300,
    )
    failure_policies = kubectl(
        cluster.kubeconfig,
        *("get", "mutatingwebhookconfiguration", "irsa-webhook"),
        "-o",
        "jsonpath={.webhooks[*].failurePolicy}",
    ).stdout.split()
    assert set(failure_policies) == {"Ignore"}
    rollout = roll_while_creating(api, cluster.kubeconfig, "ignore")
    by_name = {a.name: a for a in rollout.attempts}
    stored = role_arns(cluster.kubeconfig, {a.name for a in rollout.attempts})
    print(summary("failurePolicy Ignore", rollout, stored))
    # Ignore never refuses a pod: a failed call admits it unchanged.
    assert [a for a in rollout.attempts if a.refused] == []
    slipped = [name for name, arn in stored.items() if arn is None]
    # What slips through, if anything, slipped while the rollout ran, never after it.
    assert [name for name in slipped if by_name[name].at > rollout.ended] == []
    assert all(arn in (None, ROLE_ARN) for arn in stored.values())
