"""The local node's two images (tests/node/images.sh), imported into a throwaway containerd and run
with runc as the kubelet will run them: the names `ctr images import` gives them, the app image's
Python, AWS CLI and entry points as its own uid 65532 on a read-only root, and the pause image
stopping on SIGTERM.

Building needs root (debootstrap, chroot), so do these tests; IRSA_NODE_IMAGES names a folder of
prebuilt images to use instead of building into .cache/node/images. The key logic that decides what
a build redoes is tested without root (``--plan``).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import tarfile
import tomllib
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from packaging.markers import Marker

from tests.support.moto import ACCOUNT, MotoServer
from tests.support.paths import REPO
from tests.support.procs import ManagedProcess
from tests.support.waits import wait_for

SCRIPT = REPO / "tests" / "node" / "images.sh"
PAUSE = "localhost/irsa-pause:1"
APP = "localhost/irsa-app:dev"
NAMESPACE = "k8s.io"  # the kubelet's CRI namespace, where the node imports its images
UV = REPO / ".cache" / "uv" / "bin" / "uv"
# What images.sh exports from uv.lock into the app image.
EXPORT_FLAGS = ["--extra", "provisioner", "--group", "node-image", "--no-header", "--quiet"]

root_only = pytest.mark.skipif(os.geteuid() != 0, reason="the node tests need root (debootstrap, containerd, runc)")
# A cold build debootstraps Debian and downloads every wheel (about 4 minutes here); pytest's default
# 300 s would count it against the first test that asks for the images.
slow_build = pytest.mark.timeout(1200)


# --- the images and a throwaway containerd --------------------------------------------------------------
@dataclass(frozen=True)
class Images:
    folder: Path
    printed: dict[str, str]  # {image name: manifest digest} as images.sh printed them


@pytest.fixture(scope="module")
def images() -> Images:
    prebuilt = os.environ.get("IRSA_NODE_IMAGES")
    folder = Path(prebuilt) if prebuilt else REPO / ".cache" / "node" / "images"
    if prebuilt:
        # Prebuilt: the stamp holds the lines the build printed.
        printed = "\n".join(
            line.split("=", 1)[1] for line in stamp(folder) if line.startswith(("pause.tar=", "app.tar="))
        )
    else:
        result = subprocess.run(
            ["bash", str(SCRIPT), str(folder)], capture_output=True, text=True, timeout=1800, check=False
        )
        assert result.returncode == 0, result.stderr[-4000:]
        printed = result.stdout
    for archive in ("pause.tar", "app.tar"):
        assert (folder / archive).is_file(), f"{folder} has no {archive}"
    return Images(folder, dict(line.split() for line in printed.splitlines()))


def stamp(folder: Path) -> list[str]:
    return (folder / "images.stamp").read_text().splitlines()


@dataclass(frozen=True)
class Containerd:
    address: Path

    def ctr(self, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            ["ctr", "--address", str(self.address), "--namespace", NAMESPACE, *args],
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )

    def run(self, image: str, *argv: str, read_only: bool = True) -> subprocess.CompletedProcess[str]:
        """ARGV in a new container of IMAGE (its ENV, USER and WORKDIR), removed afterwards."""
        flags = ["--read-only"] if read_only else []
        return self.ctr("run", "--rm", *flags, image, f"t-{uuid.uuid4().hex[:12]}", *argv)


def apt_install(*packages: str) -> None:
    """Install Debian PACKAGES with no service started (policy-rc.d): this test starts its own."""
    policy = Path("/usr/sbin/policy-rc.d")
    made = not policy.exists()
    if made:
        policy.write_text("#!/bin/sh\n# tests/node: install packages, start no service\nexit 101\n")
        policy.chmod(0o755)
    env = os.environ | {"DEBIAN_FRONTEND": "noninteractive"}
    apt = ["apt-get", "-qq", "-o", "DPkg::Lock::Timeout=300"]
    try:
        for argv in ([*apt, "update"], [*apt, "install", "-y", "--no-install-recommends", *packages]):
            result = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=900, check=False)
            assert result.returncode == 0, f"{argv}: {result.stderr}"
    finally:
        if made:
            policy.unlink()


CONFIG = """\
version = 2
root = "{dir}/root"
state = "{dir}/state"
# Images and plain containers only: the CRI plugin (a node's business) would want CNI and a kubelet.
disabled_plugins = ["io.containerd.grpc.v1.cri"]

