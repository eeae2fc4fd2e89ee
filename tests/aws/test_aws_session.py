"""The provisioner's AWS clients (``webhook.aws.session``): boto3's standard chain and its endpoint
settings, bounded calls, path-style S3 off AWS, one tally and one rate limit over every call; the
clear message without boto3. Against moto's server on 127.0.0.1 (the ``moto`` fixture)."""

from __future__ import annotations

import subprocess
import sys
import time

import pytest

from tests.support.awserrors import error_endpoint, s3_error
from tests.support.awsstate import raw_s3
from tests.support.moto import ACCOUNT, MotoServer, point_at
from tests.support.paths import REPO
from tests.support.ports import closed_port_url
from webhook.aws.calls import CallTally, RateLimiter
from webhook.aws.session import BOTO3_MISSING, AwsClients, Boto3Missing


def test_every_client_follows_aws_endpoint_url(moto: MotoServer) -> None:
    aws = AwsClients()
    assert aws.sts.get_caller_identity()["Account"] == ACCOUNT
    aws.s3("eu-west-1").create_bucket(
        Bucket="endpoint-test", CreateBucketConfiguration={"LocationConstraint": "eu-west-1"}
    )
    assert aws.iam.list_open_id_connect_providers()["OpenIDConnectProviderList"] == []
    assert set(aws.endpoint_urls.values()) == {moto.url}
    assert raw_s3("eu-west-1").head_bucket(Bucket="endpoint-test")["BucketRegion"] == "eu-west-1"


