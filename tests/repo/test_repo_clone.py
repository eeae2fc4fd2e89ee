"""What a fresh clone on a new machine needs from the repository itself.

A clone must work wherever it lands: no tracked file may point outside it (a committed symlink to a
path in someone's home directory dangles everywhere else, and `make test` stopped at once on
``mkdir: cannot create directory '.cache': File exists``), and what the Makefile creates inside it
must stay untracked in whatever form it takes.
"""

from __future__ import annotations

import os
import posixpath
import re
import shutil
import subprocess
import tomllib
from pathlib import Path
from typing import Any

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

REPO = Path(__file__).resolve().parents[2]
SYMLINK_MODE = "120000"


def git(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["git", "-C", str(REPO), *args], capture_output=True, text=True, timeout=60, check=False)


@pytest.fixture(scope="module")
def checkout() -> Path:
    """The repository as git sees it; a copy that is not a git checkout (an sdist, say) skips."""
    if shutil.which("git") is None or git("rev-parse", "--is-inside-work-tree").stdout.strip() != "true":
        pytest.skip("not in a git checkout")
    return REPO


def escapes(link: str, target: str) -> bool:
    """Whether the symlink at ``link`` (repository-relative) pointing to ``target`` leaves the repository."""
    if posixpath.isabs(target) or (os.name == "nt" and ":" in target):
        return True
    resolved = posixpath.normpath(posixpath.join(posixpath.dirname(link), target))
    return resolved == ".." or resolved.startswith("../")


def test_escapes() -> None:
    assert escapes(".cache", "/root/.cache/irsa-webhook")
    assert escapes("a/b", "../../outside")
    assert escapes("a", "..")
    assert not escapes("a/b", "../c")
    assert not escapes("a", "b/../c")


def test_no_tracked_symlink_leaves_the_repository(checkout: Path) -> None:
    listed = git("ls-files", "-s", "-z")
    assert listed.returncode == 0, listed.stderr
    leaving = []
    for entry in filter(None, listed.stdout.split("\0")):
        meta, _, path = entry.partition("\t")
        mode, blob, _stage = meta.split()
        if mode != SYMLINK_MODE:
            continue
        target = git("cat-file", "blob", blob)
        assert target.returncode == 0, target.stderr
        if escapes(path, target.stdout):
            leaving.append(f"{path} -> {target.stdout}")
    assert leaving == [], "tracked symlinks that lead outside the repository (they dangle on any other machine)"


