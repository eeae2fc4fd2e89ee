"""The tally and the rate limit every AWS call passes through (``webhook.aws.calls``), on their own:
counting by action, reads told from writes, IAM's names for S3's calls, and the token bucket on a
clock the test moves."""

from __future__ import annotations

import threading

import pytest

from webhook.aws.calls import CallTally, RateLimiter, iam_action, is_write


@pytest.mark.parametrize(
    ("action", "write"),
    [
        ("s3:GetObject", False),
        ("s3:HeadBucket", False),
        ("iam:ListOpenIDConnectProviders", False),
        ("sts:GetCallerIdentity", False),
        ("s3:PutObject", True),
        ("s3:CreateBucket", True),
        ("s3:DeleteBucketPolicy", True),
        ("iam:AddClientIDToOpenIDConnectProvider", True),
        ("iam:TagOpenIDConnectProvider", True),
        ("iam:UpdateOpenIDConnectProviderThumbprint", True),
    ],
)
def test_reads_and_writes(action: str, write: bool) -> None:
    assert is_write(action) is write


@pytest.mark.parametrize(
    ("action", "granted"),
    [
        ("s3:HeadBucket", "s3:ListBucket"),
        ("s3:HeadObject", "s3:GetObject"),
        ("s3:PutPublicAccessBlock", "s3:PutBucketPublicAccessBlock"),
        ("s3:GetPublicAccessBlock", "s3:GetBucketPublicAccessBlock"),
        ("s3:PutBucketPolicy", "s3:PutBucketPolicy"),
        ("iam:CreateOpenIDConnectProvider", "iam:CreateOpenIDConnectProvider"),
    ],
)
def test_the_iam_action_to_grant(action: str, granted: str) -> None:
    assert iam_action(action) == granted


def test_the_tally_counts_by_action() -> None:
    tally = CallTally()
    for action in ("s3:GetObject", "s3:PutObject", "s3:PutObject", "iam:TagOpenIDConnectProvider"):
        tally.record(action)
    before = tally.calls()
    tally.record("s3:PutObject")
    tally.record("s3:GetObject")
    assert before == {"s3:GetObject": 1, "s3:PutObject": 2, "iam:TagOpenIDConnectProvider": 1}
    assert tally.writes() == {"s3:PutObject": 3, "iam:TagOpenIDConnectProvider": 1}
    assert tally.total_writes() == 4
    assert tally.since(before) == {"s3:PutObject": 1, "s3:GetObject": 1}


def test_the_tally_loses_no_count_between_threads() -> None:
    tally = CallTally()

    def record() -> None:
        for _ in range(2000):
            tally.record("s3:PutObject")

    threads = [threading.Thread(target=record) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert tally.calls() == {"s3:PutObject": 16000}


class Clock:
    """A monotonic clock that moves only when the limiter sleeps (or the test says so)."""

    def __init__(self) -> None:
        self.now = 100.0
        self.slept: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds


def test_a_burst_passes_then_calls_are_spaced_by_the_rate() -> None:
    clock = Clock()
    limiter = RateLimiter(4.0, burst=2, clock=clock, sleep=clock.sleep)
    waits = [limiter.acquire() for _ in range(5)]
    assert waits == [0.0, 0.0, 0.25, 0.25, 0.25]
    assert clock.now == pytest.approx(100.75)


def test_idle_time_refills_the_bucket_up_to_the_burst_only() -> None:
    clock = Clock()
    limiter = RateLimiter(2.0, burst=3, clock=clock, sleep=clock.sleep)
    for _ in range(3):
        limiter.acquire()
    clock.now += 60  # a long pause earns 3 tokens, not 120
    assert [limiter.acquire() for _ in range(4)] == [0.0, 0.0, 0.0, 0.5]


def test_a_rate_of_zero_is_no_limit() -> None:
    clock = Clock()
    limiter = RateLimiter(0, clock=clock, sleep=clock.sleep)
    assert [limiter.acquire() for _ in range(100)] == [0.0] * 100
    assert clock.slept == []


def test_a_burst_below_one_is_refused() -> None:
    with pytest.raises(ValueError, match="burst must be at least 1"):
        RateLimiter(1.0, burst=0)


def test_waiters_in_threads_share_one_rate() -> None:
    clock = Clock()
    lock = threading.Lock()

    def sleep(seconds: float) -> None:
        with lock:
            clock.sleep(seconds)

    limiter = RateLimiter(10.0, burst=1, clock=clock, sleep=sleep)
    threads = [threading.Thread(target=limiter.acquire) for _ in range(11)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    # 11 calls at 10/s with a burst of 1: one second of waiting in all, whichever thread waited.
    assert sum(clock.slept) == pytest.approx(1.0)
