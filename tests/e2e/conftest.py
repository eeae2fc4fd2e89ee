"""Fixtures of the e2e suite: one control plane per session, tests isolated by namespace.

- ``control_plane``: etcd + kube-apiserver (see controlplane.py); FAILS (never skips) when the
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
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from . import kube as k
from .controlplane import ControlPlane, MissingBinaries, find_binaries
from .procs import _running, wait_for
from .webhookproc import Certs, WebhookProcess, make_certs

# Namespaces carrying this label are served by the session's shared webhook configuration.
SHARED_CONFIG = "irsa-e2e-shared"
SELECTOR_LABEL = "irsa-e2e.test/webhook"
SHARED_LABEL = {SELECTOR_LABEL: SHARED_CONFIG}
# The shared webhook runs with a default region, so every injected container gets one.
REGION = "us-west-2"
PROBE_ROLE = "arn:aws:iam::111122223333:role/e2e-probe"
# Bound of the wait for kube-apiserver to start calling a new or changed webhook configuration
# (it watches them; usually well under a second).
CONFIG_PROPAGATION_TIMEOUT = 30.0


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[None]:
    outcome = yield
    report = outcome.get_result()
    if report.failed and item.get_closest_marker("e2e") is not None:
        for process in list(_running.values()):
            report.sections.append((f"{process.name} (pid {process.pid}) log", process.tail(40)))


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


NamespaceFactory = Callable[..., str]


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
    return make_certs(tmp_path_factory.mktemp("webhook-certs"))


@dataclass
class SharedWebhook:
    process: WebhookProcess
    config_name: str
    labels: Mapping[str, str]


@pytest.fixture(scope="session")
def irsa_webhook(
    control_plane: ControlPlane,
    kube: k.KubeRest,
    webhook_certs: Certs,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[SharedWebhook]:
    process = WebhookProcess(
        tmp_path_factory.mktemp("irsa-webhook"),
        control_plane.kubeconfig,
        webhook_certs,
        ["--aws-default-region", REGION],
    ).start()
    try:
        register(kube, SHARED_CONFIG, process.url, webhook_certs.ca_pem, "Fail", SHARED_LABEL)
        yield SharedWebhook(process, SHARED_CONFIG, SHARED_LABEL)
    finally:
        kube.delete_webhook_configuration(SHARED_CONFIG)
        process.stop()


def register(
    kube: k.KubeRest,
    name: str,
    url: str,
    ca_pem: bytes,
    failure_policy: str,
    probe_labels: Mapping[str, str],
    namespace_selector: k.JSON | None = None,
    reinvocation_policy: str = "IfNeeded",
) -> None:
    """Register a webhook configuration and wait until kube-apiserver calls it.

    The API server picks configurations up from a watch, asynchronously: until it has, pods are
    admitted unmutated. So create dry-run pods of an annotated ServiceAccount in a throwaway namespace
    labelled ``probe_labels`` (which the selector must match) until one comes back injected.
    """
    selector = namespace_selector or {"matchLabels": dict(probe_labels)}
    config = k.webhook_configuration(name, url, ca_pem, failure_policy, selector)
    config["webhooks"][0]["reinvocationPolicy"] = reinvocation_policy
    kube.apply_webhook_configuration(config)
    probe_ns = f"probe-{name}-{secrets.token_hex(3)}"[:63]
    kube.create_namespace(probe_ns, probe_labels)
    kube.create_service_account(probe_ns, "probe", {k.ROLE_ANNOTATION: PROBE_ROLE})
    probe = k.pod("probe", "probe")
    wait_for(
        lambda: k.is_injected(kube.create_pod(probe_ns, probe, dry_run=True)),
        timeout=CONFIG_PROPAGATION_TIMEOUT,
        what=f"kube-apiserver to call webhook configuration {name}",
    )
    kube.delete(f"/api/v1/namespaces/{probe_ns}")


@pytest.fixture
def start_webhook(
    control_plane: ControlPlane, webhook_certs: Certs, tmp_path: Path
) -> Iterator[Callable[..., WebhookProcess]]:
    """``start_webhook(*extra_args) -> WebhookProcess``: a webhook of this test's own, stopped after it."""
    started: list[WebhookProcess] = []

    def start(*extra_args: str) -> WebhookProcess:
        workdir = tmp_path / f"webhook-{len(started)}"
        process = WebhookProcess(workdir, control_plane.kubeconfig, webhook_certs, extra_args)
        started.append(process)
        return process.start()

    yield start
    for process in started:
        process.stop()
