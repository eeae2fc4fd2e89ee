"""The webhook down: failurePolicy decides, and excluded namespaces and opted-out pods never block."""

from __future__ import annotations

import secrets
from collections.abc import Callable
from typing import Any

import pytest

from tests.support import kuberest as k
from tests.support.certs import Certs
from tests.support.server import Server

from .shared import SELECTOR_LABEL

pytestmark = pytest.mark.e2e

ROLE = "arn:aws:iam::123456789012:role/e2e-outage"
# The webhook's own drain bound is a few seconds; more than that is a hang.
SIGTERM_GRACE = 10.0


@pytest.mark.parametrize("policy", ["Ignore", "Fail"])
def test_stopped_webhook(
    kube: k.KubeRest,
    make_namespace: Any,
    start_webhook: Callable[..., Server],
    webhook_certs: Certs,
    policy: str,
) -> None:
    webhook = start_webhook()
    # A label value and configuration of this test's own: no other configuration serves these
    # namespaces, and a stale configuration of another test cannot match them.
    labels = {SELECTOR_LABEL: f"outage-{policy.lower()}-{secrets.token_hex(3)}"}
    served = make_namespace(labels=labels, prefix="served")
    # Labelled like the served one, but excluded by name, as a deployment excludes kube-system and
    # the webhook's own namespace (so the webhook can always be restarted).
    excluded = make_namespace(labels=labels, prefix="excluded")
    selector = {
        "matchLabels": labels,
        "matchExpressions": [{"key": "kubernetes.io/metadata.name", "operator": "NotIn", "values": [excluded]}],
    }
    config = f"irsa-e2e-outage-{policy.lower()}"
    for ns in (served, excluded):
        kube.create_service_account(ns, "app", {k.ROLE_ANNOTATION: ROLE})
    try:
        k.register_webhook(
            kube, config, webhook.mutate_url, webhook_certs.ca_pem, policy, labels, namespace_selector=selector
        )

        # While it is up: the served namespace is mutated, the excluded one is not even asked.
        kube.create_pod(served, k.pod("while-up", "app"))
        assert k.is_injected(kube.get_pod(served, "while-up"))
        kube.create_pod(excluded, k.pod("while-up", "app"))
        assert not k.is_injected(kube.get_pod(excluded, "while-up"))

        webhook.stop()

        if policy == "Ignore":
            kube.create_pod(served, k.pod("while-down", "app"))
            stored = kube.get_pod(served, "while-down")
            assert not k.is_injected(stored)
            assert "env" not in stored["spec"]["containers"][0]
        else:
            with pytest.raises(k.KubeApiError) as info:
                kube.create_pod(served, k.pod("while-down", "app"))
            assert info.value.status == 500
            assert "failed calling webhook" in info.value.message
            assert not kube.exists(f"/api/v1/namespaces/{served}/pods/while-down")

        # Never blocked, whatever the policy: an excluded namespace, and a pod that opts out by label.
        kube.create_pod(excluded, k.pod("while-down", "app"))
        assert not k.is_injected(kube.get_pod(excluded, "while-down"))
        kube.create_pod(served, k.pod("opted-out", "app", labels={k.SKIP_POD_LABEL: "true"}))
        assert not k.is_injected(kube.get_pod(served, "opted-out"))
    finally:
        kube.delete_webhook_configuration(config)


def test_sigterm_stops_the_webhook_promptly_with_exit_code_0(
    start_webhook: Callable[..., Server],
) -> None:
    """SIGTERM stops accepting, finishes in-flight requests (bounded) and exits 0."""
    webhook = start_webhook()
    assert webhook.process is not None
    # stop() sends SIGTERM and only SIGKILLs (exit code -9) after the grace period.
    assert webhook.process.stop(grace=SIGTERM_GRACE) == 0, webhook.process.tail()
