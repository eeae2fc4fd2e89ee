"""List+watch loops into in-memory caches (ServiceAccounts cluster-wide, the ConfigMap of
``--watch-config-map``), and the live GET of a ServiceAccount used on a cache miss.

Objects are read as raw JSON (``_preload_content=False``) and reduced at once to what is kept: the
client's model classes would cost CPU and memory for fields we throw away.

One loop (:class:`ListWatch`) serves every kind: list (paginated) → hand the result over → watch
from the list's resourceVersion with bookmarks, advancing the resourceVersion with every event
applied → when the watch ends, resume from there. HTTP 410 Gone, from the watch call or as an ERROR
event, means that resourceVersion fell out of etcd's window: relist. Any other failure, and a watch
that ends at once, backs off exponentially (capped, with jitter) before the next try. A subclass
says only which call lists and watches, how one object is read, and where the results go.

One object that cannot be read never stops the loop: it is logged by namespace/name, counted and
skipped. For ServiceAccounts (``irsa_webhook_service_account_parse_errors_total``): if it replaced a
cached version (MODIFIED), the cached entry is dropped rather than kept: the change may have revoked
the role, and a revoked role must not stay in use; pods of that account are then admitted as for a
missing one.
"""

from __future__ import annotations

import abc
import copy
import dataclasses
import logging
import random
import socket
import threading
import time
from collections.abc import Callable, Mapping
from typing import Any, Generic, Protocol, TypeVar

import orjson
from kubernetes import client
from kubernetes.client.exceptions import ApiException
from kubernetes.watch.watch import iter_resp_lines
from urllib3.exceptions import ReadTimeoutError

from webhook import metrics
from webhook.cache import IdentityStore
from webhook.identity import parse_service_account
from webhook.settings import Settings
from webhook.types import Identity

log = logging.getLogger("irsa_webhook.watch")

LIST_PAGE = 500  # objects per list page: bounds the memory of one response on big clusters
BACKOFF_START = 0.5
# Cap of the wait between tries: an API server back from an outage is used again within seconds.
# Each try is one cheap request, so a few seconds is no load even for many replicas.
BACKOFF_MAX = 3.0
# A watch that delivered nothing and ended sooner than this "ended at once": back off before the
# next (a proxy or a sick API server closing every watch must not become a tight loop).
PRODUCTIVE_WATCH = 10.0
# With --resync-period=0 the watch has no server-side timeout; it still gets a read timeout, well
# above the API server's bookmark interval (one a minute), so a silently dead connection is noticed.
IDLE_READ_TIMEOUT = 180.0
LIVE_GET_TIMEOUT = 1.0  # one overall deadline per live GET, no client retries on top
LOG_VALUE_CHARS = 200  # bound of an object's name or an error message in a log line

T = TypeVar("T")


class Gone(Exception):
    """The watch's resourceVersion is too old (HTTP 410): a full relist is needed."""


class _Count(Protocol):
    def inc(self, amount: float = 1) -> None: ...


def _object_key(obj: Any) -> tuple[str, str] | None:
    """(namespace, name) of a raw object, or None if its metadata does not say."""
    meta = obj.get("metadata") if isinstance(obj, dict) else None
    if not isinstance(meta, dict):
        return None
    namespace, name = meta.get("namespace"), meta.get("name")
    if not isinstance(namespace, str) or not isinstance(name, str):
        return None
    return namespace, name


def _resource_version(obj: Any) -> str:
    meta = obj.get("metadata") if isinstance(obj, dict) else None
    value = meta.get("resourceVersion") if isinstance(meta, dict) else None
    return value if isinstance(value, str) else ""


def _where(obj: Any) -> str:
    key = _object_key(obj)
    return f"{key[0][:LOG_VALUE_CHARS]}/{key[1][:LOG_VALUE_CHARS]}" if key else "(no namespace/name)"


def parse_object(obj: Any, settings: Settings, source: str) -> Identity | None:
    """The Identity of one raw ServiceAccount, or None (logged and counted) if it cannot be parsed.

    ``source`` (list, watch, live) labels the metric. Never raises: one bad object must not fail a
    list, replay a watch event forever, or turn an admission into a 500.
    """
    return _read_or_skip(
        "serviceaccount", obj, source, lambda o: _service_account(o, settings), metrics.PARSE_ERRORS_BY_SOURCE[source]
    )


def _service_account(obj: dict[str, Any], settings: Settings) -> Identity:
    identity = parse_service_account(obj, settings)
    return dataclasses.replace(identity, resource_version=_resource_version(obj))


