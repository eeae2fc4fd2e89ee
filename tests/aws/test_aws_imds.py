"""The IMDS client (``webhook.aws.imds``) against a stand-in on 127.0.0.1 (``tests.support.imds``): the
instance identity document behind --compose-role-arn, IMDSv2 and its fallbacks, and every failure."""

from __future__ import annotations

import time
from typing import Any

import pytest

from tests.support.imds import DOCUMENT_PATH, TOKEN_PATH, running_imds
from tests.support.ports import closed_port_url
from webhook.aws import imds as imds_client
from webhook.aws.imds import IMDSError, instance_identity

ACCOUNT = "111122223333"


# --- the IMDS client -------------------------------------------------------------------------------
def test_imds_v2_token_then_document() -> None:
    with running_imds(account_id="444455556666", region="us-gov-west-1") as imds:
        identity = instance_identity(imds.url, environ={})
    assert (identity.account_id, identity.region) == ("444455556666", "us-gov-west-1")
    put, get = imds.seen
    assert (put.method, put.path) == ("PUT", TOKEN_PATH)
    assert int(put.headers["x-aws-ec2-metadata-token-ttl-seconds"]) > 0
    assert (get.method, get.path, get.headers["x-aws-ec2-metadata-token"]) == ("GET", DOCUMENT_PATH, imds.token)


def test_stand_in_refuses_the_document_without_a_token() -> None:
    """The stand-in is IMDSv2-required: a client that skipped the token would be refused."""
    import http.client

    with running_imds() as imds:
        host, port = imds.url.removeprefix("http://").split(":")
        connection = http.client.HTTPConnection(host, int(port), timeout=2)
        connection.request("GET", DOCUMENT_PATH)
        assert connection.getresponse().status == 401
        connection.close()


def test_dropped_token_reply_with_v2_required_fails_fast_naming_the_hop_limit() -> None:
    with running_imds(drop_token_replies=True) as imds:
        started = time.monotonic()
        with pytest.raises(IMDSError, match="hop limit") as raised:
            instance_identity(imds.url, environ={})
        elapsed = time.monotonic() - started
    # Two token tries of 1 s each, then one document request: bounded, whatever IMDS does.
    assert elapsed < 5, elapsed
    assert [s.method for s in imds.seen] == ["PUT", "PUT", "GET"]
    assert "\n" not in str(raised.value)


def test_dropped_token_reply_falls_back_to_imds_v1_when_allowed() -> None:
    with running_imds(drop_token_replies=True, require_token=False, account_id=ACCOUNT, region="cn-north-1") as imds:
        identity = instance_identity(imds.url, environ={}, timeout=0.3)
    assert (identity.account_id, identity.region) == (ACCOUNT, "cn-north-1")
    assert "x-aws-ec2-metadata-token" not in imds.seen[-1].headers


def test_imds_without_v2_falls_back_to_v1() -> None:
    with running_imds(token_status=404, require_token=False) as imds:
        assert instance_identity(imds.url, environ={}).account_id == "444455556666"


def test_imds_turned_off_is_not_retried_as_v1() -> None:
    with running_imds(token_status=403, require_token=False) as imds, pytest.raises(IMDSError, match="turned off"):
        instance_identity(imds.url, environ={})
    assert [s.method for s in imds.seen] == ["PUT"]


def test_an_unusable_token_is_not_sent_as_a_header() -> None:
    with running_imds(token_body=b"bad\r\ntoken") as imds, pytest.raises(IMDSError, match="an unusable token"):
        instance_identity(imds.url, environ={})
    assert "x-aws-ec2-metadata-token" not in imds.seen[-1].headers


def test_a_failed_document_request_is_retried_once() -> None:
    with running_imds(document_failures=1) as imds:
        assert instance_identity(imds.url, environ={}).region == "us-gov-west-1"
    with running_imds(document_failures=2) as imds, pytest.raises(IMDSError, match="HTTP 500"):
        instance_identity(imds.url, environ={})


@pytest.mark.parametrize(
    ("document", "needle"),
    [
        pytest.param(b"<html>", "not JSON", id="not-json"),
        pytest.param([1, 2], "not a JSON object", id="not-an-object"),
        pytest.param({"region": "us-east-1"}, "accountId", id="no-account"),
        pytest.param({"accountId": "12", "region": "us-east-1"}, "accountId", id="short-account"),
        pytest.param({"accountId": ACCOUNT}, "no region", id="no-region"),
    ],
)
def test_malformed_identity_document(document: Any, needle: str) -> None:
    with running_imds(document=document) as imds, pytest.raises(IMDSError, match=needle):
        instance_identity(imds.url, environ={})


def test_unreachable_imds_is_one_line_and_quick() -> None:
    url = closed_port_url()
    started = time.monotonic()
    with pytest.raises(IMDSError) as raised:
        instance_identity(url, environ={})
    assert time.monotonic() - started < 3
    assert str(raised.value) == f"no answer from IMDS at {url}: Connection refused"


def test_imds_disabled_by_the_sdk_switch_makes_no_request() -> None:
    with running_imds() as imds, pytest.raises(IMDSError, match="AWS_EC2_METADATA_DISABLED"):
        instance_identity(imds.url, environ={"AWS_EC2_METADATA_DISABLED": "true"})
    assert imds.seen == []


def test_imds_endpoint_from_the_environment() -> None:
    assert imds_client.imds_endpoint({}) == "http://169.254.169.254"
    assert imds_client.imds_endpoint({"AWS_EC2_METADATA_SERVICE_ENDPOINT_MODE": "IPv6"}) == "http://[fd00:ec2::254]"
    env = {"AWS_EC2_METADATA_SERVICE_ENDPOINT": "http://127.0.0.1:9/", "AWS_EC2_METADATA_SERVICE_ENDPOINT_MODE": "IPv6"}
    assert imds_client.imds_endpoint(env) == "http://127.0.0.1:9"
