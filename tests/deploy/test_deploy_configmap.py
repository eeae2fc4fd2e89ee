"""The configmap-mapping component (ConfigMap mode, --watch-config-map): least-privilege RBAC in the
webhook's own namespace, the flag, and the namespace the webhook reads its ConfigMap from.

The overlays that use it are rendered as in test_deploy_manifests.py; the component is also
rendered on its own, through a test-local kustomization that moves everything to another namespace.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import yaml

from tests.support.paths import MANIFESTS
from webhook.options.tables import SERVER_FLAGS

from .objects import (
    EXPECTED,
    NAMESPACE,
    OVERLAYS,
    Obj,
    Rendered,
    assert_configmap_rbac,
    container_of,
    kinds,
    one,
    serve_config_of,
)
from .render import documents, kustomize

COMPONENT = "configmap-mapping"
NAMESPACE_ENV = next(f.env for f in SERVER_FLAGS if f.name == "namespace")
FLAG = "--watch-config-map"


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_configmap_mode_only_where_the_component_is_used(rendered: Rendered, overlay: str) -> None:
    objs = rendered[overlay]
    container = container_of(objs)
    config = serve_config_of(container, NAMESPACE)
    if not EXPECTED[overlay]["config_map"]:
        assert FLAG not in container["args"]
        assert not config.watch_config_map
        assert not kinds(objs) & {"Role", "RoleBinding"}
        return
    assert container["args"].count(FLAG) == 1
    assert config.watch_config_map
    assert config.namespace == NAMESPACE  # the ConfigMap is read where the webhook runs
    assert_configmap_rbac(objs, NAMESPACE)


def test_the_namespace_env_is_the_namespace_flag() -> None:
    text = (MANIFESTS / "components" / COMPONENT / "kustomization.yaml").read_text()
    assert NAMESPACE_ENV in text
    assert FLAG in text


@pytest.fixture
def moved(kubectl: Path, tmp_path: Path) -> list[Obj]:
    """base + cert-manager + this component in a user overlay that sets ``namespace: team-x``."""
    root = tmp_path / "manifests"
    shutil.copytree(MANIFESTS, root, ignore=shutil.ignore_patterns("generated"))
    overlay = root / "overlays" / "test-configmap"
    overlay.mkdir()
    (overlay / "kustomization.yaml").write_text(
        yaml.safe_dump(
            {
                "apiVersion": "kustomize.config.k8s.io/v1beta1",
                "kind": "Kustomization",
                "namespace": "team-x",
                "resources": ["../../base"],
                "components": ["../../components/cert-manager", f"../../components/{COMPONENT}"],
            }
        )
    )
    return documents(kustomize(kubectl, overlay))


def test_rbac_and_the_configmap_follow_a_renamed_namespace(moved: list[Obj]) -> None:
    assert_configmap_rbac(moved, "team-x")
    deployment = one(moved, "Deployment")
    assert deployment["metadata"]["namespace"] == "team-x"
    config = serve_config_of(container_of(moved), deployment["metadata"]["namespace"])
    assert (config.watch_config_map, config.namespace) == (True, "team-x")
