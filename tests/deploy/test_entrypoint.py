"""The image's entrypoint, run as the Dockerfile writes it, on a read-only filesystem.

No Docker engine runs on these machines, so the image is rebuilt the way its Dockerfile says, in a
temporary "root": the builder stage's COPY and RUN instructions are executed with /opt/venv, the
builder's /opt/uv (and /webhook) mapped into that root, then the final stage's ENV, RUN, WORKDIR and ENTRYPOINT are read
back and used verbatim. The entrypoint then gets the base Deployment's own args (read from
manifests/base/deployment.yaml; only ports and certificate paths are swapped for local ones, plus
`--service-accounts` since there is no cluster) and must serve /healthz, /readyz, /mutate and
/metrics.

How "read-only root filesystem" is enforced: the server runs in a private mount namespace
(`unshare --mount`) in which `/` is remounted read-only, so any write anywhere on the disk (cwd,
HOME, /tmp, site-packages, a .pyc) fails with EROFS exactly as in a pod with
readOnlyRootFilesystem: true, whatever the uid. A chmod 0555 directory would not do: the tests run
as root, and root ignores permission bits. `setpriv` then drops every capability and sets
no_new_privs, like the Deployment's `capabilities: drop: [ALL]` and `allowPrivilegeEscalation:
false`. The uid stays 0 (the image's 65532 cannot read this machine's Python under /root); the
read-only mount is what makes the check real, and test_the_sandbox_refuses_writes proves it does.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import time
import tomllib
import urllib.request
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import yaml

from tests.support.paths import MANIFESTS, REPO
from tests.support.ports import free_port

DOCKERFILE = REPO / "Dockerfile"
# Paths of the image that the test maps into its temporary root.
VENV = "/opt/venv"
UV_VENV = "/opt/uv"  # the builder stage's uv, never copied into the final image
SHIM = "/webhook"
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
KNOWN_INSTRUCTIONS = {"FROM", "ARG", "ENV", "RUN", "COPY", "WORKDIR", "USER", "LABEL", "ENTRYPOINT", "CMD"}


# --- reading the Dockerfile ---------------------------------------------------------------------------
@dataclass
class Stage:
    name: str
    instructions: list[tuple[str, str]] = field(default_factory=list)

    def all(self, keyword: str) -> list[str]:
        return [rest for kw, rest in self.instructions if kw == keyword]


def parse_dockerfile(text: str) -> list[Stage]:
    """Stages of instructions (keyword, rest): continuation lines joined, comment lines dropped."""
    stages: list[Stage] = []
    logical = ""
    for line in text.splitlines():
        if line.strip().startswith("#"):
            continue
        if line.endswith("\\"):
            logical += line[:-1] + " "
            continue
        logical += line
        if logical.strip():
            keyword, _, rest = logical.strip().partition(" ")
            keyword = keyword.upper()
            assert keyword in KNOWN_INSTRUCTIONS, f"{keyword}: teach test_entrypoint.py what it means"
            if keyword == "FROM":
                parts = rest.split()
                stages.append(Stage(parts[2] if len(parts) == 3 and parts[1].upper() == "AS" else ""))
            else:
                stages[-1].instructions.append((keyword, rest.strip()))
        logical = ""
    return stages


def exec_form(rest: str) -> list[str]:
    value = json.loads(rest)
    assert isinstance(value, list), "ENTRYPOINT/CMD must be exec form (a JSON array)"
    return [str(v) for v in value]


def env_pairs(rest: str) -> dict[str, str]:
    return dict(pair.split("=", 1) for pair in shlex.split(rest))


# --- the image, rebuilt in a temporary root --------------------------------------------------------------
@dataclass
class Image:
    root: Path
    env: dict[str, str]
    workdir: Path
    entrypoint: list[str]

    def map(self, text: str) -> str:
        """Image paths -> paths under the temporary root."""
        for path in (VENV, UV_VENV):
            text = text.replace(path, str(self.root / path.lstrip("/")))
        return re.sub(r"(?<![\w/.-])/webhook(?![\w/.-])", str(self.root / SHIM.lstrip("/")), text)


def run_instruction(command: str, cwd: Path, env: dict[str, str]) -> None:
    result = subprocess.run(
        ["sh", "-c", command], cwd=cwd, env=env, capture_output=True, text=True, timeout=600, check=False
    )
    assert result.returncode == 0, f"RUN {command}\n{result.stdout}\n{result.stderr}"


def build_image(root: Path) -> Image:
    stages = parse_dockerfile(DOCKERFILE.read_text())
    assert len(stages) >= 2, "multi-stage: a builder and the final image"
    builder, final = stages[0], stages[-1]
    image = Image(root=root, env={}, workdir=root, entrypoint=[])
    # `python` of the base image is this interpreter; nothing else of the machine's PATH is needed
    # beyond the basic tools (sh, printf, chmod).
    tools = root / "_tools"
    tools.mkdir(parents=True)
    (tools / "python").symlink_to(sys.executable)
    base_env = {"PATH": f"{tools}:/usr/local/bin:/usr/bin:/bin", "LANG": "C.UTF-8"}

    context = root  # Docker's default WORKDIR is /
    env = dict(base_env)
    for keyword, rest in builder.instructions:
        if keyword == "ENV":
            env.update({k: image.map(v.replace("$PATH", env["PATH"])) for k, v in env_pairs(rest).items()})
            # The image build must not cache; this test may (the wheels are the same either way, uv
            # checks them against uv.lock's hashes), in the caches `make install` filled.
            env.pop("PIP_NO_CACHE_DIR", None)
            env.pop("UV_NO_CACHE", None)
            env.update({k: v for k, v in os.environ.items() if k in {"HOME", "XDG_CACHE_HOME", "UV_CACHE_DIR"}})
        elif keyword == "WORKDIR":
            context = root / rest.lstrip("/")
            context.mkdir(parents=True, exist_ok=True)
        elif keyword == "COPY":
            *sources, dest = shlex.split(rest)
            assert not any(s.startswith("--") for s in sources), f"COPY {rest}: only context copies here"
            target = context / dest
            for source in sources:
                path = REPO / source
                assert path.exists(), f"COPY {source}: not in the repository (the build would fail)"
                if path.is_dir():
                    shutil.copytree(path, target, ignore=shutil.ignore_patterns("__pycache__"))
                else:
                    shutil.copy2(path, target)
        elif keyword == "RUN":
            run_instruction(image.map(rest), context, env)

    env = dict(base_env)
    for keyword, rest in final.instructions:
        if keyword == "ENV":
            env.update({k: image.map(v.replace("$PATH", env["PATH"])) for k, v in env_pairs(rest).items()})
        elif keyword == "COPY":
            flags = [a for a in shlex.split(rest) if a.startswith("--")]
            paths = [a for a in shlex.split(rest) if not a.startswith("--")]
            # The only copy is the builder's venv to the same path, which the mapping already shares.
            assert flags == [f"--from={builder.name}"], rest
            assert paths == [VENV, VENV], rest
        elif keyword == "RUN":
            run_instruction(image.map(rest), root, env)
        elif keyword == "WORKDIR":
            image.workdir = root / rest.lstrip("/")
        elif keyword == "USER":
            assert rest == "65532:65532", "the Deployment's runAsUser/runAsGroup"
        elif keyword == "ENTRYPOINT":
            image.entrypoint = exec_form(rest)
        elif keyword == "CMD":
            image.entrypoint += exec_form(rest)
    image.env = env
    return image


@pytest.fixture(scope="module")
def image(tmp_path_factory: pytest.TempPathFactory) -> Image:
    """The venv of the image: built once per module (uv sync of the locked dependencies, seconds)."""
    if shutil.which("unshare") is None or shutil.which("setpriv") is None:
        pytest.fail("util-linux unshare and setpriv are needed (apt-get install util-linux)", pytrace=False)
    return build_image(tmp_path_factory.mktemp("image"))


# --- running it read-only ----------------------------------------------------------------------------------
SANDBOX = (
    # Inside a private mount namespace: `/` read-only, then no capabilities and no_new_privs.
    'mount -o remount,bind,ro / || exit 97; cd "$0" || exit 98; '
    'exec setpriv --no-new-privs --bounding-set=-all --inh-caps=-all -- "$@"'
)


def sandboxed(argv: Sequence[str], cwd: Path) -> list[str]:
    return ["unshare", "--mount", "--propagation", "private", "--", "sh", "-c", SANDBOX, str(cwd), *argv]


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
def test_dockerfile_shape() -> None:
    stages = parse_dockerfile(DOCKERFILE.read_text())
    final = stages[-1]
    assert exec_form(final.all("ENTRYPOINT")[-1]) == ["irsa-webhook", "serve"]
    assert final.all("USER") == ["65532:65532"]
    env: dict[str, str] = {}
    for rest in final.all("ENV"):
        env.update(env_pairs(rest))
    assert env["PYTHONDONTWRITEBYTECODE"] == "1"
    # Dependencies are installed before the source is copied: a source edit keeps the layer cached.
    builder = [kw + " " + rest for kw, rest in stages[0].instructions]
    deps = next(i for i, line in enumerate(builder) if "--no-install-project" in line)
    source = next(i for i, line in enumerate(builder) if line.startswith("COPY webhook"))
    assert deps < source
    # Everything comes from a lock: uv from requirements-uv.txt's hashes, the rest from uv.lock.
    installs = [line for line in builder if re.search(r"\b(pip|uv) (install|sync)\b", line)]
    assert installs
    for line in installs:
        assert "--require-hashes" in line if "pip install" in line else "--locked" in line, line
    # Base images pinned by full version (x.y.z), the same for both stages.
    bases = re.findall(r"^FROM (\S+)", DOCKERFILE.read_text(), flags=re.MULTILINE)
    assert len(set(bases)) == 1
    assert re.fullmatch(r"python:\d+\.\d+\.\d+-slim-\w+(@sha256:[0-9a-f]{64})?", bases[0])


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


def test_final_image_has_no_build_tools(image: Image) -> None:
    bin_dir = image.root / "opt/venv/bin"
    assert (bin_dir / "irsa-webhook").is_file()
    assert not (bin_dir / "pip").exists()
    assert not (bin_dir / "uv").exists(), "uv is an installer"
    site = next((image.root / "opt/venv/lib").glob("python3*/site-packages"))
    assert not list(site.glob("setuptools*")), "setuptools is a build tool"
    assert not list(site.glob("pip")), "pip is an installer"
    # Installed, not editable: the code lives in site-packages, not in the source tree.
    assert (site / "webhook" / "cli.py").is_file()
    assert not list(site.glob("__editable__*"))


def test_image_holds_the_locked_versions(image: Image) -> None:
    """Every distribution in the image is the one uv.lock names, at its version, and no dev tool."""
    locked: dict[str, set[str]] = {}
    for package in tomllib.loads((REPO / "uv.lock").read_text())["package"]:
        locked.setdefault(package["name"], set()).add(package["version"])
    site = next((image.root / "opt/venv/lib").glob("python3*/site-packages"))
    installed = {}
    for info in site.glob("*.dist-info"):
        name, version = info.name.removesuffix(".dist-info").rsplit("-", 1)
        installed[re.sub(r"[-_.]+", "-", name).lower()] = version
    assert "irsa-webhook" in installed
    assert {name: v for name, v in installed.items() if v not in locked.get(name, set())} == {}
    assert not {"pytest", "mypy", "ruff", "moto", "boto3", "checkov"} & installed.keys()


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
