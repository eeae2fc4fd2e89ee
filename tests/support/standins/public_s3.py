"""S3 as an anonymous caller on the internet sees it: HTTPS GETs of ``/<bucket>/<key>`` (path style),
answered from the moto S3 the code under test wrote to, only as far as AWS would answer them.

Why not let clients GET moto directly: moto serves any object to anyone (it evaluates no bucket
policy and no Block Public Access), and its server routes every unsigned request whose path ends in
``/.well-known/openid-configuration`` to its Cognito stub, so the discovery document would never
come from S3 at all. Here every object is read from moto with a *signed* admin GetObject, after the
decision an anonymous caller would get from AWS:

1. no such bucket: 404 NoSuchBucket;
2. the bucket policy must be public *and* grant ``s3:GetObject`` on the object's ARN to everyone
   (``*`` or ``{"AWS": "*"}``, wildcards in actions and resources as IAM matches them), with no Deny
   applying (:mod:`.policy`); ACLs are never looked at (buckets have ACLs disabled, AWS's default);
3. ``RestrictPublicBuckets`` on the bucket's Block Public Access: a public policy grants nothing to
   anonymous callers, 403;
4. a missing object is 404 NoSuchKey only if the policy also grants ``s3:ListBucket``; otherwise
   403 AccessDenied, as S3 answers a caller who may not list the bucket.

A limit of moto that no front can lift: moto itself refuses every request for an object (the
admin's signed read included) when a statement of the bucket policy with a Condition matches the
action, whatever the condition says; the front then answers 500 saying so.

The answer carries the object's Content-Type, Cache-Control, ETag and Last-Modified. Anything but a
plain GET or HEAD of an object is refused with 403 (the stand-in models anonymous reads only).
Every request is recorded in :attr:`PublicS3.requests` with the reason for its answer.
"""

from __future__ import annotations

import datetime as dt
import email.utils
import ssl
import threading
import urllib.parse
from dataclasses import dataclass
from pathlib import Path

from botocore.exceptions import ClientError

from tests.support.certs import Certs, serving_pki

from .awsxml import XML_HEADERS, s3_error
from .httpd import LoopbackServer, QuietHandler
from .motoserver import Credentials, admin_client
from .policy import Request, UnsupportedPolicy, evaluate
from .s3rules import bucket_policy, is_public, public_access_block

# The condition keys an anonymous HTTPS GET from this machine carries.
_ANONYMOUS_CONTEXT = {
    "aws:securetransport": ["true"],
    "aws:principaltype": ["Anonymous"],
    "aws:sourceip": ["127.0.0.1"],
}
_SERVED_HEADERS = ("ContentType", "CacheControl", "ContentEncoding", "ContentLanguage", "ContentDisposition", "ETag")
_HEADER_NAMES = {
    "ContentType": "Content-Type",
    "CacheControl": "Cache-Control",
    "ContentEncoding": "Content-Encoding",
    "ContentLanguage": "Content-Language",
    "ContentDisposition": "Content-Disposition",
    "ETag": "ETag",
}
# moto 5.2.6 evaluates a bucket policy on every object request, signed or not, with no condition
# values: a statement whose action matches and which has any Condition counts as a Deny for everyone.
_MOTO_DENIES = (
    "moto refused the stand-in's signed read: it treats every statement with a Condition as a Deny "
    "(moto's limit, not AWS's); this policy cannot be served from moto"
)


@dataclass(frozen=True)
class Served:
    """One request to the front: what was asked, what was answered, and why."""

    method: str
    path: str
    status: int
    reason: str


@dataclass(frozen=True)
class _Answer:
    status: int
    reason: str
    body: bytes = b""
    headers: dict[str, str] | None = None


def partition_of(region: str) -> str:
    """The ARN partition of a region (written out here, not taken from webhook.core.arn)."""
    for prefix, partition in (
        ("cn-", "aws-cn"),
        ("us-gov-", "aws-us-gov"),
        ("us-isob-", "aws-iso-b"),
        ("us-iso-", "aws-iso"),
    ):
        if region.startswith(prefix):
            return partition
    return "aws"


