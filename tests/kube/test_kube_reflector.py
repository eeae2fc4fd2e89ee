"""The list+watch loop (``webhook.kube.reflector``) as the ServiceAccount watcher runs it, against the
scripted in-memory API (no network). The live GET on a miss: tests/sources/test_sources_lookups.py."""

from __future__ import annotations

import logging
import threading
import time
from typing import Any

import pytest
from kubernetes import client
from kubernetes.client.exceptions import ApiException
from urllib3.exceptions import ReadTimeoutError

import webhook.kube.reflector
import webhook.sources.serviceaccounts
from tests.support.kubeapi import FakeCoreV1, Stream, gone, page, service_account
from tests.support.metrics import metric
from tests.support.waits import wait_for
from webhook.core.settings import Settings
from webhook.sources.serviceaccounts import ServiceAccountWatcher
from webhook.sources.store import IdentityStore

SETTINGS = Settings()


def start(
    api: FakeCoreV1, api_client: client.ApiClient, watch_timeout: float = 60
) -> tuple[ServiceAccountWatcher, IdentityStore]:
    store = IdentityStore()
    watcher = ServiceAccountWatcher(api_client, store, SETTINGS, watch_timeout=watch_timeout)
    watcher._api = api  # type: ignore[assignment]
    watcher.start()
    return watcher, store


def test_paginated_list_then_watch_events(api_client: client.ApiClient) -> None:
    api = FakeCoreV1()
    api.lists = [
        page([service_account("a", "one", "arn:aws:iam::111122223333:role/one", rv="1")], "10", "tok"),
        page([service_account("b", "two", rv="2")], "10"),
    ]
    api.watches.put(
        Stream(
            [
                {
                    "type": "ADDED",
                    "object": service_account("c", "three", "arn:aws:iam::111122223333:role/three", rv="11"),
                },
                {
                    "type": "MODIFIED",
                    "object": service_account("b", "two", "arn:aws:iam::111122223333:role/now", rv="12"),
                },
                {"type": "DELETED", "object": service_account("a", "one", rv="13")},
                {"type": "BOOKMARK", "object": {"kind": "ServiceAccount", "metadata": {"resourceVersion": "20"}}},
            ],
            hold=False,
        )
    )
    watcher, store = start(api, api_client)
    try:
        wait_for(lambda: len(api.watch_rvs) >= 2)
        assert store.ready
        assert api.list_calls == 2  # two pages, one list
        assert store.get("a", "one") is None
        two = store.get("b", "two")
        assert two is not None
        assert two.role_arn == "arn:aws:iam::111122223333:role/now"
        assert two.resource_version == "12"  # kept with the entry, to order live GETs against
        assert store.get("c", "three") is not None
        # the first watch starts at the list's RV; the next resumes after the bookmark, no relist
        assert api.watch_rvs[:2] == ["10", "20"]
    finally:
        watcher.stop()


def test_410_gone_relists(api_client: client.ApiClient) -> None:
    api = FakeCoreV1()
    api.lists = [page([service_account("a", "old", rv="1")], "5"), page([service_account("a", "new", rv="30")], "30")]
    api.watches.put(Stream([{"type": "ERROR", "object": {"kind": "Status", "code": 410, "message": "too old"}}], False))
    watcher, store = start(api, api_client)
    try:
        wait_for(lambda: api.list_calls == 2 and len(api.watch_rvs) >= 2)
        assert store.get("a", "old") is None
        assert store.get("a", "new") is not None
        assert api.watch_rvs[:2] == ["5", "30"]
    finally:
        watcher.stop()


def test_list_failure_backs_off_and_retries(api_client: client.ApiClient) -> None:
    api = FakeCoreV1()

    def fail(kw: dict[str, Any]) -> Any:
        raise ApiException(status=500, reason="boom")

    api.lists = [fail, page([service_account("a", "x", rv="1")], "1")]
    watcher, store = start(api, api_client)
    try:
        assert not store.ready
        wait_for(lambda: store.ready, timeout=5)
        assert store.get("a", "x") is not None
    finally:
        watcher.stop()


def test_stop_closes_a_blocked_watch_promptly(api_client: client.ApiClient) -> None:
    api = FakeCoreV1()
    api.lists = [page([], "1")]
    watcher, _store = start(api, api_client)
    wait_for(lambda: len(api.watch_rvs) == 1)
    begin = time.monotonic()
    watcher.stop(timeout=5)
    assert time.monotonic() - begin < 3


# -- one object that cannot be parsed never stops the cache -----------------------------------------
FIVE_THOUSAND_DIGITS = "9" * 5000  # int() refuses strings over 4,300 digits: it raised in the parser


