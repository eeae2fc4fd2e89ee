"""Wildcards in linear time (webhook.core.glob): the same answers as the regex they replace, without
its backtracking on tenant-chosen namespace names."""

from __future__ import annotations

import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tests.support.calls import count_calls
from webhook.core import glob as glob_module
from webhook.core.glob import Glob


def oracle(pattern: str, text: str) -> bool:
    regex = "".join(".*" if c == "*" else "." if c == "?" else re.escape(c) for c in pattern)
    return re.fullmatch(regex, text, re.DOTALL) is not None


@pytest.mark.parametrize(
    ("pattern", "text", "expected"),
    [
        ("team-*", "team-a", True),
        ("team-*", "team-", True),
        ("team-*", "tea", False),
        ("*-prod", "shop-prod", True),
        ("*-prod", "shop-prod-2", False),
        ("t?am-*-x", "team-a-b-x", True),
        ("*", "", True),
        ("**", "anything", True),
        ("a*b*c", "abc", True),
        ("a*b*c", "acb", False),
        ("a*bc*bc", "abcbc", True),
        ("a*aa", "aa", False),
        ("exact", "exact", True),
        ("exact", "exactly", False),
        ("?", "", False),
    ],
)
def test_cases(pattern: str, text: str, expected: bool) -> None:
    assert Glob(pattern).fullmatch(text) is expected
    assert oracle(pattern, text) is expected


@given(st.text("ab*?", max_size=8), st.text("abc", max_size=12))
def test_same_answers_as_the_regex(pattern: str, text: str) -> None:
    assert Glob(pattern).fullmatch(text) == oracle(pattern, text)


def test_eight_stars_against_a_63_character_namespace_is_bounded_work(monkeypatch: pytest.MonkeyPatch) -> None:
    """The regex took 20 s here; the matcher places each piece at most once per position."""
    fits = count_calls(monkeypatch, glob_module, "_fits")
    pattern = "a*" * 8 + "b"
    namespace = "a" * 63
    assert Glob(pattern).fullmatch(namespace) is False
    assert fits.calls <= len(namespace) * pattern.count("*") + 2
