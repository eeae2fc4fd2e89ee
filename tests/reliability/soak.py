"""The soak run (``make soak``): hours of a cluster's life, compressed into minutes.

Not a test (pytest does not collect it); run as ``python -m tests.reliability.soak --duration 10m``.
Against a real etcd + kube-apiserver it runs one ``irsa-webhook serve`` and, for the whole duration:

- **load at a fixed rate**: AdmissionReviews (the real sample, renamed per request) on keep-alive TLS
  connections, most for ServiceAccounts that never change (their answer must carry their role),
  the rest for ServiceAccounts being churned (any well-formed answer will do);
- **ServiceAccount churn**: accounts created, their role changed and deleted, all the time;
- **certificate rotation**: a new serving pair every ``--rotate-every`` seconds, put down as the
  kubelet swaps a Secret volume (``..data`` symlink), then checked on a fresh verified handshake.

It prints one JSON summary: requests, errors (non-200, transport failures, a stable account answered
without its role, a rotation never served), client-side latency percentiles, RSS after warm-up and at
the end. Exit 1 when errors > 0 or RSS grew by 5% or more after warm-up.
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import http.client
import itertools
import json
import ssl
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path
from typing import Any

from tests.support import kuberest as k
from tests.support.cases import review_of
from tests.support.certs import Certs, generate_certs, new_pair, served_serial
from tests.support.controlplane import ControlPlane, find_binaries
from tests.support.server import Server
from tests.support.volumes import KubeletVolume
from tests.support.waits import wait_for
from webhook.options.flags import parse_duration

NAMESPACE = "soak"
STABLE = 5  # accounts that never change: their answers are checked for the right role
RSS_LIMIT = 0.05


def role(name: str, generation: int = 0) -> str:
    return f"arn:aws:iam::111122223333:role/soak/{name}-{generation}"


class Certificates:
    """A Secret-volume layout (``tls.crt -> ..data/tls.crt``) and kubelet-style rotations of it."""

    def __init__(self, root: Path) -> None:
        self.ca_dir = root / "ca"
        generate_certs(self.ca_dir)
        self.volume = KubeletVolume(root / "volume")
        self.serial = 0
        self.rotate()
        self.certs = Certs(self.ca_dir / "ca.crt", self.volume.folder / "tls.crt", self.volume.folder / "tls.key")

    @property
    def ca(self) -> Path:
        return self.ca_dir / "ca.crt"

    def rotate(self) -> int:
        """A new pair signed by the same CA, swapped in atomically; returns its serial."""
        pair = new_pair(self.ca_dir)
        self.volume.write({"tls.crt": pair.cert, "tls.key": pair.key})
        self.serial = pair.serial
        return self.serial


class Tally:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.latencies: list[float] = []
        self.requests = 0
        self.errors: dict[str, int] = {}
        self.first_errors: list[str] = []

    def ok(self, seconds: float) -> None:
        with self.lock:
            self.requests += 1
            self.latencies.append(seconds)

    def error(self, kind: str, detail: str) -> None:
        with self.lock:
            self.requests += 1
            self.errors[kind] = self.errors.get(kind, 0) + 1
            if len(self.first_errors) < 10:
                self.first_errors.append(f"{kind}: {detail[:300]}")


def review_for(account: str) -> bytes:
    return json.dumps(review_of(NAMESPACE, account, str(uuid.uuid4()))).encode()


def role_in(answer: dict[str, Any]) -> str | None:
    patch = answer["response"].get("patch")
    if not patch:
        return None
    for op in json.loads(base64.b64decode(patch)):
        values = op["value"] if isinstance(op["value"], list) else [op["value"]]
        for value in values:
            if isinstance(value, dict) and value.get("name") == "AWS_ROLE_ARN":
                return str(value.get("value"))
    return None


def load_worker(port: int, ca: Path, interval: float, stop: threading.Event, tally: Tally, worker: int) -> None:
    context = ssl.create_default_context(cafile=str(ca))
    connection: http.client.HTTPSConnection | None = None
    next_at = time.monotonic()
    for n in itertools.count():
        if stop.is_set():
            break
        next_at += interval
        churned = n % 10 == 9
        account = f"churn-{(n + worker) % 20}" if churned else f"stable-{(n + worker) % STABLE}"
        body = review_for(account)
        started = time.monotonic()
        try:
            if connection is None:
                connection = http.client.HTTPSConnection("127.0.0.1", port, context=context, timeout=10)
            connection.request("POST", "/mutate", body, {"Content-Type": "application/json"})
            response = connection.getresponse()
            payload = response.read()
            elapsed = time.monotonic() - started
            if response.status != 200:
                tally.error(f"http_{response.status}", payload.decode(errors="replace"))
            elif not churned and role_in(json.loads(payload)) != role(account):
                tally.error("wrong_role", f"{account}: {role_in(json.loads(payload))}")
            else:
                tally.ok(elapsed)
        except (OSError, http.client.HTTPException) as exc:
            tally.error("transport", f"{type(exc).__name__}: {exc}")
            if connection is not None:
                connection.close()
            connection = None
        delay = next_at - time.monotonic()
        if delay > 0:
            stop.wait(delay)
        else:
            next_at = time.monotonic()  # behind schedule: do not burst to catch up
    if connection is not None:
        connection.close()


def churn_worker(kube: k.KubeRest, interval: float, stop: threading.Event, counts: dict[str, int]) -> None:
    """Create, re-annotate and delete 20 accounts in turn; an account's role changes every lap."""
    path = f"/api/v1/namespaces/{NAMESPACE}/serviceaccounts"
    for n in itertools.count():
        if stop.wait(interval):
            return
        name = f"churn-{n % 20}"
        step = (n // 20) % 3
        try:
            if step == 0:
                kube.create_service_account(NAMESPACE, name, {k.ROLE_ANNOTATION: role(name, n)})
                counts["created"] += 1
            elif step == 1:
                kube.merge_patch(
                    f"{path}/{name}", {"metadata": {"annotations": {"eks.amazonaws.com/role-arn": role(name, n)}}}
                )
                counts["updated"] += 1
            else:
                kube.delete(f"{path}/{name}")
                counts["deleted"] += 1
        except k.KubeApiError as exc:
            counts["api_errors"] += 1
            print(f"soak: churn {name}: {exc.message}", file=sys.stderr)


def rss_bytes(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise RuntimeError(f"no VmRSS for pid {pid}")


def percentile(values: list[float], pct: float) -> float:
    if not values:
        return 0.0
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * pct / 100))]


