"""Fixtures of the self-hosted tooling tests: a CLI runner."""

from __future__ import annotations

import pytest

from tests.support.cli import Runner, runner


@pytest.fixture
def cli(capsys: pytest.CaptureFixture[str]) -> Runner:
    """``cli(*argv) -> Run``: run ``irsa-webhook`` in-process and capture its output."""
    return runner(capsys)
