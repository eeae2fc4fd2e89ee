"""The webhook image's entrypoint, run as the Dockerfile writes it, on a read-only filesystem.

The image is the one `make image` builds, rebuilt without Docker (image.py says how, and how the
read-only root filesystem is enforced). The entrypoint gets the base Deployment's own args (read
from manifests/base/deployment.yaml; only ports and certificate paths are swapped for local ones,
plus `--service-accounts` since there is no cluster) and must serve /healthz, /readyz, /mutate and
/metrics. The provisioner's image, the same Dockerfile with boto3, and what both images hold, are test_image.py's.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import ssl
import subprocess
import time
import urllib.request
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

from tests.support.paths import MANIFESTS
from tests.support.ports import free_port

from .image import SHIM, Image, sandboxed

# The certificate directory of the Deployment and of upstream's manifests.
CERT_DIR = "/etc/webhook/certs"
SERVICE_HOST = "irsa-webhook.irsa-webhook.svc"
ROLE_ARN = "arn:aws:iam::111122223333:role/app"
# The args of upstream's deploy/deployment-base.yaml after its `/webhook` command.
UPSTREAM_ARGS = [
    "--in-cluster=false",
    "--namespace=default",
    "--service-name=pod-identity-webhook",
    "--annotation-prefix=eks.amazonaws.com",
    "--token-audience=sts.amazonaws.com",
    "--logtostderr",
]
# Generous bounds: a cold Python start with the kubernetes client imported takes a few seconds.
START_TIMEOUT = 60.0
STOP_TIMEOUT = 20.0


@dataclass
class Certs:
    directory: Path
    context: ssl.SSLContext


@pytest.fixture(scope="module")
def certs(image: Image, tmp_path_factory: pytest.TempPathFactory) -> Certs:
    """`irsa-webhook certs` from the image's own venv (so `make certs` works from the image too)."""
    out = tmp_path_factory.mktemp("certs")
    result = subprocess.run(
        [str(image.root / "opt/venv/bin/irsa-webhook"), "certs", "--out", str(out)],
        env=image.env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    context = ssl.create_default_context(cafile=str(out / "ca.crt"))
    return Certs(out, context)


@pytest.fixture(scope="module")
def service_accounts(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("sa") / "service-accounts.yaml"
    path.write_text(
        yaml.safe_dump(
            {
                "apiVersion": "v1",
                "kind": "ServiceAccount",
                "metadata": {
                    "name": "app",
                    "namespace": "team-a",
                    "annotations": {"eks.amazonaws.com/role-arn": ROLE_ARN},
                },
            }
        )
    )
    return path


@dataclass
class Server:
    process: subprocess.Popen[bytes]
    log: Path
    port: int
    metrics_port: int
    context: ssl.SSLContext

    def https(self, method: str, path: str, body: bytes | None = None) -> tuple[int, bytes]:
        """One request over TLS, verifying the certificate for the Service's DNS name."""
        with (
            socket.create_connection(("127.0.0.1", self.port), timeout=5) as raw,
            self.context.wrap_socket(raw, server_hostname=SERVICE_HOST) as tls,
        ):
            head = f"{method} {path} HTTP/1.1\r\nHost: {SERVICE_HOST}\r\nConnection: close\r\n"
            if body is not None:
                head += f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n"
            tls.sendall(head.encode() + b"\r\n" + (body or b""))
            data = b""
            while chunk := tls.recv(65536):
                data += chunk
        status_line, _, rest = data.partition(b"\r\n")
        _, _, payload = rest.partition(b"\r\n\r\n")
        return int(status_line.split()[1]), payload

    def output(self) -> str:
        return self.log.read_text(errors="replace")


Starter = Callable[[Sequence[str], Sequence[str]], "Server"]


@pytest.fixture
def start(image: Image, certs: Certs, tmp_path: Path) -> Iterator[Starter]:
    servers: list[Server] = []

    def start_server(command: Sequence[str], args: Sequence[str]) -> Server:
        log = tmp_path / f"server-{len(servers)}.log"
        with log.open("wb") as sink:
            process = subprocess.Popen(
                sandboxed([*command, *args], image.workdir),
                env=image.env,
                stdin=subprocess.DEVNULL,
                stdout=sink,
                stderr=subprocess.STDOUT,
            )
        port = int(next(a for a in args if a.startswith("--port=")).split("=")[1])
        metrics = int(next(a for a in args if a.startswith("--metrics-port=")).split("=")[1])
        server = Server(process, log, port, metrics, certs.context)
        servers.append(server)
        deadline = time.monotonic() + START_TIMEOUT
        while True:
            if process.poll() is not None:
                pytest.fail(f"exited {process.returncode} before serving:\n{server.output()}")
            try:
                if server.https("GET", "/readyz")[0] == 200:
                    return server
            except OSError:
                pass
            if time.monotonic() > deadline:
                pytest.fail(f"not ready within {START_TIMEOUT}s:\n{server.output()}")
            time.sleep(0.2)

    yield start_server
    for server in servers:
        if server.process.poll() is None:
            server.process.kill()
            server.process.wait(timeout=STOP_TIMEOUT)


def deployment_args() -> list[str]:
    deployment = yaml.safe_load((MANIFESTS / "base" / "deployment.yaml").read_text())
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    return [str(a) for a in container["args"]]


def local_args(args: Sequence[str], certs: Certs, service_accounts: Path) -> list[str]:
    """The Deployment's args with free ports, the test certificates and local ServiceAccounts."""
    ports = {"--port": str(free_port()), "--metrics-port": str(free_port())}
    out = []
    for arg in args:
        name, _, value = arg.partition("=")
        value = ports.get(name, value).replace(CERT_DIR, str(certs.directory))
        out.append(f"{name}={value}")
    return [*out, f"--service-accounts={service_accounts}"]


def stop(server: Server) -> None:
    server.process.send_signal(signal.SIGTERM)
    try:
        code = server.process.wait(timeout=STOP_TIMEOUT)
    except subprocess.TimeoutExpired:
        pytest.fail(f"no exit within {STOP_TIMEOUT}s of SIGTERM:\n{server.output()}")
    assert code == 0, server.output()


def review(namespace: str, service_account: str) -> bytes:
    pod = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"generateName": "app-"},
        "spec": {"serviceAccountName": service_account, "containers": [{"name": "app", "image": "app"}]},
    }
    request = {
        "uid": "6d1f3c55-0000-4000-8000-000000000001",
        "kind": {"group": "", "version": "v1", "kind": "Pod"},
        "resource": {"group": "", "version": "v1", "resource": "pods"},
        "namespace": namespace,
        "operation": "CREATE",
        "object": pod,
    }
    return json.dumps({"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "request": request}).encode()


# --- the tests ---------------------------------------------------------------------------------------------
def test_the_sandbox_refuses_writes(image: Image, tmp_path: Path) -> None:
    """The read-only check is real: even root cannot write in the sandbox (and can outside it)."""
    probe = tmp_path / "probe"
    result = subprocess.run(
        sandboxed(["sh", "-c", f": > {probe}"], image.workdir),
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert result.returncode != 0
    assert "Read-only file system" in result.stderr
    assert not probe.exists()
    probe.write_text("writable outside the sandbox")


def test_entrypoint_serves_with_the_deployment_args(
    image: Image, certs: Certs, service_accounts: Path, start: Starter
) -> None:
    args = local_args(deployment_args(), certs, service_accounts)
    server = start(image.entrypoint, args)
    assert server.https("GET", "/healthz")[0] == 200
    status, body = server.https("POST", "/mutate", review("team-a", "app"))
    assert status == 200, body
    response = json.loads(body)["response"]
    assert response["allowed"] is True
    assert response["patchType"] == "JSONPatch"
    with urllib.request.urlopen(f"http://127.0.0.1:{server.metrics_port}/metrics", timeout=5) as metrics:
        assert metrics.status == 200
        assert b"# TYPE" in metrics.read()
    stop(server)
    output = server.output()
    assert "Read-only file system" not in output
    assert "Traceback" not in output


def test_upstream_command_is_accepted(image: Image, certs: Certs, service_accounts: Path, start: Starter) -> None:
    """An AWS pod-identity-webhook Deployment's `/webhook` command and args, with the image swapped.

    Upstream's own port (443) and certificate directory are replaced by local ones given after its
    args, which also proves that a later flag overrides the shim's default certificate paths.
    """
    shim = image.root / SHIM.lstrip("/")
    assert os.access(shim, os.X_OK)
    extra = local_args(
        [
            "--port=443",
            "--metrics-port=9999",
            f"--tls-cert={CERT_DIR}/tls.crt",
            f"--tls-key={CERT_DIR}/tls.key",
        ],
        certs,
        service_accounts,
    )
    server = start([str(shim)], [*UPSTREAM_ARGS, *extra])
    assert server.https("GET", "/healthz")[0] == 200
    stop(server)
