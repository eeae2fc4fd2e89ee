"""containerd for the local node: Debian's containerd 1.6 with a private root, state and socket, so it
never meets a system containerd (none needs to run, and none is touched if one does).

Two settings are not defaults, both found on the machines this runs on:

- ``restrict_oom_score_adj``: a VM's root may lack CAP_SYS_RESOURCE, and then every pod sandbox fails
  ("failed to update /proc/self/oom_score_adj: Permission denied") unless containerd keeps each
  container's oom_score_adj at or above its own;
- ``netns_mounts_under_state_dir``: the pods' network namespaces are bind-mounted under this
  containerd's state folder instead of the shared /var/run/netns, so the sweep finds every one of them.

Images come from tarballs (tests/node/images.sh), never a registry: pods use ``imagePullPolicy: Never``.
"""

from __future__ import annotations

import subprocess
from dataclasses import dataclass
from pathlib import Path

from ..procs import ManagedProcess
from ..waits import wait_for

PAUSE_IMAGE = "localhost/irsa-pause:1"
CNI_BIN_DIR = Path("/usr/lib/cni")
NAMESPACE = "k8s.io"  # the containerd namespace the CRI plugin works in
IMPORT_TIMEOUT = 300.0


def toml_string(value: str) -> str:
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


@dataclass
class Containerd:
    work: Path
    cni_conf_dir: Path
    process: ManagedProcess | None = None

    @property
    def folder(self) -> Path:
        return self.work / "containerd"

    @property
    def socket(self) -> Path:
        return self.folder / "containerd.sock"

    @property
    def state(self) -> Path:
        return self.folder / "state"

    @property
    def runc_root(self) -> Path:
        return self.folder / "runc"

    @property
    def endpoint(self) -> str:
        return f"unix://{self.socket}"

    def config(self) -> str:
        s = toml_string
        return "\n".join(
            [
                "version = 2",
                f"root = {s(str(self.folder / 'root'))}",
                f"state = {s(str(self.state))}",
                # Plugins a node never uses here; opt would write into /opt/containerd.
                'disabled_plugins = ["io.containerd.internal.v1.opt", "io.containerd.snapshotter.v1.aufs",'
                ' "io.containerd.snapshotter.v1.btrfs", "io.containerd.snapshotter.v1.devmapper",'
                ' "io.containerd.snapshotter.v1.zfs", "io.containerd.tracing.processor.v1.otlp"]',
                "[grpc]",
                f"  address = {s(str(self.socket))}",
                "[ttrpc]",
                f"  address = {s(str(self.socket) + '.ttrpc')}",
                '[plugins."io.containerd.grpc.v1.cri"]',
                f"  sandbox_image = {s(PAUSE_IMAGE)}",
                "  restrict_oom_score_adj = true",
                "  netns_mounts_under_state_dir = true",
                '[plugins."io.containerd.grpc.v1.cri".containerd]',
                '  snapshotter = "overlayfs"',
                '  default_runtime_name = "runc"',
                '[plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]',
                '  runtime_type = "io.containerd.runc.v2"',
                '[plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]',
                # The kubelet is configured with the cgroupfs driver: both must agree.
                "  SystemdCgroup = false",
                f"  Root = {s(str(self.runc_root))}",
                '[plugins."io.containerd.grpc.v1.cri".cni]',
                f"  bin_dir = {s(str(CNI_BIN_DIR))}",
                f"  conf_dir = {s(str(self.cni_conf_dir))}",
                "",
            ]
        )

    def start(self) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        config = self.folder / "config.toml"
        config.write_text(self.config())
        self.process = ManagedProcess(
            "containerd", ["containerd", "--config", str(config)], self.work / "containerd.log"
        )
        process = self.process

        def serving() -> bool:
            process.check_alive()
            return self.ctr("version", check=False).returncode == 0

        wait_for(serving, timeout=60, what="containerd", on_timeout=process.tail)

    def ctr(self, *args: str, check: bool = True, timeout: float = 60.0) -> subprocess.CompletedProcess[str]:
        argv = ["ctr", "--address", str(self.socket), "--namespace", NAMESPACE, *args]
        result = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, check=False)
        if check and result.returncode != 0:
            raise RuntimeError(f"{' '.join(argv)} failed ({result.returncode}): {result.stderr}{result.stdout}")
        return result

    def import_images(self, *tarballs: Path) -> None:
        for tarball in tarballs:
            self.ctr("images", "import", str(tarball), timeout=IMPORT_TIMEOUT)

    def images(self) -> list[str]:
        return self.ctr("images", "list", "--quiet").stdout.split()

    def stop(self) -> None:
        if self.process is not None:
            self.process.stop()
