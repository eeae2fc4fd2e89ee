"""What a fresh clone on a new machine needs from the repository itself.

A clone must work wherever it lands: no tracked file may point outside it (a committed symlink to a
path in someone's home directory dangles everywhere else, and `make test` stopped at once on
``mkdir: cannot create directory '.cache': File exists``), and what the Makefile creates inside it
must stay untracked in whatever form it takes.
"""

from __future__ import annotations

import os
import posixpath
import shutil
import subprocess
from pathlib import Path

import pytest

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
