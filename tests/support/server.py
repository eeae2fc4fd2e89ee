"""``irsa-webhook serve`` as a real process on loopback, the one way every test starts the server:
the server tests (TLS, signals, reloads; ServiceAccounts from the examples) and the e2e and
reliability tests (``kubeconfig=``: the ServiceAccounts of a real kube-apiserver) alike.
"""

from __future__ import annotations

import http.client
import json
import os
import socket
import subprocess
import sys
import urllib.request
from collections.abc import Mapping, Sequence
from pathlib import Path

import httpx

from .certs import Certs, generate_certs, served_serial
from .metrics import scraped
from .paths import EXAMPLE_ACCOUNTS
from .ports import free_port
from .procs import ManagedProcess, http_status
from .waits import wait_for

# Ready once the first ServiceAccount list completed: well under a second against a local API server
# or the examples, but a cold Python start on a busy 2-core CI machine takes a few seconds.
READY_TIMEOUT = 60.0
CLI = [sys.executable, "-m", "webhook"]


class Server:
    """One ``irsa-webhook serve`` on free ports; its output is kept in a log file under ``workdir``.

    ``argv`` replaces the default command line (``{port}`` and ``{metrics}`` in it are the ports);
    ``extra_args`` follow it. Without ``kubeconfig`` the ServiceAccounts come from the examples.
    ``bind_address=None`` leaves the flag out (the default: dual-stack).
    """

    def __init__(
        self,
        workdir: Path,
        certs: Certs,
        *extra_args: str,
        kubeconfig: Path | None = None,
        env: Mapping[str, str] | None = None,
        argv: Sequence[str] | None = None,
        bind_address: str | None = "127.0.0.1",
    ) -> None:
        self.workdir = workdir
        self.certs = certs
        self.extra_args = list(extra_args)
        self.kubeconfig = kubeconfig
        self.env = dict(env or {})
        self.argv = list(argv) if argv is not None else None
        self.bind_address = bind_address
        self.host = "[::1]" if bind_address == "::1" else "127.0.0.1"  # where clients reach it
        self.port = 0
        self.metrics_port = 0
        self.process: ManagedProcess | None = None

    # --- where it is -------------------------------------------------------------------------------
    @property
    def url(self) -> str:
        return f"https://{self.host}:{self.port}"

    @property
    def mutate_url(self) -> str:
        """The URL a MutatingWebhookConfiguration's clientConfig points at."""
        return f"{self.url}/mutate"

    @property
    def proc(self) -> subprocess.Popen[bytes]:
        assert self.process is not None, "not started"
        return self.process.proc

    @property
    def log(self) -> Path:
        assert self.process is not None, "not started"
        return self.process.log

    # --- its life ----------------------------------------------------------------------------------
    def command(self) -> list[str]:
        if self.argv is not None:
            args = self.argv
        else:
            source = (
                [f"--kubeconfig={self.kubeconfig}"] if self.kubeconfig else [f"--service-accounts={EXAMPLE_ACCOUNTS}"]
            )
            args = [
                "serve",
                f"--port={self.port}",
                f"--metrics-port={self.metrics_port}",
                *([] if self.bind_address is None else [f"--bind-address={self.bind_address}"]),
                f"--tls-cert={self.certs.cert}",
                f"--tls-key={self.certs.key}",
                *source,
            ]
        args = [a.replace("{port}", str(self.port)).replace("{metrics}", str(self.metrics_port)) for a in args]
        return [*CLI, *args, *self.extra_args]

    def start(self) -> Server:
        """Start it and wait until /readyz answers 200; stop it again if that never happens."""
        self.port, self.metrics_port = free_port(), free_port()
        self.workdir.mkdir(parents=True, exist_ok=True)
        env = {**os.environ, **self.env} if self.env else None
        process = ManagedProcess("irsa-webhook", self.command(), self.workdir / f"irsa-webhook-{self.port}.log", env)
        self.process = process
        context = self.certs.context()

        def ready() -> bool:
            process.check_alive()
            return http_status(f"{self.url}/readyz", context=context) == 200

        try:
            wait_for(ready, timeout=READY_TIMEOUT, what="irsa-webhook /readyz", on_timeout=process.tail)
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self, grace: float = 15.0) -> int | None:
        """SIGTERM (the server drains and exits 0), SIGKILL after ``grace``; the exit code."""
        return self.process.stop(grace) if self.process else None

    # --- talking to it -----------------------------------------------------------------------------
    def client(self) -> httpx.Client:
        return httpx.Client(base_url=self.url, verify=self.certs.context())

    def connection(self, host: str | None = None, timeout: float = 5) -> http.client.HTTPSConnection:
        """A keep-alive HTTP/1.1 connection (opened on first use) to ``host`` (default: ``self.host``)."""
        address = (host or self.host).strip("[]")
        return http.client.HTTPSConnection(address, self.port, timeout=timeout, context=self.certs.context())

    def served_serial(self) -> int:
        """Serial of the certificate served now (unverified: whatever pair it holds)."""
        return served_serial(self.port)

    def metrics(self) -> str:
        """The Prometheus text of /metrics."""
        url = f"http://127.0.0.1:{self.metrics_port}/metrics"
        with urllib.request.urlopen(url, timeout=5) as response:
            text: str = response.read().decode()
            return text

    def metric(self, name: str, **labels: str) -> float | None:
        """A sample of /metrics (:func:`metrics.scraped`); None when it is not exported."""
        return scraped(self.metrics(), name, **labels)

    def logs(self) -> str:
        return self.process.log.read_text(errors="replace") if self.process else ""

    def admitted_uids(self) -> list[str]:
        """The uid of every admission the server logged, in order."""
        uids = []
        for line in self.logs().splitlines():
            try:
                entry = json.loads(line)
            except ValueError:
                continue
            if isinstance(entry, dict) and entry.get("msg") == "admission":
                uids.append(str(entry.get("uid")))
        return uids


