"""Cluster-wide list+watch of ServiceAccounts into an :class:`~webhook.cache.IdentityStore`, and the
live GET used on a cache miss.

Objects are read as raw JSON (``_preload_content=False``) and reduced at once to an Identity: the
client's model classes would cost CPU and memory for fields we throw away.

The loop: list (paginated) → replace the store → watch from the list's resourceVersion with
bookmarks → on 410 Gone relist (our resourceVersion fell out of etcd's window); on any other error
back off exponentially (capped, with jitter) and resume the watch, relisting only when needed.
"""

from __future__ import annotations

import logging
import random
import socket
import threading
import time
from typing import Any

import orjson
from kubernetes import client
from kubernetes.client.exceptions import ApiException
from kubernetes.watch.watch import iter_resp_lines

from webhook import metrics
from webhook.cache import IdentityStore
from webhook.identity import parse_service_account
from webhook.settings import Settings
from webhook.types import Identity

log = logging.getLogger("irsa_webhook.watch")

LIST_PAGE = 500  # objects per list page: bounds the memory of one response on big clusters
BACKOFF_START = 0.5
BACKOFF_MAX = 30.0  # cap so a long API server outage is noticed within half a minute of its end
LIVE_GET_TIMEOUT = 1.0  # SPEC: a live GET on a miss waits at most one second


class Gone(Exception):
    """The watch's resourceVersion is too old (HTTP 410): a full relist is needed."""


class ServiceAccountWatcher:
    def __init__(
        self,
        api_client: client.ApiClient,
        store: IdentityStore,
        settings: Settings,
        *,
        watch_timeout: float = 300.0,
    ) -> None:
        self._api = client.CoreV1Api(api_client)
        self._store = store
        self._settings = settings
        # The server ends each watch after this long; we then resume from the last resourceVersion.
        self._watch_timeout = max(1, int(watch_timeout))
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._response: Any = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="sa-watch", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        self._stop.set()
        response = self._response
        if response is not None:
            _abort(response)
        if self._thread is not None:
            self._thread.join(timeout)

    # -- the loop ---------------------------------------------------------------------------------
    def _run(self) -> None:
        backoff = BACKOFF_START
        resource_version: str | None = None
        while not self._stop.is_set():
            try:
                if resource_version is None:
                    resource_version = self._list()
                resource_version = self._watch(resource_version)
                backoff = BACKOFF_START
                metrics.WATCH_RESTARTS.labels("expired").inc()
            except Gone:
                log.info("watch resourceVersion expired (410 Gone); relisting")
                metrics.WATCH_RESTARTS.labels("gone").inc()
                resource_version = None
            except Exception as exc:
                if self._stop.is_set():
                    break
                delay = backoff * (0.5 + random.random())  # noqa: S311 - jitter, not crypto
                log.warning("serviceaccount watch failed (%s); retrying in %.1fs", _describe(exc), delay)
                metrics.WATCH_RESTARTS.labels("error").inc()
                self._stop.wait(delay)
                backoff = min(backoff * 2, BACKOFF_MAX)

    def _list(self) -> str:
        identities: list[Identity] = []
        continue_token: str | None = None
        while True:
            kwargs: dict[str, Any] = {"limit": LIST_PAGE, "_preload_content": False, "_request_timeout": 30}
            if continue_token:
                kwargs["_continue"] = continue_token
            try:
                raw: Any = self._api.list_service_account_for_all_namespaces(**kwargs)
            except ApiException as exc:
                if exc.status == 410:  # the continue token expired mid-list: start over
                    raise Gone from exc
                raise
            page = orjson.loads(raw.data)
            identities.extend(parse_service_account(item, self._settings) for item in page.get("items") or ())
            meta = page.get("metadata") or {}
            continue_token = meta.get("continue")
            if not continue_token:
                self._store.replace_all(identities)
                log.info("serviceaccount cache synced: %d accounts", len(identities))
                return str(meta.get("resourceVersion") or "")

    def _watch(self, resource_version: str) -> str:
        # _preload_content=False: the raw urllib3 response, not the client's typed model.
        response: Any = self._api.list_service_account_for_all_namespaces(
            watch=True,
            resource_version=resource_version,
            allow_watch_bookmarks=True,
            timeout_seconds=self._watch_timeout,
            _preload_content=False,
            # connect timeout, then a read timeout longer than the server-side watch timeout
            _request_timeout=(10, self._watch_timeout + 30),
        )
        self._response = response
        try:
            for line in iter_resp_lines(response):  # type: ignore[no-untyped-call]
                if self._stop.is_set():
                    break
                if not line:  # keep-alive blank lines between events
                    continue
                resource_version = self._handle(orjson.loads(line), resource_version)
        finally:
            self._response = None
            response.release_conn()
        return resource_version

    def _handle(self, event: dict[str, Any], resource_version: str) -> str:
        kind = event.get("type")
        obj = event.get("object") or {}
        if kind == "ERROR":
            if obj.get("code") == 410:
                raise Gone
            raise RuntimeError(f"watch error: {obj.get('message') or obj}")
        meta = obj.get("metadata") or {}
        if kind in ("ADDED", "MODIFIED"):
            self._store.upsert(parse_service_account(obj, self._settings))
        elif kind == "DELETED":
            self._store.delete(str(meta.get("namespace") or ""), str(meta.get("name") or ""))
        return str(meta.get("resourceVersion") or resource_version)