def test_a_service_specific_endpoint_wins_over_the_general_one(
    moto: MotoServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    nowhere = closed_port_url()
    monkeypatch.setenv("AWS_ENDPOINT_URL", nowhere)
    monkeypatch.setenv("AWS_ENDPOINT_URL_S3", moto.url)
    aws = AwsClients()
    aws.s3().create_bucket(Bucket="s3-only")
    assert aws.endpoint_urls == {"s3/us-east-1": moto.url}
    assert aws.iam.meta.endpoint_url == nowhere


def test_region_comes_from_the_caller_then_boto3s_configuration(
    moto: MotoServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert AwsClients(region="eu-central-1").sts.meta.region_name == "eu-central-1"
    assert AwsClients().region == "us-east-1"  # AWS_DEFAULT_REGION of the fixture
    monkeypatch.setenv("AWS_DEFAULT_REGION", "ap-south-1")
    assert AwsClients().region == "ap-south-1"
    monkeypatch.delenv("AWS_DEFAULT_REGION")
    assert AwsClients().region == "us-east-1"  # nothing configured: IAM's home region


def test_calls_are_bounded_and_retried_in_standard_mode(moto: MotoServer) -> None:
    config = AwsClients().s3().meta.config
    assert (config.connect_timeout, config.read_timeout) == (5.0, 30.0)
    assert config.retries == {"mode": "standard", "total_max_attempts": 3}


def test_s3_off_aws_is_path_style(tmp_path, monkeypatch: pytest.MonkeyPatch) -> None:
    # "localhost", not 127.0.0.1: botocore itself never uses a virtual host for an IP address.
    with error_endpoint(404, s3_error("NoSuchKey", "The specified key does not exist.")) as endpoint:
        point_at(monkeypatch, endpoint.url.replace("127.0.0.1", "localhost"), tmp_path)
        with pytest.raises(Exception, match="NoSuchKey"):
            AwsClients().s3().get_object(Bucket="path-style", Key="a/keys.json")
    assert endpoint.seen == [("GET", "/path-style/a/keys.json")]


def test_s3_on_aws_keeps_virtual_hosts(tmp_path, monkeypatch: pytest.MonkeyPatch) -> None:
    point_at(monkeypatch, "http://unused", tmp_path)
    monkeypatch.delenv("AWS_ENDPOINT_URL")
    client = AwsClients(region="eu-west-1").s3()
    assert client.meta.endpoint_url == "https://s3.eu-west-1.amazonaws.com"
    assert (client.meta.config.s3 or {}).get("addressing_style") != "path"
    china = AwsClients(region="cn-north-1").s3()
    assert china.meta.endpoint_url == "https://s3.cn-north-1.amazonaws.com.cn"
    assert (china.meta.config.s3 or {}).get("addressing_style") != "path"


def test_the_tally_counts_each_call_once_by_action_and_knows_writes(moto: MotoServer) -> None:
    aws = AwsClients()
    aws.sts.get_caller_identity()
    aws.s3().create_bucket(Bucket="tally-test")
    aws.s3().put_object(Bucket="tally-test", Key="k", Body=b"1")
    aws.s3().put_object(Bucket="tally-test", Key="k", Body=b"2")
    aws.s3().head_bucket(Bucket="tally-test")
    assert aws.tally.calls() == {
        "sts:GetCallerIdentity": 1,
        "s3:CreateBucket": 1,
        "s3:PutObject": 2,
        "s3:HeadBucket": 1,
    }
    assert aws.tally.writes() == {"s3:CreateBucket": 1, "s3:PutObject": 2}


def test_retries_are_not_counted_as_calls_but_each_attempt_waits_for_the_limiter(
    tmp_path, monkeypatch: pytest.MonkeyPatch
) -> None:
    class CountingLimiter(RateLimiter):
        taken = 0

        def acquire(self) -> float:
            self.taken += 1
            return 0.0

    limiter = CountingLimiter(0)
    with error_endpoint(503, s3_error("SlowDown", "Please reduce your request rate.")) as endpoint:
        point_at(monkeypatch, endpoint.url, tmp_path)
        aws = AwsClients(limiter=limiter)
        with pytest.raises(Exception, match="SlowDown"):
            aws.s3().put_object(Bucket="retried", Key="k", Body=b"x")
    assert len(endpoint.seen) == 3
    assert aws.tally.calls() == {"s3:PutObject": 1}
    assert limiter.taken == 3


def test_clients_share_one_tally_and_one_limiter_across_services_and_regions(moto: MotoServer) -> None:
    tally, limiter = CallTally(), RateLimiter(0)
    aws = AwsClients(tally=tally, limiter=limiter)
    aws.s3("eu-west-1").list_buckets()
    aws.s3("us-east-1").list_buckets()
    aws.iam.list_open_id_connect_providers()
    assert tally.calls() == {"s3:ListBuckets": 2, "iam:ListOpenIDConnectProviders": 1}
    assert aws.s3("eu-west-1") is aws.s3("eu-west-1")


def test_the_rate_limit_bounds_calls_per_second(moto: MotoServer) -> None:
    rate, calls = 25.0, 26
    aws = AwsClients(limiter=RateLimiter(rate, burst=1))
    aws.sts.get_caller_identity()  # the client is built and the one token of the burst is spent
    start = time.monotonic()
    for _ in range(calls):
        aws.sts.get_caller_identity()
    elapsed = time.monotonic() - start
    # 26 calls at 25/s need at least ~1 s whatever moto's speed; a missing limit lets moto run them
    # in a fraction of that. Only the lower bound is asserted (a busy machine is only ever slower).
    assert calls / elapsed <= rate * 1.1, f"{calls} calls in {elapsed:.2f}s"


def test_bucket_regions_noted_choose_the_client(moto: MotoServer) -> None:
    aws = AwsClients()
    assert aws.s3_for("somewhere") is aws.s3()
    aws.note_bucket_region("somewhere", "eu-west-2")
    assert aws.s3_for("somewhere") is aws.s3("eu-west-2")
    assert aws.s3_for("somewhere").meta.region_name == "eu-west-2"


def test_without_boto3_the_message_says_what_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "boto3", None)  # what `import boto3` meets when it is not installed
    with pytest.raises(Boto3Missing) as raised:
        AwsClients()
    assert str(raised.value) == BOTO3_MISSING == "the provisioner needs boto3: pip install 'irsa-webhook[provisioner]'"


def test_the_provisioner_modules_import_without_boto3() -> None:
    script = (
        "import sys\n"
        "sys.modules['boto3'] = sys.modules['botocore'] = None\n"
        "import webhook.aws, webhook.aws.imds, webhook.aws.calls, webhook.aws.errors, webhook.aws.session\n"
        "import webhook.provisioner.observe, webhook.provisioner.executor, webhook.provisioner.metrics\n"
        "from webhook.aws.errors import classify\n"
        "assert classify(ValueError('x'), 's3:PutObject', 'b') is None\n"
        "try:\n"
        "    webhook.aws.session.AwsClients()\n"
        "except webhook.aws.session.Boto3Missing as exc:\n"
        "    print(exc)\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", script], cwd=REPO, capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == BOTO3_MISSING
