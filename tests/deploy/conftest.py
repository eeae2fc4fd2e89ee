"""Fixtures of the deploy tests: every overlay rendered once per session with the project's kubectl,
the Helm chart with its default values and every ci/*.yaml with the project's helm, and the two images
of the Dockerfile rebuilt as their Makefile targets build them (image.py)."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from tests.support.paths import MANIFESTS

from . import helm as chart
from .image import PROVISIONER_TARGET, WEBHOOK_TARGET, Image, build_image, make_build
from .objects import Rendered
from .render import MissingKubectl, documents, find_kubectl, render_all, render_all_components


@pytest.fixture(scope="session")
def kubectl() -> Path:
    """The envtest kubectl. Missing: a skip on a developer's machine, a failure in CI (CI=true)."""
    try:
        return find_kubectl()
    except MissingKubectl as exc:
        if os.environ.get("CI"):
            pytest.fail(str(exc), pytrace=False)
        pytest.skip(str(exc))


@pytest.fixture(scope="session")
def rendered_text(kubectl: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """Every overlay, and the opt-in components no overlay uses on top of the default one
    (render.COMPONENT_RENDERS: ``default+audit``, ...)."""
    workdir = tmp_path_factory.mktemp("deploy-render")
    return render_all(workdir / "overlays", kubectl) | render_all_components(workdir / "components", kubectl)


@pytest.fixture(scope="session")
def rendered(rendered_text: dict[str, str]) -> Rendered:
    """{overlay: [objects]} for every overlay under manifests/overlays (and every COMPONENT_RENDERS entry)."""
    return {name: documents(text) for name, text in rendered_text.items()}


@pytest.fixture(scope="session")
def helm() -> Path:
    """The pinned helm (or HELM). Missing: a skip on a developer's machine, a failure in CI (CI=true)."""
    try:
        return chart.find_helm()
    except chart.MissingHelm as exc:
        if os.environ.get("CI"):
            pytest.fail(str(exc), pytrace=False)
        pytest.skip(str(exc))


@pytest.fixture(scope="session")
def chart_rendered_text(helm: Path) -> dict[str, str]:
    """{helm-default | helm-<ci stem>: YAML}, release irsa-webhook in namespace irsa-webhook."""
    return chart.render_all(helm)


@pytest.fixture(scope="session")
def chart_rendered(chart_rendered_text: dict[str, str]) -> Rendered:
    return {name: documents(text) for name, text in chart_rendered_text.items()}


def replay(target: str, tmp_path_factory: pytest.TempPathFactory) -> Image:
    if shutil.which("unshare") is None or shutil.which("setpriv") is None:
        pytest.fail("util-linux unshare and setpriv are needed (apt-get install util-linux)", pytrace=False)
    return build_image(tmp_path_factory.mktemp(target), make_build(target).args)


@pytest.fixture(scope="session")
def image(tmp_path_factory: pytest.TempPathFactory) -> Image:
    """The webhook's image, as `make image` builds it: built once (uv sync of the locked dependencies, seconds)."""
    return replay(WEBHOOK_TARGET, tmp_path_factory)


@pytest.fixture(scope="session")
def provisioner_image(tmp_path_factory: pytest.TempPathFactory) -> Image:
    """The provisioner's image, as `make image-provisioner` builds it (the same Dockerfile, with boto3)."""
    return replay(PROVISIONER_TARGET, tmp_path_factory)


@pytest.fixture
def copied(tmp_path: Path) -> Path:
    """A copy of manifests/ (without the self-signed component's certificates) for a test's own overlays."""
    root = tmp_path / "manifests"
    shutil.copytree(MANIFESTS, root, ignore=shutil.ignore_patterns("generated"))
    return root
