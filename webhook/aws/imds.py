"""The EC2 instance identity document over IMDSv2: the account and region ``--compose-role-arn`` needs.

As upstream, ``serve`` asks once, at startup, before it loads any identity; the role ARNs are then
composed by the pure rules in :mod:`webhook.core.arn`. [ours] ``--aws-account-id`` (with
``--aws-partition``, by default derived from ``--aws-default-region``) gives them without asking IMDS,
for clusters off EC2. The client is plain ``http.client``: one small GET pair, no SDK in the image.
"""

from __future__ import annotations

import http.client
import json
import os
import re
import urllib.parse
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from webhook.core.arn import ACCOUNT_RE

IMDS_ENDPOINT_ENV = "AWS_EC2_METADATA_SERVICE_ENDPOINT"
IMDS_DEFAULT_ENDPOINT = "http://169.254.169.254"
# The SDKs' switches, honoured the same way: IPv6 endpoint mode, and IMDS turned off altogether.
IMDS_MODE_ENV = "AWS_EC2_METADATA_SERVICE_ENDPOINT_MODE"
IMDS_IPV6_ENDPOINT = "http://[fd00:ec2::254]"
IMDS_DISABLED_ENV = "AWS_EC2_METADATA_DISABLED"
TOKEN_PATH = "/latest/api/token"  # noqa: S105 - IMDS's API names, not secrets
DOCUMENT_PATH = "/latest/dynamic/instance-identity/document"
TOKEN_TTL_HEADER = "X-aws-ec2-metadata-token-ttl-seconds"  # noqa: S105 - IMDS's API names, not secrets
TOKEN_HEADER = "X-aws-ec2-metadata-token"  # noqa: S105 - IMDS's API names, not secrets
# The token is used once, right away: the shortest lifetime IMDS grants would do; a minute is plenty.
TOKEN_TTL_SECONDS = 60
# Bounded: IMDS answers in milliseconds on EC2, and off EC2 nothing answers at all. Each request
# gets this connect and read timeout and this many tries, so a startup off EC2 fails within seconds.
TIMEOUT_SECONDS = 1.0
ATTEMPTS = 2
_MAX_DOCUMENT_BYTES = 64 << 10
_TOKEN_RE = re.compile(rb"[!-~]{1,4096}")  # printable ASCII, as IMDS tokens are


class IMDSError(Exception):
    """The instance identity document could not be had; the message is one line saying why."""


@dataclass(frozen=True, slots=True)
class InstanceIdentity:
    account_id: str
    region: str


def imds_endpoint(environ: Mapping[str, str] | None = None) -> str:
    """Where IMDS is: ``AWS_EC2_METADATA_SERVICE_ENDPOINT``, else the IPv4 (or, with
    ``AWS_EC2_METADATA_SERVICE_ENDPOINT_MODE=IPv6``, the IPv6) link-local address, as the SDKs do."""
    env = os.environ if environ is None else environ
    endpoint = env.get(IMDS_ENDPOINT_ENV, "").strip()
    if endpoint:
        return endpoint.rstrip("/")
    if env.get(IMDS_MODE_ENV, "").strip().lower() == "ipv6":
        return IMDS_IPV6_ENDPOINT
    return IMDS_DEFAULT_ENDPOINT


