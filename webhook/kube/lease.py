"""Leader election over a ``coordination.k8s.io/v1`` Lease, as client-go's leaderelection does it.

Every candidate reads the Lease every ``retry_period``. The holder renews it (``renewTime``); another
candidate takes it only when the holder is empty (released) or the record has not changed for
``leaseDurationSeconds`` as measured on the candidate's own clock from when it last saw the record
change, so clock skew between replicas never matters. Every write is a replace carrying the
resourceVersion that was read: of two candidates racing, one gets HTTP 409 and stays a follower.

The leader stops leading the moment its last successful renewal is ``renew_deadline`` old, even if
the thread renewing it is stuck in a request: :meth:`LeaderElector.is_leader` is computed from that
time, and callers check it before every write. ``renew_deadline`` is shorter than the lease duration,
so the old leader has stopped before anyone else may start. On :meth:`LeaderElector.stop` the leader
releases the Lease (empty holder), so a successor takes over at its next try instead of waiting out
the lease.
"""

from __future__ import annotations

import logging
import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from kubernetes import client
from kubernetes.client.exceptions import ApiException

from webhook.kube import rawapi
from webhook.kube.events import micro_time
from webhook.kube.objects import describe

log = logging.getLogger("irsa_webhook.leader")

JSON = dict[str, Any]
# Each wait between tries is stretched by up to this factor at random, so candidates started together
# do not keep colliding (client-go's JitterFactor).
JITTER = 1.2


@dataclass(frozen=True)
class LeaseConfig:
    namespace: str
    name: str
    identity: str  # unique per process: the pod name and a random suffix
    lease_duration: float = 15.0  # how long a silent holder keeps the lease
    renew_deadline: float = 10.0  # how long the leader keeps leading without a successful renewal
    retry_period: float = 2.0  # how often every candidate tries

    def __post_init__(self) -> None:
        if not 0 < self.retry_period < self.renew_deadline < self.lease_duration:
            raise ValueError("leader election needs 0 < retry period < renew deadline < lease duration")


