"""The live GET of a ServiceAccount on a cache miss (``LiveLookup``), and misses under load and against
a slow API server through the real admission handler.

A miss may not hold a request longer than its deadline, may not take threads that anything else
needs, makes one GET however many requests wait for the same ServiceAccount, and a GET's answer
never undoes what the watch delivered while it was in flight.
"""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from collections.abc import Iterator
from typing import Any

import orjson
import pytest
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from tests.support.cases import review_of
from tests.support.kubeapi import FakeCoreV1, LiveStream, page, service_account
from tests.support.metrics import metric
from tests.support.waits import wait_for
from webhook.admission.endpoint import MutateEndpoint
from webhook.core.records import Identity
from webhook.core.settings import Settings
from webhook.sources.resolver import Resolver
from webhook.sources.serviceaccounts import LiveLookup, ServiceAccountWatcher
from webhook.sources.store import IdentityStore

SETTINGS = Settings()
ROLE = "arn:aws:iam::111122223333:role/app"
# What asyncio's default executor has on this 2-core machine: min(32, cpu_count + 4).
MISSES = 24


def review_body(namespace: str, service_account: str) -> bytes:
    return orjson.dumps(review_of(namespace, service_account))


async def admit(endpoint: MutateEndpoint, namespace: str, service_account: str) -> dict[str, Any]:
    status, payload = await endpoint.review(review_body(namespace, service_account), {})
    assert status == 200
    response: dict[str, Any] = orjson.loads(payload)["response"]
    return response


def mutated(response: dict[str, Any]) -> bool:
    return response.get("patchType") == "JSONPatch"


class HangingLive:
    """A live GET that hangs (as a silent API server does) for names starting with "hang"."""

    def __init__(self, hang: float = 4.0) -> None:
        self.hang = hang
        self.release = threading.Event()
        self.calls: list[str] = []
        self.lock = threading.Lock()

    def __call__(self, namespace: str, name: str) -> Identity | bool | None:
        with self.lock:
            self.calls.append(name)
        if name.startswith("hang"):
            self.release.wait(self.hang)
            return False
        time.sleep(0.2)  # a normal round trip
        return Identity(namespace, name, role_arn=ROLE)


@pytest.fixture
def resolvers() -> Iterator[list[Resolver]]:
    made: list[Resolver] = []
    yield made
    for resolver in made:
        resolver.close()


def test_hanging_misses_hold_nothing_else(resolvers: list[Resolver]) -> None:
    store = IdentityStore()
    store.replace_all([Identity("n", "cached", role_arn=ROLE)])
    live = HangingLive()
    resolver = Resolver(store, live, grace=0)
    resolvers.append(resolver)
    endpoint = MutateEndpoint(resolver, SETTINGS)

    async def go() -> None:
        loop = asyncio.get_running_loop()
        misses = [asyncio.create_task(admit(endpoint, "n", f"hang-{i}")) for i in range(MISSES)]
        await asyncio.sleep(0.1)  # they are all waiting on the API server now
        begin = time.monotonic()
        cached = await admit(endpoint, "n", "cached")
        assert mutated(cached)
        assert time.monotonic() - begin < 0.5
        begin = time.monotonic()
        await asyncio.wait_for(loop.run_in_executor(None, time.sleep, 0), 3)  # the loop's default pool
        assert time.monotonic() - begin < 0.5, "the misses took the threads of asyncio's default executor"
        begin = time.monotonic()
        answers = await asyncio.wait_for(asyncio.gather(*misses), 5)
        # every miss ends on its 1 s deadline, not 4 s each, six at a time
        assert time.monotonic() - begin < 2.0
        assert not any(mutated(a) for a in answers)
        assert all(a["allowed"] for a in answers)

    try:
        asyncio.run(go())
    finally:
        live.release.set()


def test_concurrent_misses_for_one_service_account_make_one_get(resolvers: list[Resolver]) -> None:
    store = IdentityStore()
    store.replace_all([])
    live = HangingLive()
    resolver = Resolver(store, live, grace=0)
    resolvers.append(resolver)
    endpoint = MutateEndpoint(resolver, SETTINGS)

    async def go() -> list[dict[str, Any]]:
        return await asyncio.wait_for(asyncio.gather(*(admit(endpoint, "n", "fresh") for _ in range(10))), 5)

    answers = asyncio.run(go())
    assert live.calls == ["fresh"]
    assert all(mutated(a) for a in answers)


