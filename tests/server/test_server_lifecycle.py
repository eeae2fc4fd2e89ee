"""Where the real server listens and how it stops: dual-stack by default, the drain delay on SIGTERM,
requests in flight finished and idle keep-alive connections closed at once, as Go's Server.Shutdown.

Every test runs ``irsa-webhook serve`` as a process on loopback and talks to it over real TLS.
"""

from __future__ import annotations

import base64
import json
import signal
import socket
import subprocess
import time
import uuid
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest

from tests.support.cases import JSON_HEADERS, review
from tests.support.certs import generate_certs
from tests.support.ports import free_port, has_ipv6_loopback
from tests.support.server import RawConnection, Server, run_to_exit, serve_argv, start_server
from tests.support.waits import wait_for

needs_ipv6 = pytest.mark.skipif(not has_ipv6_loopback(), reason="this host has no IPv6 loopback (::1)")


def mutate(server: Server, host: str) -> int:
    conn = server.connection(host)
    try:
        conn.request("POST", "/mutate", body=review(str(uuid.uuid4())), headers=JSON_HEADERS)
        response = conn.getresponse()
        response.read()
        return response.status
    finally:
        conn.close()


def metrics_status(server: Server, host: str) -> int:
    return httpx.get(f"http://{host}:{server.metrics_port}/metrics", timeout=5).status_code


def refused(call: Callable[[], object]) -> bool:
    try:
        call()
    except (ConnectionRefusedError, httpx.ConnectError):
        return True
    return False


def readyz(server: Server) -> tuple[int, dict[str, object]]:
    conn = server.connection(timeout=2)
    try:
        conn.request("GET", "/readyz")
        response = conn.getresponse()
        return response.status, json.loads(response.read())
    finally:
        conn.close()


def wait_exit(server: Server, timeout: float) -> tuple[int, float]:
    started = time.monotonic()
    try:
        code = server.proc.wait(timeout)
    except subprocess.TimeoutExpired:
        server.proc.kill()
        server.proc.wait(5)
        pytest.fail(f"no exit within {timeout} s of SIGTERM:\n{server.log.read_text()[-3000:]}")
    return code, time.monotonic() - started


# --- listening ---------------------------------------------------------------------------------------
@needs_ipv6
@pytest.mark.parametrize("bind_address", [None, "::"], ids=["default", "all-ipv6-is-dual-stack"])
def test_both_ports_listen_on_ipv4_and_ipv6(tmp_path: Path, bind_address: str | None) -> None:
    server = start_server(tmp_path, bind_address=bind_address)
    try:
        for host in ("127.0.0.1", "[::1]"):
            assert mutate(server, host) == 200, host
            assert metrics_status(server, host) == 200, host
    finally:
        assert server.stop() == 0


@needs_ipv6
@pytest.mark.parametrize(
    ("bind_address", "served", "refused_host"),
    [
        pytest.param("127.0.0.1", "127.0.0.1", "[::1]", id="ipv4-loopback"),
        pytest.param("0.0.0.0", "127.0.0.1", "[::1]", id="all-ipv4-is-ipv4-only"),
        pytest.param("::1", "[::1]", "127.0.0.1", id="ipv6-loopback"),
    ],
)
def test_a_bind_address_narrows_both_ports(tmp_path: Path, bind_address: str, served: str, refused_host: str) -> None:
    server = start_server(tmp_path, bind_address=bind_address)
    try:
        assert mutate(server, served) == 200
        assert metrics_status(server, served) == 200
        assert refused(lambda: mutate(server, refused_host))
        assert refused(lambda: metrics_status(server, refused_host))
    finally:
        assert server.stop() == 0


@pytest.mark.parametrize("which", ["--port", "--metrics-port"])
def test_a_port_in_use_is_one_line_and_exit_1(tmp_path: Path, which: str) -> None:
    certs = generate_certs(tmp_path / "certs")
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        ports = {"--port": free_port(), "--metrics-port": free_port(), which: port}
        listening = [f"{flag}={value}" for flag, value in ports.items()]
        result = run_to_exit(serve_argv(certs, *listening, "--bind-address=127.0.0.1"))
    assert result.returncode == 1, result.stderr
    errors = [line for line in result.stderr.splitlines() if line.startswith("irsa-webhook serve:")]
    assert errors == [f"irsa-webhook serve: cannot listen on 127.0.0.1:{port}: Address already in use"]
    assert "Traceback" not in result.stderr


# --- shutdown ----------------------------------------------------------------------------------------
def test_request_in_flight_at_sigterm_is_answered_and_the_process_exits_at_once(tmp_path: Path) -> None:
    """The request is mid-body when SIGTERM comes: the listener closes, the request still gets its
    answer (told to close the connection), and the exit follows it without waiting for the client."""
    server = start_server(tmp_path)
    body = review("in-flight")
    client = RawConnection(server)
    client.send(client.request_head("POST", "/mutate", len(body)) + body[:100])
    time.sleep(0.2)  # the server has the headers: this request is in flight
    server.proc.send_signal(signal.SIGTERM)
    wait_for(lambda: refused(lambda: mutate(server, "127.0.0.1")), what="the listener to close")
    assert server.proc.poll() is None, "exited with a request in flight"
    client.send(body[100:])
    status, headers, answer = client.response()
    assert status == 200
    assert headers["connection"] == "close"
    assert json.loads(answer)["response"]["uid"] == "in-flight"
    # The client keeps its end open and never answers the TLS close: the exit must not wait for it.
    code, took = wait_exit(server, 5)
    client.close()
    assert code == 0
    assert took < 2, f"exit took {took:.1f} s after the last answer"