class LeaderElector:
    """One candidate. :meth:`start` runs the election on a thread of its own; :meth:`run` runs it here."""

    def __init__(self, api: client.ApiClient, config: LeaseConfig) -> None:
        self._api = api
        self.config = config
        self._path = f"/apis/coordination.k8s.io/v1/namespaces/{config.namespace}/leases/{config.name}"
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._leading = False
        self._renewed_at = 0.0  # monotonic time a successful write of ours was sent
        # The record as last seen and when (monotonic) it last changed: a holder is silent once this
        # is older than its lease duration.
        self._observed: tuple[Any, ...] | None = None
        self._observed_at = 0.0
        self._thread: threading.Thread | None = None
        self._release_on_stop = True

    # -- asking --------------------------------------------------------------------------------------
    def is_leader(self) -> bool:
        """Whether this candidate leads now: it holds the Lease and renewed it within the deadline."""
        with self._lock:
            return self._leading and time.monotonic() - self._renewed_at < self.config.renew_deadline

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    # -- running -------------------------------------------------------------------------------------
    def start(self, on_started_leading: Callable[[], None], on_stopped_leading: Callable[[], None]) -> None:
        self._thread = threading.Thread(
            target=self.run, args=(on_started_leading, on_stopped_leading), name="leader-election", daemon=True
        )
        self._thread.start()

    def stop(self, timeout: float = 5.0, release: bool = True) -> None:
        """Stop competing; a leader stops leading and, with ``release``, empties the Lease's holder."""
        self._release_on_stop = release
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)

    def run(self, on_started_leading: Callable[[], None], on_stopped_leading: Callable[[], None]) -> None:
        """Compete until stopped: acquire, lead while renewals succeed, then compete again.

        The callbacks run on this thread and must return quickly (set a flag, wake a worker).
        """
        while not self._stop.is_set():
            if not self._acquire():
                break
            log.info("started leading", extra={"fields": {"lease": self._where(), "identity": self.config.identity}})
            on_started_leading()
            self._renew_until_lost()
            with self._lock:
                self._leading = False
            log.info("stopped leading", extra={"fields": {"lease": self._where(), "identity": self.config.identity}})
            on_stopped_leading()
        if self._release_on_stop:
            self._release()

    def _acquire(self) -> bool:
        """Try every retry period until this candidate holds the Lease (True) or is stopped (False)."""
        while not self._stop.is_set():
            if self._try_acquire_or_renew():
                return True
            self._stop.wait(self.config.retry_period * random.uniform(1.0, JITTER))  # noqa: S311 - jitter
        return False

    def _renew_until_lost(self) -> None:
        while not self._stop.wait(self.config.retry_period):
            if not self._try_acquire_or_renew() and not self.is_leader():
                return
        # Stopped while leading: no more writes from here on (the release below is the last).
        with self._lock:
            self._leading = False

    # -- one try -------------------------------------------------------------------------------------
    def _try_acquire_or_renew(self) -> bool:
        """One read and, if this candidate may hold the Lease, one conditional write. True: held now."""
        sent = time.monotonic()
        now = micro_time()
        try:
            lease = self._get()
            if lease is None:
                self._create(now)
            else:
                spec = lease.get("spec") or {}
                if not self._may_take(spec):
                    with self._lock:
                        self._leading = False  # someone else holds it: whatever we thought, we do not
                    return False
                self._replace(lease, self._next_spec(spec, now))
        except ApiException as exc:
            if exc.status == 409:  # another candidate wrote first
                log.debug("lease %s: lost a race (HTTP 409)", self._where())
            else:
                log.warning("lease %s: HTTP %s: %s", self._where(), exc.status, rawapi.status_message(exc))
            return False
        except Exception as exc:
            log.warning("lease %s: %s", self._where(), describe(exc))
            return False
        with self._lock:
            self._leading = True
            self._renewed_at = sent
        return True

    def _may_take(self, spec: JSON) -> bool:
        holder = spec.get("holderIdentity") or ""
        record = (holder, spec.get("renewTime"), spec.get("acquireTime"), spec.get("leaseTransitions"))
        now = time.monotonic()
        if record != self._observed:
            self._observed, self._observed_at = record, now
        if not holder or holder == self.config.identity:
            return True
        duration = spec.get("leaseDurationSeconds")
        lease_duration = duration if isinstance(duration, int) and duration > 0 else self.config.lease_duration
        return now - self._observed_at > lease_duration

    def _next_spec(self, spec: JSON, now: str) -> JSON:
        updated = dict(spec)
        updated["holderIdentity"] = self.config.identity
        updated["leaseDurationSeconds"] = _seconds(self.config.lease_duration)
        updated["renewTime"] = now
        if spec.get("holderIdentity") != self.config.identity:
            updated["acquireTime"] = now
            updated["leaseTransitions"] = int(spec.get("leaseTransitions") or 0) + 1
        return updated

    def _release(self) -> None:
        """Empty the holder if it is still us, so a successor need not wait out the lease."""
        try:
            lease = self._get()
            spec = (lease or {}).get("spec") or {}
            if lease is None or spec.get("holderIdentity") != self.config.identity:
                return
            now = micro_time()
            released = dict(spec, holderIdentity="", leaseDurationSeconds=1, renewTime=now, acquireTime=now)
            self._replace(lease, released)
            log.info("released the lease", extra={"fields": {"lease": self._where()}})
        except Exception as exc:
            log.warning("lease %s: cannot release it: %s", self._where(), describe(exc))

    # -- the API -------------------------------------------------------------------------------------
    def _get(self) -> JSON | None:
        try:
            lease: JSON = rawapi.call(self._api, "GET", self._path, timeout=self._timeout())
        except ApiException as exc:
            if exc.status == 404:
                return None
            raise
        return lease

    def _create(self, now: str) -> None:
        spec = self._next_spec({}, now)
        spec["leaseTransitions"] = 0
        body = {
            "apiVersion": "coordination.k8s.io/v1",
            "kind": "Lease",
            "metadata": {"name": self.config.name, "namespace": self.config.namespace},
            "spec": spec,
        }
        path = f"/apis/coordination.k8s.io/v1/namespaces/{self.config.namespace}/leases"
        rawapi.call(self._api, "POST", path, body=body, timeout=self._timeout())

    def _replace(self, lease: JSON, spec: JSON) -> None:
        body = dict(lease, spec=spec)  # metadata.resourceVersion as read: the write is conditional
        rawapi.call(self._api, "PUT", self._path, body=body, timeout=self._timeout())

    def _timeout(self) -> tuple[float, float]:
        # A request may not outlive the renew deadline, or a stuck renewal would hide a lost lease.
        return (min(5.0, self.config.retry_period), max(1.0, self.config.renew_deadline / 2))

    def _where(self) -> str:
        return f"{self.config.namespace}/{self.config.name}"


def _seconds(value: float) -> int:
    return max(1, round(value))
