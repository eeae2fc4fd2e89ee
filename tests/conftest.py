"""Fixtures more than one folder uses. Helpers that are not fixtures live in tests/support."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from kubernetes import client

import webhook.sources.serviceaccounts
from tests.support.cli import Runner, runner
from webhook.core.annotations import parse_service_account
from webhook.core.records import Identity
from webhook.core.settings import Settings


@pytest.fixture
def cli(capsys: pytest.CaptureFixture[str]) -> Runner:
    """``cli(*argv) -> Run``: run ``irsa-webhook`` in-process and capture its output."""
    return runner(capsys)


@pytest.fixture
def api_client() -> Iterator[client.ApiClient]:
    """A kubernetes ApiClient for code that builds its API objects on one; the tests put a scripted
    ``tests.support.kubeapi.FakeCoreV1`` in place of those objects, so it never connects anywhere."""
    with client.ApiClient() as api:
        yield api


@pytest.fixture
def poison(monkeypatch: pytest.MonkeyPatch) -> str:
    """An annotation key that makes parsing a ServiceAccount raise (the watch and the live GET both parse
    with ``webhook.sources.serviceaccounts.parse_service_account``): a failure no fix of the parser
    removes. A ServiceAccount carrying it cannot be read."""
    key = "test.invalid/poison"

    def parse(obj: Any, settings: Settings) -> Identity:
        if key in ((obj.get("metadata") or {}).get("annotations") or {}):
            raise ValueError("cannot parse this one")
        return parse_service_account(obj, settings)

    monkeypatch.setattr(webhook.sources.serviceaccounts, "parse_service_account", parse)
    return key
