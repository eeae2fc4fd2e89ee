"""Kubernetes Events about an object (``events.k8s.io/v1``), written as raw JSON.

An Event is a note for the humans reading ``kubectl describe``: failing to write one must never fail
the work it describes, so :func:`record` logs a failure and returns False instead of raising.

An Event about a namespaced object is written in that object's namespace (where ``kubectl describe``
and the object's owners, who may read nothing else, look for it), one about a cluster-scoped object
in ``default``, as client-go's recorder does.
"""

from __future__ import annotations

import logging
import time
from datetime import UTC, datetime
from typing import Any

from kubernetes import client
from kubernetes.client.exceptions import ApiException

from webhook.kube import rawapi
from webhook.kube.objects import LOG_VALUE_CHARS, describe

log = logging.getLogger("irsa_webhook.events")

JSON = dict[str, Any]
# Where Events about cluster-scoped objects go, as client-go's recorder puts them.
CLUSTER_SCOPED_NAMESPACE = "default"
# The API server's bounds (events.k8s.io/v1 validation): a longer note or reason is refused.
NOTE_MAX = 1024
FIELD_MAX = 128
NAME_PREFIX_MAX = 236  # + "." + 16 hex digits: within the 253 characters of an object name


def micro_time(moment: datetime | None = None) -> str:
    """A MicroTime as the API server writes it: RFC 3339, microseconds, UTC ``Z``."""
    return (moment or datetime.now(UTC)).astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def record(
    api: client.ApiClient,
    regarding: JSON,
    event_type: str,
    reason: str,
    note: str,
    *,
    controller: str,
    instance: str,
    action: str = "Reconcile",
) -> bool:
    """Write one Event about ``regarding`` (a raw object); False (logged) if it could not be written."""
    meta = regarding.get("metadata") or {}
    name = str(meta.get("name") or "")
    namespace = str(meta.get("namespace") or CLUSTER_SCOPED_NAMESPACE)
    reference = {
        "apiVersion": regarding.get("apiVersion"),
        "kind": regarding.get("kind"),
        "name": name,
        "uid": meta.get("uid"),
        "resourceVersion": meta.get("resourceVersion"),
    }
    if meta.get("namespace"):
        reference["namespace"] = meta["namespace"]
    body = {
        "apiVersion": "events.k8s.io/v1",
        "kind": "Event",
        # Named as client-go names them: unique per object and nanosecond, and a valid object name.
        "metadata": {"name": f"{name[:NAME_PREFIX_MAX]}.{time.time_ns():x}", "namespace": namespace},
        "eventTime": micro_time(),
        "reportingController": controller[:FIELD_MAX],
        "reportingInstance": instance[:FIELD_MAX],
        "action": action[:FIELD_MAX],
        "reason": reason[:FIELD_MAX],
        "note": note[:NOTE_MAX],
        "type": event_type,
        "regarding": {key: value for key, value in reference.items() if value},
    }
    shown = f"{meta['namespace']}/{name}" if meta.get("namespace") else name
    try:
        rawapi.call(api, "POST", f"/apis/events.k8s.io/v1/namespaces/{namespace}/events", body=body)
    except ApiException as exc:
        problem = f"HTTP {exc.status}: {rawapi.status_message(exc)[:LOG_VALUE_CHARS]}"
        log.warning("cannot record an event about %s %s (%s): %s", regarding.get("kind"), shown, reason, problem)
        return False
    except Exception as exc:
        log.warning("cannot record an event about %s %s (%s): %s", regarding.get("kind"), shown, reason, describe(exc))
        return False
    return True
