"""Counting the calls of one function, for tests that bound work without timing it."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest


class CallCount:
    def __init__(self) -> None:
        self.calls = 0


def count_calls(monkeypatch: pytest.MonkeyPatch, owner: Any, name: str) -> CallCount:
    """Replace ``owner.name`` with a wrapper that counts its calls (undone with the monkeypatch)."""
    count = CallCount()
    original: Callable[..., Any] = getattr(owner, name)

    def counting(*args: Any, **kwargs: Any) -> Any:
        count.calls += 1
        return original(*args, **kwargs)

    monkeypatch.setattr(owner, name, counting)
    return count
