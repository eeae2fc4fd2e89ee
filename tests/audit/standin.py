"""The stand-in API server (``tests.support.kubeapi``) as the audit tests use it: what an in-process
audit against it returns, and generated clusters for the scale test, pods as a kubelet-updated pod
looks (status, labels, annotations; about 2.5 KB of JSON each), made one at a time when a page asks
for them.

``python -m tests.audit.standin --generate N`` serves N generated pods until stdin closes; the first
line on stdout is the URL, and GET /debug/requests gives the request log.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence
from typing import Any, overload

from tests.support.kubeapi import FakeApiServer, FakeCluster, pod, service_account

# ``audit(*args) -> (exit code, stdout, stderr)``: `irsa-webhook audit --kubeconfig <the stand-in's> ARGS`
Audit = Callable[..., tuple[int, str, str]]

ROLE = "arn:aws:iam::111122223333:role/app"
NAMESPACES = 20
LACKING_EVERY = 1000  # one pod in this many was admitted without the webhook: web-00007, web-01007, ...
LACKING_AT = 7


def realistic(index: int) -> dict[str, Any]:
    """Pod number ``index``: mutated with ROLE, but for one in LACKING_EVERY, never mutated."""
    name = f"web-{index:05d}"
    lacking = index % LACKING_EVERY == LACKING_AT
    stored = pod(f"team-{index % NAMESPACES:02d}", name, role=None if lacking else ROLE)
    stored["metadata"]["labels"] = {"app.kubernetes.io/name": "web", "pod-template-hash": "7d9f8c6b5d", "tier": "api"}
    stored["metadata"]["annotations"] = {"kubectl.kubernetes.io/restartedAt": "2024-05-01T10:00:00Z"}
    stored["metadata"]["resourceVersion"] = str(100000 + index)
    stored["metadata"]["creationTimestamp"] = "2024-05-01T10:00:00Z"
    conditions = ("PodReadyToStartContainers", "Initialized", "Ready", "ContainersReady", "PodScheduled")
    ip = f"10.1.{index // 250}.{index % 250}"
    stored["status"] |= {
        "conditions": [
            {"type": c, "status": "True", "lastProbeTime": None, "lastTransitionTime": "2024-05-01T10:00:05Z"}
            for c in conditions
        ],
        "hostIP": "10.0.1.17",
        "podIP": ip,
        "podIPs": [{"ip": ip}],
        "qosClass": "Burstable",
        "startTime": "2024-05-01T10:00:01Z",
        "containerStatuses": [
            {
                "name": "app",
                "image": "registry.invalid/app:1",
                "imageID": "registry.invalid/app@sha256:" + "0" * 64,
                "containerID": f"containerd://{index:064d}",
                "ready": True,
                "restartCount": 0,
                "started": True,
                "state": {"running": {"startedAt": "2024-05-01T10:00:04Z"}},
                "lastState": {},
            }
        ],
    }
    return stored


class GeneratedPods(Sequence[dict[str, Any]]):
    def __init__(self, size: int) -> None:
        self.size = size

    def __len__(self) -> int:
        return self.size

    @overload
    def __getitem__(self, index: int) -> dict[str, Any]: ...
    @overload
    def __getitem__(self, index: slice) -> Sequence[dict[str, Any]]: ...
    def __getitem__(self, index: int | slice) -> Any:
        if isinstance(index, slice):
            raise TypeError("the stand-in asks for pods one at a time")
        if not 0 <= index < self.size:
            raise IndexError(index)
        return realistic(index)


def cluster_of(count: int) -> FakeCluster:
    """``count`` generated pods over NAMESPACES namespaces, each with its ServiceAccount ``app`` (ROLE)."""
    accounts = [service_account(f"team-{n:02d}", "app", ROLE, rv="1") for n in range(NAMESPACES)]
    return FakeCluster(pods=GeneratedPods(count), service_accounts=accounts)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.audit.standin")
    parser.add_argument("--generate", type=int, required=True, metavar="N")
    args = parser.parse_args(argv)
    with FakeApiServer(cluster_of(args.generate)) as server:
        print(server.url, flush=True)
        sys.stdin.read()  # until the test closes it (or exits)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
