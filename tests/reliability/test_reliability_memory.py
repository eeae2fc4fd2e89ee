"""One tenant cannot run the webhook out of memory, against a real kube-apiserver + etcd.

Anyone with ``edit`` in one namespace may give each ServiceAccount 256 KiB of annotations, and
kube-apiserver accepts as many such accounts as no ResourceQuota forbids. About 250 accounts with a
255 KiB ``role-arn`` once pushed the peak of every replica's list to 273 MiB, over the shipped 256Mi
limit: a replica that lists (startup, rollout, relist after a 410) was killed before it was ready,
and so was ``irsa-webhook audit``. Here a real ``serve`` process lists them and becomes ready, and a
real ``audit`` process lists them and exits; the peak resident memory of each (VmHWM of its own address space) must
stay well under that limit.
"""

from __future__ import annotations

import secrets
import subprocess
import sys
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from tests.support import kuberest as k
from tests.support.certs import Certs
from tests.support.controlplane import ControlPlane
from tests.support.paths import MANIFESTS
from tests.support.server import Server

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(300)]

ACCOUNTS = 250
# kube-apiserver allows 256 KiB of annotations per object, keys and values together: one 255 KiB
# value leaves room for the key.
ROLE_ARN_CHARS = 255 * 1024
# Creating the accounts is I/O for this process and CPU for etcd and kube-apiserver: a few threads
# keep both busy without starving the 2-core machine this runs on.
CREATE_THREADS = 4
MIB = 1024 * 1024
# The shipped memory limit is 256Mi. Either process peaks at about 165 MiB listing an empty cluster
# (importing the kubernetes client is most of it); on top of that a list may cost a page, not the
# cluster. Before pages were small and long values dropped, serve peaked at 343 MiB here, audit at 304.
PEAK_LIMIT = 192 * MIB
AUDIT_TIMEOUT = 120.0


def huge_role_arn(index: int) -> str:
    """A role ARN of ROLE_ARN_CHARS characters, a different one per account (nothing can be shared)."""
    head = f"arn:aws:iam::123456789012:role/memory-{index:04d}-"
    return head + "a" * (ROLE_ARN_CHARS - len(head))


def create_huge_accounts(plane: ControlPlane, namespace: str) -> float:
    """ACCOUNTS ServiceAccounts in ``namespace``, each with a ROLE_ARN_CHARS ``role-arn``; the seconds it took."""
    kube = k.KubeRest(plane.server, plane.token, plane.ca_file)
    started = time.monotonic()
    try:
        kube.create_namespace(namespace, {})

        def create(index: int) -> None:
            kube.create_service_account(namespace, f"huge-{index:04d}", {k.ROLE_ANNOTATION: huge_role_arn(index)})

        with ThreadPoolExecutor(CREATE_THREADS) as pool:
            list(pool.map(create, range(ACCOUNTS)))
    finally:
        kube.close()
    return time.monotonic() - started


def high_water_mark(pid: int) -> int:
    """The peak resident memory of a running process, in bytes (VmHWM of /proc/<pid>/status)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024  # kB
    raise AssertionError(f"/proc/{pid}/status has no VmHWM")


# Runs `python -m webhook ARGS` and writes the process's own VmHWM to a file when it exits. Not
# ru_maxrss from wait4: Linux carries the parent's high-water mark over a fork and exec into the
# child's (signal->maxrss), so after a thousand tests in this pytest process a 160 MiB audit read as
# 400 MiB. VmHWM is the new address space's alone.
_HIGH_WATER_PROBE = """
import atexit, runpy, sys
out = sys.argv.pop(1)
def write_high_water_mark():
    with open("/proc/self/status") as status, open(out, "w") as written:
        written.write(next(line for line in status if line.startswith("VmHWM:")))
atexit.register(write_high_water_mark)
runpy.run_module("webhook", run_name="__main__")
"""


def run_audit_peak(kubeconfig: Path, workdir: Path) -> tuple[int, int, str]:
    """``irsa-webhook audit`` run to its end: (exit code, peak resident bytes, stderr)."""
    probe = workdir / "audit-vmhwm"
    result = subprocess.run(
        [sys.executable, "-c", _HIGH_WATER_PROBE, str(probe), "audit", "--kubeconfig", str(kubeconfig)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        timeout=AUDIT_TIMEOUT,
        check=False,
    )
    assert probe.exists(), result.stderr.decode(errors="replace")
    kib = int(probe.read_text().split()[1])  # "VmHWM:   165432 kB"
    return result.returncode, kib * 1024, result.stderr.decode(errors="replace")


def test_250_maximum_size_service_accounts_fit_serve_and_audit(
    control_planes: Callable[..., ControlPlane], reliability_certs: Certs, tmp_path: Path
) -> None:
    plane = control_planes()
    namespace = f"memory-{secrets.token_hex(3)}"
    took = create_huge_accounts(plane, namespace)
    print(f"created {ACCOUNTS} ServiceAccounts of {ROLE_ARN_CHARS // 1024} KiB in {took:.1f}s")

    # serve: /readyz is 200 only once the first list has completed, so VmHWM then covers the list.
    server = Server(tmp_path / "serve", reliability_certs, kubeconfig=plane.kubeconfig, bind_address=None)
    try:
        server.start()
        serve_peak = high_water_mark(server.proc.pid)
        assert server.metric("irsa_webhook_service_account_cache_size") == ACCOUNTS
    finally:
        server.stop()

    # The audit reads which pods the webhook is called for from its configuration: the shipped one.
    plane.kubectl("apply", "-f", str(MANIFESTS / "base" / "mutating_webhook.yaml"))
    code, audit_peak, stderr = run_audit_peak(plane.kubeconfig, tmp_path)
    assert code == 0, stderr  # no pods: nothing found
    print(f"peak RSS: serve {serve_peak / MIB:.1f} MiB, audit {audit_peak / MIB:.1f} MiB")

    assert serve_peak < PEAK_LIMIT, f"serve peaked at {serve_peak / MIB:.1f} MiB listing {ACCOUNTS} accounts"
    assert audit_peak < PEAK_LIMIT, f"audit peaked at {audit_peak / MIB:.1f} MiB listing {ACCOUNTS} accounts"