class RateLimiter:
    """Token bucket: at most ``rate`` live GETs per second with bursts of ``burst``.

    A storm of pods for a missing ServiceAccount must not become a storm of API calls.
    """

    def __init__(self, rate: float = 10.0, burst: int = 20) -> None:
        self._rate = rate
        self._burst = float(burst)
        self._tokens = float(burst)
        self._last = time.monotonic()
        self._lock = threading.Lock()

    def allow(self) -> bool:
        with self._lock:
            now = time.monotonic()
            self._tokens = min(self._burst, self._tokens + (now - self._last) * self._rate)
            self._last = now
            if self._tokens >= 1:
                self._tokens -= 1
                return True
            return False


class LiveLookup:
    """GET one ServiceAccount from the API server when the cache has not seen it yet."""

    def __init__(self, api_client: client.ApiClient, store: IdentityStore, settings: Settings) -> None:
        self._api = client.CoreV1Api(api_client)
        self._store = store
        self._settings = settings
        self._limiter = RateLimiter()

    def __call__(self, namespace: str, name: str) -> Identity | bool | None:
        """The identity, None if the API server says it does not exist, False if we could not ask."""
        if not self._limiter.allow():
            metrics.LIVE_LOOKUPS.labels("rate_limited").inc()
            return False
        try:
            raw: Any = self._api.read_namespaced_service_account(
                name, namespace, _preload_content=False, _request_timeout=LIVE_GET_TIMEOUT
            )
        except ApiException as exc:
            if exc.status == 404:
                metrics.LIVE_LOOKUPS.labels("not_found").inc()
                return None
            metrics.LIVE_LOOKUPS.labels("error").inc()
            log.warning("live GET of serviceaccount %s/%s failed: %s", namespace, name, _describe(exc))
            return False
        except Exception as exc:
            metrics.LIVE_LOOKUPS.labels("error").inc()
            log.warning("live GET of serviceaccount %s/%s failed: %s", namespace, name, _describe(exc))
            return False
        identity = parse_service_account(orjson.loads(raw.data), self._settings)
        self._store.upsert(identity)
        metrics.LIVE_LOOKUPS.labels("found").inc()
        return identity


def _abort(response: Any) -> None:
    """Wake the watch thread blocked reading ``response``, from another thread.

    ``response.close()`` would wait on the TLS connection the reader is blocked in, and hang with
    it; a socket-level shutdown(2) makes the pending read return at once, and the reader exits.
    """
    connection = getattr(response, "connection", None) or getattr(response, "_connection", None)
    sock = getattr(connection, "sock", None)
    if sock is None:
        return
    try:
        sock.shutdown(socket.SHUT_RDWR)
    except OSError:  # already closed: nothing to wake
        log.debug("watch socket already closed", exc_info=True)


def _describe(exc: BaseException) -> str:
    if isinstance(exc, ApiException):
        return f"HTTP {exc.status} {exc.reason}"
    return f"{type(exc).__name__}: {exc}"
