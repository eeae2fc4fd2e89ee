"""One real single-node cluster on this machine: started as one, stopped as one, nothing left behind.

Only one node runs per machine (it owns the bridge, the kubepods cgroups and the node's address):
:data:`STATE_FILE` names the one running, which lets ``down()`` stop a node another process started
(``make cluster`` leaves one running; ``make cluster-down`` stops it by PID).
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import json
import os
import shutil
import signal
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from ..controlplane import ControlPlane, MissingBinaries, find_binaries
from ..paths import REPO
from ..ports import free_port
from ..procs import ManagedProcess, forget
from ..waits import wait_for
from . import components, sweep
from .containerd import Containerd
from .network import KUBERNETES_SERVICE_IP, NODE_ADDRESS, SERVICE_CIDR, NodeNetwork
from .pki import ClientCA

STATE_FILE = Path("/run/irsa-webhook-node.json")
PAUSE_IMAGE = "localhost/irsa-pause:1"
APP_IMAGE = "localhost/irsa-app:dev"  # Debian + python3 + the locked packages + this project + awscli
NODE_BINARIES = ("kubelet", "kube-controller-manager", "kube-scheduler", "kube-proxy")
IMAGE_FILES = ("pause.tar", "app.tar")
HOST_TOOLS = ("containerd", "containerd-shim-runc-v2", "runc", "ctr", "ip", "iptables", "umount")
NODE_READY_TIMEOUT = 120.0
REMEDY = "run `make node` as root (builds the node's binaries and images once; tests/node/README.md)"


class NodeUnavailable(RuntimeError):
    """A node cannot run here; the message is the one line that says why and what to do."""


@dataclass(frozen=True)
class NodeAssets:
    """Where a node's binaries and images are: kubelet & co. (``bin``), the image tarballs
    (``images``), and kube-apiserver, etcd and kubectl (``envtest``)."""

    bin: Path
    images: Path
    envtest: Path

    @classmethod
    def find(cls) -> NodeAssets:
        """IRSA_NODE_ASSETS / IRSA_NODE_IMAGES when set (CI builds them into a persistent cache), else
        .cache/node/{bin,images} where `make node` puts them; NodeUnavailable naming what is missing."""
        bin_dir = Path(os.environ.get("IRSA_NODE_ASSETS") or REPO / ".cache" / "node" / "bin")
        images = Path(os.environ.get("IRSA_NODE_IMAGES") or REPO / ".cache" / "node" / "images")
        missing = [str(bin_dir / b) for b in NODE_BINARIES if not os.access(bin_dir / b, os.X_OK)]
        missing += [str(images / f) for f in IMAGE_FILES if not (images / f).is_file()]
        try:
            envtest = find_binaries()
        except MissingBinaries as exc:
            raise NodeUnavailable(str(exc)) from None
        if missing:
            raise NodeUnavailable(f"node: missing {', '.join(missing)}: {REMEDY}")
        return cls(bin_dir, images, envtest)


def unavailable() -> str | None:
    """Why a node cannot run here (one line), or None when it can."""
    if os.geteuid() != 0:
        return "node: needs root (cgroups, mounts, a bridge): run the node tests as root, e.g. `sudo make test-node`"
    tools = [tool for tool in HOST_TOOLS if shutil.which(tool) is None]
    if tools:
        return f"node: {', '.join(tools)} not installed: {REMEDY}"
    try:
        NodeAssets.find()
    except NodeUnavailable as exc:
        return str(exc)
    return None


# --- one node per machine ---------------------------------------------------------------------------
def _program(pid: int) -> str | None:
    try:
        return Path(os.readlink(f"/proc/{pid}/exe")).name
    except OSError:
        return None


def _alive(entry: dict[str, Any]) -> bool:
    """The recorded process runs, and is the same program (a PID may have been reused)."""
    program = _program(int(entry["pid"]))
    return program is not None and program.removesuffix(" (deleted)") == entry["program"]


def read_state() -> dict[str, Any] | None:
    try:
        state: dict[str, Any] = json.loads(STATE_FILE.read_text())
    except (OSError, ValueError):
        return None
    return state


def running() -> dict[str, Any] | None:
    """The state of the node running on this machine, or None."""
    state = read_state()
    if state is None:
        return None
    owner = state.get("owner")
    if owner and _program(int(owner)) is not None and not state.get("detached"):
        return state  # a pytest run (or `python -m tests.cluster up`) still starting or using it
    return state if any(_alive(p) for p in state.get("processes", ())) else None


def down() -> list[str]:
    """Stop the node recorded in :data:`STATE_FILE`, whoever started it, and sweep; what was left."""
    state = read_state()
    if state is None:
        return []
    for entry in state.get("processes", ()):  # recorded in stop order
        if _alive(entry):
            _stop_pid(int(entry["pid"]))
    work = Path(state["work"])
    left = sweep.sweep(work, Path(state["socket"]), Path(state["proxy"]) if state.get("proxy") else None)
    STATE_FILE.unlink(missing_ok=True)
    return left


def _stop_pid(pid: int, grace: float = 15.0) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline and Path(f"/proc/{pid}").exists():
        with contextlib.suppress(ChildProcessError):
            os.waitpid(pid, os.WNOHANG)
        time.sleep(0.05)
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGKILL)


# --- the node ---------------------------------------------------------------------------------------
@dataclass
class LocalCluster:
    """A control plane and one node whose every file is under ``work``."""

    work: Path
    assets: NodeAssets
    # How long its certificates last: a test run needs a day, a cluster kept for trying out more.
    days: int = 1
    # Extra kube-apiserver flags (later flags win).
    apiserver_args: list[str] = field(default_factory=list)
    control_plane: ControlPlane | None = None
    containerd: Containerd | None = None
    processes: dict[str, ManagedProcess] = field(default_factory=dict)
    extra: list[ManagedProcess] = field(default_factory=list)  # stand-ins, a webhook: stopped first

    @property
    def address(self) -> str:
        return NODE_ADDRESS

    @property
    def plane(self) -> ControlPlane:
        """The control plane (once started)."""
        assert self.control_plane is not None, "the cluster is not started"
        return self.control_plane

    @property
    def kubeconfig(self) -> Path:
        return self.plane.kubeconfig

    def start(self) -> LocalCluster:
        if os.geteuid() != 0:
            raise NodeUnavailable(unavailable() or "node: needs root")
        self._claim()
        try:
            self._start()
        except BaseException:
            self.stop()
            raise
        return self

    def _claim(self) -> None:
        other = running()
        if other is not None:
            raise NodeUnavailable(
                f"node: one runs already on this machine (work folder {other.get('work')}): "
                "stop it with `make cluster-down`"
            )
        if read_state() is not None:
            down()  # a node that died without its clean-up: sweep what it left
        self.work.mkdir(parents=True, exist_ok=True)
        self._write_state()

    def _start(self) -> None:
        started = time.monotonic()
        network = NodeNetwork(self.work)
        network.create()
        ca = ClientCA(self.work / "pki" / "node", self.days)
        kubelet_client = ca.client("kubelet-client", f"system:node:{components.NODE_NAME}", ["system:nodes"])
        # kube-apiserver's identity towards the kubelet (logs, exec, port-forward): the kubelet asks
        # kube-apiserver whether it may, and system:masters may.
        apiserver_client = ca.client("apiserver-kubelet-client", "kube-apiserver-kubelet-client", ["system:masters"])
        kubelet_serving = ca.serving("kubelet", [NODE_ADDRESS])
        self.control_plane = ControlPlane(
            workdir=self.work / "control-plane",
            assets=self.assets.envtest,
            address=NODE_ADDRESS,
            serving_ips=(KUBERNETES_SERVICE_IP, "127.0.0.1"),
            envtest=False,
            service_cidr=SERVICE_CIDR,
            certificate_days=self.days,
            authorization_mode="Node,RBAC",
            apiserver_args=[
                "--enable-admission-plugins=NodeRestriction",
                f"--client-ca-file={ca.files.cert}",
                f"--kubelet-client-certificate={apiserver_client.cert}",
                f"--kubelet-client-key={apiserver_client.key}",
                "--kubelet-preferred-address-types=InternalIP",
                *self.apiserver_args,
            ],
        )
        self.containerd = Containerd(self.work, network.conf_dir)
        control_plane, containerd = self.control_plane, self.containerd
        # The image import (~15 s for the app image) and kube-apiserver's start overlap.
        with concurrent.futures.ThreadPoolExecutor(max_workers=1) as pool:
            plane = pool.submit(control_plane.start)
            containerd.start()
            self._record()
            containerd.import_images(*(self.assets.images / name for name in IMAGE_FILES))
            plane.result()
        self._record()
        admin = control_plane.kubeconfig
        binaries = self.assets.bin
        self._run(
            "kube-controller-manager",
            components.controller_manager_argv(
                binaries / "kube-controller-manager", admin, control_plane.ca_file, control_plane.sa_private_key
            ),
        )
        self._run("kube-scheduler", components.scheduler_argv(binaries / "kube-scheduler", admin))
        self._run("kube-proxy", components.proxy_argv(binaries / "kube-proxy", admin, free_port(), free_port()))
        kubelet_dir = self.work / "kubelet"
        kubelet_dir.mkdir(parents=True, exist_ok=True)
        kubelet_kubeconfig = kubelet_dir / "kubeconfig"
        kubelet_kubeconfig.write_text(
            components.kubeconfig(
                control_plane.server,
                control_plane.ca_file,
                {"client-certificate": str(kubelet_client.cert), "client-key": str(kubelet_client.key)},
            )
        )
        settings = components.KubeletSettings(
            address=NODE_ADDRESS,
            port=free_port(),
            healthz_port=free_port(),
            client_ca=ca.files.cert,
            tls_cert=kubelet_serving.cert,
            tls_key=kubelet_serving.key,
            runtime_endpoint=containerd.endpoint,
            pod_logs=self.work / "pod-logs",
        )
        config = kubelet_dir / "config.yaml"
        config.write_text(yaml.safe_dump(components.kubelet_config(settings)))
        self._run(
            "kubelet",
            components.kubelet_argv(
                binaries / "kubelet", config, kubelet_kubeconfig, kubelet_dir / "root", NODE_ADDRESS
            ),
        )
        self._wait_ready()
        self.seconds_to_ready = round(time.monotonic() - started, 1)

    def _run(self, name: str, argv: list[str]) -> None:
        self.processes[name] = ManagedProcess(name, argv, self.work / f"{name}.log")
        self._record()

    def _wait_ready(self) -> None:
        assert self.control_plane is not None
        plane = self.control_plane

        def ready() -> bool:
            for process in self.processes.values():
                process.check_alive()
            node = plane.kubectl("get", "node", components.NODE_NAME, "-o", "json", check=False)
            if node.returncode != 0:
                return False
            conditions = json.loads(node.stdout).get("status", {}).get("conditions", [])
            if not any(c["type"] == "Ready" and c["status"] == "True" for c in conditions):
                return False
            # A pod needs its namespace's default ServiceAccount and kube-root-ca.crt (made by
            # kube-controller-manager a moment after the namespace).
            return (
                plane.kubectl("get", "serviceaccount", "default", "-n", "default", check=False).returncode == 0
                and plane.kubectl("get", "configmap", "kube-root-ca.crt", "-n", "default", check=False).returncode == 0
            )

        wait_for(ready, timeout=NODE_READY_TIMEOUT, what="the node Ready", interval=0.5, on_timeout=self.logs)

    def logs(self) -> str:
        parts = [p.tail(30) for p in self.processes.values()]
        if self.containerd is not None and self.containerd.process is not None:
            parts.append(self.containerd.process.tail(30))
        if self.control_plane is not None:
            parts.append(self.control_plane.logs())
        return "\n".join(parts)

    def add_process(self, process: ManagedProcess) -> None:
        """Stop ``process`` (a stand-in, a webhook) with the node, before it."""
        self.extra.append(process)
        self._record()

    # -- the record of what runs -------------------------------------------------------------------
    def _stop_order(self) -> list[ManagedProcess]:
        order = [*self.extra]
        order += [
            self.processes[n]
            for n in ("kubelet", "kube-proxy", "kube-scheduler", "kube-controller-manager")
            if n in self.processes
        ]
        if self.containerd is not None and self.containerd.process is not None:
            order.append(self.containerd.process)
        if self.control_plane is not None:
            order += [p for p in (self.control_plane.apiserver, self.control_plane.etcd) if p is not None]
        return order

    def state(self) -> dict[str, Any]:
        plane = self.control_plane
        return {
            "owner": os.getpid(),
            "work": str(self.work),
            "socket": str(self.work / "containerd" / "containerd.sock"),
            "proxy": str(self.assets.bin / "kube-proxy"),
            "server": plane.server if plane else "",
            "kubeconfig": str(plane.kubeconfig) if plane and plane.kubeconfig != Path() else "",
            "processes": [{"name": p.name, "pid": p.pid, "program": _program(p.pid) or ""} for p in self._stop_order()],
        }

    def _write_state(self, **extra: Any) -> None:
        tmp = STATE_FILE.with_suffix(".tmp")
        tmp.write_text(json.dumps({**self.state(), **extra}, indent=2) + "\n")
        tmp.replace(STATE_FILE)

    def _record(self) -> None:
        self._write_state()

    def detach(self) -> dict[str, Any]:
        """Leave the node running after this process exits (``make cluster``); `down()` stops it."""
        for process in self._stop_order():
            forget(process)
        self._write_state(detached=True)
        state = read_state()
        assert state is not None
        return state

    # -- stopping --------------------------------------------------------------------------------------
    def stop(self) -> list[str]:
        """Stop everything (by PID, in order) and sweep; what could not be removed (empty: clean)."""
        for process in self._stop_order():
            process.stop()
        left = sweep.sweep(self.work, self.work / "containerd" / "containerd.sock", self.assets.bin / "kube-proxy")
        state = read_state()
        if state is not None and state.get("owner") == os.getpid():
            STATE_FILE.unlink(missing_ok=True)
        return left

    def leftovers(self) -> list[str]:
        return sweep.leftovers(self.work, self.work / "containerd" / "containerd.sock")
