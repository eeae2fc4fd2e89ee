"""One classification of what an AWS call can raise, into the three things a caller can do about it.

``AwsError.kind``:

- ``retryable``: throttling, a 5xx, a connection that failed or timed out, a race with another
  writer (a bucket or provider that appeared since it was observed): back off and try again;
- ``access-denied``: the credentials may not make this call, or are not accepted at all: nothing in
  the object can fix it, someone must grant the action named in the message (the controller backs off);
- ``terminal``: AWS refused the request itself (a malformed policy, an invalid value, an entity that
  should have been there): the same request fails the same way until the object changes.

botocore is imported only when an exception is classified, so this module (and the provisioner's
types that use :class:`AwsError`) imports without boto3 installed.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, Literal

from webhook.aws.calls import iam_action

Kind = Literal["terminal", "retryable", "access-denied"]

# Error codes AWS returns for a call the credentials may not make (S3, IAM, STS, EC2-style APIs).
ACCESS_DENIED_CODES = frozenset(
    {"AccessDenied", "AccessDeniedException", "UnauthorizedOperation", "UnauthorizedAccess", "AllAccessDisabled"}
)
# Credentials AWS does not accept at all: unknown key, bad signature, no token.
CREDENTIAL_CODES = frozenset(
    {
        "InvalidClientTokenId",
        "InvalidAccessKeyId",
        "SignatureDoesNotMatch",
        "UnrecognizedClientException",
        "AuthFailure",
        "InvalidToken",
        "MissingAuthenticationToken",
        "IncompleteSignature",
    }
)
# Throttling (botocore's own list for the standard retry mode, and S3's SlowDown), transient
# service failures, and races: an expired token is refreshed by boto3's provider on the next try,
# and a bucket or provider that exists now although it did not when observed is seen by the next
# observation.
RETRYABLE_CODES = frozenset(
    {
        "Throttling",
        "ThrottlingException",
        "ThrottledException",
        "RequestThrottledException",
        "TooManyRequestsException",
        "ProvisionedThroughputExceededException",
        "TransactionInProgressException",
        "RequestLimitExceeded",
        "BandwidthLimitExceeded",
        "LimitExceededException",
        "RequestThrottled",
        "SlowDown",
        "PriorRequestNotComplete",
        "EC2ThrottledException",
        "RequestTimeout",
        "RequestTimeoutException",
        "InternalError",
        "InternalFailure",
        "ServiceUnavailable",
        "ServiceFailure",
        "OperationAborted",
        "ConcurrentModification",
        "ConcurrentModificationException",
        "ExpiredToken",
        "ExpiredTokenException",
        "RequestExpired",
        "BucketAlreadyOwnedByYou",
        "EntityAlreadyExists",
    }
)
# HTTP statuses that are retryable whatever the code says: 429 Too Many Requests and every 5xx.
_TOO_MANY_REQUESTS = 429
_SERVER_ERROR = 500


class AwsError(Exception):
    """An AWS call that failed, classified. ``action`` is the IAM action of the call
    (``s3:PutBucketPolicy``), ``code`` AWS's error code when it gave one, ``message`` one line
    that says what happened and what to do."""

    def __init__(self, kind: Kind, action: str, message: str, code: str = "") -> None:
        super().__init__(message)
        self.kind: Kind = kind
        self.action = action
        self.message = message
        self.code = code

    def __repr__(self) -> str:
        return f"AwsError({self.kind!r}, {self.action!r}, {self.message!r})"


def classify(exc: BaseException, action: str, target: str) -> AwsError | None:
    """``exc``, raised by the API call ``action`` (``service:Operation``) on ``target`` (a bucket, an
    object, a provider ARN), as an :class:`AwsError`; None when it is not an AWS or botocore error
    (a bug: let it propagate)."""
    try:
        from botocore import exceptions as bx
        from botocore.parsers import ResponseParserError
    except ImportError:  # no botocore: nothing botocore raised can be here
        return None
    granted = iam_action(action)
    where = f"{granted} for {target}" if target else granted
    if isinstance(exc, bx.ClientError):
        return _client_error(exc.response, granted, where)
    if isinstance(exc, (bx.ConnectionError, bx.HTTPClientError, ResponseParserError)):
        # No answer, or no AWS answer (a proxy's error page): the service was not reached.
        return AwsError("retryable", granted, f"{where}: AWS did not answer: {exc}")
    if isinstance(exc, (bx.NoCredentialsError, bx.PartialCredentialsError, bx.CredentialRetrievalError)):
        return AwsError(
            "access-denied",
            granted,
            f"{where}: no usable AWS credentials ({exc}): give the provisioner credentials boto3 finds "
            "(a role through IRSA, AWS_PROFILE, or AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY)",
        )
    if isinstance(exc, bx.BotoCoreError):  # ParamValidationError, NoRegionError, ...: the request itself
        return AwsError("terminal", granted, f"{where}: {exc}")
    return None


@contextmanager
def translated(action: str, target: str = "") -> Iterator[None]:
    """Run an AWS call, raising what it raises as an :class:`AwsError` (see :func:`classify`)."""
    try:
        yield
    except AwsError:
        raise
    except Exception as exc:
        error = classify(exc, action, target)
        if error is None:
            raise
        raise error from exc


def error_code(exc: BaseException) -> str | None:
    """AWS's error code of a botocore ClientError (``NoSuchKey``, ``404``), else None."""
    response = getattr(exc, "response", None)
    if not isinstance(response, dict):
        return None
    code = response.get("Error", {}).get("Code")
    return str(code) if code is not None else None


def _client_error(response: dict[str, Any], action: str, where: str) -> AwsError:
    error = response.get("Error", {})
    code = str(error.get("Code") or "")
    text = str(error.get("Message") or "").strip()
    status = int(response.get("ResponseMetadata", {}).get("HTTPStatusCode") or 0)
    said = f"{code}: {text}" if text and text != code else code
    if code in ACCESS_DENIED_CODES or (status == 403 and code in ("403", "Forbidden")):
        # A HEAD has no body: S3 says only "403", which is also its answer for a bucket of another account.
        other = " (or the bucket belongs to another account)" if code in ("403", "Forbidden") else ""
        return AwsError(
            "access-denied",
            action,
            f"AccessDenied on {where}{other}: grant it to the provisioner's role",
            code,
        )
    if code in CREDENTIAL_CODES:
        return AwsError(
            "access-denied",
            action,
            f"AWS refused the provisioner's credentials on {where} ({said}): check which credentials boto3 "
            "finds (AWS_PROFILE, AWS_ACCESS_KEY_ID, AWS_ROLE_ARN with its token file)",
            code,
        )
    if code in RETRYABLE_CODES or status == _TOO_MANY_REQUESTS or status >= _SERVER_ERROR:
        return AwsError("retryable", action, f"{said} on {where}: will retry", code)
    return AwsError("terminal", action, f"{said} on {where}", code)
