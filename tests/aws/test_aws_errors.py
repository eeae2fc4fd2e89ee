"""Every AWS failure classified once (``webhook.aws.errors``): terminal, retryable or access-denied,
with a message naming the IAM action and the target. The errors are real responses: moto's where
it produces them (a missing bucket, a malformed IAM document, AccessDenied with its IAM enforcement
on, refused credentials), else AWS's documented error bodies from a local endpoint
(``tests.support.awserrors``: S3's MalformedPolicy, throttling, 5xx), and a port nothing listens on."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest

from tests.support.awserrors import error_endpoint, query_error, s3_error
from tests.support.moto import MotoServer, point_at
from tests.support.ports import closed_port_url
from webhook.aws.errors import AwsError, classify, translated
from webhook.aws.session import AwsClients

BUCKET = "errors-test-bucket"


def failure(action: str, target: str, call: Any) -> AwsError:
    """What ``call()`` raises, translated as the provisioner translates it."""
    with pytest.raises(AwsError) as raised, translated(action, target):
        call()
    return raised.value


# --- moto's own answers ---------------------------------------------------------------------------


def test_a_missing_bucket_is_terminal_and_named(moto: MotoServer) -> None:
    aws = AwsClients()
    error = failure("s3:GetBucketPolicy", BUCKET, lambda: aws.s3().get_bucket_policy(Bucket=BUCKET))
    assert (error.kind, error.code, error.action) == ("terminal", "NoSuchBucket", "s3:GetBucketPolicy")
    assert error.message == f"NoSuchBucket: The specified bucket does not exist on s3:GetBucketPolicy for {BUCKET}"


def test_a_malformed_iam_document_is_terminal(moto: MotoServer) -> None:
    aws = AwsClients()
    document = '{"Version": "2012-10-17", "Statement": [{"Effect": "Maybe", "Action": "s3:*", "Resource": "*"}]}'
    error = failure("iam:CreatePolicy", "p", lambda: aws.iam.create_policy(PolicyName="p", PolicyDocument=document))
    assert (error.kind, error.code) == ("terminal", "MalformedPolicyDocument")


def test_a_missing_provider_is_terminal(moto: MotoServer) -> None:
    aws = AwsClients()
    arn = "arn:aws:iam::123456789012:oidc-provider/example.com/none"
    error = failure(
        "iam:GetOpenIDConnectProvider", arn, lambda: aws.iam.get_open_id_connect_provider(OpenIDConnectProviderArn=arn)
    )
    assert (error.kind, error.code) == ("terminal", "NoSuchEntity")
    assert arn in error.message


def test_an_invalid_value_from_the_sdk_itself_is_terminal(moto: MotoServer) -> None:
    aws = AwsClients()
    # botocore checks the model's constraints before sending: a thumbprint is 40 hex characters.
    error = failure(
        "iam:CreateOpenIDConnectProvider",
        "https://example.com",
        lambda: aws.iam.create_open_id_connect_provider(Url="https://example.com", ThumbprintList=["abc"]),
    )
    assert error.kind == "terminal"
    assert "ThumbprintList" in error.message


@pytest.fixture(scope="module")
def enforcing_moto(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[MotoServer, dict[str, str]]]:
    """A moto server that enforces IAM on every request after the first three (which set it up: a
    bucket, a user, the user's access key), and that user's keys: the user has no policy at all."""
    server = MotoServer(tmp_path_factory.mktemp("moto-iam"), env={"INITIAL_NO_AUTH_ACTION_COUNT": "3"})
    try:
        admin = boto3.session.Session(
            aws_access_key_id="AKIAIOSFODNN7EXAMPLE", aws_secret_access_key="x", region_name="us-east-1"
        )
        admin.client("s3", endpoint_url=server.url).create_bucket(Bucket=BUCKET)
        iam = admin.client("iam", endpoint_url=server.url)
        iam.create_user(UserName="provisioner")
        key = iam.create_access_key(UserName="provisioner")["AccessKey"]
        yield server, {"AWS_ACCESS_KEY_ID": key["AccessKeyId"], "AWS_SECRET_ACCESS_KEY": key["SecretAccessKey"]}
    finally:
        server.stop()


@pytest.fixture
def denied(
    enforcing_moto: tuple[MotoServer, dict[str, str]], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> AwsClients:
    """Clients on the enforcing server with the credentials of a user allowed nothing."""
    server, keys = enforcing_moto
    point_at(monkeypatch, server.url, tmp_path)
    for name, value in keys.items():
        monkeypatch.setenv(name, value)
    return AwsClients(max_attempts=1)


def test_access_denied_names_the_action_to_grant_and_the_target(denied: AwsClients) -> None:
    error = failure(
        "s3:PutBucketPolicy", BUCKET, lambda: denied.s3().put_bucket_policy(Bucket=BUCKET, Policy='{"Statement": []}')
    )
    assert (error.kind, error.action, error.code) == ("access-denied", "s3:PutBucketPolicy", "AccessDenied")
    assert error.message == f"AccessDenied on s3:PutBucketPolicy for {BUCKET}: grant it to the provisioner's role"


def test_access_denied_names_the_iam_action_where_it_differs_from_the_api_call(denied: AwsClients) -> None:
    block = {
        "BlockPublicAcls": True,
        "IgnorePublicAcls": True,
        "BlockPublicPolicy": False,
        "RestrictPublicBuckets": False,
    }
    error = failure(
        "s3:PutPublicAccessBlock",
        BUCKET,
        lambda: denied.s3().put_public_access_block(Bucket=BUCKET, PublicAccessBlockConfiguration=block),
    )
    assert error.kind == "access-denied"
    assert error.message.startswith("AccessDenied on s3:PutBucketPublicAccessBlock for ")


def test_iam_access_denied(denied: AwsClients) -> None:
    url = "https://example.com/denied"
    error = failure("iam:CreateOpenIDConnectProvider", url, lambda: denied.iam.create_open_id_connect_provider(Url=url))
    assert (error.kind, error.action) == ("access-denied", "iam:CreateOpenIDConnectProvider")
    assert "grant it to the provisioner's role" in error.message


def test_refused_credentials_are_access_denied_and_say_to_check_them(
    enforcing_moto: tuple[MotoServer, dict[str, str]], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    point_at(monkeypatch, enforcing_moto[0].url, tmp_path)  # the example key is no user of that server
    aws = AwsClients(max_attempts=1)
    error = failure("sts:GetCallerIdentity", "", aws.sts.get_caller_identity)
    assert (error.kind, error.code) == ("access-denied", "InvalidClientTokenId")
    assert "check which credentials boto3 finds" in error.message


def test_no_credentials_at_all_is_access_denied(moto: MotoServer, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("AWS_ACCESS_KEY_ID")
    monkeypatch.delenv("AWS_SECRET_ACCESS_KEY")
    aws = AwsClients(max_attempts=1)
    error = failure("sts:GetCallerIdentity", "", aws.sts.get_caller_identity)
    assert error.kind == "access-denied"
    assert "no usable AWS credentials" in error.message


# --- AWS's documented error bodies ------------------------------------------------------------------


# (HTTP status, AWS's error code, the kind it is classified as)
S3_ERRORS = [
    (400, "MalformedPolicy", "terminal"),
    (400, "InvalidArgument", "terminal"),
    (503, "SlowDown", "retryable"),
    (500, "InternalError", "retryable"),
    (409, "OperationAborted", "retryable"),
    (409, "BucketAlreadyOwnedByYou", "retryable"),
    (403, "AccessDenied", "access-denied"),
]
IAM_ERRORS = [
    (400, "Throttling", "retryable"),
    (500, "ServiceFailure", "retryable"),
    (409, "ConcurrentModification", "retryable"),
    (409, "EntityAlreadyExists", "retryable"),
    (400, "ExpiredToken", "retryable"),
    (400, "InvalidInput", "terminal"),
    (409, "LimitExceeded", "terminal"),
    (403, "AccessDenied", "access-denied"),
]


def s3_failure(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, status: int, body: bytes) -> AwsError:
    with error_endpoint(status, body) as endpoint:
        point_at(monkeypatch, endpoint.url, tmp_path)
        aws = AwsClients(max_attempts=1)
        return failure("s3:PutBucketPolicy", BUCKET, lambda: aws.s3().put_bucket_policy(Bucket=BUCKET, Policy="{}"))


@pytest.mark.parametrize(("status", "code", "kind"), S3_ERRORS, ids=[code for _, code, _ in S3_ERRORS])
def test_s3_errors(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, status: int, code: str, kind: str) -> None:
    error = s3_failure(monkeypatch, tmp_path, status, s3_error(code, f"what S3 says about {code}"))
    assert (error.kind, error.code, error.action) == (kind, code, "s3:PutBucketPolicy")
    assert f"s3:PutBucketPolicy for {BUCKET}" in error.message


def test_a_proxys_error_page_is_retryable(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    error = s3_failure(monkeypatch, tmp_path, 502, b"<html><body>Bad Gateway</body></html>")
    assert (error.kind, error.code) == ("retryable", "502")


@pytest.mark.parametrize(("status", "code", "kind"), IAM_ERRORS, ids=[code for _, code, _ in IAM_ERRORS])
def test_iam_errors(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, status: int, code: str, kind: str) -> None:
    arn = "arn:aws:iam::123456789012:oidc-provider/example.com"
    body = query_error(code, f"what IAM says about {code}", sender=status < 500)
    with error_endpoint(status, body) as endpoint:
        point_at(monkeypatch, endpoint.url, tmp_path)
        aws = AwsClients(max_attempts=1)
        error = failure(
            "iam:AddClientIDToOpenIDConnectProvider",
            arn,
            lambda: aws.iam.add_client_id_to_open_id_connect_provider(OpenIDConnectProviderArn=arn, ClientID="x"),
        )
    assert (error.kind, error.code) == (kind, code)
    assert f"iam:AddClientIDToOpenIDConnectProvider for {arn}" in error.message


def test_a_bodiless_403_on_a_head_may_be_another_accounts_bucket(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with error_endpoint(403, b"") as endpoint:
        point_at(monkeypatch, endpoint.url, tmp_path)
        aws = AwsClients(max_attempts=1)
        error = failure("s3:HeadBucket", BUCKET, lambda: aws.s3().head_bucket(Bucket=BUCKET))
    assert (error.kind, error.action) == ("access-denied", "s3:ListBucket")
    assert error.message == (
        f"AccessDenied on s3:ListBucket for {BUCKET} (or the bucket belongs to another account): "
        "grant it to the provisioner's role"
    )


def test_throttling_is_retried_by_the_sdk_before_it_is_classified(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with error_endpoint(400, query_error("Throttling", "Rate exceeded")) as endpoint:
        point_at(monkeypatch, endpoint.url, tmp_path)
        aws = AwsClients(max_attempts=2)
        error = failure("iam:ListOpenIDConnectProviders", "", aws.iam.list_open_id_connect_providers)
    assert error.kind == "retryable"
    assert len(endpoint.seen) == 2


def test_nothing_listening_is_retryable(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    point_at(monkeypatch, closed_port_url(), tmp_path)
    aws = AwsClients(max_attempts=1)
    error = failure("sts:GetCallerIdentity", "", aws.sts.get_caller_identity)
    assert error.kind == "retryable"
    assert "AWS did not answer" in error.message


# --- what is not an AWS error -----------------------------------------------------------------------


def test_other_exceptions_are_not_classified_and_propagate_unchanged() -> None:
    bug = KeyError("Arn")
    assert classify(bug, "s3:PutObject", "b") is None
    with pytest.raises(KeyError) as raised, translated("s3:PutObject", "b"):
        raise bug
    assert raised.value is bug


def test_an_aws_error_passes_through_translated_unchanged() -> None:
    original = AwsError("retryable", "s3:GetObject", "x")
    with pytest.raises(AwsError) as raised, translated("s3:PutObject", "b"):
        raise original
    assert raised.value is original
