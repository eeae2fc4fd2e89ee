"""Fixtures of the audit tests: the stand-in API server (tests.support.kubeapi) and the real command against it."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.support.cli import runner
from tests.support.kubeapi import FakeApiServer, FakeCluster

from .standin import Audit


@pytest.fixture
def serve(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> Iterator[Callable[[FakeCluster], Audit]]:
    """``serve(cluster)`` starts the stand-in; it returns ``audit(*args) -> (exit code, stdout, stderr)``,
    `irsa-webhook audit --kubeconfig <the stand-in's> ARGS` run in-process through main()."""
    servers: list[FakeApiServer] = []
    run = runner(capsys)

    def start(cluster: FakeCluster) -> Audit:
        server = FakeApiServer(cluster).__enter__()
        servers.append(server)
        kubeconfig = server.kubeconfig(tmp_path)

        def audit(*args: str) -> tuple[int, str, str]:
            result = run("audit", "--kubeconfig", str(kubeconfig), *args)
            assert "Traceback" not in result.err
            return result.code, result.out, result.err

        return audit

    yield start
    for server in servers:
        server.__exit__()
