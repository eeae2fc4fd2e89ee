"""A recording front of moto: point ``AWS_ENDPOINT_URL`` at it, and it names every AWS API call the
code under test made (:meth:`CallRecorder.actions`, as IAM action names), then passes the request to
moto unchanged.

With ``s3_rules`` on (the default) it also refuses, before moto sees them, the S3 writes AWS would
refuse and moto accepts (:mod:`.s3rules`), and gives a bucket created through it what AWS gives a
new bucket:

- PutBucketPolicy with a public policy while the bucket's BlockPublicPolicy is on: 403 AccessDenied;
- a write that sets an ACL (PutBucketAcl, PutObjectAcl, a canned ACL other than the owner's, a
  grant header): 400 AccessControlListNotSupported, as on a bucket with ACLs disabled;
- CreateBucket: all four Block Public Access settings on, as AWS sets them on every new bucket.

A refused call is recorded too (with its status): the permissions it needs are still needed.
"""

from __future__ import annotations

import threading
import urllib.parse
from dataclasses import dataclass

from .actions import classify
from .awsxml import XML_HEADERS, s3_error
from .httpd import LoopbackServer, QuietHandler, Upstream
from .motoserver import Credentials, admin_client
from .s3rules import NEW_BUCKET_BLOCK, acl_refusal, put_policy_refusal


@dataclass(frozen=True)
class Call:
    service: str
    operation: str  # the API operation: "PutPublicAccessBlock"
    actions: tuple[str, ...]  # the IAM actions it needs: ("s3:PutBucketPublicAccessBlock",)
    method: str
    path: str
    status: int


class CallRecorder:
    """The recording front of moto on 127.0.0.1 (``url``); ``upstream`` defaults to moto itself."""

    def __init__(
        self,
        moto_url: str,
        *,
        upstream: str | None = None,
        s3_rules: bool = True,
        region: str = "us-east-1",
        credentials: Credentials | None = None,
    ) -> None:
        self.upstream = upstream or moto_url
        self.s3_rules = s3_rules
        self.calls: list[Call] = []
        self._lock = threading.Lock()
        self._s3 = admin_client(moto_url, "s3", region, credentials)
        self._server = LoopbackServer(_handler(self))
        self.url = self._server.url

    def actions(self) -> set[str]:
        """Every IAM action the calls so far needed: {"s3:PutBucketPolicy", "iam:CreateOpenIDConnectProvider", ...}."""
        with self._lock:
            return {action for call in self.calls for action in call.actions}

    def operations(self) -> set[str]:
        """Every API operation called so far: {"s3:PutPublicAccessBlock", "sts:GetCallerIdentity", ...}."""
        with self._lock:
            return {f"{call.service}:{call.operation}" for call in self.calls}

    def writes(self) -> list[Call]:
        """The calls that may change something (all but Get/Head/List/Describe), in order."""
        with self._lock:
            return [c for c in self.calls if not c.operation.startswith(("Get", "Head", "List", "Describe"))]

    def clear(self) -> None:
        with self._lock:
            self.calls.clear()

    def stop(self) -> None:
        self._server.stop()

    def __enter__(self) -> CallRecorder:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _record(self, call: Call) -> None:
        with self._lock:
            self.calls.append(call)

    def refusal(self, method: str, operation: str, path: str, headers: dict[str, str], body: bytes) -> Upstream | None:
        """What AWS would answer to this S3 call instead of moto, or None to pass it on."""
        if not self.s3_rules:
            return None
        split = urllib.parse.urlsplit(path)
        bucket = split.path.lstrip("/").partition("/")[0]
        query = urllib.parse.parse_qs(split.query, keep_blank_values=True)
        if operation == "PutBucketPolicy":
            reason = put_policy_refusal(self._s3, bucket, body)
            if reason is not None:
                return Upstream(403, list(XML_HEADERS.items()), s3_error("AccessDenied", reason))
        reason = acl_refusal(method, query, headers)
        if reason is not None:
            return Upstream(400, list(XML_HEADERS.items()), s3_error("AccessControlListNotSupported", reason))
        return None

    def after(self, operation: str, path: str, status: int) -> None:
        """What AWS does to a new bucket that moto does not."""
        if self.s3_rules and operation == "CreateBucket" and status == 200:
            bucket = urllib.parse.urlsplit(path).path.strip("/")
            self._s3.put_public_access_block(Bucket=bucket, PublicAccessBlockConfiguration=NEW_BUCKET_BLOCK)


def _handler(recorder: CallRecorder) -> type[QuietHandler]:
    class Handler(QuietHandler):
        def _serve(self) -> None:
            body = self.body()
            headers = dict(self.headers.items())
            classified = classify(self.command, self.path, headers, body)
            refused = None
            if classified.service == "s3":
                refused = recorder.refusal(self.command, classified.operation, self.path, headers, body)
            upstream = refused or self.forward(recorder.upstream, body)
            if refused is None and classified.service == "s3":
                recorder.after(classified.operation, self.path, upstream.status)
            recorder._record(
                Call(
                    classified.service,
                    classified.operation,
                    classified.actions,
                    self.command,
                    self.path,
                    upstream.status,
                )
            )
            self.relay(upstream)

        def do_GET(self) -> None:
            self._serve()

        do_PUT = do_POST = do_DELETE = do_HEAD = do_GET

    return Handler
