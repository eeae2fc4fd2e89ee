"""SIGTERM under the conditions a webhook pod really meets: kube-apiserver's idle pooled connections,
and admissions arriving at full speed while the pod is being taken out of the Service.

A request counts as accepted when the server logged its admission line (every /mutate it handles
logs its uid). Every accepted request must have been answered 200 at the client. A client may fail
only before its request was accepted: a connection refused once the listener is closed, or a
kept-alive connection closed by the server as idle just as the client reused it (what any HTTP client
retries, and what Go's server does too).
"""

from __future__ import annotations

import http.client
import json
import signal
import socket
import ssl
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tests.support.cases import JSON_HEADERS, review
from tests.support.server import RawConnection, Server, start_server

pytestmark = pytest.mark.timeout(30)


def wait_exit(server: Server, timeout: float) -> tuple[int, float]:
    started = time.monotonic()
    deadline = started + timeout
    while server.proc.poll() is None:
        if time.monotonic() > deadline:
            server.proc.kill()
            server.proc.wait(5)
            pytest.fail(f"no exit within {timeout} s of SIGTERM:\n{server.log.read_text()[-3000:]}")
        time.sleep(0.01)
    return int(server.proc.returncode), time.monotonic() - started


@pytest.mark.parametrize("client", ["raw", "httpx"])
def test_sigterm_with_an_idle_kept_alive_connection_exits_at_once(tmp_path: Path, client: str) -> None:
    """One request made, the connection left open and idle (as kube-apiserver's pool leaves it)."""
    server = start_server(tmp_path)
    close: Callable[[], None]
    if client == "raw":
        raw = RawConnection(server)
        raw.post("/mutate", review("idle"))
        status, headers, _ = raw.response()
        assert (status, headers.get("connection")) == (200, None)
        close = raw.close
    else:
        pooled = server.client()
        assert pooled.post("/mutate", content=review("idle"), headers=JSON_HEADERS).status_code == 200
        close = pooled.close
    try:
        server.proc.send_signal(signal.SIGTERM)
        code, took = wait_exit(server, 10)
    finally:
        close()
    assert code == 0
    assert took < 2, f"exit took {took:.1f} s with one idle connection"
    log = server.log.read_text()
    assert "timeout graceful shutdown exceeded" not in log
    assert "shutdown timeout" not in log


def listening(server: Server) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", server.port), timeout=1):
            return True
    # Refused once the listener is closed; reset when it closes while this connection is still in its
    # accept queue (the kernel resets queued connections of a closed listener): both mean "closed".
    except (ConnectionRefusedError, ConnectionResetError):
        return False


@dataclass
class Outcomes:
    """What the load threads saw, shared between them (under ``lock``)."""

    lock: threading.Lock = field(default_factory=threading.Lock)
    answered: dict[str, int] = field(default_factory=dict)  # uid -> HTTP status
    unanswered: dict[str, str] = field(default_factory=dict)  # uid -> the error, no response at all
    broken: list[str] = field(default_factory=list)  # anything else: a partial or malformed answer
    refused: int = 0
    answered_at: list[float] = field(default_factory=list)

    def answer(self, uid: str, status: int, body: bytes) -> None:
        with self.lock:
            self.answered[uid] = status
            self.answered_at.append(time.monotonic())
            if status == 200 and json.loads(body)["response"]["uid"] != uid:
                self.broken.append(f"{uid}: answered for another request")


# The server closed the connection before any byte of a response (raised by http.client's request()
# or getresponse(); RemoteDisconnected is a ConnectionResetError).
NO_RESPONSE = (ConnectionError, ssl.SSLEOFError)
Response = tuple[int, dict[str, str], bytes]


def exchange(conn: http.client.HTTPSConnection, uid: str, out: Outcomes, headers: dict[str, str]) -> bool:
    """One /mutate on ``conn``, its outcome recorded; False once the listener refuses connections."""
    try:
        conn.request("POST", "/mutate", body=review(uid), headers=headers)
        response = conn.getresponse()
    except ConnectionRefusedError:
        with out.lock:
            out.refused += 1
        conn.close()
        return False  # the listener is closed: a real client goes to another endpoint
    except NO_RESPONSE as exc:
        with out.lock:
            out.unanswered[uid] = repr(exc)
        conn.close()
        return True
    try:
        body = response.read()  # a status line came: the whole answer must follow
    except Exception as exc:
        with out.lock:
            out.broken.append(f"{uid}: {exc!r}")
        conn.close()
        return True
    out.answer(uid, response.status, body)
    return True