def serve_argv(certs: Certs, *args: str, command: str | None = "serve") -> list[str]:
    """``serve`` with this pair and the example ServiceAccounts on port 0, then ``args``;
    ``command=None``: as upstream's image is given them, flags only."""
    return [
        *([command] if command else []),
        "--port=0",
        f"--tls-cert={certs.cert}",
        f"--tls-key={certs.key}",
        f"--service-accounts={EXAMPLE_ACCOUNTS}",
        *args,
    ]


def run_to_exit(
    argv: Sequence[str], env: Mapping[str, str] | None = None, timeout: float = 30
) -> subprocess.CompletedProcess[str]:
    """``irsa-webhook ARGV`` run until it exits (a refusal at startup): its exit code and output.
    ``env`` replaces the environment."""
    return subprocess.run(
        [*CLI, *argv], capture_output=True, text=True, timeout=timeout, check=False, env=dict(env) if env else None
    )


def start_server(
    workdir: Path,
    *extra_args: str,
    certs: Certs | None = None,
    kubeconfig: Path | None = None,
    env: Mapping[str, str] | None = None,
    argv: Sequence[str] | None = None,
    bind_address: str | None = "127.0.0.1",
) -> Server:
    """A started :class:`Server`; without ``certs``, a pair generated in ``workdir/certs`` (kept if there)."""
    if certs is None:
        folder = workdir / "certs"
        certs = Certs.in_folder(folder) if (folder / "tls.crt").exists() else generate_certs(folder)
    return Server(
        workdir, certs, *extra_args, kubeconfig=kubeconfig, env=env, argv=argv, bind_address=bind_address
    ).start()


class RawConnection:
    """One TLS connection driven by hand, as an idle pooled client: it writes requests as bytes, reads
    each response by its Content-Length, and never reads ahead, so it neither notices nor answers the
    server's close_notify, and its end stays open until :meth:`close`."""

    def __init__(self, server: Server, host: str | None = None, timeout: float = 5) -> None:
        address = (host or server.host).strip("[]")
        raw = socket.create_connection((address, server.port), timeout=timeout)
        self.sock = server.certs.context().wrap_socket(raw, server_hostname=address)
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
