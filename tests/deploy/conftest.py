"""Fixtures of the deploy tests: every overlay rendered once per session with the project's kubectl."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

from .render import MissingKubectl, documents, find_kubectl, render_all

Rendered = dict[str, list[dict[str, Any]]]


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
    return render_all(tmp_path_factory.mktemp("deploy-render"), kubectl)


@pytest.fixture(scope="session")
def rendered(rendered_text: dict[str, str]) -> Rendered:
    """{overlay: [objects]} for every overlay under manifests/overlays."""
    return {name: documents(text) for name, text in rendered_text.items()}
