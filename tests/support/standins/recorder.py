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

With ``faults`` (a share of calls, 0 to 1, drawn from a seeded generator so a run can be replayed) it
also fails calls as AWS does on a bad day, each way equally often:

- ``throttle``: refused before it reaches moto (S3 503 SlowDown, IAM and STS 400 Throttling);
- ``error``: refused before it reaches moto with a 500 InternalError;
- ``lost``: passed to moto, which makes the change, and answered with a 500 anyway (the response
  was lost): the retry or the next reconcile must find the change made, never make it twice.
"""

from __future__ import annotations

import random
import threading
import urllib.parse
from dataclasses import dataclass

from .actions import classify
from .awsxml import QUERY_XML_HEADERS, XML_HEADERS, query_error, s3_error
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
    fault: str = ""  # "", "throttle", "error" or "lost" (see the module docstring)


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
        faults: float = 0.0,
        seed: int = 18,
    ) -> None:
        self.upstream = upstream or moto_url
        self.faults = faults
        self._random = random.Random(seed)
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

    def fault(self) -> str:
        """The fault this call gets ("" for none)."""
        with self._lock:
            if self.faults <= 0 or self._random.random() >= self.faults:
                return ""
            return self._random.choice(("throttle", "error", "lost"))

    def faulted(self) -> list[Call]:
        with self._lock:
            return [c for c in self.calls if c.fault]

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
            fault = recorder.fault()
            refused = _failure(classified.service, fault) if fault in ("throttle", "error") else None
            if refused is None and classified.service == "s3":
                refused = recorder.refusal(self.command, classified.operation, self.path, headers, body)
            upstream = refused or self.forward(recorder.upstream, body)
            if refused is None and classified.service == "s3":
                recorder.after(classified.operation, self.path, upstream.status)
            if fault == "lost":
                upstream = _failure(classified.service, "error")
            recorder._record(
                Call(
                    classified.service,
                    classified.operation,
                    classified.actions,
                    self.command,
                    self.path,
                    upstream.status,
                    fault,
                )
            )
            self.relay(upstream)

        def do_GET(self) -> None:
            self._serve()

        do_PUT = do_POST = do_DELETE = do_HEAD = do_GET

    return Handler


def _failure(service: str, fault: str) -> Upstream:
    """AWS's answer for a throttled call or an internal error, in the service's own error format."""
    if service == "s3":
        if fault == "throttle":
            return Upstream(503, list(XML_HEADERS.items()), s3_error("SlowDown", "Please reduce your request rate."))
        return Upstream(500, list(XML_HEADERS.items()), s3_error("InternalError", "We encountered an internal error."))
    if fault == "throttle":
        return Upstream(400, list(QUERY_XML_HEADERS.items()), query_error("Throttling", "Rate exceeded"))
    return Upstream(
        500, list(QUERY_XML_HEADERS.items()), query_error("InternalFailure", "internal error", sender=False)
    )