def instance_identity(
    endpoint: str | None = None,
    *,
    timeout: float = TIMEOUT_SECONDS,
    attempts: int = ATTEMPTS,
    environ: Mapping[str, str] | None = None,
) -> InstanceIdentity:
    """Account and region of this EC2 instance, from IMDS; IMDSError (one line) when it cannot answer.

    IMDSv2 first: PUT a session token, then GET the document with it. Like the AWS SDKs, a token
    request that gets no answer (a pod behind the instance's default hop limit of 1 never sees the
    reply) or a 404/405 (an IMDS without v2) falls back to a plain IMDSv1 GET; a 403 (IMDS turned off
    for this instance) does not.
    """
    env = os.environ if environ is None else environ
    if env.get(IMDS_DISABLED_ENV, "").strip().lower() == "true":
        raise IMDSError(f"{IMDS_DISABLED_ENV}=true: instance metadata is turned off")
    base = (endpoint or imds_endpoint(env)).rstrip("/")
    parsed = urllib.parse.urlsplit(base)
    if parsed.scheme not in ("http", "https") or not parsed.hostname:
        raise IMDSError(f"{IMDS_ENDPOINT_ENV} {base!r} is not an http:// URL")
    client = _Client(parsed, timeout, max(1, attempts))

    token: str | None = None
    token_problem = ""
    try:
        status, body = client.request("PUT", TOKEN_PATH, {TOKEN_TTL_HEADER: str(TOKEN_TTL_SECONDS)})
    except OSError as exc:
        status, body, token_problem = 0, b"", _reason(exc)
    if status == 200 and _TOKEN_RE.fullmatch(body.strip()):
        token = body.strip().decode("ascii")
    elif status == 200:
        token_problem = "an unusable token"  # noqa: S105 - a message; nothing a header could carry
    elif status == 403:
        raise IMDSError(f"IMDS at {base} refused a session token (HTTP 403): instance metadata is turned off")
    elif status not in (0, 404, 405):
        token_problem = f"HTTP {status}"

    headers = {TOKEN_HEADER: token} if token else {}
    try:
        status, body = client.request("GET", DOCUMENT_PATH, headers)
    except OSError as exc:
        raise IMDSError(f"no answer from IMDS at {base}: {_reason(exc)}") from None
    if status == 401 and token is None:
        hint = f" ({token_problem})" if token_problem else ""
        raise IMDSError(
            f"IMDS at {base} requires IMDSv2 and the session token request failed{hint}: in a pod, the "
            "instance's metadata hop limit must be 2 or more"
        )
    if status != 200:
        raise IMDSError(f"IMDS at {base} answered HTTP {status} for the instance identity document")
    return _parse_document(body, base)


def _parse_document(body: bytes, base: str) -> InstanceIdentity:
    try:
        document: Any = json.loads(body)
    except ValueError:
        raise IMDSError(f"the instance identity document from {base} is not JSON") from None
    if not isinstance(document, dict):
        raise IMDSError(f"the instance identity document from {base} is not a JSON object")
    account, region = document.get("accountId"), document.get("region")
    if not isinstance(account, str) or not ACCOUNT_RE.fullmatch(account):
        raise IMDSError(f"the instance identity document from {base} has no 12-digit accountId")
    if not isinstance(region, str) or not region:
        raise IMDSError(f"the instance identity document from {base} has no region")
    return InstanceIdentity(account, region)


class _Client:
    """One plain HTTP exchange at a time, each with a connect and read timeout and a few tries.

    ``http.client`` directly, not urllib: no proxy from the environment may stand between this
    process and a link-local address.
    """

    def __init__(self, url: urllib.parse.SplitResult, timeout: float, attempts: int) -> None:
        self.url = url
        self.timeout = timeout
        self.attempts = attempts

    def request(self, method: str, path: str, headers: dict[str, str]) -> tuple[int, bytes]:
        """(status, body) of the last try; a 5xx is retried. OSError when no try got an answer."""
        prefix = self.url.path.rstrip("/")
        failure: OSError | None = None
        answer: tuple[int, bytes] | None = None
        for _ in range(self.attempts):
            connection_class = http.client.HTTPSConnection if self.url.scheme == "https" else http.client.HTTPConnection
            connection = connection_class(self.url.hostname or "", self.url.port, timeout=self.timeout)
            try:
                connection.request(method, prefix + path, headers=headers)
                response = connection.getresponse()
                answer = (response.status, response.read(_MAX_DOCUMENT_BYTES))
            except (OSError, http.client.HTTPException) as exc:
                failure = exc if isinstance(exc, OSError) else OSError(str(exc) or type(exc).__name__)
                continue
            finally:
                connection.close()
            if answer[0] < 500:
                return answer
        if answer is not None:
            return answer
        raise failure or OSError("no answer")


def _reason(exc: OSError) -> str:
    if isinstance(exc, TimeoutError):
        return "timed out"
    return exc.strerror or str(exc) or type(exc).__name__
