"""The scripted stand-in for the parts of ``CoreV1Api`` the watch loops and the live GET call, in-process.

A test puts it in place of the client's API object and scripts each call: ``lists`` are answered in
order (``page(...)`` or a function raising), each watch call takes the next of ``watches`` (a
``Stream``, a ``LiveStream`` the test feeds while it is open, or an exception to raise), and a GET
answers from ``objects``, optionally held at ``read_gate`` or failing with ``read_error``.
"""

from __future__ import annotations

import json
import queue
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

from kubernetes.client.exceptions import ApiException

from webhook.kube import LIST_PAGE_SIZE

from .objects import JSON, list_of


class Raw:
    """A response as ``_preload_content=False`` gives it: the body in ``data``."""

    def __init__(self, body: Any) -> None:
        self.data = json.dumps(body).encode()


class Stream:
    """A watch response: newline-delimited events, then either the end or a block until closed.

    An item may be an event (dict, sent as JSON), raw bytes (sent as they are) or an exception
    (raised where the stream is read, as a broken or timed-out connection does).
    """

    def __init__(self, events: list[Any], hold: bool) -> None:
        self.events = events
        self.hold = hold
        self.closed = threading.Event()
        self.connection = self  # urllib3 exposes the connection, which holds the socket
        self.sock = self

    def stream(self, amt: Any = None, decode_content: bool = False) -> Iterator[bytes]:
        for event in self.events:
            if isinstance(event, BaseException):
                raise event
            yield event if isinstance(event, bytes) else json.dumps(event).encode() + b"\n\n"
        if self.hold:
            self.closed.wait(10)

    def release_conn(self) -> None:
        pass

    def shutdown(self, how: int) -> None:  # the socket-level shutdown that wakes a blocked read
        self.closed.set()


class LiveStream(Stream):
    """A watch response the test feeds while it is open: ``push(event)``."""

    def __init__(self) -> None:
        super().__init__([], hold=True)
        self.queue: queue.Queue[JSON] = queue.Queue()

    def push(self, event: JSON) -> None:
        self.queue.put(event)

    def stream(self, amt: Any = None, decode_content: bool = False) -> Iterator[bytes]:
        deadline = time.monotonic() + 20
        while not self.closed.is_set() and time.monotonic() < deadline:
            try:
                event = self.queue.get(timeout=0.02)
            except queue.Empty:
                continue
            yield json.dumps(event).encode() + b"\n"


class FakeCoreV1:
    def __init__(self) -> None:
        self.lists: list[Callable[[dict[str, Any]], Any]] = []
        # Each watch call takes the next item: a Stream to return or an exception to raise.
        self.watches: queue.Queue[Stream | BaseException] = queue.Queue()
        self.list_calls = 0
        self.watch_rvs: list[str] = []
        self.watch_kwargs: list[dict[str, Any]] = []
        self.objects: dict[tuple[str, str], JSON] = {}
        self.read_error: Exception | None = None
        self.read_gate: threading.Event | None = None  # when set, a GET waits for it before answering
        self.read_started = threading.Event()
        self.read_calls = 0
        # (namespace, field selector) of every list_namespaced_config_map call, list or watch.
        self.config_map_calls: list[tuple[str, str | None]] = []

    def list_namespaced_config_map(self, namespace: str, **kw: Any) -> Any:
        """The same script as ServiceAccounts (one fake API per test serves one kind)."""
        self.config_map_calls.append((namespace, kw.get("field_selector")))
        return self._scripted(kw)

    def list_service_account_for_all_namespaces(self, **kw: Any) -> Any:
        return self._scripted(kw)

    def _scripted(self, kw: dict[str, Any]) -> Any:
        """A watch call takes the next of ``watches``; a list call the next of ``lists``."""
        if kw.get("watch"):
            self.watch_rvs.append(kw["resource_version"])
            self.watch_kwargs.append(kw)
            try:
                item = self.watches.get_nowait()
            except queue.Empty:
                return Stream([], hold=True)
            if isinstance(item, BaseException):
                raise item
            return item
        self.list_calls += 1
        return self.lists.pop(0)(kw)

    def read_namespaced_service_account(self, name: str, namespace: str, **kw: Any) -> Any:
        assert kw["_request_timeout"] == 1.0
        self.read_calls += 1
        body = self.objects.get((namespace, name))  # what the API server held when it read
        self.read_started.set()
        if self.read_gate is not None:
            assert self.read_gate.wait(10)
        if self.read_error is not None:
            raise self.read_error
        if body is None:
            raise ApiException(status=404, reason="Not Found")
        return Raw(body)


def page(items: list[Any], rv: str, cont: str = "") -> Callable[[dict[str, Any]], Raw]:
    """A list call's answer: one page of ``items`` (asked for at the loop's page size)."""

    def answer(kw: dict[str, Any]) -> Raw:
        assert kw["limit"] == LIST_PAGE_SIZE
        return Raw(list_of(items, rv, cont))

    return answer


def gone() -> ApiException:
    """What a list or watch call raises when its resourceVersion fell out of etcd's window."""
    return ApiException(status=410, reason="Gone")
