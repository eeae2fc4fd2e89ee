"""The provisioner's AWS clients: boto3's standard credential chain, bounded calls, one tally and one rate limit.

Credentials, region and endpoints come from boto3 exactly as the AWS CLI finds them (environment,
``AWS_PROFILE`` and the config files, web identity, container and instance metadata), so
``AWS_ENDPOINT_URL`` and ``AWS_ENDPOINT_URL_<SERVICE>`` work as boto3 documents them: that is how the
tests point the provisioner at moto. Nothing here reads a credential itself.

boto3 is the optional extra ``provisioner``: it is imported when an :class:`AwsClients` is built,
never at import time, so that ``webhook.aws`` (IMDS) and the webhook itself never need it.

Every API call passes through botocore's event hooks: ``before-call`` records it in the
:class:`~webhook.aws.calls.CallTally` (once per call), ``before-send`` takes a token of the
:class:`~webhook.aws.calls.RateLimiter` (once per HTTP attempt: retries cost AWS quota too).
"""

from __future__ import annotations

import functools
import threading
from typing import Any
from urllib.parse import urlsplit

from webhook.aws.calls import CallTally, RateLimiter

BOTO3_MISSING = "the provisioner needs boto3: pip install 'irsa-webhook[provisioner]'"

# Bounded calls: a connection that does not open in 5 s will not open; S3 and IAM answer the
# provisioner's small requests in well under a second, 30 s leaves room for a slow PutObject.
CONNECT_TIMEOUT_SECONDS = 5.0
READ_TIMEOUT_SECONDS = 30.0
# botocore's "standard" retry mode (exponential backoff with jitter, throttling and 5xx and
# connection errors, a retry quota): 3 attempts in all. Longer outages are the controller's backoff.
MAX_ATTEMPTS = 3
# The region of IAM, STS and any S3 call without a known bucket region, when neither the caller
# nor boto3's configuration gives one (IAM is global in the aws partition).
DEFAULT_REGION = "us-east-1"
# Calls per second for all clients together: far below every AWS control-plane throttle (IAM's is a
# few per second per account and shared with everything else there), far above what one reconcile needs.
DEFAULT_RATE = 10.0
DEFAULT_BURST = 10


class Boto3Missing(RuntimeError):
    """boto3 is not installed (the ``provisioner`` extra was not asked for)."""


def _boto3() -> Any:
    try:
        import boto3
    except ImportError:
        raise Boto3Missing(BOTO3_MISSING) from None
    return boto3


class AwsClients:
    """S3 (one client per region), IAM and STS clients from one boto3 session, sharing one tally and
    one rate limiter. Thread-safe: clients are built once under a lock, and botocore clients may be
    shared between threads.

    ``region`` is the region of IAM and STS (and the default of S3); ``None`` takes boto3's configured
    region, else :data:`DEFAULT_REGION`. ``session`` is a ``boto3.session.Session`` (tests may give one
    with explicit credentials); by default a new one, on boto3's standard chain. ``max_attempts``
    counts the first try: 1 makes no retry.
    """

    def __init__(
        self,
        *,
        region: str | None = None,
        tally: CallTally | None = None,
        limiter: RateLimiter | None = None,
        session: Any = None,
        max_attempts: int = MAX_ATTEMPTS,
    ) -> None:
        boto3 = _boto3()
        from botocore.config import Config

        self._session = session if session is not None else boto3.session.Session()
        self.region: str = region or self._session.region_name or DEFAULT_REGION
        self.tally = tally if tally is not None else CallTally()
        self.limiter = limiter if limiter is not None else RateLimiter(DEFAULT_RATE, DEFAULT_BURST)
        self._config = Config(
            connect_timeout=CONNECT_TIMEOUT_SECONDS,
            read_timeout=READ_TIMEOUT_SECONDS,
            retries={"mode": "standard", "total_max_attempts": max_attempts},
        )
        # Path-style S3 requests (http://endpoint/bucket/key) where the endpoint is not AWS's own:
        # a stand-in on 127.0.0.1 or localhost has no DNS for bucket.host.
        self._path_style = self._config.merge(Config(s3={"addressing_style": "path"}))
        self._lock = threading.Lock()
        self._clients: dict[tuple[str, str], Any] = {}
        self._bucket_regions: dict[str, str] = {}
        self._aws_dns_suffixes = _aws_dns_suffixes()

    # --- clients ----------------------------------------------------------------------------------

    @property
    def iam(self) -> Any:
        return self._client("iam", self.region)

    @property
    def sts(self) -> Any:
        return self._client("sts", self.region)

    def s3(self, region: str | None = None) -> Any:
        """The S3 client of ``region`` (None: the default region)."""
        return self._client("s3", region or self.region)

    def s3_for(self, bucket: str) -> Any:
        """The S3 client of ``bucket``'s region when known (:meth:`note_bucket_region`), else the
        default one (botocore then follows S3's redirect to the bucket's region, at one more request)."""
        with self._lock:
            region = self._bucket_regions.get(bucket)
        return self.s3(region)

    def note_bucket_region(self, bucket: str, region: str) -> None:
        """Remember where ``bucket`` lives (the observer learns it, CreateBucket decides it)."""
        with self._lock:
            self._bucket_regions[bucket] = region

    @property
    def endpoint_urls(self) -> dict[str, str]:
        """service/region -> the endpoint URL its client resolved, for the clients built so far."""
        with self._lock:
            return {
                f"{service}/{region}": client.meta.endpoint_url for (service, region), client in self._clients.items()
            }

    def _client(self, service: str, region: str) -> Any:
        with self._lock:
            client = self._clients.get((service, region))
            if client is None:
                client = self._session.client(service, region_name=region, config=self._config)
                if service == "s3" and not self._is_aws(client.meta.endpoint_url):
                    client = self._session.client(service, region_name=region, config=self._path_style)
                client.meta.events.register("before-call", self._before_call)
                client.meta.events.register("before-send", self._before_send)
                self._clients[(service, region)] = client
            return client

    def _is_aws(self, endpoint_url: str) -> bool:
        host = (urlsplit(endpoint_url).hostname or "").lower()
        return any(host.endswith(f".{suffix}") for suffix in self._aws_dns_suffixes)

    # --- hooks ------------------------------------------------------------------------------------

    def _before_call(self, model: Any, **_: Any) -> None:
        self.tally.record(f"{model.service_model.signing_name}:{model.name}")

    def _before_send(self, **_: Any) -> None:
        self.limiter.acquire()
        # None: the request goes on (a value here would stand in for the HTTP response).


@functools.cache
def _aws_dns_suffixes() -> frozenset[str]:
    """The DNS suffixes of AWS's own endpoints in every partition botocore knows (amazonaws.com,
    amazonaws.com.cn, c2s.ic.gov, ...), plus the dual-stack ones (api.aws): any other host is a stand-in."""
    from botocore.loaders import create_loader

    endpoints = create_loader().load_data("endpoints")  # botocore's bundled partitions
    suffixes = {partition["dnsSuffix"] for partition in endpoints["partitions"]}
    return frozenset(suffixes | {"api.aws"})
