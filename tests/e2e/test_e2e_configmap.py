"""ConfigMap mode against a real kube-apiserver: a webhook run with --watch-config-map follows the
ConfigMap pod-identity-webhook of its namespace (created, updated, broken, deleted) while pods are
created through the API server, and never restarts; the component's Role is enough for it.

The pods' ServiceAccounts carry no role annotation: every role they get comes from the ConfigMap.
"""

from __future__ import annotations

import json
import secrets
import ssl
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest
import yaml

from tests.support import kuberest as k
from tests.support.certs import Certs
from tests.support.controlplane import ControlPlane
from tests.support.paths import MANIFESTS
from tests.support.server import Server
from tests.support.waits import wait_for

from .shared import SELECTOR_LABEL

pytestmark = pytest.mark.e2e

CONFIG_MAP = "pod-identity-webhook"
COMPONENT = MANIFESTS / "components" / "configmap-mapping"
ROLE_EXACT = "arn:aws:iam::123456789012:role/e2e-cm-exact"
ROLE_GLOB = "arn:aws:iam::123456789012:role/e2e-cm-glob"
ROLE_STAR = "arn:aws:iam::123456789012:role/e2e-cm-star"
ROLE_NEW = "arn:aws:iam::123456789012:role/e2e-cm-new"
# Bound for a ConfigMap change to reach the webhook through its watch (milliseconds in practice).
WATCH_TIMEOUT = 15.0


def role_of(p: k.JSON) -> str | None:
    return k.env_of(p["spec"]["containers"][0]).get("AWS_ROLE_ARN")


def metric(process: Server, name: str, **labels: str) -> float:
    return process.metric(name, **labels) or 0.0


class Mapping:
    """The ConfigMap in the webhook's namespace, written as kOps writes it."""

    def __init__(self, kube: k.KubeRest, namespace: str) -> None:
        self.kube = kube
        self.path = f"/api/v1/namespaces/{namespace}/configmaps"
        self.namespace = namespace

    def create(self, config: str) -> None:
        body = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": CONFIG_MAP}, "data": {"config": config}}
        self.kube.create(self.path, body)

    def update(self, config: str) -> None:
        self.kube.merge_patch(f"{self.path}/{CONFIG_MAP}", {"data": {"config": config}})

    def delete(self) -> None:
        self.kube.delete(f"{self.path}/{CONFIG_MAP}")


@pytest.fixture
def setup(
    kube: k.KubeRest, make_namespace: Any, start_webhook: Callable[..., Server], webhook_certs: Certs
) -> Iterator[tuple[Server, Mapping, dict[str, str]]]:
    """A webhook in ConfigMap mode (no ConfigMap yet), registered for namespaces of its own label."""
    config_ns = make_namespace(labels={}, prefix="cm-config")
    webhook = start_webhook("--watch-config-map", f"--namespace={config_ns}")  # ready without the ConfigMap
    name = f"cm-{secrets.token_hex(3)}"
    labels = {SELECTOR_LABEL: name}
    k.register_webhook(kube, name, webhook.mutate_url, webhook_certs.ca_pem, "Fail", labels)
    try:
        yield webhook, Mapping(kube, config_ns), labels
    finally:
        kube.delete_webhook_configuration(name)


