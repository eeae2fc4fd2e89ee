"""The object model both stand-ins serve (and the e2e client creates): Kubernetes objects as raw JSON,
lists, watch events and Status answers."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

from webhook.core.marker import MARKER_ANNOTATION, marker_value

JSON = dict[str, Any]
ROLE_ANNOTATION = "eks.amazonaws.com/role-arn"
TOKEN_FILE = "/var/run/secrets/eks.amazonaws.com/serviceaccount/token"


def service_account(
    namespace: str | None,
    name: str,
    role: str | None = None,
    *,
    rv: str | None = None,
    annotations: Mapping[str, str] | None = None,
    uid: str | None = None,
    labels: Mapping[str, str] | None = None,
) -> JSON:
    """A ServiceAccount; ``role`` is its role-arn annotation, ``rv`` its resourceVersion (None: as a
    client writes it, without one), ``uid`` its uid (None: none, as a client writes it)."""
    meta: JSON = {"name": name}
    if namespace is not None:
        meta["namespace"] = namespace
    if rv is not None:
        meta["resourceVersion"] = rv
    if uid is not None:
        meta["uid"] = uid
    if labels:
        meta["labels"] = dict(labels)
    written = dict(annotations or {})
    if role:
        written[ROLE_ANNOTATION] = role
    if written:
        meta["annotations"] = written
    return {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": meta}


def config_map(namespace: str, name: str, rv: str, config: str | None = None, **data: str) -> JSON:
    """A ConfigMap; ``config`` is the value of its ``config`` key (absent when None)."""
    values = dict(data)
    if config is not None:
        values["config"] = config
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"namespace": namespace, "name": name, "resourceVersion": rv},
        "data": values,
    }


def pod(
    namespace: str,
    name: str,
    service_account_name: str = "app",
    *,
    role: str | None = None,
    owner: str | None = "ReplicaSet",
    phase: str = "Running",
    uid: str | None = None,
    labels: dict[str, str] | None = None,
) -> JSON:
    """A stored pod; ``role`` set: as the webhook mutated it with that role (its admission marker
    included), else never mutated."""
    container: JSON = {"name": "app", "image": "registry.invalid/app:1", "resources": {}}
    spec: JSON = {"serviceAccountName": service_account_name, "containers": [container], "nodeName": "node-1"}
    if role is not None:
        container["env"] = [
            {"name": "AWS_ROLE_ARN", "value": role},
            {"name": "AWS_WEB_IDENTITY_TOKEN_FILE", "value": TOKEN_FILE},
        ]
        container["volumeMounts"] = [
            {"name": "aws-iam-token", "mountPath": TOKEN_FILE.rsplit("/", 1)[0], "readOnly": True}
        ]
        token = {"audience": "sts.amazonaws.com", "expirationSeconds": 86400, "path": "token"}
        spec["volumes"] = [{"name": "aws-iam-token", "projected": {"sources": [{"serviceAccountToken": token}]}}]
    meta: JSON = {"namespace": namespace, "name": name, "uid": uid or f"uid-{namespace}-{name}"}
    if role is not None:
        meta["annotations"] = {MARKER_ANNOTATION: marker_value(["app"], "serviceaccount")}
    if labels:
        meta["labels"] = labels
    if owner:
        meta["ownerReferences"] = [
            {"apiVersion": "apps/v1", "kind": owner, "name": f"{name}-owner", "uid": "owner-uid", "controller": True}
        ]
    return {"apiVersion": "v1", "kind": "Pod", "metadata": meta, "spec": spec, "status": {"phase": phase}}


def key(obj: JSON) -> tuple[str, str]:
    return obj["metadata"]["namespace"], obj["metadata"]["name"]


def list_of(items: Sequence[JSON], rv: str, cont: str = "", kind: str = "List") -> JSON:
    """One page of a list: ``cont`` is the continue token of the next page ("" on the last)."""
    meta: JSON = {"resourceVersion": rv}
    if cont:
        meta["continue"] = cont
    return {"kind": kind, "apiVersion": "v1", "metadata": meta, "items": list(items)}


def event(kind: str, obj: JSON) -> JSON:
    """A watch event: ``ADDED``, ``MODIFIED``, ``DELETED``, ``BOOKMARK`` or ``ERROR``."""
    return {"type": kind, "object": obj}


def status(code: int, message: str, **meta: str) -> JSON:
    """A failure Status as the API server answers it (``meta``: e.g. the ``continue`` token of a 410)."""
    body: JSON = {"kind": "Status", "apiVersion": "v1", "status": "Failure", "message": message, "code": code}
    if meta:
        body["metadata"] = meta
    return body


def identities_file(*pairs: tuple[str, str]) -> bytes:
    """The Pod Identity identities file (a ConfigMap key) listing these (namespace, ServiceAccount)."""
    return json.dumps({"identities": [{"namespace": ns, "serviceAccount": sa} for ns, sa in pairs]}).encode()