[grpc]
  address = "{dir}/containerd.sock"

[ttrpc]
  address = "{dir}/containerd.sock.ttrpc"

[plugins."io.containerd.internal.v1.opt"]
  path = "{dir}/opt"
"""


@pytest.fixture(scope="module")
def containerd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Containerd]:
    if not all(shutil.which(tool) for tool in ("containerd", "ctr", "runc")):
        apt_install("containerd", "runc")
    folder = tmp_path_factory.mktemp("containerd")
    (folder / "config.toml").write_text(CONFIG.format(dir=folder))
    process = ManagedProcess(
        "containerd", ["containerd", "--config", str(folder / "config.toml")], folder / "containerd.log"
    )
    daemon = Containerd(folder / "containerd.sock")

    def answers() -> bool:
        process.check_alive()
        return daemon.ctr("version", timeout=10).returncode == 0

    try:
        wait_for(answers, timeout=30, what="containerd to answer", on_timeout=process.tail)
        yield daemon
    finally:
        # Shims outlive containerd by design: end every task first, then containerd, then any mount left.
        for task in daemon.ctr("tasks", "ls", "--quiet").stdout.split():
            daemon.ctr("tasks", "delete", "--force", task)
            daemon.ctr("containers", "delete", task)
        process.stop()
        for mount in reversed(Path("/proc/self/mountinfo").read_text().splitlines()):
            point = mount.split()[4]
            if point.startswith(f"{folder}/"):
                subprocess.run(["umount", "--lazy", point], check=False, timeout=30)


@pytest.fixture(scope="module")
def imported(images: Images, containerd: Containerd) -> dict[str, str]:
    """{name: digest} of the images `ctr images import` made of the two archives, nothing else passed."""
    for archive in ("pause.tar", "app.tar"):
        result = containerd.ctr("images", "import", str(images.folder / archive), timeout=300)
        assert result.returncode == 0, result.stderr
    listing = containerd.ctr("images", "ls")
    assert listing.returncode == 0, listing.stderr
    # REF TYPE DIGEST SIZE PLATFORMS LABELS
    return {line.split()[0]: line.split()[2] for line in listing.stdout.splitlines()[1:]}


# --- reading the archives ---------------------------------------------------------------------------
def archive_json(archive: Path, name: str) -> Any:
    with tarfile.open(archive) as tar:
        member = tar.extractfile(name)
        assert member is not None, name
        return json.load(member)


def blob_name(digest: str) -> str:
    return "blobs/sha256/" + digest.removeprefix("sha256:")


def image_parts(archive: Path) -> tuple[dict[str, Any], dict[str, Any], list[tarfile.TarInfo]]:
    """The archive's only manifest, its config and the members of its top layer (reading the base
    layer too would gunzip some 400 MB, ten seconds on this machine)."""
    (descriptor,) = archive_json(archive, "index.json")["manifests"]
    manifest = archive_json(archive, blob_name(descriptor["digest"]))
    config = archive_json(archive, blob_name(manifest["config"]["digest"]))
    with tarfile.open(archive) as tar:
        data = tar.extractfile(blob_name(manifest["layers"][-1]["digest"]))
        assert data is not None
        with tarfile.open(fileobj=data, mode="r:gz") as members:
            return manifest, config, members.getmembers()


def final_stage() -> str:
    """The Dockerfile's last stage: the image the chart runs when it runs the Dockerfile's."""
    return re.split(r"^FROM ", (REPO / "Dockerfile").read_text(), flags=re.MULTILINE)[-1]


def exported_requirements() -> dict[str, str]:
    """{name: version} images.sh installs: uv.lock's export for the app image."""
    text = subprocess.run(
        [str(UV), "export", "--project", str(REPO), "--frozen", "--no-dev", "--no-emit-project", *EXPORT_FLAGS],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    ).stdout
    found = {}
    for line in text.splitlines():
        match = re.match(r"([A-Za-z0-9_.-]+)==(\S+)(\s*;\s*(.*?))?\s*\\?$", line)
        # The image is CPython on Linux like this interpreter: the markers evaluate the same here.
        if match and (not match.group(4) or Marker(match.group(4)).evaluate()):
            found[normalized(match.group(1))] = match.group(2)
    return found