def test_list_skips_what_it_cannot_parse_and_completes(
    api_client: client.ApiClient, caplog: pytest.LogCaptureFixture, poison: str
) -> None:
    api = FakeCoreV1()
    api.lists = [
        page(
            [
                service_account("a", "one", "arn:aws:iam::111122223333:role/one", rv="1"),
                service_account("a", "bad", "arn:aws:iam::111122223333:role/bad", rv="2", annotations={poison: "x"}),
                service_account(
                    "a",
                    "huge",
                    "arn:aws:iam::111122223333:role/huge",
                    rv="3",
                    annotations={"eks.amazonaws.com/token-expiration": FIVE_THOUSAND_DIGITS},
                ),
                ["not", "an", "object"],
            ],
            "10",
        )
    ]
    before = metric("irsa_webhook_service_account_parse_errors_total", source="list")
    with caplog.at_level(logging.WARNING, logger="irsa_webhook.watch"):
        watcher, store = start(api, api_client)
        try:
            wait_for(lambda: store.ready, timeout=5)
            assert store.get("a", "one") is not None
            assert store.get("a", "bad") is None
            huge = store.get("a", "huge")  # parsed (default lifetime, with a warning) or skipped
            assert huge is None or huge.token_expiration == SETTINGS.token_expiration
            assert api.list_calls == 1
        finally:
            watcher.stop()
    assert metric("irsa_webhook_service_account_parse_errors_total", source="list") - before >= 2
    assert any("a/bad" in r.getMessage() and r.levelno == logging.WARNING for r in caplog.records)


def test_watch_skips_what_it_cannot_parse_and_applies_later_events(api_client: client.ApiClient, poison: str) -> None:
    api = FakeCoreV1()
    api.lists = [page([service_account("a", "app", "arn:aws:iam::111122223333:role/old", rv="5")], "10")]
    api.watches.put(
        Stream(
            [
                # the role changed, but the new version cannot be parsed: the old role must go
                {
                    "type": "MODIFIED",
                    "object": service_account(
                        "a", "app", "arn:aws:iam::111122223333:role/new", rv="11", annotations={poison: "x"}
                    ),
                },
                {"type": "ADDED", "object": ["not", "an", "object"]},
                {
                    "type": "ADDED",
                    "object": service_account(
                        "a",
                        "huge",
                        None,
                        rv="12",
                        annotations={"eks.amazonaws.com/token-expiration": FIVE_THOUSAND_DIGITS},
                    ),
                },
                {
                    "type": "ADDED",
                    "object": service_account("a", "later", "arn:aws:iam::111122223333:role/later", rv="13"),
                },
            ],
            hold=True,
        )
    )
    before = metric("irsa_webhook_service_account_parse_errors_total", source="watch")
    watcher, store = start(api, api_client)
    try:
        wait_for(lambda: store.get("a", "later") is not None)
        assert store.get("a", "app") is None
        assert api.watch_rvs == ["10"]  # no replay: the same watch went on past the bad events
        assert watcher.resource_version == "13"
        assert store.ready
    finally:
        watcher.stop()
    assert metric("irsa_webhook_service_account_parse_errors_total", source="watch") - before >= 2


# -- the watch loop ---------------------------------------------------------------------------------
def test_410_from_the_watch_call_itself_relists(api_client: client.ApiClient) -> None:
    api = FakeCoreV1()
    api.lists = [page([service_account("a", "old", rv="1")], "5"), page([service_account("a", "new", rv="30")], "30")]
    api.watches.put(gone())  # the API server refuses the resourceVersion before any event
    before = metric("irsa_webhook_service_account_watch_restarts_total", reason="gone")
    watcher, store = start(api, api_client)
    try:
        wait_for(lambda: api.list_calls == 2 and len(api.watch_rvs) >= 2)
        assert store.get("a", "old") is None
        assert store.get("a", "new") is not None
        assert api.watch_rvs[:2] == ["5", "30"]
    finally:
        watcher.stop()
    assert metric("irsa_webhook_service_account_watch_restarts_total", reason="gone") - before == 1


def test_resync_period_zero_means_no_timer(api_client: client.ApiClient) -> None:
    api = FakeCoreV1()
    api.lists = [page([], "1")]
    watcher, _store = start(api, api_client, watch_timeout=0)
    try:
        wait_for(lambda: len(api.watch_kwargs) == 1)
        kwargs = api.watch_kwargs[0]
        assert kwargs.get("timeout_seconds") is None  # the server never ends it on a timer
        _connect, read = kwargs["_request_timeout"]
        assert read >= 120  # but a dead connection is still noticed, after bookmarks (1/min) stop
        time.sleep(1.5)
        assert len(api.watch_kwargs) == 1  # and we do not restart it either
    finally:
        watcher.stop()


