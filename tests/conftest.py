"""Fixtures more than one folder uses. Helpers that are not fixtures live in tests/support."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from kubernetes import client

import webhook.sources.serviceaccounts
from tests.support.cli import Runner, runner
from tests.support.moto import MotoServer, point_at
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


@pytest.fixture(scope="session")
def moto_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MotoServer]:
    """One moto server (S3, IAM, STS on 127.0.0.1) for the whole run; tests reset it through ``moto``."""
    server = MotoServer(tmp_path_factory.mktemp("moto"))
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def moto(moto_server: MotoServer, monkeypatch: pytest.MonkeyPatch, tmp_path: Any) -> MotoServer:
    """The moto server, emptied, with this process's environment pointing boto3's standard chain at it
    (AWS_ENDPOINT_URL, fake keys, us-east-1) and at nothing else."""
    moto_server.reset()
    point_at(monkeypatch, moto_server.url, tmp_path)
    return moto_server
