"""The ServiceAccount identity store, the resolver's miss path and manifest loading."""

from __future__ import annotations

import asyncio
import dataclasses
import threading
import time
from pathlib import Path

import pytest

from webhook.core.records import Identity
from webhook.core.settings import Settings
from webhook.sources.manifests import load_manifests
from webhook.sources.resolver import Resolver
from webhook.sources.store import IdentityStore, newer

SETTINGS = Settings()


def ident(ns: str, name: str, role: str = "arn:aws:iam::111122223333:role/r") -> Identity:
    return Identity(namespace=ns, name=name, role_arn=role)


def test_store_not_ready_until_first_full_list() -> None:
    store = IdentityStore()
    store.upsert(ident("a", "x"))  # a live GET may arrive before the list: still not ready
    assert not store.ready
    store.replace_all([ident("a", "y")])
    assert store.ready
    assert store.get("a", "x") is None  # the list is the truth
    assert store.get("a", "y") == ident("a", "y")


def test_store_upsert_and_delete() -> None:
    store = IdentityStore()
    store.replace_all([])
    store.upsert(ident("a", "x", "arn:aws:iam::111122223333:role/one"))
    store.upsert(ident("a", "x", "arn:aws:iam::111122223333:role/two"))
    assert len(store) == 1
    found = store.get("a", "x")
    assert found is not None
    assert found.role_arn.endswith("/two")
    store.delete("a", "x")
    store.delete("a", "missing")  # deleting what is not there is fine (watch replays)
    assert store.get("a", "x") is None


def test_wait_for_async_returns_when_the_watch_delivers() -> None:
    store = IdentityStore()

    async def go() -> tuple[Identity | None, float]:
        timer = threading.Timer(0.05, store.upsert, args=(ident("ns", "late"),))  # the watch thread
        timer.start()
        start = time.monotonic()
        found = await store.wait_for_async("ns", "late", timeout=5)
        timer.join()
        return found, time.monotonic() - start

    found, took = asyncio.run(go())
    assert found == ident("ns", "late")
    assert took < 1
    assert not store._waiters  # nothing left behind


def test_wait_for_async_gives_up_after_timeout() -> None:
    store = IdentityStore()
    start = time.monotonic()
    assert asyncio.run(store.wait_for_async("ns", "never", timeout=0.1)) is None
    assert 0.09 <= time.monotonic() - start < 2
    assert not store._waiters


def test_a_full_list_wakes_waiters_too() -> None:
    store = IdentityStore()

    async def go() -> Identity | None:
        threading.Timer(0.05, store.replace_all, args=([ident("ns", "listed")], "7")).start()
        return await store.wait_for_async("ns", "listed", timeout=5)

    assert asyncio.run(go()) == ident("ns", "listed")


def rv(identity: Identity, version: str) -> Identity:
    return dataclasses.replace(identity, resource_version=version)


def test_resource_versions_compare_as_numbers() -> None:
    assert newer("10", "9")  # as strings "10" < "9"
    assert not newer("9", "10")
    assert not newer("7", "7")
    assert not newer("abc", "7")  # not comparable: not newer, the watch's view stays
    assert not newer("8", "")
    assert not newer("٣", "1")  # non-ASCII digits are not a revision
    assert not newer("9" * 30, "1")


def test_offer_keeps_a_newer_watch_version() -> None:
    store = IdentityStore()
    store.replace_all([rv(ident("n", "s", "arn:aws:iam::111122223333:role/new"), "8")], "8")
    stale = rv(ident("n", "s", "arn:aws:iam::111122223333:role/old"), "6")
    kept = store.offer(stale)
    assert kept is not None
    assert kept.role_arn.endswith("/new")
    assert store.get("n", "s") == kept
    newest = rv(ident("n", "s", "arn:aws:iam::111122223333:role/newest"), "9")
    assert store.offer(newest) == newest  # a GET that read after the watch's version wins
    assert store.get("n", "s") == newest


def test_offer_never_brings_back_what_the_watch_deleted() -> None:
    store = IdentityStore()
    store.replace_all([rv(ident("n", "s"), "5")], "5")
    store.delete("n", "s", "9")
    assert store.offer(rv(ident("n", "s"), "5")) is None  # read before the delete
    assert store.get("n", "s") is None
    recreated = rv(ident("n", "s", "arn:aws:iam::111122223333:role/again"), "12")
    assert store.offer(recreated) == recreated  # created again after the delete: a new object
    assert store.get("n", "s") == recreated


