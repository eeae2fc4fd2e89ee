"""The list+watch loop that keeps an in-memory copy of one kind of object current (a reflector).

Objects are read as raw JSON (``_preload_content=False``) and reduced at once to what is kept: the
client's model classes would cost CPU and memory for fields we throw away.

One loop (:class:`ListWatch`) serves every kind: list (paginated) → hand the result over → watch
from the list's resourceVersion with bookmarks, advancing the resourceVersion with every event
applied → when the watch ends, resume from there. HTTP 410 Gone, from the watch call or as an ERROR
event, means that resourceVersion fell out of etcd's window: relist. Any other failure, and a watch
that ends at once, backs off exponentially (capped, with jitter) before the next try.

The list call is injected (``call``: any of the client's ``list_*`` methods, which also watch with
``watch=True``), so ServiceAccounts, one ConfigMap or a custom resource share the loop; a subclass
says only how one object is read and where the results go. One object that cannot be read never
stops the loop: it is logged by namespace/name, counted and skipped (:mod:`webhook.kube.objects`).
"""

from __future__ import annotations

import abc
import logging
import random
import socket
import threading
import time
from collections.abc import Callable, Mapping
from typing import Any, Generic, TypeVar

import orjson
from kubernetes.client.exceptions import ApiException
from kubernetes.watch.watch import iter_resp_lines
from urllib3.exceptions import ReadTimeoutError

from webhook.kube import LIST_PAGE_SIZE
from webhook.kube.objects import LOG_VALUE_CHARS, Count, describe, read_or_skip, resource_version_of

log = logging.getLogger("irsa_webhook.watch")

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

T = TypeVar("T")
ListCall = Callable[..., Any]
"""A client ``list_*`` method (bound, with any fixed arguments): called with ``limit``/``_continue`` to
list and with ``watch=True`` to watch."""


class Gone(Exception):
    """The watch's resourceVersion is too old (HTTP 410): a full relist is needed."""


class ListWatch(abc.ABC, Generic[T]):
    """The list+watch loop on its own thread; a subclass names the objects and takes the results.

    ``call`` lists and watches the objects. Subclasses implement :meth:`_read` (one raw object → what
    is kept; may raise), :meth:`_replace` (a full list's results) and :meth:`_apply` (one
    ADDED/MODIFIED/DELETED event); :meth:`_advance` is told every resourceVersion the watch reached.
    """

    kind = "object"  # names the objects in log lines
    thread_name = "watch"

    def __init__(
        self,
        call: ListCall,
        *,
        watch_timeout: float = 300.0,
        restarts: Mapping[str, Count],
        parse_errors: Mapping[str, Count],
    ) -> None:
        self._call = call
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
        return read_or_skip(self.kind, obj, source, self._read, self._parse_errors[source])

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
                reason, failure = "error", describe(exc)
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
        continue_token = ""
        while True:
            continue_token, resource_version = self._list_page(continue_token, items)
            if not continue_token:
                self._replace(items, resource_version)
                self.resource_version = resource_version
                return

    def _list_page(self, continue_token: str, items: list[T]) -> tuple[str, str]:
        """One page read into ``items``: (the next page's continue token or "", the resourceVersion).

        The raw page and its decoded objects are this call's locals, so they are gone before the next
        page is asked for: only what :meth:`_read` keeps of each object outlives its page.
        """
        kwargs: dict[str, Any] = {"limit": LIST_PAGE_SIZE, "_preload_content": False, "_request_timeout": 30}
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
        return str(meta.get("continue") or ""), str(meta.get("resourceVersion") or "")

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
        resource_version = resource_version_of(obj)
        if kind in ("ADDED", "MODIFIED", "DELETED"):
            self._apply(kind, obj, resource_version)
        self._advance(resource_version)
        if resource_version:
            self.resource_version = resource_version


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
