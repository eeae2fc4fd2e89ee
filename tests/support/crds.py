"""The shipped IRSAIssuer CRD on a control plane, for the tests that need it, applied the one way all
of them apply it (server-side, one field manager) and deleted again afterwards, so that the next
module (a Helm release that owns it, a dry run of the rendered manifests) meets a clean cluster."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from .controlplane import ControlPlane
from .paths import REPO
from .waits import wait_for

CRD_FILE = REPO / "manifests" / "components" / "provisioner" / "crd-irsaissuers.yaml"
CRD = "irsaissuers.irsa-webhook.io"
# Deleting a CRD removes its objects first; kube-apiserver does it alone (no controller-manager needed).
CRD_GONE_TIMEOUT = 30.0


@contextmanager
def issuer_crd(control_plane: ControlPlane) -> Iterator[None]:
    """The CRD, Established and served, for the ``with`` block."""
    control_plane.kubectl("apply", "--server-side", "-f", str(CRD_FILE))
    control_plane.kubectl("wait", "--for=condition=Established", "--timeout=30s", f"crd/{CRD}")
    wait_for(
        lambda: control_plane.kubectl("get", "irsaissuers", check=False).returncode == 0,
        timeout=30,
        what="irsaissuers served",
    )
    try:
        yield
    finally:
        control_plane.kubectl("delete", "--ignore-not-found", "--wait=false", f"crd/{CRD}")
        wait_for(
            lambda: not control_plane.kubectl("get", "--ignore-not-found", "-o", "name", f"crd/{CRD}").stdout.strip(),
            timeout=CRD_GONE_TIMEOUT,
            what=f"crd/{CRD} to be deleted",
        )
