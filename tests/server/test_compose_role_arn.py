"""--compose-role-arn: the pure composition, the IMDS client against a stand-in on 127.0.0.1, the flags,
and real ``serve`` processes (account from --aws-account-id, from the stand-in, and no IMDS at all)."""

from __future__ import annotations

import base64
import json
import os
import time
from pathlib import Path
from typing import Any

import pytest

from tests.server.imds import DOCUMENT_PATH, TOKEN_PATH, running_imds
from tests.support.cases import JSON_HEADERS, apply_patch, review_of
from tests.support.ports import closed_port_url
from tests.support.server import run_to_exit, serve_argv, start_server
from webhook.aws import imds as imds_client
from webhook.aws.imds import IMDSError, instance_identity
from webhook.commands import serve
from webhook.core.annotations import identity_from_annotations
from webhook.core.arn import compose_role_arn, partition_for_region
from webhook.core.settings import Settings
from webhook.options.config import serve_config
from webhook.options.flags import FlagError, resolve
from webhook.server import devcerts

ACCOUNT = "111122223333"


# --- the pure function ---------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("value", "partition", "expected"),
    [
        pytest.param("s3-reader", "aws", f"arn:aws:iam::{ACCOUNT}:role/s3-reader", id="name"),
        pytest.param("team/s3-reader", "aws", f"arn:aws:iam::{ACCOUNT}:role/team/s3-reader", id="path-and-name"),
        pytest.param("s3-reader", "aws-cn", f"arn:aws-cn:iam::{ACCOUNT}:role/s3-reader", id="china"),
        pytest.param("s3-reader", "aws-us-gov", f"arn:aws-us-gov:iam::{ACCOUNT}:role/s3-reader", id="govcloud"),
        pytest.param(
            "arn:aws:iam::444455556666:role/other", "aws", "arn:aws:iam::444455556666:role/other", id="full-arn-kept"
        ),
        pytest.param("arn:aws-cn:iam::444455556666:role/x", "aws", "arn:aws-cn:iam::444455556666:role/x", id="cn-kept"),
        # As upstream's test: any value containing "arn:" is left alone, even a broken one.
        pytest.param("not-an-arn:thing", "aws", "not-an-arn:thing", id="contains-arn-colon"),
        # [ours] empty means "no role" and stays empty (upstream composes ".../role/" and mutates).
        pytest.param("", "aws", "", id="empty-stays-empty"),
    ],
)
def test_compose_role_arn(value: str, partition: str, expected: str) -> None:
    assert compose_role_arn(value, ACCOUNT, partition) == expected


@pytest.mark.parametrize(
    ("region", "partition"),
    [
        ("us-east-1", "aws"),
        ("eu-west-1", "aws"),
        ("ap-southeast-5", "aws"),
        ("", "aws"),
        ("cn-north-1", "aws-cn"),
        ("cn-northwest-1", "aws-cn"),
        ("us-gov-west-1", "aws-us-gov"),
        ("us-gov-east-1", "aws-us-gov"),
        ("us-iso-east-1", "aws-iso"),
        ("us-iso-west-1", "aws-iso"),
        # us-isob- also starts with us-iso: the longer prefix has to win.
        ("us-isob-east-1", "aws-iso-b"),
        ("eusc-de-east-1", "aws-eusc"),
    ],
)
def test_partition_for_region(region: str, partition: str) -> None:
    assert partition_for_region(region) == partition


# --- where ServiceAccount annotations are parsed ----------------------------------------------------
COMPOSING = Settings(role_arn_account=ACCOUNT, role_arn_partition="aws-cn")


def test_annotation_role_name_is_composed_when_on() -> None:
    identity = identity_from_annotations("ns", "sa", {"eks.amazonaws.com/role-arn": "team/s3-reader"}, COMPOSING)
    assert identity.role_arn == f"arn:aws-cn:iam::{ACCOUNT}:role/team/s3-reader"
    assert identity.warnings == ()


def test_annotation_role_name_is_kept_when_off() -> None:
    identity = identity_from_annotations("ns", "sa", {"eks.amazonaws.com/role-arn": "s3-reader"}, Settings())
    assert identity.role_arn == "s3-reader"
    assert [w.kind for w in identity.warnings] == ["invalid-role-arn"]


def test_invalid_role_arn_warning_names_the_composed_value() -> None:
    identity = identity_from_annotations("ns", "sa", {"eks.amazonaws.com/role-arn": "bad name!"}, COMPOSING)
    assert identity.role_arn == f"arn:aws-cn:iam::{ACCOUNT}:role/bad name!"  # still injected, as upstream
    assert [w.kind for w in identity.warnings] == ["invalid-role-arn"]
    assert f"arn:aws-cn:iam::{ACCOUNT}:role/bad name!" in identity.warnings[0].message


def test_empty_annotation_is_no_role_even_when_composing() -> None:
    identity = identity_from_annotations("ns", "sa", {"eks.amazonaws.com/role-arn": ""}, COMPOSING)
    assert identity.role_arn == ""


# --- the flags -------------------------------------------------------------------------------------
def _config(*argv: str) -> Any:
    from webhook.cli import build_parser

    args = build_parser().parse_args(["serve", *argv])
    return serve_config(resolve(args, serve.FLAGS, environ={}))


