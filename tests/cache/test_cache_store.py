"""The ServiceAccount identity store, the resolver's miss path and manifest loading."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest

from webhook.cache import IdentityStore, Resolver, load_manifests
from webhook.settings import Settings
from webhook.types import Identity

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


def test_wait_for_returns_when_the_watch_delivers() -> None:
    store = IdentityStore()
    timer = threading.Timer(0.05, store.upsert, args=(ident("ns", "late"),))
    timer.start()
    start = time.monotonic()
    found = store.wait_for("ns", "late", timeout=5)
    timer.join()
    assert found == ident("ns", "late")
    assert time.monotonic() - start < 4


def test_wait_for_gives_up_after_timeout() -> None:
    store = IdentityStore()
    start = time.monotonic()
    assert store.wait_for("ns", "never", timeout=0.1) is None
    assert 0.09 <= time.monotonic() - start < 2


class FakeLive:
    def __init__(self, answer: Identity | bool | None) -> None:
        self.answer = answer
        self.calls: list[tuple[str, str]] = []

    def __call__(self, namespace: str, name: str) -> Identity | bool | None:
        self.calls.append((namespace, name))
        return self.answer


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
    assert Resolver(store, live, grace).slow("n", "s") == expected
    assert live.calls == [("n", "s")]
    assert time.monotonic() - start < 1  # a 404 must not wait out the grace period


def test_resolver_falls_back_to_grace_period_when_live_get_fails() -> None:
    store = IdentityStore()
    store.replace_all([])
    threading.Timer(0.05, store.upsert, args=(ident("n", "s"),)).start()
    assert Resolver(store, FakeLive(False), grace=5).slow("n", "s") == ident("n", "s")


def test_resolver_without_live_get_uses_grace() -> None:
    store = IdentityStore()
    store.replace_all([ident("n", "s")])
    resolver = Resolver(store, None, 0)
    assert resolver.cached("n", "s") == ident("n", "s")
    assert resolver.slow("n", "other") is None


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