def _read_or_skip(kind: str, obj: Any, source: str, read: Callable[[dict[str, Any]], T], errors: _Count) -> T | None:
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
            _where(obj),
            _describe(exc),
            extra={"fields": {"source": source}},
        )
        return None


class ListWatch(abc.ABC, Generic[T]):
    """The list+watch loop on its own thread; a subclass names the objects and takes the results.

    Subclasses implement :meth:`_call` (the API's list method, also called with ``watch=True``),
    :meth:`_read` (one raw object → what is kept; may raise), :meth:`_replace` (a full list's
    results) and :meth:`_apply` (one ADDED/MODIFIED/DELETED event); :meth:`_advance` is told every
    resourceVersion the watch reached.
    """

    kind = "object"  # names the objects in log lines
    thread_name = "watch"

    def __init__(
        self,
        api_client: client.ApiClient,
        *,
        watch_timeout: float = 300.0,
        restarts: Mapping[str, _Count],
        parse_errors: Mapping[str, _Count],
    ) -> None:
        self._api = client.CoreV1Api(api_client)
        self._restarts = restarts  # by reason: closed, read_timeout, gone, error
        self._parse_errors = parse_errors  # by source: list, watch
        # The server ends each watch after this long and we resume from the last resourceVersion;
        # 0 (--resync-period=0): no server-side timeout, the watch is never restarted on a timer.
        self._watch_timeout = max(1, int(watch_timeout)) if watch_timeout > 0 else 0
        self._read_timeout = (
            min(self._watch_timeout + 30.0, IDLE_READ_TIMEOUT) if self._watch_timeout else IDLE_READ_TIMEOUT
        )
        # Where the next watch starts: the last list's, advanced by every event applied; None: list.
        self.resource_version: str | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._response: Any = None
        self._delivered = 0  # events (bookmarks included) the current watch delivered

    # -- what a subclass says -----------------------------------------------------------------------
    @abc.abstractmethod
    def _call(self, **kwargs: Any) -> Any:
        """The list call (with ``watch=True``: the watch call) for these objects."""

    @abc.abstractmethod
    def _read(self, obj: dict[str, Any]) -> T:
        """What is kept of one raw object; raises if it cannot be read."""

    @abc.abstractmethod
    def _replace(self, items: list[T], resource_version: str) -> None:
        """Everything a full list returned (that could be read), at ``resource_version``."""

    @abc.abstractmethod
    def _apply(self, kind: str, obj: Any, resource_version: str) -> None:
        """One ADDED, MODIFIED or DELETED event (use :meth:`_parse` to read its object)."""

    def _advance(self, resource_version: str) -> None:
        """The watch has applied every change up to ``resource_version`` (after each event)."""

    # -- reading one object -----------------------------------------------------------------------
    def _parse(self, obj: Any, source: str) -> T | None:
        """:meth:`_read`, or None (logged by namespace/name and counted) if it cannot be read."""
        return _read_or_skip(self.kind, obj, source, self._read, self._parse_errors[source])

    # -- running ----------------------------------------------------------------------------------
    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name=self.thread_name, daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        self._stop.set()
        response = self._response
        if response is not None:
            _abort(response)
        if self._thread is not None:
            self._thread.join(timeout)

    def _run(self) -> None:
        backoff = BACKOFF_START
        while not self._stop.is_set():
            listed = False
            failure = ""
            self._delivered = 0
            watch_started = time.monotonic()
            try:
                if self.resource_version is None:
                    self._list()
                    listed = True
                    watch_started = time.monotonic()
                reason = self._watch()
            except Gone:
                reason = "gone"
                log.info("%s watch resourceVersion expired (410 Gone); relisting", self.kind)
                self.resource_version = None
            except Exception as exc:
                reason, failure = "error", _describe(exc)
            if self._stop.is_set():
                break
            self._restarts[reason].inc()
            productive = self._delivered > 0 or time.monotonic() - watch_started >= PRODUCTIVE_WATCH
            if productive:
                backoff = BACKOFF_START
            # Resume at once after a watch that did its job, and relist at once on the first 410
            # after a resume; anything else waits, so nothing can spin.
            if reason != "error" and (productive or (reason == "gone" and not listed)):
                continue
            delay = backoff * (0.5 + random.random() / 2)  # noqa: S311 - jitter, not crypto
            if failure:
                log.warning("%s list/watch failed (%s); retrying in %.1fs", self.kind, failure, delay)
            else:
                log.info("%s watch ended at once (%s); retrying in %.1fs", self.kind, reason, delay)
            self._stop.wait(delay)
            backoff = min(backoff * 2, BACKOFF_MAX)

    def _list(self) -> None:
        items: list[T] = []
        continue_token: str | None = None
        while True:
            kwargs: dict[str, Any] = {"limit": LIST_PAGE, "_preload_content": False, "_request_timeout": 30}
            if continue_token:
                kwargs["_continue"] = continue_token
            try:
                raw: Any = self._call(**kwargs)
            except ApiException as exc:
                if exc.status == 410:  # the continue token expired mid-list: start over
                    raise Gone from exc
                raise
            page = orjson.loads(raw.data)
            for item in page.get("items") or ():
                parsed = self._parse(item, "list")
                if parsed is not None:
                    items.append(parsed)
            meta = page.get("metadata") or {}
            continue_token = meta.get("continue")
            if not continue_token:
                resource_version = str(meta.get("resourceVersion") or "")
                self._replace(items, resource_version)
                self.resource_version = resource_version
                return

    def _watch(self) -> str:
        """Watch from ``self.resource_version`` until the stream ends; the restart reason."""
        kwargs: dict[str, Any] = {}
        if self._watch_timeout:
            kwargs["timeout_seconds"] = self._watch_timeout
        try:
            # _preload_content=False: the raw urllib3 response, not the client's typed model.
            response: Any = self._call(
                watch=True,
                resource_version=self.resource_version,
                allow_watch_bookmarks=True,
                _preload_content=False,
                # connect timeout, then a read timeout longer than the server-side watch timeout
                _request_timeout=(10, self._read_timeout),
                **kwargs,
            )
        except ApiException as exc:
            if exc.status == 410:  # the API server refused the resourceVersion up front
                raise Gone from exc
            raise
        self._response = response
        try:
            for line in iter_resp_lines(response):  # type: ignore[no-untyped-call]
                if self._stop.is_set():
                    break
                if not line:  # keep-alive blank lines between events
                    continue
                self._handle(orjson.loads(line))
                self._delivered += 1
        except ReadTimeoutError:
            # Nothing for longer than the read timeout: a dead connection, or a quiet API server
            # that sends no bookmarks. Our resourceVersion is still good: resume, do not relist.
            return "read_timeout"
        finally:
            self._response = None
            response.release_conn()
        return "closed"

    def _handle(self, event: Any) -> None:
        kind = event.get("type") if isinstance(event, dict) else None
        obj = event.get("object") if isinstance(event, dict) else None
        if kind == "ERROR":
            code = obj.get("code") if isinstance(obj, dict) else None
            if code == 410:
                raise Gone
            message = obj.get("message") if isinstance(obj, dict) else None
            raise RuntimeError(f"watch error: {str(message or obj)[:LOG_VALUE_CHARS]}")
        resource_version = _resource_version(obj)
        if kind in ("ADDED", "MODIFIED", "DELETED"):
            self._apply(kind, obj, resource_version)
        self._advance(resource_version)
        if resource_version:
            self.resource_version = resource_version


