"""The provisioner's own image, irsa-webhook-provisioner (the webhook's Dockerfile with boto3, `make
image-provisioner`; test_image.py builds it): the component's `images:` entry and the chart's
provisioner.image.* values, each set apart from the webhook's image and of the same release.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from tests.support.paths import MANIFESTS

from . import helm as chart
from .objects import Rendered, container_of, one
from .provisioner import CLUSTER, COMPONENT, NAME, RENDER, chart_render, controller, overlay
from .render import documents, kustomize

IMAGE = "irsa-webhook-provisioner"
DIGEST = "sha256:" + "ab" * 32


def test_the_component_pins_the_release_of_the_base() -> None:
    """Its tag is the base's, as the chart's are both its appVersion: one release, two images."""
    (image,) = yaml.safe_load((COMPONENT / "kustomization.yaml").read_text())["images"]
    (base,) = yaml.safe_load((MANIFESTS / "base" / "kustomization.yaml").read_text())["images"]
    assert image == {"name": IMAGE, "newTag": base["newTag"]}
    assert yaml.safe_load((chart.CHART / "Chart.yaml").read_text())["appVersion"] == base["newTag"]


@pytest.mark.parametrize(
    ("images", "want_controller", "want_webhook"),
    [
        pytest.param(
            [
                {"name": "irsa-webhook", "newName": "registry.example.com/irsa-webhook", "newTag": "0.2.0"},
                {"name": IMAGE, "newName": f"registry.example.com/{IMAGE}", "newTag": "0.2.0"},
            ],
            f"registry.example.com/{IMAGE}:0.2.0",
            "registry.example.com/irsa-webhook:0.2.0",
            id="both-moved",
        ),
        pytest.param(
            [{"name": "irsa-webhook", "newTag": "dev"}],
            f"{IMAGE}:0.1.0",
            "irsa-webhook:dev",
            id="webhook-only",
        ),
        pytest.param([{"name": IMAGE, "newTag": "dev"}], f"{IMAGE}:dev", "irsa-webhook:0.1.0", id="kind-load"),
        pytest.param([{"name": IMAGE, "digest": DIGEST}], f"{IMAGE}@{DIGEST}", "irsa-webhook:0.1.0", id="digest"),
    ],
)
def test_a_users_overlay_sets_each_image(
    kubectl: Path, copied: Path, images: list[dict[str, str]], want_controller: str, want_webhook: str
) -> None:
    """The overlay's `images:` entries, as kustomization.yaml's comment says: the provisioner's name
    reaches the controller and never the webhook, and the other way round."""
    folder = overlay(
        copied, "mine", {"resources": ["../default"], "components": ["../../components/provisioner"], "images": images}
    )
    objs = documents(kustomize(kubectl, folder))
    assert controller(objs)["image"] == want_controller
    assert container_of(objs)["image"] == want_webhook


def test_the_component_default(rendered: Rendered) -> None:
    assert controller(rendered[RENDER])["image"] == f"{IMAGE}:0.1.0"


@pytest.mark.parametrize(
    ("args", "want_controller", "want_pull", "want_webhook"),
    [
        pytest.param([], f"{IMAGE}:0.1.0", "IfNotPresent", "irsa-webhook:0.1.0", id="default"),
        pytest.param(
            ["--set", "image.registry=registry.example.com/"],
            f"registry.example.com/{IMAGE}:0.1.0",
            "IfNotPresent",
            "registry.example.com/irsa-webhook:0.1.0",
            id="one-registry-for-both",
        ),
        pytest.param(
            ["--set", "image.tag=dev", "--set", "image.pullPolicy=Never"],
            f"{IMAGE}:0.1.0",
            "IfNotPresent",
            "irsa-webhook:dev",
            id="webhook-tag-only",
        ),
        pytest.param(
            [
                *("--set", "provisioner.image.repository=mirror/provisioner", "--set", "provisioner.image.tag=dev"),
                *("--set", "provisioner.image.pullPolicy=Never"),
            ],
            "mirror/provisioner:dev",
            "Never",
            "irsa-webhook:0.1.0",
            id="provisioner-values",
        ),
        pytest.param(
            ["--set", f"provisioner.image.tag={DIGEST}"],
            f"{IMAGE}@{DIGEST}",
            "IfNotPresent",
            "irsa-webhook:0.1.0",
            id="digest",
        ),
        pytest.param(
            ["--set", f"provisioner.image.tag=0.1.0@{DIGEST}"],
            f"{IMAGE}:0.1.0@{DIGEST}",
            "IfNotPresent",
            "irsa-webhook:0.1.0",
            id="tag-and-digest",
        ),
    ],
)
def test_the_chart_values(helm: Path, args: list[str], want_controller: str, want_pull: str, want_webhook: str) -> None:
    objs = chart_render(helm, "--set", f"provisioner.clusterName={CLUSTER}", *args)
    box = controller(objs)
    assert (box["image"], box["imagePullPolicy"]) == (want_controller, want_pull)
    webhook = one(objs, "Deployment", chart.RELEASE)["spec"]["template"]["spec"]["containers"][0]
    assert webhook["image"] == want_webhook
    assert NAME not in webhook["image"]