def test_waiting_for_the_watch_holds_no_thread(resolvers: list[Resolver]) -> None:
    """With a grace period, misses wait for the watch; one that arrives is used at once."""
    store = IdentityStore()
    store.replace_all([])
    resolver = Resolver(store, None, grace=3)
    resolvers.append(resolver)
    endpoint = MutateEndpoint(resolver, SETTINGS)

    async def go() -> None:
        threads = threading.active_count()
        waiting = [asyncio.create_task(admit(endpoint, "n", f"never-{i}")) for i in range(MISSES)]
        late = asyncio.create_task(admit(endpoint, "n", "late"))
        await asyncio.sleep(0.2)
        assert threading.active_count() <= threads, "waiting for the watch took threads"
        begin = time.monotonic()
        threading.Timer(0.05, store.upsert, args=(Identity("n", "late", role_arn=ROLE),)).start()  # the watch
        answer = await asyncio.wait_for(late, 5)
        assert mutated(answer)
        assert time.monotonic() - begin < 1.0
        for task in waiting:
            task.cancel()
        await asyncio.gather(*waiting, return_exceptions=True)

    asyncio.run(go())


def test_a_miss_never_outlasts_its_budget(resolvers: list[Resolver]) -> None:
    store = IdentityStore()
    store.replace_all([])
    resolver = Resolver(store, HangingLive(hang=0.5), grace=30)  # a grace period far past the timeout
    resolvers.append(resolver)
    endpoint = MutateEndpoint(resolver, SETTINGS)

    async def go() -> dict[str, Any]:
        return await asyncio.wait_for(admit(endpoint, "n", "hang-missing"), 8)

    begin = time.monotonic()
    answer = asyncio.run(go())
    took = time.monotonic() - begin
    assert answer["allowed"]
    assert not mutated(answer)
    assert took < 4.5  # well inside the webhook's timeoutSeconds (10 in the shipped manifests)