def test_the_webhook_follows_its_configmap_and_never_restarts(
    kube: k.KubeRest, make_namespace: Any, setup: tuple[Server, Mapping, dict[str, str]]
) -> None:
    webhook, mapping, labels = setup
    assert webhook.process is not None
    pid = webhook.process.pid
    glob_prefix = f"cmglob{secrets.token_hex(2)}"
    exact_ns = make_namespace(labels, prefix="cmexact")
    glob_ns = make_namespace(labels, prefix=glob_prefix)
    for ns in (exact_ns, glob_ns):
        for account in ("app", "worker"):
            kube.create_service_account(ns, account)  # no role annotation: the ConfigMap decides

    created = 0

    def stored(ns: str, account: str) -> k.JSON:
        """A real pod of ``account`` created through the API server, as it was stored."""
        nonlocal created
        created += 1
        kube.create_pod(ns, k.pod(f"{account}-{created}", account))
        return kube.get_pod(ns, f"{account}-{created}")

    def dry_run_role(ns: str, account: str) -> str | None:
        return role_of(kube.create_pod(ns, k.pod("probe", account), dry_run=True))

    def settled(ns: str, account: str, role: str | None, what: str) -> None:
        wait_for(lambda: dry_run_role(ns, account) == role, timeout=WATCH_TIMEOUT, what=what)

    # No ConfigMap yet: nothing to inject.
    assert not k.is_injected(stored(exact_ns, "app"))

    # Created, in kOps' format: an exact key, a namespace glob (any case of the field names), */name.
    mapping.create(
        json.dumps(
            {
                f"{exact_ns}/app": {
                    "RoleARN": ROLE_EXACT,
                    "Audience": "amazonaws.com",
                    "UseRegionalSTS": True,
                    "TokenExpiration": 0,
                },
                f"{glob_prefix}-*/app": {"rolearn": ROLE_GLOB},
                "*/worker": {"RoleARN": ROLE_STAR, "TokenExpiration": 3600},
            }
        )
    )
    settled(exact_ns, "app", ROLE_EXACT, "the webhook to see the new ConfigMap")
    exact = stored(exact_ns, "app")
    assert role_of(exact) == ROLE_EXACT
    assert k.env_of(exact["spec"]["containers"][0])["AWS_STS_REGIONAL_ENDPOINTS"] == "regional"
    token = k.token_volume(exact)
    assert token is not None
    source = token["projected"]["sources"][0]["serviceAccountToken"]
    assert (source["audience"], source["expirationSeconds"]) == ("amazonaws.com", 86400)  # 0: the flag's
    globbed = stored(glob_ns, "app")
    assert role_of(globbed) == ROLE_GLOB
    token = k.token_volume(globbed)
    assert token is not None
    assert token["projected"]["sources"][0]["serviceAccountToken"]["audience"] == "sts.amazonaws.com"
    assert "AWS_STS_REGIONAL_ENDPOINTS" not in k.env_of(globbed["spec"]["containers"][0])
    for ns in (exact_ns, glob_ns):
        worker = stored(ns, "worker")
        assert role_of(worker) == ROLE_STAR
        token = k.token_volume(worker)
        assert token is not None
        assert token["projected"]["sources"][0]["serviceAccountToken"]["expirationSeconds"] == 3600

    # Updated: a new role, the glob gone, and a key without "/" (upstream panics on it): skipped.
    bad_keys = metric(webhook, "irsa_webhook_config_map_errors_total", reason="bad_key")
    mapping.update(
        json.dumps(
            {
                f"{exact_ns}/app": {"RoleARN": ROLE_NEW},
                "no-slash-here": {"RoleARN": ROLE_GLOB},
                "*/worker": {"RoleARN": ROLE_STAR},
            }
        )
    )
    settled(exact_ns, "app", ROLE_NEW, "the webhook to see the updated ConfigMap")
    assert role_of(stored(exact_ns, "app")) == ROLE_NEW
    assert not k.is_injected(stored(glob_ns, "app"))
    assert role_of(stored(glob_ns, "worker")) == ROLE_STAR  # the rest of the map is used
    assert metric(webhook, "irsa_webhook_config_map_errors_total", reason="bad_key") > bad_keys

    # Broken: not JSON. The last good map stays in use.
    invalid = metric(webhook, "irsa_webhook_config_map_errors_total", reason="invalid_json")
    mapping.update('{"' + exact_ns + '/app": {"RoleARN": ')
    wait_for(
        lambda: metric(webhook, "irsa_webhook_config_map_errors_total", reason="invalid_json") > invalid,
        timeout=WATCH_TIMEOUT,
        what="the webhook to read the broken ConfigMap",
    )
    assert role_of(stored(exact_ns, "app")) == ROLE_NEW
    assert role_of(stored(exact_ns, "worker")) == ROLE_STAR

    # Deleted: its entries are gone.
    mapping.delete()
    settled(exact_ns, "app", None, "the webhook to see the ConfigMap deleted")
    assert not k.is_injected(stored(exact_ns, "app"))
    assert not k.is_injected(stored(glob_ns, "worker"))

    # One process throughout: never crashed, never restarted.
    assert webhook.process.pid == pid
    assert webhook.process.alive()
    assert "Traceback" not in webhook.logs()


def test_the_components_role_reads_only_that_configmap(
    control_plane: ControlPlane, kube: k.KubeRest, make_namespace: Any
) -> None:
    """The Role's resourceNames covers the webhook's list and watch, which name the ConfigMap in a
    field selector; anything else stays forbidden."""
    ns = make_namespace(labels={})
    other = make_namespace(labels={})
    kube.create_service_account(ns, "irsa-webhook")
    for file, path in (("role.yaml", "roles"), ("role_binding.yaml", "rolebindings")):
        obj = yaml.safe_load((COMPONENT / file).read_text())
        obj["metadata"]["namespace"] = ns
        for subject in obj.get("subjects", []):
            subject["namespace"] = ns
        kube.create(f"/apis/rbac.authorization.k8s.io/v1/namespaces/{ns}/{path}", obj)
    Mapping(kube, ns).create("{}")
    as_webhook = httpx.Client(
        base_url=control_plane.server,
        verify=ssl.create_default_context(cafile=str(control_plane.ca_file)),
        headers={
            "Authorization": f"Bearer {control_plane.token}",
            "Impersonate-User": f"system:serviceaccount:{ns}:irsa-webhook",
        },
        timeout=10,
    )
    selector = {"fieldSelector": f"metadata.name={CONFIG_MAP}"}
    configmaps = f"/api/v1/namespaces/{ns}/configmaps"

    def status(path: str, **params: str) -> int:
        return as_webhook.get(path, params=params).status_code

    with as_webhook:
        # RBAC changes reach the authorizer through a watch: wait for the first allowed answer.
        wait_for(lambda: status(configmaps, **selector) == 200, timeout=WATCH_TIMEOUT, what="the Role to apply")
        assert status(configmaps, **selector, watch="true", timeoutSeconds="1") == 200
        assert status(f"{configmaps}/{CONFIG_MAP}") == 200
        assert status(configmaps) == 403  # every ConfigMap of the namespace: no
        assert status(configmaps, fieldSelector="metadata.name=kube-root-ca.crt") == 403
        assert status(f"/api/v1/namespaces/{other}/configmaps", **selector) == 403
        assert status("/api/v1/configmaps", **selector) == 403
        assert status(f"/api/v1/namespaces/{ns}/secrets") == 403
