"""AWS's error bodies, in the two shapes boto3 parses: the query protocol's (STS, IAM) and S3's.

boto3 turns either into a ``ClientError`` whose ``response["Error"]["Code"]`` is the code given
here, which is how a test tells one refusal from another.
"""

from __future__ import annotations

import uuid
from xml.sax.saxutils import escape

STS_NAMESPACE = "https://sts.amazonaws.com/doc/2011-06-15/"


class Refused(Exception):
    """A refusal a stand-in answers with: AWS's error ``code`` and ``message``, the HTTP ``status``,
    and the stand-in's own ``reason`` (more precise than AWS's message, for the test to read)."""

    def __init__(self, code: str, message: str, reason: str = "", status: int = 400) -> None:
        super().__init__(message)
        self.code, self.message, self.reason, self.status = code, message, reason or message, status


def request_id() -> str:
    return str(uuid.uuid4())


def query_error(code: str, message: str, namespace: str = STS_NAMESPACE, sender: bool = True) -> bytes:
    """``<ErrorResponse>`` as STS and IAM send it (``Type`` Sender for the caller's fault)."""
    kind = "Sender" if sender else "Receiver"
    return (
        f'<ErrorResponse xmlns="{namespace}">'
        f"<Error><Type>{kind}</Type><Code>{escape(code)}</Code><Message>{escape(message)}</Message></Error>"
        f"<RequestId>{request_id()}</RequestId></ErrorResponse>"
    ).encode()


def s3_error(code: str, message: str, resource: str = "") -> bytes:
    """``<Error>`` as S3 sends it."""
    extra = f"<Resource>{escape(resource)}</Resource>" if resource else ""
    return (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        f"<Error><Code>{escape(code)}</Code><Message>{escape(message)}</Message>{extra}"
        f"<RequestId>{uuid.uuid4().hex[:16].upper()}</RequestId><HostId>standin</HostId></Error>"
    ).encode()


XML_HEADERS = {"Content-Type": "application/xml"}
QUERY_XML_HEADERS = {"Content-Type": "text/xml"}
