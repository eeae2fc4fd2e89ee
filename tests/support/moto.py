"""moto's standalone server on 127.0.0.1, for every test that needs AWS: S3, IAM and STS over real HTTP.

One server per test module or session is enough: :meth:`MotoServer.reset` (moto's own
``POST /moto-api/reset``) empties every service between tests in milliseconds, where a new process
takes seconds. :func:`aws_environment` is the environment that points boto3's standard chain at it
(``AWS_ENDPOINT_URL``, fake static keys, a region) and at nothing else on the machine.
"""

from __future__ import annotations

import os
import sys
import urllib.request
from collections.abc import Mapping
from pathlib import Path

import pytest

from .paths import REPO
from .ports import free_port
from .procs import ManagedProcess, http_status
from .waits import wait_for

MOTO_START_TIMEOUT = 60.0
REGION = "us-east-1"
# moto's default account: every ARN it returns carries it (GetCallerIdentity included).
ACCOUNT = "123456789012"
# Fake static keys: boto3 signs with them, moto accepts any (unless IAM auth is enforced, see below).
ACCESS_KEY_ID = "AKIAIOSFODNN7EXAMPLE"
SECRET_ACCESS_KEY = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"  # AWS's documented example key


class MotoServer:
    """moto's standalone server (all AWS services, STS included) on a free port of 127.0.0.1, with the
    IAM client-ID actions it lacks (:mod:`tests.support.motoserver`).

    ``env`` is added to the server's environment: ``INITIAL_NO_AUTH_ACTION_COUNT=0`` makes moto
    enforce IAM authorization on every request (signatures and policies of the calling user), which
    is how a real AccessDenied comes back from it.
    """

    def __init__(self, workdir: Path, env: Mapping[str, str] | None = None) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.process = ManagedProcess(
            "moto-server",
            [sys.executable, "-m", "tests.support.motoserver", "-H", "127.0.0.1", "-p", str(self.port)],
            workdir / "moto.log",
            env={**os.environ, **(env or {})},
            cwd=REPO,
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
        """Forget every bucket, provider, role... (moto's ``POST /moto-api/reset``)."""
        request = urllib.request.Request(f"{self.url}/moto-api/reset", data=b"", method="POST")
        with urllib.request.urlopen(request, timeout=10) as response:
            response.read()

    def stop(self) -> None:
        self.process.stop()


def aws_environment(endpoint: str, home: Path, region: str = REGION) -> dict[str, str]:
    """What boto3's standard chain needs to talk to ``endpoint`` and nothing else: the endpoint for
    every service, fake static keys, a region, and no config or credentials file or instance
    metadata of this machine (``home`` stands in for ``$HOME``)."""
    return {
        "AWS_ENDPOINT_URL": endpoint,
        "AWS_ACCESS_KEY_ID": ACCESS_KEY_ID,
        "AWS_SECRET_ACCESS_KEY": SECRET_ACCESS_KEY,
        "AWS_DEFAULT_REGION": region,
        "AWS_CONFIG_FILE": str(home / "no-aws-config"),
        "AWS_SHARED_CREDENTIALS_FILE": str(home / "no-aws-credentials"),
        "AWS_EC2_METADATA_DISABLED": "true",
    }


# The variables that would steer boto3 elsewhere if this machine or CI had them set.
_STRAY = (
    "AWS_PROFILE",
    "AWS_SESSION_TOKEN",
    "AWS_SECURITY_TOKEN",
    "AWS_ROLE_ARN",
    "AWS_WEB_IDENTITY_TOKEN_FILE",
    "AWS_CONTAINER_CREDENTIALS_FULL_URI",
    "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
    "AWS_REGION",
    "AWS_IGNORE_CONFIGURED_ENDPOINT_URLS",
)


def point_at(monkeypatch: pytest.MonkeyPatch, endpoint: str, home: Path, region: str = REGION) -> None:
    """Set this process's environment to :func:`aws_environment` (undone by ``monkeypatch``), with
    every service-specific ``AWS_ENDPOINT_URL_*`` and stray credential variable removed."""
    for name in [*_STRAY, *(n for n in os.environ if n.startswith("AWS_ENDPOINT_URL_"))]:
        monkeypatch.delenv(name, raising=False)
    for name, value in aws_environment(endpoint, home, region).items():
        monkeypatch.setenv(name, value)