def run(duration: float, rate: float, connections: int, rotate_every: float, churn_every: float, workdir: Path) -> int:
    plane = ControlPlane(workdir / "control-plane", find_binaries()).start()
    kube = k.KubeRest(plane.server, plane.token, plane.ca_file)
    webhook: Server | None = None
    stop = threading.Event()
    threads: list[threading.Thread] = []
    try:
        kube.create_namespace(NAMESPACE, {})
        for i in range(STABLE):
            name = f"stable-{i}"
            kube.create_service_account(NAMESPACE, name, {"eks.amazonaws.com/role-arn": role(name)})
        certs = Certificates(workdir / "certs")
        webhook = Server(workdir, certs.certs, kubeconfig=plane.kubeconfig).start()
        port = webhook.port
        tally = Tally()
        counts = {"created": 0, "updated": 0, "deleted": 0, "api_errors": 0}
        interval = connections / rate
        for worker in range(connections):
            threads.append(
                threading.Thread(target=load_worker, args=(port, certs.ca, interval, stop, tally, worker), daemon=True)
            )
        threads.append(threading.Thread(target=churn_worker, args=(kube, churn_every, stop, counts), daemon=True))
        for thread in threads:
            thread.start()

        started = time.monotonic()
        warm_at = started + min(60.0, duration * 0.2)
        rss_warm = 0
        rotations = 0
        next_rotation = started + rotate_every
        while (now := time.monotonic()) < started + duration:
            assert webhook.process is not None
            webhook.process.check_alive()
            if not rss_warm and now >= warm_at:
                rss_warm = rss_bytes(webhook.process.pid)
            if now >= next_rotation:
                serial = certs.rotate()
                rotations += 1

                def rotated(serial: int = serial) -> bool:
                    return served_serial(port, certs.ca, "localhost") == serial

                try:
                    wait_for(rotated, timeout=15, what="rotated certificate")
                except (TimeoutError, RuntimeError, AssertionError, OSError) as exc:
                    tally.error("rotation_not_served", str(exc))
                next_rotation += rotate_every
            time.sleep(0.5)
        rss_end = rss_bytes(webhook.proc.pid)
        stop.set()
        for thread in threads:
            thread.join(15)
        growth = (rss_end - rss_warm) / rss_warm if rss_warm else 0.0
        errors = sum(tally.errors.values())
        summary = {
            "duration_s": round(duration),
            "target_rate_per_s": rate,
            "requests": tally.requests,
            "achieved_rate_per_s": round(tally.requests / duration, 1),
            "errors": errors,
            "errors_by_kind": tally.errors,
            "first_errors": tally.first_errors,
            "latency_ms": {
                "p50": round(percentile(tally.latencies, 50) * 1000, 2),
                "p99": round(percentile(tally.latencies, 99) * 1000, 2),
                "p999": round(percentile(tally.latencies, 99.9) * 1000, 2),
                "max": round(max(tally.latencies, default=0) * 1000, 2),
            },
            "rotations": rotations,
            "service_account_churn": counts,
            "rss_mib": {"after_warmup": round(rss_warm / 2**20, 1), "end": round(rss_end / 2**20, 1)},
            "rss_growth_pct": round(growth * 100, 2),
            "pass": errors == 0 and growth < RSS_LIMIT,
        }
        print(json.dumps(summary, indent=2))
        return 0 if summary["pass"] else 1
    finally:
        stop.set()
        if webhook is not None:
            webhook.stop()
        kube.close()
        plane.stop()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--duration", default="10m", help="Go duration (default 10m)")
    parser.add_argument("--rate", type=float, default=100.0, help="AdmissionReviews per second (default 100)")
    parser.add_argument("--connections", type=int, default=8, help="keep-alive connections (default 8)")
    parser.add_argument("--rotate-every", default="30s", help="certificate rotation period (default 30s)")
    parser.add_argument("--churn-every", default="250ms", help="one ServiceAccount change per period (default 250ms)")
    parser.add_argument("--workdir", default="", help="keep logs here (default: a temporary folder)")
    args = parser.parse_args(argv)
    with contextlib.ExitStack() as stack:
        workdir = Path(args.workdir) if args.workdir else Path(stack.enter_context(tempfile.TemporaryDirectory()))
        workdir.mkdir(parents=True, exist_ok=True)
        return run(
            parse_duration(args.duration),
            args.rate,
            args.connections,
            parse_duration(args.rotate_every),
            parse_duration(args.churn_every),
            workdir,
        )


if __name__ == "__main__":
    sys.exit(main())
