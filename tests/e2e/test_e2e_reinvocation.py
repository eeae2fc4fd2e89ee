"""reinvocationPolicy IfNeeded: a container added by a later webhook gets credentials too."""

from __future__ import annotations

from typing import Any

import pytest

from tests.support import kuberest as k
from tests.support.certs import Certs
from tests.support.waits import wait_for

from .secondwebhook import ADDED_CONTAINER, ContainerAddingWebhook
from .shared import SELECTOR_LABEL, SharedWebhook

pytestmark = pytest.mark.e2e

ROLE = "arn:aws:iam::123456789012:role/e2e-reinvoked"
# kube-apiserver calls configurations in name order: "zz-" sorts after "irsa-", so the container is
# added AFTER irsa-webhook's first call, and only a second call (the reinvocation) can inject it.
# Each parameter gets configurations and a namespace label of its own: kube-apiserver sees changes
# asynchronously, and a stale configuration from the previous parameter must not match.
IRSA_CONFIG = "irsa-e2e-reinvocation-{}"
SECOND_CONFIG = "zz-irsa-e2e-adds-container-{}"


def create_through_both_webhooks(
    kube: k.KubeRest,
    make_namespace: Any,
    irsa_webhook: SharedWebhook,
    webhook_certs: Certs,
    key: str,
    policy: str,
    manifest: k.JSON,
) -> k.JSON:
    """Create ``manifest`` (its ServiceAccount ``app`` has ROLE) with irsa-webhook (``policy``) and then
    the container-adding webhook registered; return the stored pod."""
    irsa_config, second_config = IRSA_CONFIG.format(key), SECOND_CONFIG.format(key)
    assert irsa_config < second_config
    labels = {SELECTOR_LABEL: f"reinvocation-{key}"}
    server = ContainerAddingWebhook(webhook_certs.cert, webhook_certs.key)
    try:
        k.register_webhook(
            kube, irsa_config, irsa_webhook.process.mutate_url, webhook_certs.ca_pem, "Fail", labels,
            reinvocation_policy=policy,
        )  # fmt: skip
        second = k.webhook_configuration(
            second_config, server.url, webhook_certs.ca_pem, "Fail", {"matchLabels": labels}
        )
        # It only adds a container when it is missing, so being reinvoked would be harmless; Never
        # keeps the call count simple.
        second["webhooks"][0]["reinvocationPolicy"] = "Never"
        kube.apply_webhook_configuration(second)

        ns = make_namespace(labels=labels)
        kube.create_service_account(ns, "app", {k.ROLE_ANNOTATION: ROLE})

        def second_webhook_live() -> bool:
            dry = kube.create_pod(ns, k.pod("probe", "app"), dry_run=True)
            return ADDED_CONTAINER in [c["name"] for c in dry["spec"]["containers"]]

        wait_for(second_webhook_live, timeout=30, what=f"kube-apiserver to call {second_config}")
        calls_before = server.calls
        kube.create_pod(ns, manifest)
        stored = kube.get_pod(ns, manifest["metadata"]["name"])
    finally:
        kube.delete_webhook_configuration(second_config)
        kube.delete_webhook_configuration(irsa_config)
        server.stop()
    assert server.calls > calls_before
    return stored


@pytest.mark.parametrize(
    ("policy", "added_container_injected"),
    [
        pytest.param("IfNeeded", True, id="IfNeeded-injects-added-container"),
        # The control: without reinvocation the added container stays bare, so the assertion above
        # really depends on the reinvocation and not on call order.
        pytest.param("Never", False, id="Never-leaves-added-container-bare"),
    ],
)
def test_container_added_by_a_later_webhook(
    kube: k.KubeRest,
    make_namespace: Any,
    irsa_webhook: SharedWebhook,
    webhook_certs: Certs,
    policy: str,
    added_container_injected: bool,
) -> None:
    stored = create_through_both_webhooks(
        kube, make_namespace, irsa_webhook, webhook_certs, policy.lower(), policy, k.pod("reinvoked", "app")
    )
    app, added = stored["spec"]["containers"]
    assert (app["name"], added["name"]) == ("app", ADDED_CONTAINER)
    assert k.env_of(app)["AWS_ROLE_ARN"] == ROLE
    assert k.token_mount(app) is not None
    if added_container_injected:
        assert k.env_of(added)["AWS_ROLE_ARN"] == ROLE
        assert k.env_of(added)["AWS_WEB_IDENTITY_TOKEN_FILE"] == k.DEFAULT_TOKEN_FILE
        assert k.token_mount(added) is not None
    else:
        assert "AWS_ROLE_ARN" not in k.env_of(added)
        assert k.token_mount(added) is None
    # Idempotent: the second call added nothing twice to what the first call injected.
    assert len(k.env_names(app)) == len(set(k.env_names(app)))
    assert [v["name"] for v in stored["spec"]["volumes"]].count(k.TOKEN_VOLUME) == 1


def test_include_containers_naming_a_sidecar_added_later(
    kube: k.KubeRest, make_namespace: Any, irsa_webhook: SharedWebhook, webhook_certs: Certs
) -> None:
    """include-containers names only the sidecar the later webhook adds: the first call injects no
    container (the volume only), the reinvocation injects the sidecar, and the app stays bare."""
    manifest = k.pod("included", "app", annotations={k.INCLUDE_CONTAINERS_ANNOTATION: ADDED_CONTAINER})
    stored = create_through_both_webhooks(
        kube, make_namespace, irsa_webhook, webhook_certs, "include", "IfNeeded", manifest
    )
    app, added = stored["spec"]["containers"]
    assert (app["name"], added["name"]) == ("app", ADDED_CONTAINER)
    assert k.env_names(app) == []
    assert k.token_mount(app) is None
    assert k.env_of(added)["AWS_ROLE_ARN"] == ROLE
    assert k.env_of(added)["AWS_WEB_IDENTITY_TOKEN_FILE"] == k.DEFAULT_TOKEN_FILE
    assert k.token_mount(added) is not None
    assert [v["name"] for v in stored["spec"]["volumes"]].count(k.TOKEN_VOLUME) == 1