# -- a real socket that accepts and never answers ---------------------------------------------------
@pytest.fixture
def silent_server() -> Iterator[int]:
    """A TCP port that accepts connections and never sends a byte (a hung API server)."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(64)
    accepted: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        server.settimeout(0.1)
        while not stop.is_set():
            try:
                conn, _ = server.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            accepted.append(conn)

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    try:
        yield int(server.getsockname()[1])
    finally:
        stop.set()
        thread.join(2)
        for conn in accepted:
            conn.close()
        server.close()


@pytest.mark.parametrize("scheme", ["http", "https"])
def test_live_get_deadline_against_a_silent_server(silent_server: int, scheme: str) -> None:
    configuration = client.Configuration()  # default retries: what load_kube_config gives
    configuration.host = f"{scheme}://127.0.0.1:{silent_server}"
    configuration.ssl_ca_cert = None
    store = IdentityStore()
    with client.ApiClient(configuration) as api_client:
        live = LiveLookup(api_client, store, SETTINGS)
        try:
            begin = time.monotonic()
            assert live("n", "s") is False
            took = time.monotonic() - begin
        finally:
            live.close()
    assert took < 1.3, f"one 1 s try, no retries; took {took:.2f}s"


def test_miss_against_a_silent_server_answers_within_its_deadline(silent_server: int) -> None:
    configuration = client.Configuration()
    configuration.host = f"https://127.0.0.1:{silent_server}"
    store = IdentityStore()
    store.replace_all([])
    with client.ApiClient(configuration) as api_client:
        live = LiveLookup(api_client, store, SETTINGS)
        resolver = Resolver(store, live, grace=0)
        endpoint = MutateEndpoint(resolver, SETTINGS)

        async def go() -> dict[str, Any]:
            return await asyncio.wait_for(admit(endpoint, "n", "s"), 6)

        try:
            begin = time.monotonic()
            answer = asyncio.run(go())
            took = time.monotonic() - begin
        finally:
            resolver.close()
            live.close()
    assert answer["allowed"]
    assert took < 1.3


def test_retries_are_off_in_the_kubernetes_client_we_build() -> None:
    with client.ApiClient(client.Configuration()) as api_client:
        live = LiveLookup(api_client, IdentityStore(), SETTINGS)
        try:
            assert live._client.configuration.retries is False
            assert api_client.configuration.retries is None  # the caller's client is left alone
        finally:
            live.close()


# -- a GET's answer against what the watch delivered meanwhile ---------------------------------------
def watching(api: FakeCoreV1, api_client: client.ApiClient, store: IdentityStore) -> ServiceAccountWatcher:
    watcher = ServiceAccountWatcher(api_client, store, SETTINGS, watch_timeout=60)
    watcher._api = api  # type: ignore[assignment]
    watcher.start()
    return watcher


def get_in_background(live: LiveLookup, namespace: str, name: str) -> tuple[threading.Thread, list[Any]]:
    answer: list[Any] = []
    thread = threading.Thread(target=lambda: answer.append(live(namespace, name)))
    thread.start()
    return thread, answer


def test_a_get_older_than_a_watch_update_is_discarded(api_client: client.ApiClient) -> None:
    api = FakeCoreV1()
    api.lists = [page([], "4")]
    stream = LiveStream()
    api.watches.put(stream)
    store = IdentityStore()
    watcher = watching(api, api_client, store)
    live = LiveLookup(api_client, store, SETTINGS)
    live._api = api  # type: ignore[assignment]
    try:
        wait_for(lambda: store.ready and len(api.watch_rvs) == 1)
        # Created just before its pod: a miss, so a GET; it reads version 7 and is slow to answer.
        api.objects[("n", "app")] = service_account("n", "app", "arn:aws:iam::111122223333:role/first", rv="7")
        api.read_gate = threading.Event()
        thread, answer = get_in_background(live, "n", "app")
        assert api.read_started.wait(5)
        # Meanwhile the watch delivers the creation and a change of role.
        stream.push(
            {"type": "ADDED", "object": service_account("n", "app", "arn:aws:iam::111122223333:role/first", rv="7")}
        )
        stream.push(
            {"type": "MODIFIED", "object": service_account("n", "app", "arn:aws:iam::111122223333:role/second", rv="8")}
        )
        wait_for(lambda: (store.get("n", "app") or Identity("", "")).role_arn.endswith("/second"))
        api.read_gate.set()
        thread.join(5)
        current = store.get("n", "app")
        assert current is not None
        assert current.role_arn.endswith("/second"), "a late GET overwrote a newer watch update"
        assert current.resource_version == "8"
        assert len(answer) == 1
        assert isinstance(answer[0], Identity)
        assert answer[0].role_arn.endswith("/second")  # the request gets the newest, too
    finally:
        if api.read_gate is not None:
            api.read_gate.set()
        watcher.stop()


def test_a_get_started_before_a_delete_does_not_resurrect(api_client: client.ApiClient) -> None:
    api = FakeCoreV1()
    api.lists = [page([], "4")]
    stream = LiveStream()
    api.watches.put(stream)
    store = IdentityStore()
    watcher = watching(api, api_client, store)
    live = LiveLookup(api_client, store, SETTINGS)
    live._api = api  # type: ignore[assignment]
    try:
        wait_for(lambda: store.ready and len(api.watch_rvs) == 1)
        api.objects[("n", "app")] = service_account("n", "app", ROLE, rv="5")
        api.read_gate = threading.Event()
        thread, answer = get_in_background(live, "n", "app")
        assert api.read_started.wait(5)
        # The watch delivers its creation, then its deletion, while the GET is in flight.
        stream.push({"type": "ADDED", "object": service_account("n", "app", ROLE, rv="5")})
        wait_for(lambda: store.get("n", "app") is not None)
        stream.push({"type": "DELETED", "object": service_account("n", "app", ROLE, rv="9")})
        wait_for(lambda: store.get("n", "app") is None)
        api.read_gate.set()
        thread.join(5)
        assert store.get("n", "app") is None, "a late GET brought back a deleted ServiceAccount"
        assert answer == [None]
    finally:
        if api.read_gate is not None:
            api.read_gate.set()
        watcher.stop()


# -- the live GET on its own -------------------------------------------------------------------------
def lookup(api: FakeCoreV1, store: IdentityStore, api_client: client.ApiClient) -> LiveLookup:
    live = LiveLookup(api_client, store, SETTINGS)
    live._api = api  # type: ignore[assignment]
    return live


def test_live_lookup_found_not_found_and_errors(api_client: client.ApiClient) -> None:
    api = FakeCoreV1()
    api.objects[("n", "s")] = service_account("n", "s", "arn:aws:iam::111122223333:role/live", rv="1")
    store = IdentityStore()
    live = lookup(api, store, api_client)
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
    live.close()


def test_live_get_of_an_object_it_cannot_parse_is_not_found(api_client: client.ApiClient, poison: str) -> None:
    api = FakeCoreV1()
    api.objects[("n", "bad")] = service_account(
        "n", "bad", "arn:aws:iam::111122223333:role/bad", rv="3", annotations={poison: "x"}
    )
    store = IdentityStore()
    live = lookup(api, store, api_client)
    before = metric("irsa_webhook_service_account_parse_errors_total", source="live")
    try:
        assert live("n", "bad") is None
    finally:
        live.close()
    assert store.get("n", "bad") is None
    assert metric("irsa_webhook_service_account_parse_errors_total", source="live") - before == 1
