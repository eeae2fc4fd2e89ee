"""A real ``irsa-webhook serve`` process on loopback with a generated certificate, for tests that need
the whole server (TLS, signals, reloads) rather than the ASGI app.
"""

from __future__ import annotations

import http.client
import json
import os
import signal
import socket
import ssl
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import httpx
from cryptography import x509

from webhook.server import devcerts

ROOT = Path(__file__).resolve().parents[1]
SAMPLE = ROOT / "tests" / "samples" / "admissionreview-pod.json"


def free_port() -> int:
    """A port free on IPv4 and IPv6 alike (the server's default listens on both)."""
    try:
        with socket.socket(socket.AF_INET6) as s:
            s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
            s.bind(("::", 0))
            return int(s.getsockname()[1])
    except OSError:  # no IPv6 on this host
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            return int(s.getsockname()[1])


@dataclass
class Server:
    proc: subprocess.Popen[bytes]
    port: int
    metrics_port: int
    certs: Path
    log: Path
    host: str = "127.0.0.1"  # where clients reach it: "[::1]" for a server bound to ::1 only

    @property
    def url(self) -> str:
        return f"https://{self.host}:{self.port}"

    def client(self) -> httpx.Client:
        return httpx.Client(base_url=self.url, verify=ssl.create_default_context(cafile=str(self.certs / "ca.crt")))

    def served_serial(self) -> int:
        pem = ssl.get_server_certificate(("127.0.0.1", self.port))
        return x509.load_pem_x509_certificate(pem.encode()).serial_number

    def connection(self, host: str | None = None, timeout: float = 5) -> http.client.HTTPSConnection:
        """A keep-alive HTTP/1.1 connection (opened on first use) to ``host`` (default: ``self.host``)."""
        context = ssl.create_default_context(cafile=str(self.certs / "ca.crt"))
        return http.client.HTTPSConnection((host or self.host).strip("[]"), self.port, timeout=timeout, context=context)

    def admitted_uids(self) -> list[str]:
        """The uid of every admission the server logged, in order."""
        uids = []
        for line in self.log.read_text(errors="replace").splitlines():
            try:
                entry = json.loads(line)
            except ValueError:
                continue
            if isinstance(entry, dict) and entry.get("msg") == "admission":
                uids.append(str(entry.get("uid")))
        return uids

    def stop(self) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                return self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
                raise
        return int(self.proc.returncode)


class RawConnection:
    """One TLS connection driven by hand, as an idle pooled client: it writes requests as bytes, reads
    each response by its Content-Length, and never reads ahead, so it neither notices nor answers the
    server's close_notify, and its end stays open until :meth:`close`."""

    def __init__(self, server: Server, host: str | None = None, timeout: float = 5) -> None:
        context = ssl.create_default_context(cafile=str(server.certs / "ca.crt"))
        address = (host or server.host).strip("[]")
        raw = socket.create_connection((address, server.port), timeout=timeout)
        self.sock = context.wrap_socket(raw, server_hostname=address)
        self._buffer = b""

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def request_head(self, method: str, path: str, length: int) -> bytes:
        return (
            f"{method} {path} HTTP/1.1\r\nhost: webhook\r\ncontent-type: application/json\r\n"
            f"content-length: {length}\r\n\r\n"
        ).encode()

    def post(self, path: str, body: bytes) -> None:
        self.send(self.request_head("POST", path, len(body)) + body)

    def response(self) -> tuple[int, dict[str, str], bytes]:
        """Status, headers (lower-case names) and body of the next response."""
        while b"\r\n\r\n" not in self._buffer:
            self._read()
        head, _, self._buffer = self._buffer.partition(b"\r\n\r\n")
        status_line, *lines = head.decode("latin-1").split("\r\n")
        headers = {k.strip().lower(): v.strip() for k, _, v in (line.partition(":") for line in lines)}
        length = int(headers.get("content-length", "0"))
        while len(self._buffer) < length:
            self._read()
        body, self._buffer = self._buffer[:length], self._buffer[length:]
        return int(status_line.split()[1]), headers, body

    def _read(self) -> None:
        chunk = self.sock.recv(65536)
        if not chunk:
            raise ConnectionError("connection closed before a whole response")
        self._buffer += chunk

    def close(self) -> None:
        self.sock.close()


def review(uid: str) -> bytes:
    """The sample AdmissionReview with its own uid, so a request can be found in the server's log."""
    body = json.loads(SAMPLE.read_bytes())
    body["request"]["uid"] = uid
    return json.dumps(body).encode()


def start_server(
    tmp: Path,
    *extra: str,
    env: dict[str, str] | None = None,
    argv: list[str] | None = None,
    bind_address: str | None = "127.0.0.1",
) -> Server:
    """``serve`` on free ports, ready. ``bind_address=None`` leaves the flag out (the default: dual-stack)."""
    certs = tmp / "certs"
    if not (certs / "tls.crt").exists():
        devcerts.generate(certs)
    port, metrics_port = free_port(), free_port()
    log = tmp / f"server-{port}.log"
    args = argv or [
        "serve",
        f"--port={port}",
        "--metrics-port",
        str(metrics_port),
        *([] if bind_address is None else [f"--bind-address={bind_address}"]),
        f"--tls-cert={certs / 'tls.crt'}",
        f"--tls-key={certs / 'tls.key'}",
        f"--service-accounts={ROOT / 'examples' / 'service-accounts.yaml'}",
    ]
    args = [a.replace("{port}", str(port)).replace("{metrics}", str(metrics_port)) for a in args]
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "webhook", *args, *extra],
            stdout=out,
            stderr=subprocess.STDOUT,
            env={**os.environ, **(env or {})},
        )
    server = Server(proc, port, metrics_port, certs, log, host="[::1]" if bind_address == "::1" else "127.0.0.1")
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"server exited {proc.returncode}:\n{log.read_text()}")
        try:
            with server.client() as c:
                if c.get("/readyz", timeout=1).status_code == 200:
                    return server
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    server.stop()
    raise AssertionError(f"server not ready in 30 s:\n{log.read_text()}")
