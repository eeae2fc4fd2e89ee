"""moto's standalone server on 127.0.0.1, and boto3 clients of it with the admin's credentials.

The stand-ins read what the code under test wrote (bucket policies, objects, OIDC providers, roles)
through these admin clients, straight to moto, so their own reads are never recorded as calls of the
code under test.
"""

from __future__ import annotations

import sys
import threading
import urllib.request
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import boto3
from botocore.config import Config

from tests.support.ports import free_port
from tests.support.procs import ManagedProcess, http_status
from tests.support.waits import wait_for

Credentials = Mapping[str, str]
MOTO_START_TIMEOUT = 60.0
ACCOUNT_ID = "123456789012"  # moto's default account
ADMIN_CREDENTIALS = {"aws_access_key_id": "testing", "aws_secret_access_key": "testing"}
# One attempt: a stand-in's read that fails must surface at once, not after botocore's retries.
_NO_RETRIES = Config(retries={"total_max_attempts": 1}, connect_timeout=5, read_timeout=30)
# One session for every admin client: it keeps the service models it loaded, which makes the next
# client ten times quicker to create. Sessions are not thread-safe, hence the lock.
_SESSION = boto3.session.Session()
_SESSION_LOCK = threading.Lock()


class MotoServer:
    """``python -m moto.server`` on a free port of 127.0.0.1, output in ``workdir/moto.log``."""

    def __init__(self, workdir: Path) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.process = ManagedProcess(
            "moto-server",
            [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(self.port)],
            workdir / "moto.log",
        )
        process = self.process

        def up() -> bool:
            process.check_alive()
            return http_status(f"{self.url}/moto-api/") == 200

        try:
            wait_for(up, timeout=MOTO_START_TIMEOUT, what="moto server", on_timeout=process.tail)
        except BaseException:
            self.stop()
            raise

    def reset(self) -> None:
        """Forget every resource (moto's own reset endpoint): one server, a clean account per test."""
        request = urllib.request.Request(f"{self.url}/moto-api/reset", method="POST")
        with urllib.request.urlopen(request, timeout=10) as response:
            response.read()

    def stop(self) -> None:
        self.process.stop()


def admin_client(endpoint: str, service: str, region: str = "us-east-1", credentials: Credentials | None = None) -> Any:
    """A boto3 client of ``service`` at ``endpoint`` with the admin's credentials: moto's defaults, or
    ``credentials`` (``aws_access_key_id``, ``aws_secret_access_key``) for a moto that enforces IAM."""
    with _SESSION_LOCK:
        return _SESSION.client(
            service, endpoint_url=endpoint, region_name=region, config=_NO_RETRIES, **ADMIN_CREDENTIALS
        )