def keep_alive_worker(server: Server, name: str, out: Outcomes, stop: threading.Event) -> None:
    """Requests back to back on one connection; http.client reconnects when the server closes it."""
    conn = server.connection(timeout=5)
    n = 0
    while not stop.is_set() and exchange(conn, f"{name}-{n}", out, JSON_HEADERS):
        n += 1
    conn.close()


def new_connection_worker(server: Server, name: str, out: Outcomes, stop: threading.Event) -> None:
    """One connection per request, as a client without a pool."""
    n = 0
    while not stop.is_set():
        conn = server.connection(timeout=5)
        try:
            if not exchange(conn, f"{name}-{n}", out, {**JSON_HEADERS, "connection": "close"}):
                break
        finally:
            conn.close()
        n += 1


def slow_request(
    server: Server, started: threading.Event, listener_closed: threading.Event, result: list[Response | Exception]
) -> None:
    """Accepted before SIGTERM, still uploading its body when the listener closes after the delay."""
    body = review("slow")
    client = None
    try:
        client = RawConnection(server)
        client.send(client.request_head("POST", "/mutate", len(body)) + body[:200])
        started.set()
        listener_closed.wait(8)
        client.send(body[200:])
        result.append(client.response())
    except Exception as exc:
        result.append(exc)
    finally:
        if client is not None:
            client.close()


def test_sigterm_under_load_answers_every_accepted_request(tmp_path: Path) -> None:
    delay = 1.0
    server = start_server(tmp_path, f"--shutdown-delay={delay}s")
    out = Outcomes()
    stop = threading.Event()
    workers = [
        *(threading.Thread(target=keep_alive_worker, args=(server, f"kept-{i}", out, stop)) for i in range(3)),
        *(threading.Thread(target=new_connection_worker, args=(server, f"new-{i}", out, stop)) for i in range(2)),
    ]
    for worker in workers:
        worker.start()
    slow_started, listener_closed = threading.Event(), threading.Event()
    slow_result: list[Response | Exception] = []
    slow = threading.Thread(target=slow_request, args=(server, slow_started, listener_closed, slow_result))
    try:
        time.sleep(0.5)  # load running
        slow.start()
        assert slow_started.wait(5), slow_result
        with out.lock:
            assert out.answered, "no request answered before SIGTERM"
        signalled = time.monotonic()
        server.proc.send_signal(signal.SIGTERM)

        # The drain: /readyz turns 503 at once; admissions, new connections included, still succeed.
        with server.client() as probe:
            while probe.get("/readyz", timeout=2).status_code != 503:
                assert time.monotonic() - signalled < 0.5, "/readyz still 200 half a second after SIGTERM"
                time.sleep(0.01)
            assert probe.post("/mutate", content=review("drain"), headers=JSON_HEADERS).status_code == 200
        with server.client() as fresh:
            assert fresh.post("/mutate", content=review("drain-fresh"), headers=JSON_HEADERS).status_code == 200
        assert time.monotonic() - signalled < delay, "the drain checks took longer than the delay"

        # After the delay the listener closes, with the slow request in flight.
        while listening(server):
            assert time.monotonic() - signalled < delay + 3, "the listener never closed"
            time.sleep(0.01)
        listener_closed.set()
        code, _ = wait_exit(server, 8)
    finally:
        stop.set()
        listener_closed.set()
        for thread in [*workers, slow]:
            if thread.ident is not None:
                thread.join(10)
        if server.proc.poll() is None:
            server.proc.kill()
            server.proc.wait(5)

    assert code == 0
    assert slow_result, "the slow request never finished"
    assert not isinstance(slow_result[0], Exception), slow_result
    status, headers, body = slow_result[0]
    assert status == 200, slow_result
    assert headers["connection"] == "close"
    assert json.loads(body)["response"]["uid"] == "slow"

    assert out.broken == []
    accepted = set(server.admitted_uids())
    own = {"drain", "drain-fresh", "slow"}
    assert own <= accepted
    answered_ok = {uid for uid, status in out.answered.items() if status == 200}
    assert set(out.answered) == answered_ok, {u: s for u, s in out.answered.items() if s != 200}
    # Every request the server took was answered; the ones without an answer were never taken.
    assert accepted - own == answered_ok
    assert not accepted & set(out.unanswered), {u: out.unanswered[u] for u in accepted & set(out.unanswered)}
    # The load really ran through the delay (answers after SIGTERM) and ended on a closed listener.
    assert sum(1 for t in out.answered_at if t > signalled + delay / 2) > 0
    assert out.refused > 0
