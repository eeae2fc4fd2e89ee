"""A small raw-JSON client of a real API server (``controlplane``), builders for the objects the tests
create, and the registration of a webhook configuration that waits until kube-apiserver calls it.

Raw JSON on purpose: the kubernetes client's model classes drop fields they do not know (a newer
API's pod fields, a native sidecar's restartPolicy in old clients), and these tests assert on exactly
what the API server stored.
"""

from __future__ import annotations

import base64
import secrets
import ssl
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import httpx

from .kubeapi import objects
from .kubeapi.objects import service_account
from .waits import wait_for

# The SA annotations and pod layout the webhook works with.
PREFIX = "eks.amazonaws.com"
ROLE_ANNOTATION = f"{PREFIX}/role-arn"
AUDIENCE_ANNOTATION = f"{PREFIX}/audience"
REGIONAL_ANNOTATION = f"{PREFIX}/sts-regional-endpoints"
EXPIRATION_ANNOTATION = f"{PREFIX}/token-expiration"
SKIP_CONTAINERS_ANNOTATION = f"{PREFIX}/skip-containers"
INCLUDE_CONTAINERS_ANNOTATION = f"{PREFIX}/include-containers"
REGION_ANNOTATION = f"{PREFIX}/region"
SESSION_NAME_ANNOTATION = f"{PREFIX}/role-session-name"
SKIP_POD_LABEL = f"{PREFIX}/skip-pod-identity-webhook"
TOKEN_VOLUME = "aws-iam-token"
DEFAULT_MOUNT_PATH = "/var/run/secrets/eks.amazonaws.com/serviceaccount"
DEFAULT_TOKEN_FILE = f"{DEFAULT_MOUNT_PATH}/token"
IMAGE = "registry.invalid/e2e:never-pulled"  # no kubelet here: images are never pulled

# A request to the API server that takes longer than this is a hung server, not a slow one.
REQUEST_TIMEOUT = 30.0
# Bound of the wait for kube-apiserver to start calling a new or changed webhook configuration
# (it watches them; usually well under a second).
CONFIG_PROPAGATION_TIMEOUT = 30.0

JSON = objects.JSON  # an object as raw JSON, for the tests that annotate with k.JSON
PROBE_ROLE = "arn:aws:iam::111122223333:role/e2e-probe"


class KubeApiError(Exception):
    def __init__(self, status: int, body: JSON | str, method: str, path: str) -> None:
        self.status = status
        self.body = body
        message = body.get("message", body) if isinstance(body, dict) else body
        super().__init__(f"{method} {path}: HTTP {status}: {message}")

    @property
    def message(self) -> str:
        return str(self.body.get("message", "")) if isinstance(self.body, dict) else self.body


class KubeRest:
    """JSON over HTTPS to the API server as the admin. Non-2xx answers raise KubeApiError."""

    def __init__(self, server: str, token: str, ca_file: Path) -> None:
        self._client = httpx.Client(
            base_url=server,
            verify=ssl.create_default_context(cafile=str(ca_file)),
            headers={"Authorization": f"Bearer {token}"},
            timeout=REQUEST_TIMEOUT,
        )
        self.last_warnings: list[str] = []

    def close(self) -> None:
        self._client.close()

    def request(
        self,
        method: str,
        path: str,
        body: JSON | list[JSON] | None = None,
        params: Mapping[str, str] | None = None,
        content_type: str = "application/json",
    ) -> JSON:
        headers = {"Content-Type": content_type} if body is not None else {}
        response = self._client.request(method, path, json=body, params=params, headers=headers)
        # Admission warnings come back as "Warning: 299 - "text"" headers (what kubectl prints).
        self.last_warnings = response.headers.get_list("warning")
        try:
            payload: JSON | str = response.json()
        except ValueError:
            payload = response.text
        if not response.is_success:
            raise KubeApiError(response.status_code, payload, method, path)
        if not isinstance(payload, dict):
            raise KubeApiError(response.status_code, payload, method, path)
        return payload

    def get(self, path: str) -> JSON:
        return self.request("GET", path)

    def create(self, path: str, obj: JSON, dry_run: bool = False) -> JSON:
        return self.request("POST", path, obj, params={"dryRun": "All"} if dry_run else None)

    def delete(self, path: str) -> JSON:
        return self.request("DELETE", path)

    def merge_patch(self, path: str, patch: JSON) -> JSON:
        return self.request("PATCH", path, patch, content_type="application/merge-patch+json")

    def exists(self, path: str) -> bool:
        try:
            self.get(path)
        except KubeApiError as exc:
            if exc.status == 404:
                return False
            raise
        return True

    # --- the objects the tests use -------------------------------------------------------------
    def create_namespace(self, name: str, labels: Mapping[str, str]) -> JSON:
        return self.create(
            "/api/v1/namespaces",
            {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name, "labels": dict(labels)}},
        )

    def create_service_account(self, namespace: str, name: str, annotations: Mapping[str, str] | None = None) -> JSON:
        return self.create(
            f"/api/v1/namespaces/{namespace}/serviceaccounts",
            service_account(namespace, name, annotations=annotations),
        )

    def create_pod(self, namespace: str, pod: JSON, dry_run: bool = False) -> JSON:
        return self.create(f"/api/v1/namespaces/{namespace}/pods", pod, dry_run=dry_run)

    def get_pod(self, namespace: str, name: str) -> JSON:
        return self.get(f"/api/v1/namespaces/{namespace}/pods/{name}")

    def apply_webhook_configuration(self, config: JSON) -> JSON:
        """Create the MutatingWebhookConfiguration, replacing one of the same name."""
        path = "/apis/admissionregistration.k8s.io/v1/mutatingwebhookconfigurations"
        name = config["metadata"]["name"]
        if self.exists(f"{path}/{name}"):
            self.delete(f"{path}/{name}")
        return self.create(path, config)

    def delete_webhook_configuration(self, name: str) -> None:
        path = f"/apis/admissionregistration.k8s.io/v1/mutatingwebhookconfigurations/{name}"
        if self.exists(path):
            self.delete(path)


