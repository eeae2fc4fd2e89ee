"""The list+watch loop and the live GET, against a scripted in-memory API (no network)."""

from __future__ import annotations

import json
import queue
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from webhook.cache import IdentityStore
from webhook.settings import Settings
from webhook.watch import LiveLookup, RateLimiter, ServiceAccountWatcher

SETTINGS = Settings()
ROLE = "eks.amazonaws.com/role-arn"


def sa(ns: str, name: str, rv: str, role: str | None = None) -> dict[str, Any]:
    meta: dict[str, Any] = {"namespace": ns, "name": name, "resourceVersion": rv}
    if role:
        meta["annotations"] = {ROLE: role}
    return {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": meta}


class Raw:
    def __init__(self, body: Any) -> None:
        self.data = json.dumps(body).encode()


class Stream:
    """A watch response: newline-delimited events, then either the end or a block until closed."""

    def __init__(self, events: list[dict[str, Any]], hold: bool) -> None:
        self.events = events
        self.hold = hold
        self.closed = threading.Event()
        self.connection = self  # urllib3 exposes the connection, which holds the socket
        self.sock = self

    def stream(self, amt: Any = None, decode_content: bool = False) -> Iterator[bytes]:
        for event in self.events:
            yield json.dumps(event).encode() + b"\n\n"  # blank keep-alive lines are legal
        if self.hold:
            self.closed.wait(10)

    def release_conn(self) -> None:
        pass

    def shutdown(self, how: int) -> None:  # the socket-level shutdown that wakes a blocked read
        self.closed.set()


class FakeAPI:
    def __init__(self) -> None:
        self.lists: list[Callable[[dict[str, Any]], Any]] = []
        self.watches: queue.Queue[Stream] = queue.Queue()
        self.list_calls = 0
        self.watch_rvs: list[str] = []
        self.objects: dict[tuple[str, str], dict[str, Any]] = {}
        self.read_error: Exception | None = None

    def list_service_account_for_all_namespaces(self, **kw: Any) -> Any:
        if kw.get("watch"):
            self.watch_rvs.append(kw["resource_version"])
            try:
                return self.watches.get_nowait()
            except queue.Empty:
                return Stream([], hold=True)
        self.list_calls += 1
        return self.lists.pop(0)(kw)

    def read_namespaced_service_account(self, name: str, namespace: str, **kw: Any) -> Any:
        assert kw["_request_timeout"] == 1.0
        if self.read_error is not None:
            raise self.read_error
        if (namespace, name) not in self.objects:
            raise ApiException(status=404, reason="Not Found")
        return Raw(self.objects[(namespace, name)])


def page(items: list[dict[str, Any]], rv: str, cont: str = "") -> Callable[[dict[str, Any]], Raw]:
    def answer(kw: dict[str, Any]) -> Raw:
        assert kw["limit"] == 500
        return Raw({"items": items, "metadata": {"resourceVersion": rv, "continue": cont}})

    return answer


def wait_until(predicate: Callable[[], bool], timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached in time")
        time.sleep(0.01)


@pytest.fixture
def api_client() -> Iterator[client.ApiClient]:
    with client.ApiClient() as api:
        yield api


def start(api: FakeAPI, api_client: client.ApiClient) -> tuple[ServiceAccountWatcher, IdentityStore]:
    store = IdentityStore()
    watcher = ServiceAccountWatcher(api_client, store, SETTINGS, watch_timeout=60)
    watcher._api = api  # type: ignore[assignment]
    watcher.start()
    return watcher, store


def test_paginated_list_then_watch_events(api_client: client.ApiClient) -> None:
    api = FakeAPI()
    api.lists = [
        page([sa("a", "one", "1", "arn:aws:iam::111122223333:role/one")], "10", "tok"),
        page([sa("b", "two", "2")], "10"),
    ]
    api.watches.put(
        Stream(
            [
                {"type": "ADDED", "object": sa("c", "three", "11", "arn:aws:iam::111122223333:role/three")},
                {"type": "MODIFIED", "object": sa("b", "two", "12", "arn:aws:iam::111122223333:role/now")},
                {"type": "DELETED", "object": sa("a", "one", "13")},
                {"type": "BOOKMARK", "object": {"kind": "ServiceAccount", "metadata": {"resourceVersion": "20"}}},
            ],
            hold=False,
        )
    )
    watcher, store = start(api, api_client)
    try:
        wait_until(lambda: len(api.watch_rvs) >= 2)
        assert store.ready
        assert api.list_calls == 2  # two pages, one list
        assert store.get("a", "one") is None
        two = store.get("b", "two")
        assert two is not None
        assert two.role_arn == "arn:aws:iam::111122223333:role/now"
        assert store.get("c", "three") is not None
        # the first watch starts at the list's RV; the next resumes after the bookmark, no relist
        assert api.watch_rvs[:2] == ["10", "20"]
    finally:
        watcher.stop()


def test_410_gone_relists(api_client: client.ApiClient) -> None:
    api = FakeAPI()
    api.lists = [page([sa("a", "old", "1")], "5"), page([sa("a", "new", "30")], "30")]
    api.watches.put(Stream([{"type": "ERROR", "object": {"kind": "Status", "code": 410, "message": "too old"}}], False))
    watcher, store = start(api, api_client)
    try:
        wait_until(lambda: api.list_calls == 2 and len(api.watch_rvs) >= 2)
        assert store.get("a", "old") is None
        assert store.get("a", "new") is not None
        assert api.watch_rvs[:2] == ["5", "30"]
    finally:
        watcher.stop()


def test_list_failure_backs_off_and_retries(api_client: client.ApiClient) -> None:
    api = FakeAPI()

    def fail(kw: dict[str, Any]) -> Any:
        raise ApiException(status=500, reason="boom")

    api.lists = [fail, page([sa("a", "x", "1")], "1")]
    watcher, store = start(api, api_client)
    try:
        assert not store.ready
        wait_until(lambda: store.ready, timeout=5)
        assert store.get("a", "x") is not None
    finally:
        watcher.stop()


def test_stop_closes_a_blocked_watch_promptly(api_client: client.ApiClient) -> None:
    api = FakeAPI()
    api.lists = [page([], "1")]
    watcher, _store = start(api, api_client)
    wait_until(lambda: len(api.watch_rvs) == 1)
    begin = time.monotonic()
    watcher.stop(timeout=5)
    assert time.monotonic() - begin < 3


def test_live_lookup_found_not_found_and_errors(api_client: client.ApiClient) -> None:
    api = FakeAPI()
    api.objects[("n", "s")] = sa("n", "s", "1", "arn:aws:iam::111122223333:role/live")
    store = IdentityStore()
    live = LiveLookup(api_client, store, SETTINGS)
    live._api = api  # type: ignore[assignment]
    found = live("n", "s")
    assert not isinstance(found, bool)
    assert found is not None
    assert found.role_arn.endswith("/live")
    assert store.get("n", "s") == found  # remembered until the watch says otherwise
    assert live("n", "missing") is None
    api.read_error = ApiException(status=503, reason="unavailable")
    assert live("n", "other") is False
    api.read_error = TimeoutError("read timed out")
    assert live("n", "other") is False


def test_rate_limiter_bounds_bursts() -> None:
    limiter = RateLimiter(rate=1.0, burst=3)
    assert [limiter.allow() for _ in range(5)] == [True, True, True, False, False]
