"""Child processes for the e2e suite: started with their output in a file, stopped by PID, every wait bounded.

Every process is started in its own session (so a Ctrl-C in the terminal reaches pytest, which then
stops the children in order, instead of killing them half-way) and remembered in a registry that an
atexit hook empties, a backstop for an interpreter that exits without running fixture teardown.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import signal
import socket
import ssl
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TypeVar

T = TypeVar("T")

# How long a process gets between SIGTERM and SIGKILL. kube-apiserver drains for a few seconds on
# SIGTERM (--shutdown-delay-duration is 0 here, but it still closes watches and storage).
STOP_GRACE_SECONDS = 15.0

_running: dict[int, ManagedProcess] = {}


class WaitTimeout(AssertionError):
    """A bounded wait ran out; the message says what was awaited and the last observation."""


def wait_for(
    probe: Callable[[], T | None],
    *,
    timeout: float,
    what: str,
    interval: float = 0.2,
    on_timeout: Callable[[], str] | None = None,
) -> T:
    """Call ``probe`` until it returns something other than None/False, or fail after ``timeout`` s.

    Exceptions from ``probe`` count as "not yet" (the last one is reported), so a probe may simply
    try the thing it waits for.
    """
    deadline = time.monotonic() + timeout
    last: object = None
    while True:
        try:
            result = probe()
        except Exception as exc:
            last = exc
        else:
            if result is not None and result is not False:
                return result
            last = result
        if time.monotonic() >= deadline:
            extra = f"\n{on_timeout()}" if on_timeout else ""
            raise WaitTimeout(f"timed out after {timeout:.0f}s waiting for {what}; last: {last!r}{extra}")
        time.sleep(interval)


_handed_out: set[int] = set()


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago and that this process has not handed out
    before (the OS may offer a just-closed port again; two servers of one test must not get it)."""
    for _ in range(100):
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            sock.bind(("127.0.0.1", 0))
            port: int = sock.getsockname()[1]
        if port not in _handed_out:
            _handed_out.add(port)
            return port
    raise RuntimeError("no fresh free port on 127.0.0.1 after 100 tries")


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

    def __init__(self, name: str, argv: Sequence[str], log: Path, env: Mapping[str, str] | None = None) -> None:
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
                start_new_session=True,
            )
        self.pid = self.proc.pid
        _running[self.pid] = self

    def alive(self) -> bool:
        return self.proc.poll() is None

    def check_alive(self) -> None:
        """Raise with the log tail if the process has exited (used inside waits for fast failure)."""
        code = self.proc.poll()
        if code is not None:
            raise RuntimeError(f"{self.name} exited with code {code}\n{self.tail()}")

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


@atexit.register
def _stop_leftovers() -> None:
    for process in list(_running.values()):
        process.stop(grace=5.0)
