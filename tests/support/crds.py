"""The provisioner's CRDs on a control plane, for the tests that need them, applied the one way all of
them apply them (server-side, one field manager) and deleted again afterwards, so that the next
module (a Helm release that owns them, a dry run of the rendered manifests) meets a clean cluster.

``role_crd`` applies a TEST-ONLY stand-in (tests/support/crd-irsaroles.yaml) until the shipped
IRSARole CRD is merged: then it applies the shipped file, and the stand-in goes.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from .controlplane import ControlPlane
from .paths import REPO
from .waits import wait_for

CRD_FILE = REPO / "manifests" / "components" / "provisioner" / "crd-irsaissuers.yaml"
CRD = "irsaissuers.irsa-webhook.io"
ROLE_CRD_FILE = Path(__file__).with_name("crd-irsaroles.yaml")  # test-only stand-in: see above
ROLE_CRD = "irsaroles.irsa-webhook.io"
# Deleting a CRD removes its objects first; kube-apiserver does it alone (no controller-manager needed).
CRD_GONE_TIMEOUT = 30.0


@contextmanager
def issuer_crd(control_plane: ControlPlane) -> Iterator[None]:
    """The IRSAIssuer CRD, Established and served, for the ``with`` block."""
    with _installed(control_plane, CRD_FILE, CRD, "irsaissuers"):
        yield


@contextmanager
def role_crd(control_plane: ControlPlane) -> Iterator[None]:
    """The IRSARole CRD (namespaced), Established and served, for the ``with`` block."""
    with _installed(control_plane, ROLE_CRD_FILE, ROLE_CRD, "irsaroles"):
        yield


@contextmanager
def _installed(control_plane: ControlPlane, path: Path, crd: str, plural: str) -> Iterator[None]:
    control_plane.kubectl("apply", "--server-side", "-f", str(path))
    control_plane.kubectl("wait", "--for=condition=Established", "--timeout=30s", f"crd/{crd}")
    wait_for(
        lambda: control_plane.kubectl("get", "--all-namespaces", plural, check=False).returncode == 0,
        timeout=30,
        what=f"{plural} served",
    )
    try:
        yield
    finally:
        control_plane.kubectl("delete", "--ignore-not-found", "--wait=false", f"crd/{crd}")
        wait_for(
            lambda: not control_plane.kubectl("get", "--ignore-not-found", "-o", "name", f"crd/{crd}").stdout.strip(),
            timeout=CRD_GONE_TIMEOUT,
            what=f"crd/{crd} to be deleted",
        )
