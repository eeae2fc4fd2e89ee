"""The default overlay's webhook configuration serves kube-system and skips the webhook's own namespace.

IRSA workloads live in kube-system (VPC CNI, EBS CSI driver, AWS Load Balancer Controller,
cluster-autoscaler, external-dns), and upstream's webhook serves them: a cluster that swaps images
must not see them lose their credentials. The configuration under test is the one the default
overlay renders (rules, selectors, failure policy, timeouts as shipped); only its clientConfig points
at a webhook process of this test instead of the in-cluster Service.

While it exists it selects every namespace but the webhook's own, so the test removes it again and
waits until kube-apiserver has stopped calling it: no other test's pods are sent to it.
"""

from __future__ import annotations

import base64
import copy
import secrets
from collections.abc import Callable, Iterator

import pytest

from tests.deploy.render import documents, render_all
from tests.support import kuberest as k
from tests.support.certs import Certs
from tests.support.controlplane import ControlPlane
from tests.support.kuberest import CONFIG_PROPAGATION_TIMEOUT
from tests.support.server import Server
from tests.support.waits import wait_for

pytestmark = pytest.mark.e2e

ROLE = "arn:aws:iam::123456789012:role/e2e-kube-system"
WEBHOOK_NAMESPACE = "irsa-webhook"
CONFIG = "irsa-e2e-default-overlay"


@pytest.fixture(scope="module")
def default_overlay(control_plane: ControlPlane, tmp_path_factory: pytest.TempPathFactory) -> list[k.JSON]:
    return documents(render_all(tmp_path_factory.mktemp("manifests"), control_plane.assets / "kubectl")["default"])


def served_by(overlay: list[k.JSON], url: str, ca_pem: bytes) -> k.JSON:
    """The overlay's MutatingWebhookConfiguration, renamed, calling ``url`` instead of the Service."""
    (shipped,) = [o for o in overlay if o["kind"] == "MutatingWebhookConfiguration"]
    config = copy.deepcopy(shipped)
    # No cert-manager here: its inject-ca-from annotation goes, the test CA is set directly.
    config["metadata"] = {"name": CONFIG, "labels": shipped["metadata"].get("labels", {})}
    for hook in config["webhooks"]:
        hook["clientConfig"] = {"url": url, "caBundle": base64.b64encode(ca_pem).decode()}
    return config


def ensure_webhook_namespace(kube: k.KubeRest, overlay: list[k.JSON]) -> None:
    """The webhook's namespace as the overlay makes it (Pod Security "restricted" enforced)."""
    try:
        existing = kube.get(f"/api/v1/namespaces/{WEBHOOK_NAMESPACE}")
    except k.KubeApiError as exc:
        if exc.status != 404:
            raise
        (namespace,) = [o for o in overlay if o["kind"] == "Namespace"]
        kube.create("/api/v1/namespaces", namespace)
        return
    # Without a controller-manager a deleted namespace never goes away, and nothing can be created in it.
    assert "deletionTimestamp" not in existing["metadata"], f"namespace {WEBHOOK_NAMESPACE} is being deleted"


def restricted_pod(name: str, service_account: str) -> k.JSON:
    """A pod the "restricted" Pod Security level admits."""
    manifest = k.pod(name, service_account)
    manifest["spec"]["securityContext"] = {
        "runAsNonRoot": True,
        "runAsUser": 65532,
        "seccompProfile": {"type": "RuntimeDefault"},
    }
    manifest["spec"]["containers"][0]["securityContext"] = {
        "allowPrivilegeEscalation": False,
        "capabilities": {"drop": ["ALL"]},
    }
    return manifest


def admissions(webhook: Server, namespace: str) -> list[str]:
    """The admission log lines of ``namespace`` (one per request the webhook was sent)."""
    needle = f'"namespace":"{namespace}"'
    return [line for line in webhook.logs().splitlines() if '"msg":"admission"' in line and needle in line]


@pytest.fixture
def cleanup(kube: k.KubeRest) -> Iterator[list[str]]:
    """Paths to delete after the test (pods, ServiceAccounts), last created first."""
    paths: list[str] = []
    yield paths
    for path in reversed(paths):
        if kube.exists(path):
            kube.delete(path)


def test_kube_system_pod_is_mutated_by_the_default_overlay_configuration(
    kube: k.KubeRest,
    default_overlay: list[k.JSON],
    start_webhook: Callable[..., Server],
    webhook_certs: Certs,
    cleanup: list[str],
) -> None:
    webhook = start_webhook()
    suffix = secrets.token_hex(3)
    account = f"e2e-irsa-{suffix}"
    ensure_webhook_namespace(kube, default_overlay)
    for namespace in ("kube-system", WEBHOOK_NAMESPACE):
        kube.create_service_account(namespace, account, {k.ROLE_ANNOTATION: ROLE})
        cleanup.append(f"/api/v1/namespaces/{namespace}/serviceaccounts/{account}")

    config = served_by(default_overlay, webhook.mutate_url, webhook_certs.ca_pem)
    (hook,) = config["webhooks"]
    assert hook["failurePolicy"] == "Ignore"
    probe = k.pod(f"probe-{suffix}", account)

    def kube_system_probe_injected() -> bool:
        return k.is_injected(kube.create_pod("kube-system", probe, dry_run=True))

    kube.apply_webhook_configuration(config)
    try:
        wait_for(
            kube_system_probe_injected,
            timeout=CONFIG_PROPAGATION_TIMEOUT,
            what=f"kube-apiserver to call webhook configuration {CONFIG}",
        )

        name = f"irsa-e2e-{suffix}"
        kube.create_pod("kube-system", k.pod(name, account))
        cleanup.append(f"/api/v1/namespaces/kube-system/pods/{name}")
        stored = kube.get_pod("kube-system", name)
        assert k.is_injected(stored)
        env = k.env_of(stored["spec"]["containers"][0])
        assert env["AWS_ROLE_ARN"] == ROLE
        assert env["AWS_WEB_IDENTITY_TOKEN_FILE"] == k.DEFAULT_TOKEN_FILE
        assert any(f'"pod":"{name}"' in line for line in admissions(webhook, "kube-system"))

        # The webhook's own namespace is never sent to it, even for a pod whose account has a role.
        kube.create_pod(WEBHOOK_NAMESPACE, restricted_pod(name, account))
        cleanup.append(f"/api/v1/namespaces/{WEBHOOK_NAMESPACE}/pods/{name}")
        own = kube.get_pod(WEBHOOK_NAMESPACE, name)
        assert not k.is_injected(own)
        assert admissions(webhook, WEBHOOK_NAMESPACE) == []
    finally:
        kube.delete_webhook_configuration(CONFIG)
        # Until kube-apiserver has dropped it, the configuration would still send other tests' pods
        # (any namespace) to this webhook. The account still has its role, so "not injected" means
        # the configuration is no longer called, not that the account went away.
        wait_for(
            lambda: not kube_system_probe_injected(),
            timeout=CONFIG_PROPAGATION_TIMEOUT,
            what=f"kube-apiserver to stop calling webhook configuration {CONFIG}",
        )
