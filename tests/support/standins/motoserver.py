"""boto3 clients of moto's server (:class:`tests.support.moto.MotoServer`) with the admin's credentials.

The stand-ins read what the code under test wrote (bucket policies, objects, OIDC providers, roles)
through these admin clients, straight to moto, so their own reads are never recorded as calls of the
code under test.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from typing import Any

import boto3
from botocore.config import Config

Credentials = Mapping[str, str]
ACCOUNT_ID = "123456789012"  # moto's default account
ADMIN_CREDENTIALS = {"aws_access_key_id": "testing", "aws_secret_access_key": "testing"}
# One attempt: a stand-in's read that fails must surface at once, not after botocore's retries.
_NO_RETRIES = Config(retries={"total_max_attempts": 1}, connect_timeout=5, read_timeout=30)
# One session for every admin client: it keeps the service models it loaded, which makes the next
# client ten times quicker to create. Sessions are not thread-safe, hence the lock.
_SESSION = boto3.session.Session()
_SESSION_LOCK = threading.Lock()


def admin_client(endpoint: str, service: str, region: str = "us-east-1", credentials: Credentials | None = None) -> Any:
    """A boto3 client of ``service`` at ``endpoint`` with the admin's credentials: moto's defaults, or
    ``credentials`` (``aws_access_key_id``, ``aws_secret_access_key``) for a moto that enforces IAM."""
    with _SESSION_LOCK:
        return _SESSION.client(
            service, endpoint_url=endpoint, region_name=region, config=_NO_RETRIES, **ADMIN_CREDENTIALS
        )
