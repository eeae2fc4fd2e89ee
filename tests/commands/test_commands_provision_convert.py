"""``irsa-webhook provision convert``: table cases, one YAML file per case under ``tests/cases/convert/``.

A case holds the file to convert (``input``, as text: several documents, or a List as kubectl prints
it), the extra flags (``args``) and what must come out: the ``exit`` code, the exact ``stdout`` (the
YAML with its comments: what a user reviews before applying) and the exact ``warnings`` (the stderr
lines after ``irsa-webhook provision: warning: ``, in order). ``bad-input.yaml`` is a table of inputs
that stop the run: one error line, exit 2, nothing on stdout.

Checked whatever the case: each warning names its source object; each converted object says where
it came from; each role says ``adoption: Always`` and each object its ``deletionPolicy``, with a
comment; each converted object passes ``read_issuer`` or ``read_role``; the output reads back as ``provision``'s
own input, of our kinds only.
"""

from __future__ import annotations

import io
import re
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.support.cases import load_yaml
from tests.support.cli import Run, Runner, runner
from tests.support.paths import CASES
from webhook.cli import main
from webhook.commands.objectfiles import read_documents
from webhook.provisioner.convert.common import CONVERTED_FROM_ANNOTATION
from webhook.provisioner.model import API_GROUP, ISSUER_KIND
from webhook.provisioner.rolemodel import CLUSTER_ROLE_KIND, ROLE_KIND
from webhook.provisioner.rolespec import read_role
from webhook.provisioner.spec import read_issuer

CASES_DIR = CASES / "convert"
BAD_INPUT = "bad-input.yaml"
CASE_KEYS = {"description", "args", "input", "exit", "stdout", "warnings"}
BAD_KEYS = {"id", "args", "input", "error"}
WARNING_PREFIX = "irsa-webhook provision: warning: "
# Every warning starts by naming what it is about: the source object, or the IAM role two objects share.
SOURCE_RE = re.compile(r"(IRSA|IRSASetup) [a-z0-9./-]+: |ClusterConfig [a-z0-9-]+[ :]|IAM role ")
PARAMS = [pytest.param(p, id=p.stem) for p in sorted(CASES_DIR.glob("*.yaml")) if p.name != BAD_INPUT]
BAD = [pytest.param(row, id=row["id"]) for row in load_yaml(CASES_DIR / BAD_INPUT)["cases"]]


@pytest.fixture
def cli(capsys: pytest.CaptureFixture[str]) -> Runner:
    return runner(capsys)


def convert(cli: Runner, tmp_path: Path, text: str, args: list[str]) -> Run:
    path = tmp_path / "input.yaml"
    path.write_text(text, encoding="utf-8")
    return cli("provision", "convert", "-f", str(path), *args)


@pytest.mark.parametrize("path", PARAMS)
def test_case(path: Path, cli: Runner, tmp_path: Path) -> None:
    case = load_yaml(path)
    assert set(case) <= CASE_KEYS, f"unknown keys {set(case) - CASE_KEYS}"
    result = convert(cli, tmp_path, case["input"], case.get("args", []))
    assert result.code == case["exit"], result.err
    assert result.out == case["stdout"]
    warnings = [line.removeprefix(WARNING_PREFIX) for line in result.err_lines if line.startswith(WARNING_PREFIX)]
    assert warnings == case["warnings"]
    assert (result.code == 1) == bool(warnings)
    for warning in warnings:
        assert SOURCE_RE.match(warning), f"a warning must name its source object first: {warning!r}"
    others = [line for line in result.err_lines if not line.startswith(WARNING_PREFIX)]
    assert all(line.startswith("irsa-webhook provision: skipping ") for line in others), others
    check_output(result.out, tmp_path)


def check_output(text: str, tmp_path: Path) -> None:
    assert text.startswith("# "), "the output opens with a comment saying it wants a review"
    objects = [obj for obj in yaml.safe_load_all(text) if obj is not None]
    assert objects
    for obj in objects:
        assert obj["apiVersion"] == f"{API_GROUP}/v1alpha1"
        assert obj["kind"] in (ISSUER_KIND, ROLE_KIND, CLUSTER_ROLE_KIND)
        assert obj["metadata"]["annotations"][CONVERTED_FROM_ANNOTATION]
        assert obj["spec"]["deletionPolicy"] in ("Retain", "Delete")
        if obj["kind"] == ISSUER_KIND:
            read_issuer(obj, "convert")
        else:
            read_role(obj, "convert")
            assert obj["spec"]["adoption"] == "Always"
            assert ("namespace" in obj["metadata"]) == (obj["kind"] == ROLE_KIND)
            assert ("issuerRef" in obj["spec"]) != ("issuerURL" in obj["spec"])
    assert text.count("  adoption: Always  # ") == sum(obj["kind"] != ISSUER_KIND for obj in objects)
    assert text.count("  deletionPolicy: ") == text.count("  deletionPolicy: R") + text.count("  deletionPolicy: D")
    assert len(re.findall(r"^  deletionPolicy: \w+  # ", text, re.MULTILINE)) == len(objects)
    # what provision plan|apply read: the same objects
    saved = tmp_path / "converted.yaml"
    saved.write_text(text, encoding="utf-8")
    assert [d.obj for d in read_documents([str(saved)])] == objects


@pytest.mark.parametrize("row", BAD)
def test_bad_input_stops_the_run_with_one_line(row: dict[str, Any], cli: Runner, tmp_path: Path) -> None:
    assert set(row) <= BAD_KEYS
    result = convert(cli, tmp_path, row["input"], row.get("args", []))
    assert result.code == 2, result.err
    assert result.out == ""
    errors = [line for line in result.err_lines if not line.startswith("irsa-webhook provision: skipping ")]
    assert len(errors) == 1, result.err
    assert errors[0].startswith("irsa-webhook provision: ")
    assert row["error"] in errors[0]


def test_reads_what_kubectl_pipes_in(cli: Runner, monkeypatch: pytest.MonkeyPatch) -> None:
    case = load_yaml(CASES_DIR / "irsa-manager-selfhosted.yaml")
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(case["input"].encode())))
    result = cli("provision", "convert", "-f", "-")
    assert result.code == 0, result.err
    assert result.out == case["stdout"]


def test_issuer_and_issuer_url_exclude_each_other(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["provision", "convert", "-f", "x.yaml", "--issuer", "main", "--issuer-url", "https://oidc.example.com"])
    assert exited.value.code == 2
    assert "--issuer-url: not allowed with argument --issuer" in capsys.readouterr().err
