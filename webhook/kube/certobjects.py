"""The two objects of the self-managed certificate mode, read and written as raw JSON: the Secret that
holds the pairs and the MutatingWebhookConfiguration whose caBundle trusts them.

Every write is conditional: an update carries the resourceVersion it was computed from, a create
fails if the object appeared meanwhile. A lost race is :class:`Conflict` (re-read and decide again),
never a silent overwrite of what another replica wrote.
"""

from __future__ import annotations

import base64
import copy
from typing import Any

import orjson
from kubernetes import client
from kubernetes.client.exceptions import ApiException

# One GET or PUT of a small object: far above what a healthy API server needs, and short enough that
# a hung connection delays the next retry by seconds, not minutes.
REQUEST_TIMEOUT = 10.0
FIELD_MANAGER = "irsa-webhook"
MANAGED_BY = {"app.kubernetes.io/managed-by": "irsa-webhook"}

JSON = dict[str, Any]


class Conflict(Exception):
    """The object changed (or appeared, or went) since it was read: read it again."""


class CertObjects:
    """GET, create and update of exactly one Secret and one MutatingWebhookConfiguration."""

    def __init__(self, api_client: client.ApiClient, namespace: str, secret: str, webhook_configuration: str) -> None:
        self._core = client.CoreV1Api(api_client)
        self._admission = client.AdmissionregistrationV1Api(api_client)
        self.namespace = namespace
        self.secret_name = secret
        self.webhook_name = webhook_configuration

    def secret(self) -> JSON | None:
        return _read(
            lambda: self._core.read_namespaced_secret(
                self.secret_name, self.namespace, _preload_content=False, _request_timeout=REQUEST_TIMEOUT
            )
        )

    def webhook_configuration(self) -> JSON | None:
        return _read(
            lambda: self._admission.read_mutating_webhook_configuration(
                self.webhook_name, _preload_content=False, _request_timeout=REQUEST_TIMEOUT
            )
        )

    def write_secret(self, existing: JSON | None, data: dict[str, str], owner: JSON | None) -> None:
        """Create the Secret with ``data`` (``existing`` None) or update ``existing`` to it."""
        if existing is None:
            metadata: JSON = {"name": self.secret_name, "namespace": self.namespace, "labels": dict(MANAGED_BY)}
            if owner is not None:
                # Deleted with the configuration it exists for (helm uninstall): the garbage collector
                # follows a namespaced object's reference to a cluster-scoped owner.
                metadata["ownerReferences"] = [_owner_reference(owner)]
            body: Any = {"apiVersion": "v1", "kind": "Secret", "metadata": metadata, "type": "kubernetes.io/tls"}
            body["data"] = data
            _write(
                lambda: self._core.create_namespaced_secret(
                    self.namespace,
                    body,
                    field_manager=FIELD_MANAGER,
                    _preload_content=False,
                    _request_timeout=REQUEST_TIMEOUT,
                )
            )
            return
        updated: Any = copy.deepcopy(existing)  # its resourceVersion makes the update conditional
        updated["data"] = data
        updated.pop("stringData", None)
        _write(
            lambda: self._core.replace_namespaced_secret(
                self.secret_name,
                self.namespace,
                updated,
                field_manager=FIELD_MANAGER,
                _preload_content=False,
                _request_timeout=REQUEST_TIMEOUT,
            )
        )

    def write_ca_bundle(self, existing: JSON, bundle_pem: bytes) -> None:
        """Update ``existing`` (as read) with ``bundle_pem`` as the caBundle of every webhook."""
        body: Any = copy.deepcopy(existing)
        encoded = base64.b64encode(bundle_pem).decode()
        for hook in body.get("webhooks") or []:
            hook.setdefault("clientConfig", {})["caBundle"] = encoded
        _write(
            lambda: self._admission.replace_mutating_webhook_configuration(
                self.webhook_name,
                body,
                field_manager=FIELD_MANAGER,
                _preload_content=False,
                _request_timeout=REQUEST_TIMEOUT,
            )
        )


def ca_bundle_of(configuration: JSON | None) -> bytes | None:
    """The caBundle (PEM) its webhooks share; None for no configuration; b"" when they disagree or
    one has none, so that any bundle differs from it."""
    if configuration is None:
        return None
    bundles = {(hook.get("clientConfig") or {}).get("caBundle") or "" for hook in configuration.get("webhooks") or []}
    if len(bundles) != 1:
        return b""
    try:
        return base64.b64decode(bundles.pop(), validate=True)
    except ValueError:
        return b""


def _owner_reference(owner: JSON) -> JSON:
    meta = owner["metadata"]
    return {
        "apiVersion": "admissionregistration.k8s.io/v1",
        "kind": "MutatingWebhookConfiguration",
        "name": meta["name"],
        "uid": meta["uid"],
    }


def _read(call: Any) -> JSON | None:
    try:
        response = call()
    except ApiException as exc:
        if exc.status == 404:
            return None
        raise
    try:
        body: JSON = orjson.loads(response.data)
    finally:
        response.release_conn()
    return body


def _write(call: Any) -> None:
    try:
        call().release_conn()  # _preload_content=False: the answer is not needed, the connection is
    except ApiException as exc:
        # 409: changed or created meanwhile; 404: deleted meanwhile. Either way: read again.
        if exc.status in (404, 409):
            raise Conflict(f"HTTP {exc.status} {exc.reason}") from None
        raise