def test_shutdown_timeout_bounds_a_stalled_request(tmp_path: Path) -> None:
    server = start_server(tmp_path, "--shutdown-timeout=1s")
    conn = server.connection()
    conn.putrequest("POST", "/mutate")
    conn.putheader("content-type", "application/json")
    conn.putheader("content-length", "100000")
    conn.endheaders(b"{")  # and never the rest
    time.sleep(0.2)
    server.proc.send_signal(signal.SIGTERM)
    code, took = wait_exit(server, 10)
    conn.close()
    assert code == 0
    assert 0.9 < took < 3
    assert "shutdown timeout: closing connections with requests still in flight" in server.log.read_text()


def test_shutdown_delay_keeps_serving_while_readyz_answers_503(tmp_path: Path) -> None:
    delay = 1.5
    server = start_server(tmp_path, f"--shutdown-delay={delay}s")
    kept_alive = RawConnection(server)
    kept_alive.post("/mutate", review("before"))
    assert kept_alive.response()[0] == 200
    assert readyz(server)[0] == 200
    signalled = time.monotonic()
    server.proc.send_signal(signal.SIGTERM)
    wait_for(lambda: readyz(server)[0] == 503, what="/readyz to answer 503", timeout=1)
    status, body = readyz(server)
    assert status == 503
    assert body["checks"] == {"serviceAccountCacheSynced": True, "certificateLoaded": True, "notShuttingDown": False}
    # Still serving, on a connection kept alive from before and on new ones; each answer asks the
    # client to reconnect, so its next connection goes where the Service routes now.
    kept_alive.post("/mutate", review("during"))
    status, headers, answer = kept_alive.response()
    assert status == 200
    assert json.loads(answer)["response"]["uid"] == "during"
    assert headers["connection"] == "close"
    assert mutate(server, "127.0.0.1") == 200
    assert metrics_status(server, "127.0.0.1") == 200
    assert time.monotonic() - signalled < delay, "the checks above took longer than the delay"
    code, _ = wait_exit(server, delay + 5)
    took = time.monotonic() - signalled
    kept_alive.close()
    assert code == 0
    assert delay - 0.1 < took < delay + 2, took
    assert {"before", "during"} <= set(server.admitted_uids())


def test_without_a_shutdown_delay_connections_are_kept_alive(tmp_path: Path) -> None:
    """Only a shutdown turns keep-alive off: before it, a pooled connection serves request after request."""
    server = start_server(tmp_path)
    try:
        client = RawConnection(server)
        for uid in ("one", "two", "three"):
            client.post("/mutate", review(uid))
            status, headers, _ = client.response()
            assert (status, headers.get("connection")) == (200, None)
        client.close()
    finally:
        assert server.stop() == 0


def test_a_second_signal_ends_the_shutdown_delay(tmp_path: Path) -> None:
    server = start_server(tmp_path, "--shutdown-delay=60s")
    server.proc.send_signal(signal.SIGTERM)
    wait_for(lambda: readyz(server)[0] == 503, what="/readyz to answer 503")
    server.proc.send_signal(signal.SIGTERM)
    code, took = wait_exit(server, 10)
    assert code == 0
    assert took < 3
    assert "received again: shutting down now" in server.log.read_text()


# --- flags -------------------------------------------------------------------------------------------
def test_token_expiration_below_600_is_raised_to_600_with_one_log_line(tmp_path: Path) -> None:
    server = start_server(tmp_path, "--token-expiration=300")
    try:
        with server.client() as c:
            response = c.post("/mutate", content=review("short-token"), headers=JSON_HEADERS)
        assert response.status_code == 200
        patch = json.loads(base64.b64decode(response.json()["response"]["patch"]))
        volume = next(op["value"] for op in patch if op["path"] == "/spec/volumes/-")
        (source,) = volume["projected"]["sources"]
        assert source["serviceAccountToken"]["expirationSeconds"] == 600
    finally:
        assert server.stop() == 0
    notes = [line for line in server.log.read_text().splitlines() if "--token-expiration" in line]
    assert len(notes) == 1, notes
    assert "--token-expiration=300 is below the minimum of 600 seconds: using 600" in notes[0]


def test_token_expiration_in_range_is_used_as_given(tmp_path: Path) -> None:
    server = start_server(tmp_path, f"--token-expiration={1 << 32}")
    try:
        with server.client() as c:
            response = c.post("/mutate", content=review("long-token"), headers=JSON_HEADERS)
        patch = json.loads(base64.b64decode(response.json()["response"]["patch"]))
        volume = next(op["value"] for op in patch if op["path"] == "/spec/volumes/-")
        assert volume["projected"]["sources"][0]["serviceAccountToken"]["expirationSeconds"] == 1 << 32
    finally:
        assert server.stop() == 0
    assert "--token-expiration" not in server.log.read_text()
