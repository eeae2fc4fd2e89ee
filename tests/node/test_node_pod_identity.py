"""EKS Pod Identity on a real node: the webhook injects the agent's URI and the token file; the kubelet
projects the token with audience pods.eks.amazonaws.com; boto3's container provider in the container
reads it and calls the agent stand-in at 169.254.170.23:80, the address a real node's agent listens on,
which checks the token with a TokenReview and answers with the association's credentials."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.support import kuberest as k
from tests.support.kubeapi import identities_file
from tests.support.node.cluster import LocalCluster
from tests.support.node.network import AGENT_ADDRESS
from tests.support.node.pods import pod, probe_container, run_probe_pod
from tests.support.server import Server
from tests.support.standins.podidentityagent import CREDENTIALS_PATH, POD_IDENTITY_AUDIENCE, PodIdentityAgent

from .shared import NamespaceFactory

pytestmark = pytest.mark.node


@pytest.fixture
def agent(local_cluster: LocalCluster) -> Iterator[PodIdentityAgent]:
    plane = local_cluster.plane
    running = PodIdentityAgent(plane.server, plane.token, plane.ca_file, host=AGENT_ADDRESS, port=80).start()
    try:
        yield running
    finally:
        running.stop()


def test_the_sdk_in_the_container_gets_credentials_from_the_agent(
    local_cluster: LocalCluster,
    kube: k.KubeRest,
    make_namespace: NamespaceFactory,
    agent: PodIdentityAgent,
    start_webhook: Callable[..., Server],
    tmp_path: Path,
    pod_env: dict[str, str],
) -> None:
    labels = {"irsa-node.test/pod-identity": "yes"}
    namespace = make_namespace(labels=labels)
    kube.create_service_account(namespace, "app")
    kube.create_service_account(namespace, "unlisted")
    identities = tmp_path / "identities.json"
    identities.write_bytes(identities_file((namespace, "app")))
    webhook: Server = start_webhook(
        "--watch-container-credentials-config",
        str(identities),
        "--container-credentials-full-uri",
        f"http://{AGENT_ADDRESS}{CREDENTIALS_PATH}",
    )
    config = "irsa-node-pod-identity"
    k.register_webhook(kube, config, webhook.mutate_url, webhook.certs.ca_pem, "Fail", labels)
    try:
        credentials = agent.associate(namespace, "app")
        _, seen = run_probe_pod(
            kube, local_cluster.plane, namespace, pod("agent", "app", [probe_container("main", pod_env)])
        )
        _, unlisted = run_probe_pod(
            kube, local_cluster.plane, namespace, pod("unlisted", "unlisted", [probe_container("main", pod_env)])
        )
    finally:
        kube.delete_webhook_configuration(config)
    probe = seen["main"]
    assert "error" not in probe, probe.get("error")
    assert probe["env"]["AWS_CONTAINER_CREDENTIALS_FULL_URI"] == f"http://{AGENT_ADDRESS}{CREDENTIALS_PATH}"
    assert probe["claims"]["aud"] == [POD_IDENTITY_AUDIENCE]
    assert probe["credential_method"] == "container-role"
    assert probe["access_key"] == credentials["AccessKeyId"]
    subjects = [a.subject for a in agent.answers if a.status == 200]
    assert subjects == [f"system:serviceaccount:{namespace}:app"]
    assert "AWS_CONTAINER_CREDENTIALS_FULL_URI" not in unlisted["main"]["env"]  # not listed: nothing injected