def test_resync_period_is_the_server_side_timeout(api_client: client.ApiClient) -> None:
    api = FakeCoreV1()
    api.lists = [page([], "1")]
    watcher, _store = start(api, api_client, watch_timeout=300)
    try:
        wait_for(lambda: len(api.watch_kwargs) == 1)
        assert api.watch_kwargs[0]["timeout_seconds"] == 300
        assert api.watch_kwargs[0]["_request_timeout"][1] > 60
    finally:
        watcher.stop()


def test_watches_that_end_at_once_back_off(api_client: client.ApiClient) -> None:
    api = FakeCoreV1()
    api.lists = [page([], "1")]
    for _ in range(10_000):
        api.watches.put(Stream([], hold=False))  # e.g. a proxy that closes every watch
    before = metric("irsa_webhook_service_account_watch_restarts_total", reason="closed")
    watcher, _store = start(api, api_client)
    try:
        time.sleep(1.5)
    finally:
        watcher.stop()
    # backoff 0.25-0.5 s, then 0.5-1 s, ...: a handful of watches, not a tight loop
    assert 1 <= len(api.watch_rvs) <= 5
    assert metric("irsa_webhook_service_account_watch_restarts_total", reason="closed") - before >= 1


def test_resource_version_advances_with_each_event(api_client: client.ApiClient) -> None:
    api = FakeCoreV1()
    api.lists = [page([], "10")]
    api.watches.put(
        Stream(
            [
                {"type": "ADDED", "object": service_account("a", "one", rv="11")},
                {"type": "ADDED", "object": service_account("a", "two", rv="12")},
                b"{truncated\n",  # the connection broke mid-event
            ],
            hold=False,
        )
    )
    before = metric("irsa_webhook_service_account_watch_restarts_total", reason="error")
    watcher, store = start(api, api_client)
    try:
        wait_for(lambda: len(api.watch_rvs) >= 2)
        assert api.watch_rvs[:2] == ["10", "12"]  # resumed after the last event applied, not replayed
        assert api.list_calls == 1
        assert store.get("a", "two") is not None
    finally:
        watcher.stop()
    assert metric("irsa_webhook_service_account_watch_restarts_total", reason="error") - before == 1


def test_read_timeout_resumes_at_once_without_relisting(api_client: client.ApiClient) -> None:
    api = FakeCoreV1()
    api.lists = [page([], "10")]
    api.watches.put(
        Stream(
            [
                {"type": "ADDED", "object": service_account("a", "one", rv="11")},
                ReadTimeoutError(None, "/", "timed out"),  # type: ignore[arg-type]  # no pool: only the message is read
            ],
            False,
        )
    )
    before = metric("irsa_webhook_service_account_watch_restarts_total", reason="read_timeout")
    watcher, _store = start(api, api_client)
    try:
        wait_for(lambda: len(api.watch_rvs) >= 2, timeout=1)
        assert api.watch_rvs[:2] == ["10", "11"]
        assert api.list_calls == 1
    finally:
        watcher.stop()
    assert metric("irsa_webhook_service_account_watch_restarts_total", reason="read_timeout") - before == 1


class RecordingEvent(threading.Event):
    """A stop event whose waits return at once and are recorded; set after ``limit`` waits."""

    def __init__(self, limit: int) -> None:
        super().__init__()
        self.limit = limit
        self.waits: list[float] = []

    def wait(self, timeout: float | None = None) -> bool:
        if timeout is not None and not self.is_set():
            self.waits.append(timeout)
            if len(self.waits) >= self.limit:
                self.set()
        return self.is_set()


def test_backoff_is_capped_so_a_returning_api_server_is_used_within_seconds(api_client: client.ApiClient) -> None:
    api = FakeCoreV1()

    def fail(kw: dict[str, Any]) -> Any:
        raise ApiException(status=503, reason="unavailable")

    api.lists = [fail] * 20
    store = IdentityStore()
    watcher = ServiceAccountWatcher(api_client, store, SETTINGS, watch_timeout=60)
    watcher._api = api  # type: ignore[assignment]
    stop = RecordingEvent(limit=12)
    watcher._stop = stop
    watcher.start()
    wait_for(stop.is_set)
    watcher.stop()
    assert stop.waits[0] <= 0.5
    assert max(stop.waits) <= webhook.kube.reflector.BACKOFF_MAX <= 3.0
    assert stop.waits[-1] >= webhook.kube.reflector.BACKOFF_MAX / 2  # it did grow: a dead API server is not hammered
