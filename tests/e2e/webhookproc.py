"""irsa-webhook as the real process a cluster would run: `irsa-webhook serve --kubeconfig ...`."""

from __future__ import annotations

import ssl
import subprocess
import sys
import urllib.request
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from .procs import ManagedProcess, free_port, http_status, wait_for

# The webhook is ready once its first ServiceAccount list completed: well under a second against a
# local API server, but a cold Python start on a busy 2-core CI machine takes a few seconds.
READY_TIMEOUT = 60.0
CLI = [sys.executable, "-m", "webhook"]


@dataclass(frozen=True)
class Certs:
    """What `irsa-webhook certs --out DIR` writes: a CA and a serving certificate it signed."""

    ca: Path
    cert: Path
    key: Path

    @property
    def ca_pem(self) -> bytes:
        return self.ca.read_bytes()


def make_certs(out: Path) -> Certs:
    """Generate the webhook's serving certificate with the project's own `certs` command."""
    result = subprocess.run(
        [*CLI, "certs", "--out", str(out), "--ip-address", "127.0.0.1"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    if result.returncode != 0:
        raise RuntimeError(f"irsa-webhook certs failed ({result.returncode}): {result.stderr}{result.stdout}")
    certs = Certs(out / "ca.crt", out / "tls.crt", out / "tls.key")
    for path in (certs.ca, certs.cert, certs.key):
        if not path.is_file():
            raise RuntimeError(f"irsa-webhook certs did not write {path}")
    return certs


class WebhookProcess:
    """One `irsa-webhook serve` process on free ports of 127.0.0.1; its log is kept in a file."""

    def __init__(self, workdir: Path, kubeconfig: Path, certs: Certs, extra_args: Sequence[str] = ()) -> None:
        self.workdir = workdir
        self.kubeconfig = kubeconfig
        self.certs = certs
        self.extra_args = list(extra_args)
        self.port = 0
        self.metrics_port = 0
        self.process: ManagedProcess | None = None

    @property
    def url(self) -> str:
        """The URL a MutatingWebhookConfiguration's clientConfig points at."""
        return f"https://127.0.0.1:{self.port}/mutate"

    def start(self) -> WebhookProcess:
        """Start `serve` and wait until /readyz answers 200; stop it again if that never happens."""
        self.port, self.metrics_port = free_port(), free_port()
        argv = [
            *CLI,
            "serve",
            "--kubeconfig",
            str(self.kubeconfig),
            "--tls-cert",
            str(self.certs.cert),
            "--tls-key",
            str(self.certs.key),
            "--port",
            str(self.port),
            "--metrics-port",
            str(self.metrics_port),
            *self.extra_args,
        ]
        self.workdir.mkdir(parents=True, exist_ok=True)
        process = ManagedProcess("irsa-webhook", argv, self.workdir / f"irsa-webhook-{self.port}.log")
        self.process = process
        context = ssl.create_default_context(cafile=str(self.certs.ca))

        def ready() -> bool:
            process.check_alive()
            return http_status(f"https://127.0.0.1:{self.port}/readyz", context=context) == 200

        try:
            wait_for(ready, timeout=READY_TIMEOUT, what="irsa-webhook /readyz", on_timeout=process.tail)
        except BaseException:
            self.stop()
            raise
        return self

    def metrics(self) -> str:
        """The Prometheus text of /metrics."""
        url = f"http://127.0.0.1:{self.metrics_port}/metrics"
        with urllib.request.urlopen(url, timeout=5) as response:
            text: str = response.read().decode()
            return text

    def logs(self) -> str:
        return self.process.log.read_text(errors="replace") if self.process else ""

    def stop(self) -> int | None:
        """SIGTERM (the webhook drains and exits 0), SIGKILL after the grace period."""
        return self.process.stop() if self.process else None
