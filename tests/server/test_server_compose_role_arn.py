"""--compose-role-arn in ``serve``: its flags, and real ``serve`` processes (account from --aws-account-id,
from a stand-in IMDS on 127.0.0.1, and no IMDS at all)."""

from __future__ import annotations

import base64
import json
import os
from pathlib import Path
from typing import Any

import pytest

from tests.support.cases import JSON_HEADERS, apply_patch, review_of
from tests.support.certs import generate_certs
from tests.support.imds import running_imds
from tests.support.ports import closed_port_url
from tests.support.server import run_to_exit, serve_argv, start_server
from webhook.commands import serve
from webhook.options.config import serve_config
from webhook.options.flags import FlagError, resolve

ACCOUNT = "111122223333"


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
    certs = generate_certs(tmp_path / "certs")
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