def container(name: str, env: Mapping[str, str] | None = None, **extra: Any) -> JSON:
    spec: JSON = {"name": name, "image": IMAGE, **extra}
    if env:
        spec["env"] = [{"name": k, "value": v} for k, v in env.items()]
    return spec


def pod(
    name: str,
    service_account_name: str | None = None,
    containers: list[JSON] | None = None,
    init_containers: list[JSON] | None = None,
    annotations: Mapping[str, str] | None = None,
    labels: Mapping[str, str] | None = None,
    generate_name: bool = False,
) -> JSON:
    """A pod manifest; ``generate_name=True`` makes ``name`` the generateName prefix."""
    meta: JSON = {"generateName": name} if generate_name else {"name": name}
    if annotations:
        meta["annotations"] = dict(annotations)
    if labels:
        meta["labels"] = dict(labels)
    spec: JSON = {"containers": containers or [container("app")]}
    if init_containers:
        spec["initContainers"] = init_containers
    if service_account_name:
        spec["serviceAccountName"] = service_account_name
    return {"apiVersion": "v1", "kind": "Pod", "metadata": meta, "spec": spec}


def webhook_configuration(
    name: str,
    url: str,
    ca_bundle_pem: bytes,
    failure_policy: str,
    namespace_selector: JSON,
    object_selector: JSON | None = None,
    timeout_seconds: int = 5,
) -> JSON:
    """A MutatingWebhookConfiguration calling ``url`` for pod CREATE, as the project's manifests do."""
    webhook: JSON = {
        "name": f"{name}.irsa-e2e.test",
        "clientConfig": {"url": url, "caBundle": base64.b64encode(ca_bundle_pem).decode()},
        "rules": [
            {
                "operations": ["CREATE"],
                "apiGroups": [""],
                "apiVersions": ["v1"],
                "resources": ["pods"],
                "scope": "Namespaced",
            }
        ],
        "admissionReviewVersions": ["v1"],
        "sideEffects": "None",
        "failurePolicy": failure_policy,
        # Later webhooks may add containers; IfNeeded calls us again so they get credentials too.
        "reinvocationPolicy": "IfNeeded",
        "timeoutSeconds": timeout_seconds,
        "namespaceSelector": namespace_selector,
        # As upstream's deployment: a pod can opt out by label.
        "objectSelector": object_selector
        or {"matchExpressions": [{"key": SKIP_POD_LABEL, "operator": "DoesNotExist"}]},
    }
    return {
        "apiVersion": "admissionregistration.k8s.io/v1",
        "kind": "MutatingWebhookConfiguration",
        "metadata": {"name": name},
        "webhooks": [webhook],
    }


# --- reading a stored pod ------------------------------------------------------------------------
def all_containers(p: JSON) -> list[JSON]:
    spec = p["spec"]
    return [*spec.get("initContainers", []), *spec["containers"]]


def find_container(p: JSON, name: str) -> JSON:
    for c in all_containers(p):
        if c["name"] == name:
            return c
    raise KeyError(f"no container {name!r} in pod {p['metadata'].get('name')}")


def env_of(c: JSON) -> dict[str, str]:
    return {e["name"]: e.get("value", "") for e in c.get("env", [])}


def env_names(c: JSON) -> list[str]:
    return [e["name"] for e in c.get("env", [])]


def token_volume(p: JSON) -> JSON | None:
    volumes: list[JSON] = p["spec"].get("volumes", [])
    return next((v for v in volumes if v["name"] == TOKEN_VOLUME), None)


def token_mount(c: JSON) -> JSON | None:
    mounts: list[JSON] = c.get("volumeMounts", [])
    return next((m for m in mounts if m["name"] == TOKEN_VOLUME), None)


def is_injected(p: JSON) -> bool:
    """True when the pod carries the IRSA token volume (the webhook mutated it)."""
    return token_volume(p) is not None


# --- registering a webhook -------------------------------------------------------------------------
def register_webhook(
    kube: KubeRest,
    name: str,
    url: str,
    ca_pem: bytes,
    failure_policy: str,
    probe_labels: Mapping[str, str],
    namespace_selector: JSON | None = None,
    reinvocation_policy: str = "IfNeeded",
) -> None:
    """Register a webhook configuration and wait until kube-apiserver calls it.

    The API server picks configurations up from a watch, asynchronously: until it has, pods are
    admitted unmutated. So create dry-run pods of an annotated ServiceAccount in a throwaway namespace
    labelled ``probe_labels`` (which the selector must match) until one comes back injected.
    """
    selector = namespace_selector or {"matchLabels": dict(probe_labels)}
    config = webhook_configuration(name, url, ca_pem, failure_policy, selector)
    config["webhooks"][0]["reinvocationPolicy"] = reinvocation_policy
    kube.apply_webhook_configuration(config)
    probe_ns = f"probe-{name}-{secrets.token_hex(3)}"[:63]
    kube.create_namespace(probe_ns, probe_labels)
    kube.create_service_account(probe_ns, "probe", {ROLE_ANNOTATION: PROBE_ROLE})
    probe = pod("probe", "probe")
    wait_for(
        lambda: is_injected(kube.create_pod(probe_ns, probe, dry_run=True)),
        timeout=CONFIG_PROPAGATION_TIMEOUT,
        what=f"kube-apiserver to call webhook configuration {name}",
    )
    kube.delete(f"/api/v1/namespaces/{probe_ns}")
