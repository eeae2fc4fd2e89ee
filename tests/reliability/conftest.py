"""Fixtures of the reliability tests that run a real control plane (marked ``e2e``, like the e2e suite).

- ``control_planes``: ``start(*apiserver_args) -> ControlPlane``, a control plane of the test's own
  (these tests restart kube-apiserver, so none is shared), stopped after the test;
- ``reliability_certs``: the webhook's serving certificate, made by `irsa-webhook certs`;
- ``tcp_proxy``: ``start(target_port) -> TcpProxy``, a loopback TCP forwarder that can cut every
  connection through it (a network partition between the webhook and the API server).

When such a test fails, the log tails of every process still running are attached to its report.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.support.certs import Certs, cli_certs
from tests.support.controlplane import ControlPlane, MissingBinaries, find_binaries
from tests.support.procs import pytest_runtest_makereport  # noqa: F401 (the hook: log tails of a failed test)

from .proxy import TcpProxy


@pytest.fixture
def control_planes(tmp_path: Path) -> Iterator[Callable[..., ControlPlane]]:
    try:
        assets = find_binaries()
    except MissingBinaries as exc:
        pytest.fail(str(exc), pytrace=False)
    started: list[ControlPlane] = []

    def start(*apiserver_args: str) -> ControlPlane:
        plane = ControlPlane(
            workdir=tmp_path / f"control-plane-{len(started)}", assets=assets, apiserver_args=list(apiserver_args)
        )
        started.append(plane)
        return plane.start()

    yield start
    for plane in started:
        plane.stop()


@pytest.fixture(scope="session")
def reliability_certs(tmp_path_factory: pytest.TempPathFactory) -> Certs:
    return cli_certs(tmp_path_factory.mktemp("reliability-webhook-certs"), "--ip-address", "127.0.0.1")


@pytest.fixture
def tcp_proxy() -> Iterator[Callable[[int], TcpProxy]]:
    proxies: list[TcpProxy] = []

    def start(target: int) -> TcpProxy:
        proxy = TcpProxy(target)
        proxies.append(proxy)
        return proxy

    yield start
    for proxy in proxies:
        proxy.close()
