"""The webhook's view of ServiceAccounts follows the cluster: new, changed and deleted."""

from __future__ import annotations

from typing import Any

import pytest

from tests.support import kuberest as k
from tests.support.waits import wait_for

pytestmark = [pytest.mark.e2e, pytest.mark.usefixtures("irsa_webhook")]

ROLE_A = "arn:aws:iam::123456789012:role/e2e-first"
ROLE_B = "arn:aws:iam::123456789012:role/e2e-second"
# Bound for a ServiceAccount change to reach the webhook through its watch (milliseconds in practice).
WATCH_TIMEOUT = 15.0
RACE_ROUNDS = 5


def role_of(p: k.JSON) -> str | None:
    return k.env_of(p["spec"]["containers"][0]).get("AWS_ROLE_ARN")


def test_sa_created_right_before_its_pod_is_honoured(kube: k.KubeRest, make_namespace: Any) -> None:
    """Upstream issue #174: a pod created right after its SA was admitted before the watch saw the SA.

    Back to back, the pod's admission often reaches the webhook before the SA's watch event; the
    webhook then looks the SA up live instead of giving up. Several rounds make that overlap likely.
    """
    ns = make_namespace()
    for i in range(RACE_ROUNDS):
        role = f"arn:aws:iam::123456789012:role/e2e-race-{i}"
        kube.create_service_account(ns, f"fresh-{i}", {k.ROLE_ANNOTATION: role})
        kube.create_pod(ns, k.pod(f"fresh-{i}", f"fresh-{i}"))
        assert role_of(kube.get_pod(ns, f"fresh-{i}")) == role, f"round {i}"


def test_changed_annotation_is_seen_by_the_next_pod(kube: k.KubeRest, make_namespace: Any) -> None:
    ns = make_namespace()
    kube.create_service_account(ns, "app", {k.ROLE_ANNOTATION: ROLE_A})
    kube.create_pod(ns, k.pod("before", "app"))
    assert role_of(kube.get_pod(ns, "before")) == ROLE_A

    kube.merge_patch(
        f"/api/v1/namespaces/{ns}/serviceaccounts/app",
        {"metadata": {"annotations": {k.ROLE_ANNOTATION: ROLE_B}}},
    )
    # The watch event arrives asynchronously: dry-run pods show when it has (bounded), then a real pod.
    wait_for(
        lambda: role_of(kube.create_pod(ns, k.pod("probe", "app"), dry_run=True)) == ROLE_B,
        timeout=WATCH_TIMEOUT,
        what="the webhook to see the new role-arn",
    )
    kube.create_pod(ns, k.pod("after", "app"))
    assert role_of(kube.get_pod(ns, "after")) == ROLE_B
    assert role_of(kube.get_pod(ns, "before")) == ROLE_A  # stored pods are never touched again

    kube.merge_patch(
        f"/api/v1/namespaces/{ns}/serviceaccounts/app",
        {"metadata": {"annotations": {k.ROLE_ANNOTATION: None}}},
    )
    wait_for(
        lambda: not k.is_injected(kube.create_pod(ns, k.pod("probe", "app"), dry_run=True)),
        timeout=WATCH_TIMEOUT,
        what="the webhook to see the role-arn removed",
    )
    kube.create_pod(ns, k.pod("unannotated", "app"))
    assert not k.is_injected(kube.get_pod(ns, "unannotated"))


def test_deleted_sa_stops_being_injected(kube: k.KubeRest, make_namespace: Any) -> None:
    ns = make_namespace()
    kube.create_service_account(ns, "app", {k.ROLE_ANNOTATION: ROLE_A})
    kube.create_pod(ns, k.pod("before", "app"))
    assert role_of(kube.get_pod(ns, "before")) == ROLE_A

    kube.delete(f"/api/v1/namespaces/{ns}/serviceaccounts/app")
    wait_for(
        lambda: not k.is_injected(kube.create_pod(ns, k.pod("probe", "app"), dry_run=True)),
        timeout=WATCH_TIMEOUT,
        what="the webhook to see the ServiceAccount deleted",
    )
    # Admitted (the ServiceAccount admission plugin is off, as in envtest), unmutated, and the
    # webhook says why in a warning.
    kube.create_pod(ns, k.pod("after", "app"))
    assert kube.last_warnings, "a missing ServiceAccount should come back as an admission warning"
    assert not k.is_injected(kube.get_pod(ns, "after"))