def test_offer_before_any_list_is_applied_and_opaque_versions_prefer_the_watch() -> None:
    store = IdentityStore()
    early = rv(ident("n", "early"), "3")
    assert store.offer(early) == early  # the watch has said nothing yet
    assert not store.ready
    store.replace_all([rv(ident("n", "s", "arn:aws:iam::111122223333:role/watch"), "a1")], "a1")
    kept = store.offer(rv(ident("n", "s", "arn:aws:iam::111122223333:role/get"), "b2"))
    assert kept is not None
    assert kept.role_arn.endswith("/watch")
    assert store.offer(rv(ident("n", "other"), "b2")) is None


def test_offer_wakes_a_waiter() -> None:
    store = IdentityStore()

    async def go() -> Identity | None:
        threading.Timer(0.05, store.offer, args=(rv(ident("n", "s"), "4"),)).start()
        return await store.wait_for_async("n", "s", timeout=5)

    assert asyncio.run(go()) == ident("n", "s")


class FakeLive:
    def __init__(self, answer: Identity | bool | None) -> None:
        self.answer = answer
        self.calls: list[tuple[str, str]] = []

    def __call__(self, namespace: str, name: str) -> Identity | bool | None:
        self.calls.append((namespace, name))
        return self.answer


def resolve(resolver: Resolver, namespace: str, name: str) -> Identity | None:
    try:
        return asyncio.run(resolver.resolve_slow(namespace, name))
    finally:
        resolver.close()


@pytest.mark.parametrize(
    ("answer", "grace", "expected"),
    [
        pytest.param(ident("n", "s"), 0.0, ident("n", "s"), id="live-get-finds-it"),
        pytest.param(None, 5.0, None, id="live-get-404-is-final-no-grace-wait"),
        pytest.param(False, 0.0, None, id="live-get-failed-no-grace"),
    ],
)
def test_resolver_slow_path(answer: Identity | bool | None, grace: float, expected: Identity | None) -> None:
    store = IdentityStore()
    store.replace_all([])
    live = FakeLive(answer)
    start = time.monotonic()
    assert resolve(Resolver(store, live, grace), "n", "s") == expected
    assert live.calls == [("n", "s")]
    assert time.monotonic() - start < 1  # a 404 must not wait out the grace period


def test_resolver_falls_back_to_grace_period_when_live_get_fails() -> None:
    store = IdentityStore()
    store.replace_all([])
    threading.Timer(0.2, store.upsert, args=(ident("n", "s"),)).start()
    assert resolve(Resolver(store, FakeLive(False), grace=5), "n", "s") == ident("n", "s")


def test_resolver_without_live_get_uses_grace() -> None:
    store = IdentityStore()
    store.replace_all([ident("n", "s")])
    resolver = Resolver(store, None, 0)
    assert resolver.cached("n", "s") == ident("n", "s")
    assert resolve(resolver, "n", "other") is None


def test_load_manifests_multi_document_lists_and_folders(tmp_path: Path) -> None:
    (tmp_path / "a.yaml").write_text(
        """
apiVersion: v1
kind: ServiceAccount
metadata: {name: one, annotations: {eks.amazonaws.com/role-arn: "arn:aws:iam::111122223333:role/one"}}
---
apiVersion: v1
kind: ConfigMap
metadata: {name: ignored}
---
apiVersion: v1
kind: List
items:
- apiVersion: v1
  kind: ServiceAccount
  metadata: {name: two, namespace: other}
"""
    )
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "b.json").write_text(
        '{"apiVersion":"v1","kind":"ServiceAccount","metadata":{"name":"three","namespace":"x",'
        '"annotations":{"eks.amazonaws.com/audience":"custom"}}}'
    )
    got = {(i.namespace, i.name): i for i in load_manifests([tmp_path], SETTINGS, default_namespace="dflt")}
    assert set(got) == {("dflt", "one"), ("other", "two"), ("x", "three")}
    assert got[("dflt", "one")].role_arn == "arn:aws:iam::111122223333:role/one"
    assert got[("other", "two")].role_arn == ""
    assert got[("x", "three")].audience == "custom"


def test_load_manifests_bad_yaml_raises(tmp_path: Path) -> None:
    import yaml

    bad = tmp_path / "bad.yaml"
    bad.write_text("kind: ServiceAccount\nmetadata: [unclosed\n")
    with pytest.raises(yaml.YAMLError):
        load_manifests([bad], SETTINGS)
