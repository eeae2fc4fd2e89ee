"""A real ``irsa-webhook serve`` process on loopback with a generated certificate, for tests that need
the whole server (TLS, signals, reloads) rather than the ASGI app.
"""

from __future__ import annotations

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

from webhook import devcerts

ROOT = Path(__file__).resolve().parents[1]


def free_port() -> int:
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

    @property
    def url(self) -> str:
        return f"https://127.0.0.1:{self.port}"

    def client(self) -> httpx.Client:
        return httpx.Client(base_url=self.url, verify=ssl.create_default_context(cafile=str(self.certs / "ca.crt")))

    def served_serial(self) -> int:
        pem = ssl.get_server_certificate(("127.0.0.1", self.port))
        return x509.load_pem_x509_certificate(pem.encode()).serial_number

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


def start_server(tmp: Path, *extra: str, env: dict[str, str] | None = None, argv: list[str] | None = None) -> Server:
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
        "--bind-address=127.0.0.1",
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
    server = Server(proc, port, metrics_port, certs, log)
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
