"""The shipped CRDs (IRSAIssuer, IRSARole, ClusterIRSARole) on a control plane, for the tests that need
them, applied the one way all of them apply them (server-side, one field manager) and deleted again
afterwards, so that the next module (a Helm release that owns them, a dry run of the rendered
manifests) meets a clean cluster."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from functools import partial
from typing import Any

from .controlplane import ControlPlane
from .paths import REPO
from .waits import wait_for

COMPONENT = REPO / "manifests" / "components" / "provisioner"
ISSUER_CRD = "irsaissuers.irsa-webhook.io"
ROLE_CRD = "irsaroles.irsa-webhook.io"
CLUSTER_ROLE_CRD = "clusterirsaroles.irsa-webhook.io"
# Each CRD's file in the component (the chart's copies are the same: tests/deploy/test_deploy_provisioner.py).
CRD_FILES = {crd: COMPONENT / f"crd-{crd.partition('.')[0]}.yaml" for crd in (ISSUER_CRD, ROLE_CRD, CLUSTER_ROLE_CRD)}
# Deleting a CRD removes its objects first; kube-apiserver does it alone (no controller-manager needed).
CRD_GONE_TIMEOUT = 30.0


@contextmanager
def installed_crds(control_plane: ControlPlane, *crds: str) -> Iterator[None]:
    """CRDS (names such as ROLE_CRD; none given: all three), Established and served, for the ``with`` block."""
    names = list(crds or CRD_FILES)

    def served(plural: str) -> bool:
        return control_plane.kubectl("get", plural, check=False).returncode == 0

    def gone(crd: str) -> bool:
        return not control_plane.kubectl("get", "--ignore-not-found", "-o", "name", f"crd/{crd}").stdout.strip()

    for crd in names:
        control_plane.kubectl("apply", "--server-side", "-f", str(CRD_FILES[crd]))
    try:
        control_plane.kubectl("wait", "--for=condition=Established", "--timeout=30s", *(f"crd/{c}" for c in names))
        for crd in names:
            plural = crd.partition(".")[0]
            wait_for(partial(served, plural), timeout=30, what=f"{plural} served")
        yield
    finally:
        for crd in names:
            control_plane.kubectl("delete", "--ignore-not-found", "--wait=false", f"crd/{crd}")
        for crd in names:
            wait_for(partial(gone, crd), timeout=CRD_GONE_TIMEOUT, what=f"crd/{crd} to be deleted")


@contextmanager
def issuer_crd(control_plane: ControlPlane) -> Iterator[None]:
    """The IRSAIssuer CRD alone, as ``installed_crds(control_plane, ISSUER_CRD)``."""
    with installed_crds(control_plane, ISSUER_CRD):
        yield


def dry_run(control_plane: ControlPlane, obj: dict[str, Any]) -> subprocess.CompletedProcess[str]:
    """OBJ through `kubectl apply --dry-run=server --validate=strict`: decoding, defaulting, the schema,
    the CEL rules and strict fields, as a user's `kubectl apply` meets them, without storing it."""
    return control_plane.kubectl(
        "apply", "--dry-run=server", "--validate=strict", "-o", "json", "-f", "-", input=json.dumps(obj), check=False
    )


def admitted(control_plane: ControlPlane, obj: dict[str, Any]) -> dict[str, Any]:
    """OBJ as kube-apiserver would store it (defaults filled in); fails the test on a refusal or warning."""
    result = dry_run(control_plane, obj)
    assert result.returncode == 0, result.stderr
    assert "Warning" not in result.stderr, result.stderr
    stored: dict[str, Any] = json.loads(result.stdout)
    return stored


@contextmanager
def role_crd(control_plane: ControlPlane) -> Iterator[None]:
    """The IRSARole CRD alone (namespaced)."""
    with installed_crds(control_plane, ROLE_CRD):
        yield


@contextmanager
def role_crds(control_plane: ControlPlane) -> Iterator[None]:
    """The IRSARole and ClusterIRSARole CRDs."""
    with installed_crds(control_plane, ROLE_CRD, CLUSTER_ROLE_CRD):
        yield