def normalized(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


# --- the node tests --------------------------------------------------------------------------------------
@pytest.mark.node
@root_only
@slow_build
def test_import_names_each_image_as_built(images: Images, imported: dict[str, str]) -> None:
    """`ctr images import` with no --base-name names both images in full, at the digests the build
    printed (and nothing else: no `import-<date>` names, no digest-only images)."""
    assert imported == images.printed
    assert set(imported) == {PAUSE, APP}


@pytest.mark.node
@root_only
@slow_build
@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        pytest.param(
            ["python", "-c", "import os, sys, boto3, webhook; print(os.getuid(), os.getgid(), sys.prefix)"],
            "65532 65532 /opt/irsa-webhook",
            id="python-boto3-webhook",
        ),
        pytest.param(["aws", "--version"], "aws-cli/", id="aws"),
        pytest.param(["irsa-webhook", "--help"], "serve", id="irsa-webhook"),
        # The Dockerfile's upstream-compatible shim: `irsa-webhook serve` with the certificate flags.
        pytest.param(["/webhook", "--help"], "--tls-cert", id="webhook-shim"),
    ],
)
def test_app_image_runs_as_its_user_on_a_read_only_root(
    containerd: Containerd, imported: dict[str, str], argv: list[str], expected: str
) -> None:
    result = containerd.run(APP, *argv)
    assert result.returncode == 0, result.stderr
    assert expected in result.stdout + result.stderr
    assert "Read-only file system" not in result.stderr


@pytest.mark.node
@root_only
@slow_build
def test_the_aws_cli_can_cache_credentials(containerd: Containerd, imported: dict[str, str]) -> None:
    """The AWS CLI writes what its web-identity provider gets from STS to ~/.aws/cli/cache, and a
    failure to create that folder fails the command: as uid 65532 on a pod's (writable) root, HOME
    must be a place that user can write."""
    probe = (
        "import os; from awscli.customizations.assumerole import CACHE_DIR; "
        "from botocore.credentials import JSONFileCache; "
        "JSONFileCache(CACHE_DIR)['probe'] = {'Credentials': {}}; print(os.getuid(), CACHE_DIR)"
    )
    result = containerd.run(APP, "python", "-c", probe, read_only=False)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["65532", "/tmp/.aws/cli/cache"]


@pytest.mark.node
@root_only
@slow_build
def test_the_aws_cli_assumes_a_role_with_a_web_identity_token(
    containerd: Containerd, imported: dict[str, str], tmp_path: Path
) -> None:
    """What `make cluster` shows in a pod, here with the environment and token the webhook and the
    kubelet would give it, and moto's STS on this machine's loopback (host network)."""
    moto = MotoServer(tmp_path)
    try:
        tokens = tmp_path / "token"
        tokens.mkdir(mode=0o755)
        (tokens / "token").write_text("header.payload.signature")  # moto does not verify it
        (tokens / "token").chmod(0o644)
        mounted = "/var/run/secrets/eks.amazonaws.com/serviceaccount"
        env = {
            "AWS_ROLE_ARN": f"arn:aws:iam::{ACCOUNT}:role/demo",
            "AWS_WEB_IDENTITY_TOKEN_FILE": f"{mounted}/token",
            "AWS_DEFAULT_REGION": "us-east-1",
            "AWS_ENDPOINT_URL": moto.url,
        }
        result = containerd.ctr(
            "run",
            "--rm",
            "--net-host",
            "--mount",
            f"type=bind,src={tokens},dst={mounted},options=rbind:ro",
            *(f"--env={name}={value}" for name, value in env.items()),
            APP,
            f"t-{uuid.uuid4().hex[:12]}",
            "aws",
            "sts",
            "get-caller-identity",
        )
    finally:
        moto.stop()
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["Arn"].startswith(f"arn:aws:sts::{ACCOUNT}:assumed-role/demo/")


