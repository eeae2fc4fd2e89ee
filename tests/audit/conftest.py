"""Fixtures of the audit tests: the stand-in API server of fakeapi.py and the real command against it."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from webhook.cli import main

from .fakeapi import FakeApiServer, FakeCluster

Audit = Callable[..., tuple[int, str, str]]


@pytest.fixture
def serve(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> Iterator[Callable[[FakeCluster], Audit]]:
    """``serve(cluster)`` starts the stand-in; it returns ``audit(*args) -> (exit code, stdout, stderr)``,
    `irsa-webhook audit --kubeconfig <the stand-in's> ARGS` run in-process through main()."""
    servers: list[FakeApiServer] = []

    def start(cluster: FakeCluster) -> Audit:
        server = FakeApiServer(cluster).__enter__()
        servers.append(server)
        kubeconfig = server.kubeconfig(tmp_path)

        def audit(*args: str) -> tuple[int, str, str]:
            capsys.readouterr()
            code = main(["audit", "--kubeconfig", str(kubeconfig), *args])
            out, err = capsys.readouterr()
            assert "Traceback" not in err
            return code, out, err

        return audit

    yield start
    for server in servers:
        server.__exit__()
