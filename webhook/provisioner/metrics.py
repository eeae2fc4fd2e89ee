"""The provisioner's AWS calls as Prometheus metrics, read from the tally at each scrape.

``webhook.aws`` keeps a plain :class:`~webhook.aws.calls.CallTally` (the AWS edge stays free of
prometheus_client); this collector turns it into two counters, so that "a converged object costs zero
writes per resync" can be watched in production as it is asserted in the tests:

- ``irsa_webhook_provisioner_aws_writes_total{action}``: calls that change something in AWS;
- ``irsa_webhook_provisioner_aws_calls_total{action}``: every call, reads included.
"""

from __future__ import annotations

from collections.abc import Iterable

from prometheus_client import REGISTRY, CollectorRegistry
from prometheus_client.core import CounterMetricFamily, Metric
from prometheus_client.registry import Collector

from webhook.aws.calls import CallTally, is_write

WRITES = "irsa_webhook_provisioner_aws_writes"
CALLS = "irsa_webhook_provisioner_aws_calls"


class AwsCallsCollector(Collector):
    """Exports one tally; the counters are the tally's counts at scrape time."""

    def __init__(self, tally: CallTally) -> None:
        self.tally = tally

    def collect(self) -> Iterable[Metric]:
        calls = self.tally.calls()
        writes = CounterMetricFamily(
            WRITES, "AWS API calls of the provisioner that write, by action.", labels=["action"]
        )
        every = CounterMetricFamily(
            CALLS, "AWS API calls of the provisioner, reads included, by action.", labels=["action"]
        )
        for action, count in sorted(calls.items()):
            every.add_metric([action], count)
            if is_write(action):
                writes.add_metric([action], count)
        return [writes, every]


def register(tally: CallTally, registry: CollectorRegistry = REGISTRY) -> AwsCallsCollector:
    """Export ``tally`` on ``registry``: once per process and registry (the default registry refuses
    the same metric names twice)."""
    collector = AwsCallsCollector(tally)
    registry.register(collector)
    return collector