@pytest.mark.node
@root_only
@slow_build
def test_app_image_holds_exactly_the_locked_packages(containerd: Containerd, imported: dict[str, str]) -> None:
    probe = "import json, importlib.metadata as m; print(json.dumps({d.name: d.version for d in m.distributions()}))"
    result = containerd.run(APP, "python", "-c", probe)
    assert result.returncode == 0, result.stderr
    installed = {normalized(name): version for name, version in json.loads(result.stdout).items()}
    project = installed.pop("irsa-webhook")
    assert project == tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["version"]
    assert installed == exported_requirements()
    assert {"boto3", "awscli"} <= installed.keys()


@pytest.mark.node
@root_only
@slow_build
def test_app_image_is_the_dockerfiles_in_place(images: Images) -> None:
    """The chart can run it instead of the Dockerfile's image: same ENTRYPOINT, USER and environment
    (bar the venv's path); and the package is a top layer of its own, so a code edit rebuilds that alone."""
    manifest, config, top = image_parts(images.folder / "app.tar")
    stage = final_stage()
    (entrypoint,) = re.findall(r"^ENTRYPOINT (.+)$", stage, flags=re.MULTILINE)
    assert config["config"]["Entrypoint"] == json.loads(entrypoint)
    (user,) = re.findall(r"^USER (\S+)$", stage, flags=re.MULTILINE)
    assert config["config"]["User"] == user
    env = dict(item.split("=", 1) for item in config["config"]["Env"])
    for name in ("PYTHONDONTWRITEBYTECODE", "PYTHONUNBUFFERED"):
        (value,) = re.findall(rf"\b{name}=(\S+)", stage)
        assert env[name] == value, name
    assert env["PATH"].startswith("/opt/irsa-webhook/bin:")
    assert env["HOME"] == "/tmp", "the AWS CLI's cache (test_the_aws_cli_can_cache_credentials)"

    base_size, top_size = (layer["size"] for layer in manifest["layers"])
    assert base_size > 50_000_000
    assert top_size < 2_000_000, "the top layer holds the package alone"
    top_files = {m.name.removeprefix("./") for m in top if m.isfile()}
    assert "webhook" in top_files
    assert "opt/irsa-webhook/bin/irsa-webhook" in top_files
    assert "opt/irsa-webhook/lib/python3.11/site-packages/webhook/cli.py" in top_files
    # Byte-compiled: on a read-only root, with PYTHONDONTWRITEBYTECODE, nothing would write them later.
    assert "opt/irsa-webhook/lib/python3.11/site-packages/webhook/__pycache__/cli.cpython-311.pyc" in top_files
    assert {name.split("/")[0] for name in top_files} == {"opt", "webhook"}
    # Owned by root and readable by anyone: uid 65532 runs it, nobody may change it.
    assert all(m.uid == 0 and m.gid == 0 for m in top)
    assert all(m.mode & 0o004 for m in top if m.isfile())


@pytest.mark.node
@root_only
@slow_build
def test_pause_image_is_one_static_file_that_stops_on_sigterm(
    images: Images, containerd: Containerd, imported: dict[str, str], tmp_path: Path
) -> None:
    manifest, config, layer = image_parts(images.folder / "pause.tar")
    assert config["config"]["Entrypoint"] == ["/pause"]
    assert len(manifest["layers"]) == 1
    assert [m.name.removeprefix("./") for m in layer if not m.isdir()] == ["pause"]
    assert manifest["layers"][0]["size"] < 1_000_000

    name = f"pause-{uuid.uuid4().hex[:12]}"
    process = ManagedProcess(
        "pause",
        ["ctr", "--address", str(containerd.address), "--namespace", NAMESPACE, "run", "--rm", PAUSE, name],
        tmp_path / "pause.log",
    )
    try:

        def running() -> bool:
            process.check_alive()
            return "RUNNING" in containerd.ctr("tasks", "ls").stdout

        wait_for(running, timeout=30, what="the pause container to run", on_timeout=process.tail)
        # PID 1 of a PID namespace ignores a signal it has no handler for: exiting 0, at once, shows
        # pause's own handler (a default-action death would be 143, or never with no handler).
        assert containerd.ctr("tasks", "kill", "--signal", "SIGTERM", name).returncode == 0
        assert process.proc.wait(timeout=10) == 0
    finally:
        process.stop(grace=5)


