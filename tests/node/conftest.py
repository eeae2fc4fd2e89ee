"""Fixtures of the node tests: one real local node for the session (tests/support/node), tests
isolated by namespace.

- ``local_cluster``: the control plane and the node; SKIPS with one line when not root (the only
  thing a developer's machine may lack), FAILS when root lacks the binaries or images (`make node`),
  so a CI without them is red, not silently green; at the end, asserts nothing was left behind.
- ``kube``: a raw-JSON client as the admin; ``make_namespace``: per-test namespaces, deleted after
  (really deleted: kube-controller-manager runs here).
- ``node_aws``: moto, the IAM OIDC provider of the cluster's issuer, the verifying STS on the node's
  address; ``pod_env`` points a pod's SDK at it.
- ``node_webhook``: one `irsa-webhook serve` on the host for the session, registered (failurePolicy
  Fail) for namespaces labelled ``NODE_LABEL``; ``start_webhook`` for a test's own.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path

import pytest

from tests.support import kuberest as k
from tests.support.certs import Certs, cli_certs
from tests.support.node.aws import NodeAWS
from tests.support.node.cluster import LocalCluster, NodeAssets, NodeUnavailable
from tests.support.procs import pytest_runtest_makereport  # noqa: F401 (the hook: log tails of a failed test)
from tests.support.server import Server

from .shared import NODE_CONFIG, NODE_LABEL, REGION, NamespaceFactory


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Tests that start a node of their own (`make cluster`'s entry points, the rollout's chart install)
    run before the first test that uses the shared one: a machine runs one node at a time, and the
    shared node, session-scoped, stays up until the end. A stable sort: each module stays together."""
    items.sort(key=_shared_node)


def _shared_node(item: pytest.Item) -> bool:
    return "local_cluster" in getattr(item, "fixturenames", ())


@pytest.fixture(scope="session")
def local_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalCluster]:
    if os.geteuid() != 0:
        pytest.skip("node: needs root (cgroups, mounts, a bridge); run as root, e.g. `sudo make test-node`")
    try:
        assets = NodeAssets.find()
    except NodeUnavailable as exc:
        pytest.fail(str(exc), pytrace=False)
    cluster = LocalCluster(tmp_path_factory.mktemp("node"), assets)
    cluster.start()
    try:
        yield cluster
    finally:
        left = cluster.stop()
    assert left == [], f"the node left {left}"


@pytest.fixture(scope="session")
def kube(local_cluster: LocalCluster) -> Iterator[k.KubeRest]:
    plane = local_cluster.plane
    client = k.KubeRest(plane.server, plane.token, plane.ca_file)
    try:
        yield client
    finally:
        client.close()


@pytest.fixture
def make_namespace(kube: k.KubeRest, request: pytest.FixtureRequest) -> Iterator[NamespaceFactory]:
    """``make_namespace(labels=NODE_LABEL) -> name``: a fresh namespace for this test, deleted after."""
    created: list[str] = []
    base = request.node.name.split("[")[0].removeprefix("test_").replace("_", "-")[:40].strip("-")

    def make(labels: Mapping[str, str] = NODE_LABEL) -> str:
        name = f"{base}-{secrets.token_hex(3)}".lower()
        kube.create_namespace(name, labels)
        created.append(name)
        return name

    yield make
    for name in created:
        kube.delete(f"/api/v1/namespaces/{name}")


@pytest.fixture(scope="session")
def node_aws(
    local_cluster: LocalCluster, kube: k.KubeRest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[NodeAWS]:
    aws = NodeAWS(tmp_path_factory.mktemp("node-aws"), local_cluster.plane, kube)
    try:
        yield aws
    finally:
        aws.stop()


@pytest.fixture(scope="session")
def pod_env(node_aws: NodeAWS) -> dict[str, str]:
    """What a probe container needs to reach the AWS stand-ins from the node (and nothing real)."""
    return {"AWS_ENDPOINT_URL_STS": node_aws.sts_url, "AWS_EC2_METADATA_DISABLED": "true"}


@pytest.fixture(scope="session")
def webhook_certs(tmp_path_factory: pytest.TempPathFactory) -> Certs:
    return cli_certs(tmp_path_factory.mktemp("webhook-certs"), "--ip-address", "127.0.0.1")


@pytest.fixture(scope="session")
def node_webhook(
    local_cluster: LocalCluster, kube: k.KubeRest, webhook_certs: Certs, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Server]:
    process = Server(
        tmp_path_factory.mktemp("node-webhook"),
        webhook_certs,
        "--role-session-name=pod",
        "--aws-default-region",
        REGION,
        kubeconfig=local_cluster.plane.kubeconfig,
        bind_address=None,
    ).start()
    try:
        k.register_webhook(kube, NODE_CONFIG, process.mutate_url, webhook_certs.ca_pem, "Fail", NODE_LABEL)
        yield process
    finally:
        kube.delete_webhook_configuration(NODE_CONFIG)
        process.stop()


@pytest.fixture
def start_webhook(local_cluster: LocalCluster, webhook_certs: Certs, tmp_path: Path) -> Iterator[Callable[..., Server]]:
    """``start_webhook(*extra_args) -> Server``: a webhook of this test's own, stopped after it."""
    started: list[Server] = []
    kubeconfig = local_cluster.plane.kubeconfig

    def start(*extra_args: str) -> Server:
        process = Server(
            tmp_path / f"webhook-{len(started)}", webhook_certs, *extra_args, kubeconfig=kubeconfig, bind_address=None
        )
        started.append(process)
        return process.start()

    yield start
    for process in started:
        process.stop()
