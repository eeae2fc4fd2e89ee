"""The reflector takes its list call from outside: any collection can be followed with the same loop,
a custom resource as well as ServiceAccounts, with no subclass of the client in between."""

from __future__ import annotations

import json
import threading
from typing import Any

from webhook.kube import LIST_PAGE_SIZE
from webhook.kube.reflector import ListWatch

WIDGETS = [
    {"apiVersion": "example.com/v1", "kind": "Widget", "metadata": {"namespace": "a", "name": "w1"}, "spec": {"n": 1}},
    {"apiVersion": "example.com/v1", "kind": "Widget", "metadata": {"namespace": "b", "name": "w2"}, "spec": {"n": 2}},
    "not an object",  # skipped, counted, never stops the list
]


class _Counter:
    def __init__(self) -> None:
        self.value = 0

    def inc(self, amount: float = 1) -> None:
        self.value += int(amount)


class _Raw:
    def __init__(self, body: Any) -> None:
        self.data = json.dumps(body).encode()


class Widgets(ListWatch[dict[str, Any]]):
    kind = "widget"

    def __init__(self, call: Any, errors: _Counter) -> None:
        counters = {reason: _Counter() for reason in ("closed", "read_timeout", "gone", "error")}
        super().__init__(call, restarts=counters, parse_errors={"list": errors, "watch": errors})
        self.listed = threading.Event()
        self.items: list[dict[str, Any]] = []

    def _read(self, obj: dict[str, Any]) -> dict[str, Any]:
        spec: dict[str, Any] = obj["spec"]  # a Widget is kept as its spec
        return spec

    def _replace(self, items: list[dict[str, Any]], resource_version: str) -> None:
        self.items = items
        self.listed.set()

    def _apply(self, kind: str, obj: Any, resource_version: str) -> None:
        raise AssertionError("no watch event is sent in this test")


def test_a_custom_resource_is_listed_through_the_injected_call() -> None:
    calls: list[dict[str, Any]] = []

    def list_widgets(**kwargs: Any) -> Any:  # e.g. CustomObjectsApi(...).list_cluster_custom_object, bound
        calls.append(kwargs)
        if kwargs.get("watch"):
            raise ConnectionError("no watch here")  # the loop backs off and retries; the list stands
        return _Raw({"items": WIDGETS, "metadata": {"resourceVersion": "7"}})

    errors = _Counter()
    widgets = Widgets(list_widgets, errors)
    widgets.start()
    try:
        assert widgets.listed.wait(5)
    finally:
        widgets.stop()
    assert widgets.items == [{"n": 1}, {"n": 2}]
    assert errors.value == 1  # the string item: logged, counted, skipped
    assert widgets.resource_version == "7"
    first = calls[0]
    assert first["limit"] == LIST_PAGE_SIZE
    assert first["_preload_content"] is False
    assert any(call.get("watch") is True and call.get("resource_version") == "7" for call in calls[1:])
