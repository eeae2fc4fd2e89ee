"""The controller's plain-HTTP endpoints: each socket serves the paths it is given."""

from __future__ import annotations

import socket
from collections.abc import Iterator

import httpx
import pytest

from webhook.provisioner import controller_metrics  # noqa: F401 (the families /metrics must show)
from webhook.provisioner.probes import ProbeServer, check_route, metrics_route


@pytest.fixture
def base() -> Iterator[tuple[str, list[tuple[bool, str]]]]:
    state = [(False, "the first list has not completed")]
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    sock.listen()
    routes = {
        "/healthz": check_route(lambda: (True, "")),
        "/readyz": check_route(lambda: state[-1]),
        "/metrics": metrics_route,
    }
    server = ProbeServer(sock, routes).start()
    try:
        yield f"http://127.0.0.1:{sock.getsockname()[1]}", state
    finally:
        server.shutdown()
        server.server_close()


def test_health_and_readiness(base: tuple[str, list[tuple[bool, str]]]) -> None:
    url, state = base
    assert httpx.get(f"{url}/healthz").text == "ok\n"
    answer = httpx.get(f"{url}/readyz")
    assert (answer.status_code, answer.text) == (503, "the first list has not completed\n")
    state.append((True, ""))
    assert httpx.get(f"{url}/readyz?verbose").status_code == 200
    assert httpx.head(f"{url}/readyz").status_code == 200


def test_metrics_in_prometheus_text(base: tuple[str, list[tuple[bool, str]]]) -> None:
    url, _ = base
    answer = httpx.get(f"{url}/metrics")
    assert answer.headers["content-type"].startswith("text/plain; version=0.0.4")
    for family in (
        "irsa_webhook_provisioner_reconciles_total",
        "irsa_webhook_provisioner_queue_depth",
        "irsa_webhook_provisioner_leader",
        "irsa_webhook_provisioner_last_success_timestamp_seconds",
    ):
        assert f"\n{family}" in answer.text


def test_anything_else_is_404(base: tuple[str, list[tuple[bool, str]]]) -> None:
    url, _ = base
    assert httpx.get(f"{url}/mutate").status_code == 404
