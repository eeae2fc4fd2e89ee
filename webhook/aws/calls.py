"""What every AWS call of the provisioner passes through: a tally by action, and one rate limit.

Both are plain thread-safe objects with no dependency (no boto3, no prometheus_client): the session
(:mod:`webhook.aws.session`) calls them from botocore's event hooks, and the provisioner exports the
tally as metrics (``webhook.provisioner.metrics``).

Actions are spelled ``<service>:<API operation>`` (``s3:PutObject``, ``iam:TagOpenIDConnectProvider``),
the names the changes of a plan carry. A few S3 operations are authorized by an IAM action of another
name; :func:`iam_action` gives the name to grant, for the AccessDenied messages and the docs' policy.
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Callable, Mapping

# An operation reads when its name starts with one of these (GetObject, ListOpenIDConnectProviders,
# HeadBucket, GetCallerIdentity); every other operation the provisioner makes writes.
_READ_PREFIXES = ("Get", "List", "Head", "Describe")

# API operation -> the IAM action that authorizes it, where the two names differ (S3's documentation,
# "Actions, resources, and condition keys for Amazon S3"). Any other operation is its own action.
_IAM_ACTION_OF = {
    "s3:HeadBucket": "s3:ListBucket",
    "s3:ListObjectsV2": "s3:ListBucket",
    "s3:HeadObject": "s3:GetObject",
    "s3:GetPublicAccessBlock": "s3:GetBucketPublicAccessBlock",
    "s3:PutPublicAccessBlock": "s3:PutBucketPublicAccessBlock",
    "s3:DeletePublicAccessBlock": "s3:PutBucketPublicAccessBlock",
    "s3:DeleteBucketTagging": "s3:PutBucketTagging",
}


def is_write(action: str) -> bool:
    """True unless the operation of ``action`` (``service:Operation``) only reads."""
    return not action.partition(":")[2].startswith(_READ_PREFIXES)


def iam_action(action: str) -> str:
    """The IAM action to grant for the API ``action`` (``s3:HeadBucket`` -> ``s3:ListBucket``)."""
    return _IAM_ACTION_OF.get(action, action)


class CallTally:
    """AWS calls made, by action: one count per API call (its retries are not counted again)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._calls: Counter[str] = Counter()

    def record(self, action: str) -> None:
        with self._lock:
            self._calls[action] += 1

    def calls(self) -> dict[str, int]:
        """Every action called so far -> how many times."""
        with self._lock:
            return dict(self._calls)

    def writes(self) -> dict[str, int]:
        """The writing actions called so far -> how many times."""
        return {action: n for action, n in self.calls().items() if is_write(action)}

    def total_writes(self) -> int:
        return sum(self.writes().values())

    def since(self, before: Mapping[str, int]) -> dict[str, int]:
        """The calls made since ``before`` (an earlier :meth:`calls`), the ones with a count only."""
        return {action: n - before.get(action, 0) for action, n in self.calls().items() if n > before.get(action, 0)}


class RateLimiter:
    """A token bucket: at most ``rate`` calls per second on average, bursts of ``burst``; :meth:`acquire`
    waits for a token. ``rate`` <= 0 means no limit.

    One limiter is shared by every client of one :class:`~webhook.aws.session.AwsClients`: AWS
    throttles per account and API (IAM's control plane, S3 per prefix), not per client object, so the
    limit that protects the account's other users has to be global.
    """

    def __init__(
        self,
        rate: float,
        burst: int = 1,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if burst < 1:
            raise ValueError(f"burst must be at least 1, not {burst}")
        self.rate = rate
        self.burst = burst
        self._clock = clock
        self._sleep = sleep
        self._lock = threading.Lock()
        self._tokens = float(burst)
        self._stamp = clock()

    def acquire(self) -> float:
        """Take a token, waiting as long as needed; returns the seconds waited."""
        if self.rate <= 0:
            return 0.0
        with self._lock:
            # Under the lock: waiters queue one after another, each sleeping only its own share.
            now = self._clock()
            self._tokens = min(float(self.burst), self._tokens + (now - self._stamp) * self.rate)
            self._stamp = now
            self._tokens -= 1.0
            wait = -self._tokens / self.rate if self._tokens < 0 else 0.0
            if wait > 0:
                self._sleep(wait)
            return wait
