"""``irsa-webhook controller``'s flags for workload roles: the kinds run, the role-arn annotation
(serve's --annotation-prefix, same name and environment variable) and the guardrails, each refused
in one line with exit 2 when malformed."""

from __future__ import annotations

from typing import Any

import pytest

from webhook.cli import build_parser, main
from webhook.commands import controller
from webhook.commands.common import Exit
from webhook.provisioner.model import ISSUER_KIND
from webhook.provisioner.rolemodel import CLUSTER_ROLE_KIND, ROLE_KIND, Guardrails


def settings(*argv: str) -> controller.Settings:
    return controller.settings(build_parser().parse_args(["controller", "--cluster-name", "c", *argv]))


BAD = [
    pytest.param(["--kinds", "IRSAPolicy"], "--kinds: unknown kind 'IRSAPolicy': give IRSAIssuer, IRSARole", id="kind"),
    pytest.param(["--kinds", " , "], "--kinds needs one or more of IRSAIssuer", id="no-kind"),
    pytest.param(["--annotation-prefix", "Not_A_Domain"], "--annotation-prefix must be a DNS subdomain", id="prefix"),
    pytest.param(["--annotation-prefix", ""], "--annotation-prefix must be a DNS subdomain", id="prefix-empty"),
    pytest.param(
        ["--require-permissions-boundary", "tenant-boundary"],
        "--require-permissions-boundary 'tenant-boundary' is not a policy ARN pattern",
        id="boundary",
    ),
    pytest.param(
        ["--allowed-policy-arn", "arn:aws:iam::aws:policy/ReadOnlyAccess", "--allowed-policy-arn", "arn:aws:s3:::b"],
        "--allowed-policy-arn 'arn:aws:s3:::b' is not a policy ARN pattern",
        id="allowed",
    ),
    pytest.param(["--role-path", "irsa"], "--role-path must be / or /a/b/", id="path-relative"),
    pytest.param(["--role-path", "/irsa"], "--role-path must be / or /a/b/", id="path-open"),
    pytest.param(["--role-path", "/a//b/"], "--role-path must be / or /a/b/", id="path-empty-segment"),
    pytest.param(["--role-path", "/a b/"], "--role-path must be / or /a/b/", id="path-space"),
    pytest.param(["--role-path", "/" + "a" * 511 + "/"], "--role-path must be / or /a/b/", id="path-long"),
    pytest.param(["--role-name-prefix", "team a-"], "--role-name-prefix must be 1 to 63", id="prefix-space"),
    pytest.param(["--role-name-prefix", "é-"], "--role-name-prefix must be 1 to 63", id="prefix-unicode"),
    pytest.param(["--role-name-prefix", "x" * 64], "--role-name-prefix must be 1 to 63", id="prefix-long"),
]


@pytest.mark.parametrize(("argv", "message"), BAD)
def test_bad_flags_are_one_line_and_exit_2(argv: list[str], message: str, capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["controller", "--cluster-name", "c", *argv])
    err = capsys.readouterr().err
    assert code == Exit.USAGE
    assert len(err.splitlines()) == 1, err
    assert err.startswith("irsa-webhook controller: ")
    assert message in err


def test_defaults_run_every_kind_with_serves_annotation_and_no_guardrail(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("IRSA_WEBHOOK_ANNOTATION_PREFIX", raising=False)
    config = settings()
    assert config.kinds == (ISSUER_KIND, ROLE_KIND, CLUSTER_ROLE_KIND)
    assert config.annotation_key == "eks.amazonaws.com/role-arn"
    assert config.guardrails == Guardrails()


@pytest.mark.parametrize(
    ("argv", "kinds"),
    [
        pytest.param(["--kinds", "IRSAIssuer"], (ISSUER_KIND,), id="issuers-only"),
        pytest.param(["--kinds", "clusterirsaroles,IRSARole"], (ROLE_KIND, CLUSTER_ROLE_KIND), id="plural-any-case"),
        pytest.param(["--kinds", "IRSARole", "--kinds", "irsaissuer"], (ISSUER_KIND, ROLE_KIND), id="repeated"),
        pytest.param(["--kinds", "IRSARole,IRSARole,"], (ROLE_KIND,), id="duplicates"),
    ],
)
def test_kinds(argv: list[str], kinds: tuple[str, ...]) -> None:
    assert settings(*argv).kinds == kinds


def test_the_annotation_prefix_is_serves_flag_and_environment_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("IRSA_WEBHOOK_ANNOTATION_PREFIX", "irsa.example.com")
    assert settings().annotation_key == "irsa.example.com/role-arn"
    assert settings("--annotation-prefix", "other.example.com").annotation_key == "other.example.com/role-arn"


def test_go_style_single_dash_reaches_the_annotation_prefix(monkeypatch: pytest.MonkeyPatch) -> None:
    """Upstream-style args (``-annotation-prefix=...``), as serve takes them."""
    seen: list[str] = []

    def capture(args: Any) -> int:
        seen.append(controller.settings(args).annotation_key)
        return 0

    monkeypatch.setattr(controller, "run", capture)  # registered when main builds the parser
    assert main(["controller", "--cluster-name=c", "-annotation-prefix=go.example.com"]) == 0
    assert seen == ["go.example.com/role-arn"]


def test_guardrails_are_what_the_flags_say() -> None:
    config = settings(
        "--require-permissions-boundary",
        "arn:aws:iam::*:policy/tenant-boundary",
        "--require-permissions-boundary",
        "arn:aws:iam::111122223333:policy/boundaries/team-?",
        "--allowed-policy-arn",
        "arn:aws:iam::aws:policy/AmazonS3ReadOnlyAccess",
        "--allowed-policy-arn",
        "arn:aws-us-gov:iam::*:policy/tenant/*",
        "--forbid-inline-policies",
        "--role-path",
        "/tenants/team-a/",
        "--role-name-prefix",
        "tenant+a=,.@_-",
    )
    assert config.guardrails == Guardrails(
        require_permissions_boundary=(
            "arn:aws:iam::*:policy/tenant-boundary",
            "arn:aws:iam::111122223333:policy/boundaries/team-?",
        ),
        allowed_policy_arns=("arn:aws:iam::aws:policy/AmazonS3ReadOnlyAccess", "arn:aws-us-gov:iam::*:policy/tenant/*"),
        forbid_inline_policies=True,
        role_path="/tenants/team-a/",
        role_name_prefix="tenant+a=,.@_-",
    )
    assert settings("--role-path", "/").guardrails.role_path == "/"
