"""Reading raw Kubernetes objects defensively: their key, their resourceVersion, and one object that
cannot be read logged, counted and skipped instead of stopping a list, a watch or an admission."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any, Protocol, TypeVar

from kubernetes.client.exceptions import ApiException

log = logging.getLogger("irsa_webhook.watch")

LOG_VALUE_CHARS = 200  # bound of an object's name or an error message in a log line

T = TypeVar("T")


class Count(Protocol):
    """A counter (a prometheus_client child, or a test's stand-in)."""

    def inc(self, amount: float = 1) -> None: ...


def object_key(obj: Any) -> tuple[str, str] | None:
    """(namespace, name) of a raw object, or None if its metadata does not say."""
    meta = obj.get("metadata") if isinstance(obj, dict) else None
    if not isinstance(meta, dict):
        return None
    namespace, name = meta.get("namespace"), meta.get("name")
    if not isinstance(namespace, str) or not isinstance(name, str):
        return None
    return namespace, name


def resource_version_of(obj: Any) -> str:
    meta = obj.get("metadata") if isinstance(obj, dict) else None
    value = meta.get("resourceVersion") if isinstance(meta, dict) else None
    return value if isinstance(value, str) else ""


def where(obj: Any) -> str:
    """``namespace/name`` of a raw object for a log line, bounded."""
    key = object_key(obj)
    return f"{key[0][:LOG_VALUE_CHARS]}/{key[1][:LOG_VALUE_CHARS]}" if key else "(no namespace/name)"


def read_or_skip(kind: str, obj: Any, source: str, read: Callable[[dict[str, Any]], T], errors: Count) -> T | None:
    """``read(obj)``, or None if that raises: logged by namespace/name, counted in ``errors``."""
    try:
        if not isinstance(obj, dict):
            raise TypeError(f"object is a {type(obj).__name__}, not a mapping")
        return read(obj)
    except Exception as exc:
        errors.inc()
        log.warning(
            "skipping %s %s: cannot parse it (%s)",
            kind,
            where(obj),
            describe(exc),
            extra={"fields": {"source": source}},
        )
        return None


def describe(exc: BaseException) -> str:
    """One bounded line for a log: the HTTP status of an API error, else the exception."""
    if isinstance(exc, ApiException):
        return f"HTTP {exc.status} {exc.reason}"
    return f"{type(exc).__name__}: {str(exc)[:LOG_VALUE_CHARS]}"
