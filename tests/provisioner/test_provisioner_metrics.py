"""The AWS call tally as Prometheus counters (``webhook.provisioner.metrics``): read at scrape time,
writes apart from all calls, by action."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, generate_latest

from tests.support.metrics import scraped
from webhook.aws.calls import CallTally
from webhook.provisioner.metrics import register


def test_writes_and_calls_by_action_as_the_tally_has_them_at_each_scrape() -> None:
    tally, registry = CallTally(), CollectorRegistry()
    register(tally, registry)
    tally.record("s3:PutObject")
    tally.record("s3:GetObject")
    text = generate_latest(registry).decode()
    assert scraped(text, "irsa_webhook_provisioner_aws_writes_total", action="s3:PutObject") == 1
    assert scraped(text, "irsa_webhook_provisioner_aws_writes_total", action="s3:GetObject") is None
    assert scraped(text, "irsa_webhook_provisioner_aws_calls_total", action="s3:GetObject") == 1
    tally.record("s3:PutObject")
    tally.record("iam:TagOpenIDConnectProvider")
    text = generate_latest(registry).decode()
    assert scraped(text, "irsa_webhook_provisioner_aws_writes_total", action="s3:PutObject") == 2
    assert scraped(text, "irsa_webhook_provisioner_aws_writes_total", action="iam:TagOpenIDConnectProvider") == 1
    assert scraped(text, "irsa_webhook_provisioner_aws_calls_total", action="s3:PutObject") == 2
