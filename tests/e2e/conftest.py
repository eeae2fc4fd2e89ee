"""Fixtures of the e2e suite: one control plane per session, tests isolated by namespace.

- ``control_plane``: etcd + kube-apiserver (see tests/support/controlplane.py); FAILS (never skips) when the
  binaries are missing, so a CI without them is red, not silently green.
- ``kube``: a raw-JSON client as the admin; ``api_client``: the same as a kubernetes.client.ApiClient.
- ``make_namespace``: per-test namespaces, labelled for the shared webhook unless told otherwise.
- ``webhook_certs``: the webhook's serving certificate, made by `irsa-webhook certs`.
- ``irsa_webhook``: one `irsa-webhook serve` process for the session, registered (failurePolicy Fail)
  for the namespaces carrying ``SHARED_LABEL``; tests that stop or reconfigure a webhook start their
  own with ``start_webhook``.
When a test fails, the log tails of every process still running are attached to its report.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest

from tests.support import kuberest as k
from tests.support.certs import Certs, cli_certs
from tests.support.controlplane import ControlPlane, MissingBinaries, find_binaries
from tests.support.procs import pytest_runtest_makereport  # noqa: F401 (the hook: log tails of a failed test)
from tests.support.server import Server

from .shared import REGION, SHARED_CONFIG, SHARED_LABEL, NamespaceFactory, SharedWebhook


@pytest.fixture(scope="session")
def control_plane(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ControlPlane]:
    try:
        assets = find_binaries()
    except MissingBinaries as exc:
        pytest.fail(str(exc), pytrace=False)
    plane = ControlPlane(workdir=tmp_path_factory.mktemp("control-plane"), assets=assets)
    plane.start()
    try:
        yield plane
    finally:
        plane.stop()


@pytest.fixture(scope="session")
def kube(control_plane: ControlPlane) -> Iterator[k.KubeRest]:
    client = k.KubeRest(control_plane.server, control_plane.token, control_plane.ca_file)
    try:
        yield client
    finally:
        client.close()


@pytest.fixture(scope="session")
def api_client(control_plane: ControlPlane) -> Iterator[Any]:
    """A kubernetes.client.ApiClient for the admin (typed APIs; raw JSON via ``kube`` is preferred)."""
    from kubernetes import client

    configuration = client.Configuration()
    configuration.host = control_plane.server
    configuration.ssl_ca_cert = str(control_plane.ca_file)
    configuration.api_key = {"authorization": f"Bearer {control_plane.token}"}
    with client.ApiClient(configuration) as api:
        yield api


@pytest.fixture
def make_namespace(kube: k.KubeRest, request: pytest.FixtureRequest) -> Iterator[NamespaceFactory]:
    """``make_namespace(labels=SHARED_LABEL, prefix=None) -> name``: a fresh namespace for this test."""
    created: list[str] = []
    base = request.node.name.split("[")[0].removeprefix("test_").replace("_", "-")[:40].strip("-")

    def make(labels: Mapping[str, str] = SHARED_LABEL, prefix: str | None = None) -> str:
        name = f"{prefix or base}-{secrets.token_hex(3)}".lower()
        kube.create_namespace(name, labels)
        created.append(name)
        return name

    yield make
    # Without a controller-manager a deleted namespace stays Terminating: that is fine, its objects
    # no longer match anything and the whole etcd goes away with the session.
    for name in created:
        kube.delete(f"/api/v1/namespaces/{name}")


@pytest.fixture(scope="session")
def webhook_certs(tmp_path_factory: pytest.TempPathFactory) -> Certs:
    return cli_certs(tmp_path_factory.mktemp("webhook-certs"), "--ip-address", "127.0.0.1")


@pytest.fixture(scope="session")
def irsa_webhook(
    control_plane: ControlPlane,
    kube: k.KubeRest,
    webhook_certs: Certs,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[SharedWebhook]:
    process = Server(
        tmp_path_factory.mktemp("irsa-webhook"),
        webhook_certs,
        "--aws-default-region",
        REGION,
        kubeconfig=control_plane.kubeconfig,
        bind_address=None,
    ).start()
    try:
        k.register_webhook(kube, SHARED_CONFIG, process.mutate_url, webhook_certs.ca_pem, "Fail", SHARED_LABEL)
        yield SharedWebhook(process, SHARED_CONFIG, SHARED_LABEL)
    finally:
        kube.delete_webhook_configuration(SHARED_CONFIG)
        process.stop()


@pytest.fixture
def start_webhook(control_plane: ControlPlane, webhook_certs: Certs, tmp_path: Path) -> Iterator[Callable[..., Server]]:
    """``start_webhook(*extra_args) -> Server``: a webhook of this test's own, stopped after it."""
    started: list[Server] = []

    def start(*extra_args: str) -> Server:
        workdir = tmp_path / f"webhook-{len(started)}"
        process = Server(workdir, webhook_certs, *extra_args, kubeconfig=control_plane.kubeconfig, bind_address=None)
        started.append(process)
        return process.start()

    yield start
    for process in started:
        process.stop()
