"""``irsa-webhook`` run in-process through ``main()``, its output captured."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import pytest

from webhook.cli import main


@dataclass(frozen=True)
class Run:
    code: int
    out: str
    err: str

    @property
    def err_lines(self) -> list[str]:
        return self.err.splitlines()


# ``cli(*argv) -> Run``
Runner = Callable[..., Run]


def runner(capsys: pytest.CaptureFixture[str]) -> Runner:
    """``run(*argv) -> Run``: ``irsa-webhook ARGV`` in-process, with what it printed."""

    def run(*argv: str) -> Run:
        capsys.readouterr()  # drop anything printed before
        code = main(list(argv))
        captured = capsys.readouterr()
        return Run(code, captured.out, captured.err)

    return run
