"""Leave nothing behind: the clean-up after a node stops (or after one that died), and the check that
it worked.

What a node makes outside its own folder: processes in the kubelet's ``kubepods`` cgroups (the pods'
containers) and containerd's shims (children of containerd that outlive it by design), the ``kubepods``
cgroups themselves in every hierarchy, iptables chains (kube-proxy's and the kubelet's), and the
bridge. Inside its folder: mounts (overlay root filesystems, network namespaces, the volumes the kubelet
mounts for each pod) that must be unmounted before the folder can go.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

from .network import BRIDGE, link_exists

CGROUP_ROOT = Path("/sys/fs/cgroup")
KUBEPODS = "kubepods"
# The chains the kubelet makes (kube-proxy's are removed by `kube-proxy --cleanup`).
KUBELET_CHAINS = {
    "filter": ("KUBE-FIREWALL", "KUBE-KUBELET-CANARY"),
    "mangle": ("KUBE-IPTABLES-HINT", "KUBE-KUBELET-CANARY"),
    "nat": ("KUBE-KUBELET-CANARY", "KUBE-MARK-DROP", "KUBE-MARK-MASQ", "KUBE-POSTROUTING"),
}


def _cgroup_dirs() -> Iterator[Path]:
    """Every kubepods cgroup folder in every hierarchy, deepest first."""
    for hierarchy in sorted(CGROUP_ROOT.iterdir()) if CGROUP_ROOT.is_dir() else ():
        top = hierarchy / KUBEPODS
        if top.is_dir():
            found = [Path(dirpath) for dirpath, _, _ in os.walk(top)]
            yield from sorted(found, key=lambda p: len(p.parts), reverse=True)


def pod_processes() -> set[int]:
    pids: set[int] = set()
    for folder in _cgroup_dirs():
        with contextlib.suppress(OSError):
            pids.update(int(line) for line in (folder / "cgroup.procs").read_text().split())
    return pids


def shim_processes(socket: Path) -> set[int]:
    """The containerd shims started by the containerd listening on ``socket`` (by their argv)."""
    pids: set[int] = set()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            argv = (entry / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if argv and b"containerd-shim" in argv[0] and str(socket).encode() in argv:
            pids.add(int(entry.name))
    return pids


def mounts_under(folder: Path) -> list[str]:
    """Mount points at or below ``folder``, deepest first (mountinfo escapes spaces as \\040)."""
    prefix = str(folder.resolve())
    points = []
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        point = line.split()[4].replace("\\040", " ")
        if point == prefix or point.startswith(prefix + "/"):
            points.append(point)
    return sorted(set(points), key=lambda p: p.count("/"), reverse=True)


def _iptables_chains(binary: str) -> list[str]:
    try:
        result = subprocess.run([f"{binary}-save"], capture_output=True, text=True, timeout=30, check=False)
    except FileNotFoundError:
        return []
    return [line[1:].split()[0] for line in result.stdout.splitlines() if line.startswith(":KUBE-")]


def kill_all(pids: set[int]) -> None:
    for pid in pids:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, signal.SIGKILL)


def wait_gone(pids: set[int], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while pids and time.monotonic() < deadline:
        pids = {pid for pid in pids if Path(f"/proc/{pid}").exists()}
        time.sleep(0.05)


def sweep(work: Path, socket: Path, proxy: Path | None) -> list[str]:
    """Remove everything a node in ``work`` (containerd on ``socket``) left; what could not be removed.

    Its processes must be stopped first (kubelet first, so nothing restarts a container)."""
    for _ in range(3):  # a container forking while being killed
        pids = pod_processes() | shim_processes(socket)
        if not pids:
            break
        kill_all(pids)
        wait_gone(pids)
    for point in mounts_under(work):
        subprocess.run(["umount", "--lazy", point], capture_output=True, timeout=30, check=False)
    for folder in _cgroup_dirs():
        # A cgroup is removed with rmdir once empty (its files are not real files).
        with contextlib.suppress(OSError):
            folder.rmdir()
    if proxy is not None and proxy.exists():
        subprocess.run([str(proxy), "--cleanup", "--proxy-mode=iptables"], capture_output=True, timeout=60, check=False)
    for binary in ("iptables", "ip6tables"):
        for table, chains in KUBELET_CHAINS.items():
            for chain in chains:
                _iptables(binary, table, chain)
    if link_exists(BRIDGE):
        subprocess.run(["ip", "link", "del", BRIDGE], capture_output=True, timeout=30, check=False)
    return leftovers(work, socket)


def _iptables(binary: str, table: str, chain: str) -> None:
    """Unhook ``chain`` from every built-in chain that jumps to it, then flush and delete it."""
    try:
        rules = subprocess.run(
            [binary, "-t", table, "-S"], capture_output=True, text=True, timeout=30, check=False
        ).stdout.splitlines()
    except FileNotFoundError:
        return
    for rule in rules:
        parts = rule.split()
        if parts[:1] == ["-A"] and "-j" in parts and parts[parts.index("-j") + 1] == chain:
            subprocess.run([binary, "-t", table, "-D", *parts[1:]], capture_output=True, timeout=30, check=False)
    if f"-N {chain}" in rules:
        subprocess.run([binary, "-t", table, "-F", chain], capture_output=True, timeout=30, check=False)
        subprocess.run([binary, "-t", table, "-X", chain], capture_output=True, timeout=30, check=False)


def leftovers(work: Path, socket: Path) -> list[str]:
    """What of a node is still there: empty when the machine is as before it started."""
    found = [f"mount {point}" for point in mounts_under(work)] if work.exists() else []
    found += [f"pod process {pid}" for pid in sorted(pod_processes())]
    found += [f"shim process {pid}" for pid in sorted(shim_processes(socket))]
    found += [f"cgroup {folder}" for folder in _cgroup_dirs()]
    found += [f"{binary} chain {chain}" for binary in ("iptables", "ip6tables") for chain in _iptables_chains(binary)]
    if link_exists(BRIDGE):
        found.append(f"link {BRIDGE}")
    return found