def test_account_flag_composes_without_imds() -> None:
    config = _config("--compose-role-arn", f"--aws-account-id={ACCOUNT}", "--aws-default-region=us-gov-west-1")
    assert not config.compose_from_imds
    assert (config.settings.role_arn_account, config.settings.role_arn_partition) == (ACCOUNT, "aws-us-gov")


def test_partition_flag_beats_the_region() -> None:
    config = _config(
        "--compose-role-arn", f"--aws-account-id={ACCOUNT}", "--aws-default-region=cn-north-1", "--aws-partition=aws"
    )
    assert config.settings.role_arn_partition == "aws"


def test_without_account_serve_asks_imds() -> None:
    config = _config("--compose-role-arn")
    assert config.compose_from_imds
    assert config.settings.role_arn_account == ""  # nothing composed before IMDS answered


def test_account_without_compose_is_a_noted_no_op() -> None:
    config = _config(f"--aws-account-id={ACCOUNT}")
    assert not config.compose_from_imds
    assert config.settings.role_arn_account == ""
    assert any("--aws-account-id" in note for note in config.notes)


@pytest.mark.parametrize(
    ("argv", "needle"),
    [
        pytest.param(["--aws-account-id=1234"], "--aws-account-id must be 12 digits", id="short-account"),
        pytest.param(["--aws-account-id=" + "\uff11" * 12], "12 digits", id="fullwidth-digits"),
        pytest.param(["--aws-partition=AWS"], "--aws-partition", id="upper-case-partition"),
    ],
)
def test_bad_compose_flags_are_refused(argv: list[str], needle: str) -> None:
    with pytest.raises(FlagError, match=needle):
        _config("--compose-role-arn", *argv)


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


# --- real serve processes ----------------------------------------------------------------------------
ACCOUNTS_YAML = """\
apiVersion: v1
kind: ServiceAccount
metadata: {name: bare, namespace: team, annotations: {eks.amazonaws.com/role-arn: s3-reader}}
---
apiVersion: v1
kind: ServiceAccount
metadata: {name: pathed, namespace: team, annotations: {eks.amazonaws.com/role-arn: team/s3-reader}}
---
apiVersion: v1
kind: ServiceAccount
metadata:
  name: full
  namespace: team
  annotations: {eks.amazonaws.com/role-arn: "arn:aws:iam::999988887777:role/kept"}
"""


def _review(namespace: str, service_account: str) -> tuple[dict[str, Any], bytes]:
    review = review_of(namespace, service_account)
    return review["request"]["object"], json.dumps(review).encode()


def _role_arn(client: Any, namespace: str, service_account: str) -> str:
    pod, body = _review(namespace, service_account)
    response = client.post("/mutate", content=body, headers=JSON_HEADERS)
    assert response.status_code == 200, response.text
    patch = json.loads(base64.b64decode(response.json()["response"]["patch"]))
    env = {e["name"]: e.get("value") for e in apply_patch(pod, patch)["spec"]["containers"][0]["env"]}
    return str(env["AWS_ROLE_ARN"])


def _accounts(tmp_path: Path) -> str:
    path = tmp_path / "accounts.yaml"
    path.write_text(ACCOUNTS_YAML)
    return f"--service-accounts={path}"


def test_serve_composes_with_the_account_flag_and_never_asks_imds(tmp_path: Path) -> None:
    with running_imds() as imds:
        srv = start_server(
            tmp_path,
            _accounts(tmp_path),
            "--compose-role-arn",
            f"--aws-account-id={ACCOUNT}",
            "--aws-default-region=cn-north-1",
            env={"AWS_EC2_METADATA_SERVICE_ENDPOINT": imds.url},
        )
        try:
            with srv.client() as c:
                assert _role_arn(c, "team", "bare") == f"arn:aws-cn:iam::{ACCOUNT}:role/s3-reader"
                assert _role_arn(c, "team", "pathed") == f"arn:aws-cn:iam::{ACCOUNT}:role/team/s3-reader"
                assert _role_arn(c, "team", "full") == "arn:aws:iam::999988887777:role/kept"
        finally:
            assert srv.stop() == 0
    assert imds.seen == []  # no IMDS call at all
    assert '"from":"--aws-account-id"' in srv.log.read_text()


def test_serve_composes_from_the_instance_identity_document(tmp_path: Path) -> None:
    with running_imds(account_id="444455556666", region="us-gov-west-1") as imds:
        srv = start_server(
            tmp_path, _accounts(tmp_path), "--compose-role-arn", env={"AWS_EC2_METADATA_SERVICE_ENDPOINT": imds.url}
        )
        try:
            with srv.client() as c:
                assert _role_arn(c, "team", "pathed") == "arn:aws-us-gov:iam::444455556666:role/team/s3-reader"
        finally:
            assert srv.stop() == 0
    assert [s.method for s in imds.seen] == ["PUT", "GET"]  # once, at startup


def test_serve_exits_with_one_line_when_imds_cannot_answer(tmp_path: Path) -> None:
    certs = devcerts.generate(tmp_path / "certs")
    url = closed_port_url()
    result = run_to_exit(
        serve_argv(certs, "--metrics-port=0", "--compose-role-arn"),
        env={**os.environ, "AWS_EC2_METADATA_SERVICE_ENDPOINT": url},
    )
    assert result.returncode == 1, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0] == (
        f"irsa-webhook serve: --compose-role-arn needs this instance's account: no answer from IMDS at {url}: "
        "Connection refused (off EC2, give --aws-account-id)"
    )