class PublicS3:
    """The anonymous HTTPS front of moto's S3 on 127.0.0.1; ``ca_file`` is what clients trust
    (``SSL_CERT_FILE``). Buckets live in ``region``'s partition of moto (one front per partition)."""

    def __init__(
        self, moto_url: str, workdir: Path, region: str = "us-east-1", credentials: Credentials | None = None
    ) -> None:
        self.certs: Certs = serving_pki(workdir / "public-s3-tls")
        self.ca_file: Path = self.certs.ca
        self.region = region
        self.partition = partition_of(region)
        self.requests: list[Served] = []
        self._lock = threading.Lock()
        self._s3 = admin_client(moto_url, "s3", region, credentials)
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(self.certs.cert, self.certs.key)
        self._server = LoopbackServer(_handler(self), context)
        self.port = self._server.port
        self.url = self._server.url

    def issuer_url(self, bucket: str, prefix: str = "") -> str:
        """The URL an issuer published under ``s3://bucket/prefix`` has behind this front."""
        return f"{self.url}/{bucket}" + (f"/{prefix.strip('/')}" if prefix.strip("/") else "")

    def object_url(self, bucket: str, key: str) -> str:
        return f"{self.url}/{bucket}/{urllib.parse.quote(key)}"

    def client_context(self) -> ssl.SSLContext:
        return self.certs.context()

    def reasons(self) -> list[str]:
        with self._lock:
            return [served.reason for served in self.requests]

    def stop(self) -> None:
        self._server.stop()

    def __enter__(self) -> PublicS3:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # --- the decision -------------------------------------------------------------------------

    def _record(self, method: str, path: str, answer: _Answer) -> None:
        with self._lock:
            self.requests.append(Served(method, path, answer.status, answer.reason))

    def answer(self, method: str, raw_path: str) -> _Answer:
        parsed = urllib.parse.urlsplit(raw_path)
        bucket, _, quoted_key = parsed.path.lstrip("/").partition("/")
        key = urllib.parse.unquote(quoted_key)
        if method not in ("GET", "HEAD") or parsed.query or not bucket or not key:
            return _denied("the stand-in serves anonymous GET/HEAD of an object only")
        try:
            return self._decide(method, bucket, key)
        except UnsupportedPolicy as exc:
            return _denied(f"the bucket policy cannot be evaluated by the stand-in: {exc}")

    def _decide(self, method: str, bucket: str, key: str) -> _Answer:
        try:
            self._s3.head_bucket(Bucket=bucket)
        except ClientError:
            return _Answer(
                404, "no such bucket", s3_error("NoSuchBucket", "The specified bucket does not exist", bucket)
            )
        policy = bucket_policy(self._s3, bucket)
        if policy is None:
            return _denied("the bucket has no policy")
        block = public_access_block(self._s3, bucket) or {}
        if block.get("RestrictPublicBuckets") and is_public(policy):
            return _denied("RestrictPublicBuckets is on: the public policy grants nothing to anonymous callers")
        object_arn = f"arn:{self.partition}:s3:::{bucket}/{key}"
        verdict = evaluate(policy, _anonymous("s3:GetObject", object_arn))
        if not verdict.allowed:
            return _denied(f"s3:GetObject on {object_arn}: {verdict.reason}")
        try:
            found = self._s3.get_object(Bucket=bucket, Key=key)
        except ClientError as exc:
            code = exc.response.get("Error", {}).get("Code")
            if code in ("403", "AccessDenied"):
                return _Answer(500, _MOTO_DENIES, s3_error("InternalError", _MOTO_DENIES))
            if code not in ("NoSuchKey", "404"):
                raise
            listing = evaluate(policy, _anonymous("s3:ListBucket", f"arn:{self.partition}:s3:::{bucket}"))
            if listing.allowed:
                return _Answer(404, "no such key", s3_error("NoSuchKey", "The specified key does not exist.", key))
            return _denied("no such key, and s3:ListBucket is not granted: S3 answers 403")
        body: bytes = found["Body"].read()
        headers = {_HEADER_NAMES[name]: str(found[name]) for name in _SERVED_HEADERS if found.get(name)}
        if found.get("LastModified") is not None:
            modified = found["LastModified"].astimezone(dt.UTC)  # botocore's tzutc is not accepted by usegmt
            headers["Last-Modified"] = email.utils.format_datetime(modified, usegmt=True)
        return _Answer(200, verdict.reason, body, headers)


def _anonymous(action: str, resource: str) -> Request:
    return Request("Anonymous", "*", action, resource, _ANONYMOUS_CONTEXT)


def _denied(reason: str) -> _Answer:
    return _Answer(403, reason, s3_error("AccessDenied", "Access Denied"))


def _handler(front: PublicS3) -> type[QuietHandler]:
    class Handler(QuietHandler):
        def _serve(self) -> None:
            try:
                answer = front.answer(self.command, self.path)
            except Exception as exc:  # a stand-in bug must show in the test, as a 500 with its reason
                answer = _Answer(
                    500, f"stand-in error: {type(exc).__name__}: {exc}", s3_error("InternalError", str(exc))
                )
            front._record(self.command, self.path, answer)
            headers = answer.headers if answer.headers is not None else dict(XML_HEADERS)
            self.answer(answer.status, answer.body, headers)

        def do_GET(self) -> None:
            self._serve()

        def do_HEAD(self) -> None:
            self._serve()

        def do_PUT(self) -> None:
            self.body()
            self._serve()

        do_POST = do_DELETE = do_PUT

    return Handler
