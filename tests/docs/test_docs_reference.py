"""The reference docs name everything the code can produce or accept: each warning kind, each flag.

A new warning or flag without a line in docs/behaviour.md (and, for flags, the README's table) fails
here, so the docs cannot silently fall behind the code.
"""

from __future__ import annotations

import re

import pytest

from tests.support.paths import REPO
from webhook.options.tables import MUTATION_FLAGS, SERVER_FLAGS

BEHAVIOUR = (REPO / "docs" / "behaviour.md").read_text(encoding="utf-8")
README = (REPO / "README.md").read_text(encoding="utf-8")
# AdmissionWarning.make("kind", ...) with the kind as a literal: how every warning is built.
_WARNING_RE = re.compile(r'AdmissionWarning\.make\(\s*"([a-z0-9-]+)"')
_CONSTANT_RE = re.compile(r'^([A-Z_]+) = "([a-z0-9-]+)"$', re.MULTILINE)


def _warning_kinds() -> set[str]:
    kinds: set[str] = set()
    texts = [path.read_text(encoding="utf-8") for path in (REPO / "webhook").rglob("*.py")]
    # Kinds passed by constant name (SA_NOT_FOUND): resolve the package's string constants.
    constants = {name: value for text in texts for name, value in _CONSTANT_RE.findall(text)}
    for text in texts:
        kinds.update(_WARNING_RE.findall(text))
        for name in re.findall(r"AdmissionWarning\.make\(\s*([A-Z_]+)\s*,", text):
            kinds.add(constants[name])
    return kinds


def _warnings_table() -> str:
    section = BEHAVIOUR.split("\n## Warnings\n", 1)[1]
    return section.split("\n## ", 1)[0]


def test_the_warning_scan_finds_the_known_kinds() -> None:
    kinds = _warning_kinds()
    assert {"invalid-role-arn", "service-account-not-found", "role-session-name-too-long"} <= kinds
    assert len(kinds) >= 12


@pytest.mark.parametrize("kind", sorted(_warning_kinds()))
def test_every_warning_kind_is_in_the_warnings_table(kind: str) -> None:
    assert f"| `{kind}` |" in _warnings_table(), f"docs/behaviour.md ## Warnings has no row for {kind!r}"


@pytest.mark.parametrize("name", sorted({flag.name for flag in (*SERVER_FLAGS, *MUTATION_FLAGS)}))
def test_every_flag_is_documented(name: str) -> None:
    assert f"--{name}`" in BEHAVIOUR or f"--{name}," in BEHAVIOUR, f"docs/behaviour.md does not document --{name}"
    assert f"--{name}" in README, f"the README's flag table does not list --{name}"