class ServiceAccountWatcher(ListWatch[Identity]):
    """Cluster-wide list+watch of ServiceAccounts into an :class:`~webhook.cache.IdentityStore`."""

    kind = "serviceaccount"
    thread_name = "sa-watch"

    def __init__(
        self,
        api_client: client.ApiClient,
        store: IdentityStore,
        settings: Settings,
        *,
        watch_timeout: float = 300.0,
    ) -> None:
        super().__init__(
            api_client,
            watch_timeout=watch_timeout,
            restarts=metrics.WATCH_RESTART_REASONS,
            parse_errors=metrics.PARSE_ERRORS_BY_SOURCE,
        )
        self._store = store
        self._settings = settings

    def _call(self, **kwargs: Any) -> Any:
        return self._api.list_service_account_for_all_namespaces(**kwargs)

    def _read(self, obj: dict[str, Any]) -> Identity:
        return _service_account(obj, self._settings)

    def _replace(self, items: list[Identity], resource_version: str) -> None:
        self._store.replace_all(items, resource_version)
        log.info("serviceaccount cache synced: %d accounts", len(items))

    def _apply(self, kind: str, obj: Any, resource_version: str) -> None:
        if kind == "DELETED":
            key = _object_key(obj)
            if key is not None:
                self._store.delete(key[0], key[1], resource_version)
            else:
                self._parse(obj, "watch")  # logs and counts it
            return
        identity = self._parse(obj, "watch")
        if identity is not None:
            self._store.upsert(identity)
            return
        key = _object_key(obj)
        if key is not None:  # never keep serving a version the cluster has replaced
            self._store.delete(key[0], key[1], resource_version)

    def _advance(self, resource_version: str) -> None:
        self._store.advance(resource_version)


