"""Leader election on a real Lease: of two candidates one leads, the other takes over within the
lease duration once the first stops renewing, at once when it releases; the real API server's
optimistic concurrency is what keeps them from both leading."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest

from tests.support import kuberest as k
from webhook.kube.lease import LeaderElector, LeaseConfig

from .shared import NamespaceFactory

pytestmark = pytest.mark.e2e

NO_WEBHOOK: dict[str, str] = {}
DURATION, DEADLINE, RETRY = 3.0, 2.0, 0.25


class Candidate:
    def __init__(self, api: Any, namespace: str, identity: str) -> None:
        self.elector = LeaderElector(api, LeaseConfig(namespace, "leader", identity, DURATION, DEADLINE, RETRY))
        self.started = threading.Event()
        self.stopped = threading.Event()
        self.elector.start(self.started.set, self.stopped.set)


@pytest.fixture
def candidates(api_client: Any, make_namespace: NamespaceFactory) -> Iterator[tuple[Candidate, Candidate, str]]:
    namespace = make_namespace(labels=NO_WEBHOOK)
    a = Candidate(api_client, namespace, "a")
    assert a.started.wait(10)
    b = Candidate(api_client, namespace, "b")
    yield a, b, namespace
    a.elector.stop()
    b.elector.stop()


def holder(kube: k.KubeRest, namespace: str) -> str:
    lease = kube.get(f"/apis/coordination.k8s.io/v1/namespaces/{namespace}/leases/leader")
    value: str = lease["spec"].get("holderIdentity") or ""
    return value


def test_one_leads_and_the_other_takes_over_within_the_lease_duration(
    kube: k.KubeRest, candidates: tuple[Candidate, Candidate, str]
) -> None:
    a, b, namespace = candidates
    time.sleep(DURATION + 2 * RETRY)  # longer than a lease: b saw a renew all along and never led
    assert a.elector.is_leader()
    assert not b.started.is_set()
    assert holder(kube, namespace) == "a"
    a.elector.stop(release=False)  # a crash: the Lease still names a
    assert not a.elector.is_leader()
    stopped = time.monotonic()
    assert b.started.wait(DURATION + 3)
    assert time.monotonic() - stopped <= DURATION + 4 * RETRY + 1
    assert holder(kube, namespace) == "b"
    lease = kube.get(f"/apis/coordination.k8s.io/v1/namespaces/{namespace}/leases/leader")
    assert lease["spec"]["leaseTransitions"] == 1


def test_a_released_lease_is_taken_at_once(kube: k.KubeRest, candidates: tuple[Candidate, Candidate, str]) -> None:
    a, b, namespace = candidates
    time.sleep(2 * RETRY)
    a.elector.stop()
    released = time.monotonic()
    assert b.started.wait(DURATION)
    assert time.monotonic() - released < DURATION / 2
    assert holder(kube, namespace) == "b"
