"""Child processes for tests: started with their output in a file, stopped by PID, every wait bounded.

Every process is started in its own session (so a Ctrl-C in the terminal reaches pytest, which then
stops the children in order, instead of killing them half-way) and remembered in a registry that an
atexit hook empties, a backstop for an interpreter that exits without running fixture teardown.
A conftest that imports :func:`pytest_runtest_makereport` attaches the log tails of every process
still running to the report of a failed test.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import signal
import ssl
import subprocess
import urllib.error
import urllib.request
from collections.abc import Generator, Mapping, Sequence
from pathlib import Path

import pytest

from .waits import GiveUp

# How long a process gets between SIGTERM and SIGKILL. kube-apiserver drains for a few seconds on
# SIGTERM (--shutdown-delay-duration is 0 here, but it still closes watches and storage).
STOP_GRACE_SECONDS = 15.0

_running: dict[int, ManagedProcess] = {}


class ProcessExited(GiveUp, RuntimeError):
    """The process a test waits on has exited; the message holds its exit code and log tail."""


def http_status(
    url: str, *, context: ssl.SSLContext | None = None, token: str | None = None, timeout: float = 2.0
) -> int:
    """GET ``url`` and return the status code; 4xx/5xx are returned too, and every response is closed
    (an unclosed error response is a ResourceWarning, an error under this suite's warning filter)."""
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    request = urllib.request.Request(url, headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=timeout, context=context) as response:
            status: int = response.status
            return status
    except urllib.error.HTTPError as exc:
        with exc:
            return exc.code


class ManagedProcess:
    """One child process whose stdout and stderr go to ``log``; ``stop()`` is idempotent."""

    def __init__(
        self,
        name: str,
        argv: Sequence[str],
        log: Path,
        env: Mapping[str, str] | None = None,
        cwd: Path | None = None,
    ) -> None:
        self.name = name
        self.argv = list(argv)
        self.log = log
        with log.open("ab") as out:
            self.proc = subprocess.Popen(
                self.argv,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                env=dict(env) if env is not None else None,
                cwd=cwd,
                start_new_session=True,
            )
        self.pid = self.proc.pid
        _running[self.pid] = self

    def alive(self) -> bool:
        return self.proc.poll() is None

    def check_alive(self) -> None:
        """Raise ProcessExited with the log tail if the process has exited: inside a wait, the wait
        ends at once instead of running out."""
        code = self.proc.poll()
        if code is not None:
            raise ProcessExited(f"{self.name} exited with code {code}\n{self.tail()}")

    def tail(self, lines: int = 40) -> str:
        try:
            text = self.log.read_text(errors="replace")
        except OSError:
            return f"({self.log} unreadable)"
        kept = text.splitlines()[-lines:]
        return f"--- last {len(kept)} lines of {self.log} ---\n" + "\n".join(kept)

    def stop(self, grace: float = STOP_GRACE_SECONDS) -> int | None:
        """SIGTERM, wait up to ``grace`` seconds, then SIGKILL; return the exit code."""
        _running.pop(self.pid, None)
        if self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=grace)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(self.pid, signal.SIGKILL)
                self.proc.wait(timeout=grace)
        return self.proc.returncode


def running() -> list[ManagedProcess]:
    """The processes started and not stopped yet."""
    return list(_running.values())


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    """Attach the log tails of every process still running to the report of a failed e2e test."""
    report = yield
    if report.failed and item.get_closest_marker("e2e") is not None:
        for process in running():
            report.sections.append((f"{process.name} (pid {process.pid}) log", process.tail(40)))
    return report


@atexit.register
def _stop_leftovers() -> None:
    for process in running():
        process.stop(grace=5.0)


def forget(process: ManagedProcess) -> None:
    """Leave ``process`` running past this interpreter (a local cluster handed to its user): the
    atexit backstop no longer stops it."""
    _running.pop(process.pid, None)
