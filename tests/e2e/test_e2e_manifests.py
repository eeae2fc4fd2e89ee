"""Every overlay in manifests/ is accepted by a real kube-apiserver: the offline schema check.

`kubectl apply --dry-run=server --validate=strict` sends each object through the API server's own
decoding, defaulting, validation and admission, with strict field validation (unknown or duplicate
fields are errors, not warnings). That is what kubeconform does from downloaded JSON schemas, but
with the exact schemas of the pinned Kubernetes release and without network access, plus admission:
the `restricted` Pod Security level of the irsa-webhook namespace is enforced on a dry-run Pod made
from the Deployment's template.

Not checked here: the cert-manager (Issuer, Certificate) and Prometheus Operator (ServiceMonitor)
kinds. Their CRDs are not part of Kubernetes and no pinned copy of them can be obtained offline on
these machines, so the API server has no schema for them; tests/deploy/test_deploy_manifests.py
checks their wiring instead.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
import yaml

from tests.deploy.render import documents, overlays, render_all
from tests.support.controlplane import ControlPlane
from tests.support.paths import MANIFESTS

pytestmark = pytest.mark.e2e

NAMESPACE = "irsa-webhook"
# API groups whose CRDs the control plane does not have (see the module docstring).
CRD_GROUPS = {"cert-manager.io", "monitoring.coreos.com"}


@pytest.fixture(scope="module")
def rendered(control_plane: ControlPlane, tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    return render_all(tmp_path_factory.mktemp("manifests"), control_plane.assets / "kubectl")


@pytest.fixture(scope="module")
def webhook_namespace(control_plane: ControlPlane, rendered: dict[str, str]) -> str:
    """The namespace and ServiceAccount really created: namespaced dry runs need them to exist.

    Left in place for the session (test_e2e_kube_system uses the namespace too, in either order):
    without a controller-manager a deleted namespace stays Terminating and nothing can be created in it.
    """
    objs = documents(rendered["default"])
    real = [o for o in objs if o["kind"] in {"Namespace", "ServiceAccount"}]
    control_plane.kubectl("apply", "-f", "-", input=yaml.safe_dump_all(real))
    return NAMESPACE


def group_of(obj: dict[str, Any]) -> str:
    api_version: str = obj["apiVersion"]
    return api_version.split("/", maxsplit=1)[0] if "/" in api_version else ""


@pytest.mark.parametrize("overlay", overlays())
def test_overlay_passes_server_side_dry_run(
    control_plane: ControlPlane, rendered: dict[str, str], webhook_namespace: str, overlay: str
) -> None:
    objs = documents(rendered[overlay])
    checked = [o for o in objs if group_of(o) not in CRD_GROUPS]
    skipped = {o["kind"] for o in objs if group_of(o) in CRD_GROUPS}
    assert skipped <= {"Issuer", "Certificate", "ServiceMonitor"}
    output = control_plane.dry_run_apply(checked)
    for obj in checked:
        assert obj["metadata"]["name"] in output
    assert output.count("(server dry run)") == len(checked)


@pytest.mark.parametrize("overlay", overlays())
def test_webhook_pod_is_admitted_under_restricted_pod_security(
    control_plane: ControlPlane, rendered: dict[str, str], webhook_namespace: str, overlay: str
) -> None:
    """A Pod from the Deployment's template passes admission (PSA restricted enforce, priority)."""
    objs = documents(rendered[overlay])
    labels = next(o for o in objs if o["kind"] == "Namespace")["metadata"]["labels"]
    assert labels["pod-security.kubernetes.io/enforce"] == "restricted"
    deployment = next(o for o in objs if o["kind"] == "Deployment")
    template = deployment["spec"]["template"]
    pod = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {**template["metadata"], "name": f"irsa-webhook-{overlay}", "namespace": NAMESPACE},
        "spec": template["spec"],
    }
    result = control_plane.kubectl(
        "create",
        "--dry-run=server",
        "--validate=strict",
        "-o",
        "json",
        "-f",
        "-",
        input=json.dumps(pod),
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert "Warning" not in result.stderr, result.stderr
    created = json.loads(result.stdout)
    # The Priority admission plugin resolved system-cluster-critical outside kube-system.
    assert created["spec"]["priority"] >= 2_000_000_000


def test_every_overlay_was_rendered(rendered: dict[str, str]) -> None:
    manifests = MANIFESTS / "overlays"
    assert sorted(rendered) == sorted(p.name for p in manifests.iterdir())