# --- without root ------------------------------------------------------------------------------------------
KEY_INPUTS = [
    "tests/node/images.sh",
    "tests/node/pause.c",
    "webhook",
    "pyproject.toml",
    "README.md",
    "Dockerfile",
    "uv.lock",
]


def plan(repo: Path, out: Path) -> dict[str, tuple[str, str]]:
    """{part: (key, fresh|stale)} as `images.sh --plan` reports them (it builds nothing)."""
    result = subprocess.run(
        ["bash", str(repo / "tests/node/images.sh"), "--plan", str(out)],
        env=os.environ | {"UV": str(UV)},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    return {part: (key, state) for part, key, state in (line.split() for line in result.stdout.splitlines())}


def test_a_code_edit_rebuilds_only_the_top_layer(tmp_path: Path) -> None:
    """The keys of the three parts: an edit of webhook/ makes the app stale alone (its top layer), of
    pause.c the pause image alone, and a change in uv.lock the base (and the app on top of it)."""
    assert UV.is_file(), "make install brings the pinned uv"
    repo, out = tmp_path / "repo", tmp_path / "out"
    for name in KEY_INPUTS:
        source, target = REPO / name, repo / name
        target.parent.mkdir(parents=True, exist_ok=True)
        if source.is_dir():
            shutil.copytree(source, target, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy2(source, target)
    cold = plan(repo, out)
    assert {part: state for part, (_, state) in cold.items()} == {"pause": "stale", "base": "stale", "app": "stale"}
    # As a build leaves it: the stamp, the archives and the cached base.
    out.mkdir()
    (out / "images.stamp").write_text("".join(f"{part}={key}\n" for part, (key, _) in cold.items()))
    for made in ("pause.tar", "app.tar"):
        (out / made).touch()
    for made in ("base/rootfs", "base/oci"):
        (out / made).mkdir(parents=True)
    assert {part: state for part, (_, state) in plan(repo, out).items()} == {
        "pause": "fresh",
        "base": "fresh",
        "app": "fresh",
    }

    cli = repo / "webhook" / "cli.py"
    cli.write_text(cli.read_text() + "\n# an edit\n")
    assert [part for part, (_, state) in plan(repo, out).items() if state == "stale"] == ["app"]
    cli.write_text(cli.read_text().removesuffix("\n# an edit\n"))

    pause = repo / "tests" / "node" / "pause.c"
    pause.write_text(pause.read_text() + "/* an edit */\n")
    assert [part for part, (_, state) in plan(repo, out).items() if state == "stale"] == ["pause"]
    pause.write_text(pause.read_text().removesuffix("/* an edit */\n"))

    lock = repo / "uv.lock"
    (awscli_hash,) = re.findall(r'awscli-[^"]+\.whl", hash = "sha256:([0-9a-f]+)"', lock.read_text())
    lock.write_text(lock.read_text().replace(awscli_hash, "0" * 64))
    assert [part for part, (_, state) in plan(repo, out).items() if state == "stale"] == ["base", "app"]

    # The base rootfs gone: rebuilt whatever the stamp says.
    lock.write_text(lock.read_text().replace("0" * 64, awscli_hash))
    shutil.rmtree(out / "base" / "rootfs")
    assert [part for part, (_, state) in plan(repo, out).items() if state == "stale"] == ["base", "app"]


def test_without_root_the_build_says_so_and_succeeds(tmp_path: Path) -> None:
    argv = ["bash", str(SCRIPT), str(tmp_path / "out")]
    if os.geteuid() == 0:
        # As nobody: the script must stop before it writes anything, OUT_DIR included.
        argv = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", *argv]
    result = subprocess.run(argv, capture_output=True, text=True, timeout=60, check=False)
    assert (result.returncode, result.stdout, result.stderr) == (
        0,
        "images: not root, skipping (the node tests need root)\n",
        "",
    )
    assert not (tmp_path / "out").exists()