class ConfigMapSink(Protocol):
    """Where :class:`ConfigMapWatcher` delivers the one ConfigMap it follows."""

    def replace(self, config_map: dict[str, Any] | None) -> None:
        """The ConfigMap as the cluster now has it; None: it does not exist (any more)."""
        ...


class ConfigMapWatcher(ListWatch[dict[str, Any]]):
    """List+watch of one ConfigMap by name (a ``metadata.name`` field selector) in one namespace.

    The sink gets the whole object on every change and None when it is deleted or absent from a
    list; what the object means (and what to keep when it is broken) is the sink's business.
    """

    kind = "configmap"
    thread_name = "cm-watch"

    def __init__(
        self,
        api_client: client.ApiClient,
        namespace: str,
        name: str,
        sink: ConfigMapSink,
        *,
        watch_timeout: float = 300.0,
    ) -> None:
        unparseable = metrics.CONFIG_MAP_ERROR_REASONS["unparseable"]
        super().__init__(
            api_client,
            watch_timeout=watch_timeout,
            restarts=metrics.CONFIG_MAP_WATCH_RESTART_REASONS,
            parse_errors={"list": unparseable, "watch": unparseable},
        )
        self.namespace = namespace
        self.name = name
        self._sink = sink

    def _call(self, **kwargs: Any) -> Any:
        return self._api.list_namespaced_config_map(
            self.namespace, field_selector=f"metadata.name={self.name}", **kwargs
        )

    def _read(self, obj: dict[str, Any]) -> dict[str, Any]:
        if _object_key(obj) != (self.namespace, self.name):
            raise ValueError(f"not configmap {self.namespace}/{self.name}")
        return obj

    def _replace(self, items: list[dict[str, Any]], resource_version: str) -> None:
        self._sink.replace(items[-1] if items else None)

    def _apply(self, kind: str, obj: Any, resource_version: str) -> None:
        if kind == "DELETED":
            self._sink.replace(None)
            return
        config_map = self._parse(obj, "watch")
        if config_map is not None:  # unreadable: the sink keeps what it has
            self._sink.replace(config_map)


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


def without_retries(api_client: client.ApiClient) -> client.ApiClient:
    """``api_client``, or a copy of it that never retries a request.

    urllib3 retries 3 times by default, each try with a fresh timeout: a "1 s" GET could take 4 s.
    """
    if api_client.configuration.retries is False:
        return api_client
    configuration = copy.deepcopy(api_client.configuration)
    configuration.retries = False
    return client.ApiClient(configuration)


class LiveLookup:
    """GET one ServiceAccount from the API server when the cache has not seen it yet.

    Blocking: the resolver calls it from its own small pool of threads. One try, one overall 1 s
    timeout. The answer goes through :meth:`IdentityStore.offer`, so it never overwrites a newer
    version the watch delivered meanwhile, nor brings back one deleted since.
    """

    def __init__(self, api_client: client.ApiClient, store: IdentityStore, settings: Settings) -> None:
        self._client = without_retries(api_client)
        self._own_client = self._client is not api_client
        self._api = client.CoreV1Api(self._client)
        self._store = store
        self._settings = settings
        self._limiter = RateLimiter()

    def __call__(self, namespace: str, name: str) -> Identity | bool | None:
        """The identity, None if there is none to use (not found, or deleted since), False if we could not ask."""
        if not self._limiter.allow():
            metrics.LIVE_LOOKUPS.labels("rate_limited").inc()
            return False
        try:
            raw: Any = self._api.read_namespaced_service_account(
                name, namespace, _preload_content=False, _request_timeout=LIVE_GET_TIMEOUT
            )
            obj = orjson.loads(raw.data)  # the body is read here, still under the same timeout
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
        identity = parse_object(obj, self._settings, "live")
        if identity is None:
            # It exists but cannot be used; the watch cannot parse it either, so waiting would not help.
            metrics.LIVE_LOOKUPS.labels("error").inc()
            return None
        metrics.LIVE_LOOKUPS.labels("found").inc()
        return self._store.offer(identity)

    def close(self) -> None:
        """Close the connections of the client made by :func:`without_retries`, if one was."""
        if self._own_client:
            self._client.close()  # type: ignore[no-untyped-call]


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
    return f"{type(exc).__name__}: {str(exc)[:LOG_VALUE_CHARS]}"
