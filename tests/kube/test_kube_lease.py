"""Leader election over a Lease, against the fake API server's conflict rules: one leader at a time,
renewals, release on stop, takeover only after the lease expired on the candidate's own clock, and a
leader that cannot renew stops leading by its deadline even while its requests hang."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.support.kubeapi import FakeApiServer, FakeCluster
from tests.support.waits import wait_for
from webhook.kube.lease import LeaderElector, LeaseConfig

NAMESPACE, NAME = "irsa-webhook", "provisioner"
LEASE = f"/apis/coordination.k8s.io/v1/namespaces/{NAMESPACE}/leases/{NAME}"
COLLECTION = f"/apis/coordination.k8s.io/v1/namespaces/{NAMESPACE}/leases"
# Short enough for a unit test, in the ratios client-go recommends (retry < deadline < duration).
DURATION, DEADLINE, RETRY = 2.0, 1.0, 0.1


class Candidate:
    def __init__(self, server: FakeApiServer, folder: Path, identity: str) -> None:
        folder.mkdir(exist_ok=True)
        self.elector = LeaderElector(
            server.api_client(folder), LeaseConfig(NAMESPACE, NAME, identity, DURATION, DEADLINE, RETRY)
        )
        self.started = threading.Event()
        self.stopped = threading.Event()

    def start(self) -> Candidate:
        self.elector.start(self.started.set, self.stopped.set)
        return self


@pytest.fixture
def server() -> Iterator[FakeApiServer]:
    with FakeApiServer(FakeCluster()) as running:
        yield running


def spec(server: FakeApiServer) -> dict[str, Any]:
    lease = server.cluster.store.get(COLLECTION, NAME)
    assert lease is not None
    found: dict[str, Any] = lease["spec"]
    return found


def test_a_lone_candidate_creates_the_lease_leads_and_renews(server: FakeApiServer, tmp_path: Path) -> None:
    a = Candidate(server, tmp_path / "a", "a").start()
    try:
        assert a.started.wait(5)
        assert a.elector.is_leader()
        first = spec(server)
        assert first["holderIdentity"] == "a"
        assert first["leaseDurationSeconds"] == 2
        assert first["leaseTransitions"] == 0
        assert first["acquireTime"].endswith("Z")
        assert len(first["renewTime"]) == len("2026-01-01T00:00:00.000000Z")  # RFC 3339, microseconds
        renewed = wait_for(lambda: spec(server)["renewTime"] != first["renewTime"], timeout=5, what="a renewal")
        assert renewed
        assert spec(server)["acquireTime"] == first["acquireTime"]  # kept while the same holder renews
    finally:
        a.elector.stop()
    assert a.stopped.is_set()
    assert not a.elector.is_leader()
    assert spec(server)["holderIdentity"] == ""  # released


def test_two_candidates_one_leader_and_a_fast_takeover_after_release(server: FakeApiServer, tmp_path: Path) -> None:
    a = Candidate(server, tmp_path / "a", "a").start()
    b = Candidate(server, tmp_path / "b", "b")
    try:
        assert a.started.wait(5)
        b.start()
        time.sleep(DURATION + 3 * RETRY)  # b has seen a renewing all along: it never leads
        assert not b.started.is_set()
        assert not b.elector.is_leader()
        a.elector.stop()
        released = time.monotonic()
        assert b.started.wait(5)
        # A released Lease is taken at the next try, not after a lease duration.
        assert time.monotonic() - released < DURATION
        assert spec(server)["holderIdentity"] == "b"
        assert spec(server)["leaseTransitions"] == 1
    finally:
        a.elector.stop()
        b.elector.stop()


def test_a_silent_holder_is_replaced_only_after_the_lease_duration(server: FakeApiServer, tmp_path: Path) -> None:
    a = Candidate(server, tmp_path / "a", "a").start()
    b = Candidate(server, tmp_path / "b", "b")
    try:
        assert a.started.wait(5)
        b.start()
        time.sleep(3 * RETRY)  # b has read the record
        a.elector.stop(release=False)  # a crash: the Lease still names a
        crashed = time.monotonic()
        assert b.started.wait(DURATION + 2)
        took = time.monotonic() - crashed
        # Not before the record had been unchanged for a lease duration on b's clock (b saw the last
        # renewal up to a retry period after it was written), and soon after.
        assert DURATION - RETRY <= took <= DURATION + 4 * RETRY + 0.5
        assert spec(server)["holderIdentity"] == "b"
    finally:
        b.elector.stop()


def test_a_leader_that_cannot_renew_stops_leading_by_its_deadline(server: FakeApiServer, tmp_path: Path) -> None:
    a = Candidate(server, tmp_path / "a", "a").start()
    try:
        assert a.started.wait(5)
        server.cluster.fail[LEASE] = 500
        failing = time.monotonic()
        assert a.stopped.wait(DEADLINE + 2)
        assert time.monotonic() - failing <= DEADLINE + 2 * RETRY + 0.5
        assert not a.elector.is_leader()
        del server.cluster.fail[LEASE]
        a.started.clear()
        assert a.started.wait(5)  # back to competing: it leads again once the API server answers
    finally:
        a.elector.stop()


def test_is_leader_turns_false_at_the_deadline_even_while_renewal_hangs(server: FakeApiServer, tmp_path: Path) -> None:
    a = Candidate(server, tmp_path / "a", "a").start()
    hung = threading.Event()
    try:
        assert a.started.wait(5)
        server.cluster.stall[LEASE] = hung  # nothing answers any more: the renewal sits in its request
        stalled = time.monotonic()
        wait_for(lambda: not a.elector.is_leader(), timeout=DEADLINE + 1, what="leadership to lapse")
        assert time.monotonic() - stalled <= DEADLINE + 0.5
    finally:
        hung.set()
        a.elector.stop()


def test_the_timings_must_nest() -> None:
    with pytest.raises(ValueError, match="retry period < renew deadline < lease duration"):
        LeaseConfig(NAMESPACE, NAME, "a", lease_duration=10, renew_deadline=10, retry_period=2)
    with pytest.raises(ValueError, match="retry period"):
        LeaseConfig(NAMESPACE, NAME, "a", lease_duration=15, renew_deadline=10, retry_period=0)
