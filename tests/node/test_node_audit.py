"""`audit --evict` on a real cluster: a Deployment's pods admitted while the webhook was down run
without credentials; the audit evicts them, the real ReplicaSet controller recreates them through the
webhook, the replacements obtain credentials from STS, and a second audit finds and evicts nothing."""

from __future__ import annotations

import json
from collections.abc import Callable
from functools import partial
from typing import Any

import pytest

from tests.support import kuberest as k
from tests.support.audits import findings_of, run_audit
from tests.support.node.aws import NodeAWS
from tests.support.node.cluster import LocalCluster
from tests.support.node.pods import probe_container, probes
from tests.support.server import Server
from tests.support.waits import wait_for

from .shared import REGION, NamespaceFactory

pytestmark = pytest.mark.node

LABELS = {"irsa-node.test/audit": "yes"}
WEBHOOK_ARGS = ("--aws-default-region", REGION)


def deployment(name: str, service_account: str, env: dict[str, str], replicas: int = 2) -> dict[str, Any]:
    selector = {"app": name}
    container = probe_container("app", {**env, "PROBE_STS": "1", "PROBE_SLEEP": "3600"})
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": selector},
            "template": {
                "metadata": {"labels": selector},
                "spec": {
                    "serviceAccountName": service_account,
                    "terminationGracePeriodSeconds": 1,
                    "containers": [container],
                },
            },
        },
    }


def running_pods(kube: k.KubeRest, namespace: str, replicas: int) -> list[k.JSON] | None:
    """The Deployment's pods when exactly ``replicas`` run and none is terminating."""
    pods = kube.request("GET", f"/api/v1/namespaces/{namespace}/pods", params={"labelSelector": "app=app"})["items"]
    live = [p for p in pods if not p["metadata"].get("deletionTimestamp")]
    if len(pods) != replicas or not all(p["status"].get("phase") == "Running" for p in live):
        return None
    return live


def test_audit_evicts_pods_admitted_without_the_webhook_and_the_replicaset_brings_them_back_with_credentials(
    local_cluster: LocalCluster,
    kube: k.KubeRest,
    make_namespace: NamespaceFactory,
    node_aws: NodeAWS,
    start_webhook: Callable[..., Server],
    pod_env: dict[str, str],
) -> None:
    namespace = make_namespace(labels=LABELS)
    role_arn = node_aws.create_role(f"node-audit-{namespace}"[:64], namespace, "app")
    kube.create_service_account(namespace, "app", {k.ROLE_ANNOTATION: role_arn})
    # No webhook yet: admitted as sent.
    kube.request("POST", f"/apis/apps/v1/namespaces/{namespace}/deployments", deployment("app", "app", pod_env))
    before = wait_for(
        lambda: running_pods(kube, namespace, 2), timeout=120, what="two pods running without credentials"
    )
    assert all("AWS_ROLE_ARN" not in k.env_of(p["spec"]["containers"][0]) for p in before)

    webhook = start_webhook(*WEBHOOK_ARGS)
    config = "irsa-node-audit"
    k.register_webhook(kube, config, webhook.mutate_url, webhook.certs.ca_pem, "Fail", LABELS)
    try:
        audit = (
            *WEBHOOK_ARGS,
            "--webhook-configuration",
            config,
            "--pods-namespace",
            namespace,
            "--evict",
            "-o",
            "json",
        )
        first = run_audit(local_cluster.plane.kubeconfig, *audit)
        assert first.returncode == 1, first.stderr
        results = {key: f["eviction"]["result"] for key, f in findings_of(first).items()}
        assert results == {(namespace, p["metadata"]["name"]): "evicted" for p in before}

        old = {p["metadata"]["name"] for p in before}

        def replaced() -> list[k.JSON] | None:
            pods = running_pods(kube, namespace, 2)
            return pods if pods and not old & {p["metadata"]["name"] for p in pods} else None

        after = wait_for(replaced, timeout=120, what="the ReplicaSet to recreate both pods")
        for replacement in after:
            assert k.env_of(replacement["spec"]["containers"][0])["AWS_ROLE_ARN"] == role_arn
            name = replacement["metadata"]["name"]
            seen = wait_for(partial(_probe, local_cluster, namespace, name), timeout=60, what=f"the probe of {name}")
            assert "error" not in seen, seen.get("error")
            assert seen["identity"]["Arn"].split("/")[1] == role_arn.split("/")[-1]

        second = run_audit(local_cluster.plane.kubeconfig, *audit)
        assert second.returncode == 0, (second.stdout, second.stderr)
        assert findings_of(second) == {}, json.dumps(findings_of(second))
    finally:
        kube.delete_webhook_configuration(config)


def _probe(cluster: LocalCluster, namespace: str, name: str) -> k.JSON | None:
    try:
        return probes(cluster.plane, namespace, name, ["app"])["app"]
    except Exception:  # not started or not printed yet
        return None