@pytest.mark.parametrize("form", ["folder", "file", "link", "dangling-link"])
def test_cache_is_ignored_in_every_form(checkout: Path, tmp_path: Path, form: str) -> None:
    """`.cache` as a folder, a file or a link (a `.cache/` pattern matches folders only).

    Checked in a scratch repository holding only this .gitignore, so that the form `.cache` has in
    this checkout (a folder after any `make`) decides nothing.
    """
    scratch = tmp_path / "clone"
    scratch.mkdir()
    subprocess.run(["git", "init", "--quiet", str(scratch)], check=True, timeout=60)
    shutil.copy(REPO / ".gitignore", scratch / ".gitignore")
    cache = scratch / ".cache"
    if form == "folder":
        (cache / "uv" / "bin").mkdir(parents=True)
        (cache / "uv" / "bin" / "uv").write_text("")
    elif form == "file":
        cache.write_text("")
    elif form == "link":
        (tmp_path / "elsewhere").mkdir()
        cache.symlink_to(tmp_path / "elsewhere")
    else:
        cache.symlink_to(tmp_path / "nothing-here")
    status = subprocess.run(
        ["git", "-C", str(scratch), "status", "--porcelain", "--untracked-files=all"],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    assert status.stdout.splitlines() == ["?? .gitignore"], f".cache as a {form} is not ignored"


# --- every dependency from a lock -------------------------------------------------------------------
# The files that install anything: each pip install/download checks hashes, each uv sync reads uv.lock
# as it is (--locked: never re-resolving, and failing when pyproject.toml disagrees with it).
INSTALLERS = ["Makefile", ".ci/run", "Dockerfile", "tests/deploy/tools.sh", "tests/e2e/envtest/build.sh"]


def pyproject() -> dict[str, Any]:
    return tomllib.loads((REPO / "pyproject.toml").read_text())


def commands(path: str) -> list[str]:
    """The file's lines with continuations joined, comments dropped."""
    joined, out = "", []
    for line in (REPO / path).read_text().splitlines():
        if line.strip().startswith("#"):
            continue
        if line.endswith("\\"):
            joined += line[:-1] + " "
            continue
        out.append(joined + line)
        joined = ""
    return out


@pytest.mark.parametrize("path", INSTALLERS)
def test_every_install_reads_a_lock(path: str) -> None:
    for line in commands(path):
        if re.search(r"\bpip(\"\))? (install|download)\b|-m pip (install|download)\b", line):
            assert "--require-hashes" in line, f"{path}: {line.strip()}"
        if re.search(r"\buv\"? sync\b|\$\(UV\) sync\b", line):
            assert "--locked" in line, f"{path}: {line.strip()}"
        assert not re.search(r"\buv\"? pip\b|\$\(UV\) pip\b", line), f"{path}: {line.strip()} (install from uv.lock)"


def test_installers_are_found() -> None:
    """The patterns above match what the files say (a reworded line must not escape the check)."""
    assert any("$(UV) sync" in line for line in commands("Makefile"))
    assert any("uv sync" in line for line in commands("Dockerfile"))
    assert any('"$uv" sync' in line for line in commands("tests/deploy/tools.sh"))
    assert any("pip download" in line for line in commands("tests/e2e/envtest/build.sh"))


def test_ci_runs_in_the_clone_as_it_is() -> None:
    """.ci/run makes no link the clone would depend on: the Go builds are passed in by path."""
    lines = commands(".ci/run")
    assert not [line for line in lines if re.search(r"\bln\b", line)]
    assert any(re.search(r"export KUBEBUILDER_ASSETS=", line) for line in lines)
    assert any(re.search(r"export HELM\b", line) for line in lines)


def test_the_pinned_uv_builds_the_package_itself() -> None:
    """uv uses its own build backend (no download at install time) only inside uv_build's range."""
    pin = re.search(r"^uv==(\S+)", (REPO / "requirements-uv.txt").read_text(), re.MULTILINE)
    assert pin, "requirements-uv.txt pins uv==X.Y.Z"
    system = pyproject()["build-system"]
    assert system["build-backend"] == "uv_build"
    (requirement,) = [Requirement(r) for r in system["requires"]]
    assert canonicalize_name(requirement.name) == "uv-build"
    assert requirement.specifier.contains(pin.group(1)), f"uv {pin.group(1)} is outside {requirement}"
    hashes = re.findall(r"--hash=sha256:([0-9a-f]{64})", (REPO / "requirements-uv.txt").read_text())
    assert len(hashes) >= 2, "the linux x86_64 and aarch64 wheels at least"


def test_metadata() -> None:
    project = pyproject()["project"]
    # An SPDX expression: the TOML-table form is deprecated and printed banners on every install.
    assert project["license"] == "Apache-2.0"
    # boto3 is the provisioner's AWS client, an extra: the webhook and its image never get it.
    assert not [d for d in project["dependencies"] if Requirement(d).name == "boto3"]
    assert [Requirement(d).name for d in project["optional-dependencies"]["provisioner"]] == ["boto3"]
    groups = pyproject()["dependency-groups"]
    assert {"dev", "hadolint", "checkov"} <= groups.keys()


def test_lock_matches_pyproject() -> None:
    """What `make lint` checks too: pyproject.toml changed without `make lock` fails here."""
    uv = REPO / ".cache" / "uv" / "bin" / "uv"
    if not uv.is_file():
        pytest.fail("no .cache/uv/bin/uv: run `make install`", pytrace=False)
    env = {k: v for k, v in os.environ.items() if not k.startswith("UV_")}
    checked = subprocess.run(
        [str(uv), "lock", "--check", "--offline", "--project", str(REPO)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        env=env | {"UV_PYTHON_DOWNLOADS": "never"},
    )
    assert checked.returncode == 0, checked.stderr
