"""The command line of `irsa-webhook audit`: its help, and every bad input ending in exit 2 with one
clear line (never a traceback), before anything is asked of a cluster."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable

import pytest

from tests.support.kubeapi import FakeCluster, pod, service_account
from webhook.aws import imds as composearn
from webhook.cli import main

from .standin import Audit


def test_help_documents_the_exit_codes(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["audit", "--help"])
    assert exited.value.code == 0
    out = capsys.readouterr().out
    assert "exit codes:" in out
    for line in ("0  no pod found", "1  pods found", "2  error: bad flags"):
        assert line in out
    for flag in ("--evict", "--dry-run", "--pods-namespace", "--exclude-namespace", "--page-size", "-o"):
        assert flag in out
    # serve's flags, so that the webhook's own arguments can be given
    for flag in ("--watch-config-map", "--watch-container-credentials-config", "--annotation-prefix", "--namespace"):
        assert flag in out


def test_audit_is_listed_among_the_commands(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["--help"])
    assert "audit" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("args", "message"),
    [
        pytest.param(["--page-size", "0"], "--page-size must be between 1 and 10000", id="page-size-zero"),
        pytest.param(["--page-size", "100000"], "--page-size must be between 1 and 10000", id="page-size-huge"),
        pytest.param(["--dry-run"], "--dry-run only applies to --evict", id="dry-run-alone"),
        pytest.param(
            ["--watch-config-map"], "reads the ConfigMap pod-identity-webhook from --namespace", id="cm-no-ns"
        ),
        pytest.param(["--pods-namespace", ""], "--pods-namespace must be a namespace name", id="empty-namespace"),
        pytest.param(["--exclude-namespace", "a/b"], "--exclude-namespace must be a namespace name", id="bad-ns"),
        pytest.param(["--pods-namespace", "Shop"], "--pods-namespace must be a namespace name", id="upper-ns"),
        pytest.param(["--token-mount-path", "relative"], "--token-mount-path must be absolute", id="mount-path"),
        pytest.param(["--aws-account-id", "12"], "--aws-account-id must be 12 digits", id="account"),
        pytest.param(["--watch-config-map=maybe"], "is not a boolean", id="bool"),
        pytest.param(["--kubeconfig", "/nonexistent/kubeconfig"], "cannot configure cluster access", id="kubeconfig"),
    ],
)
def test_bad_input_is_exit_2_in_one_line(capsys: pytest.CaptureFixture[str], args: list[str], message: str) -> None:
    code = main(["audit", *args])
    out, err = capsys.readouterr()
    assert (code, out) == (2, "")
    assert err.startswith("irsa-webhook audit: ")
    assert message in err
    assert len(err.strip().splitlines()) == 1


@pytest.mark.parametrize("args", [["--output", "xml"], ["--page-size", "many"], ["--no-such-flag"]])
def test_argparse_errors_are_exit_2(capsys: pytest.CaptureFixture[str], args: list[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["audit", *args])
    assert exited.value.code == 2
    assert "Traceback" not in capsys.readouterr().err


def test_compose_role_arn_asks_imds_for_the_account(
    serve: Callable[[FakeCluster], Audit], monkeypatch: pytest.MonkeyPatch
) -> None:
    """As serve: a role name becomes an ARN of the instance's account (IMDS, once, before any identity
    is read), and an audit that cannot get it fails rather than judging with other ARNs."""
    role = "arn:aws-cn:iam::444455556666:role/app"
    cluster = FakeCluster(pods=[pod("shop", "p", role=role)], service_accounts=[service_account("shop", "app", "app")])
    audit = serve(cluster)
    monkeypatch.setattr(
        composearn, "instance_identity", lambda: composearn.InstanceIdentity("444455556666", "cn-north-1")
    )
    code, out, _ = audit("--compose-role-arn", "-o", "json")
    assert code == 0, out  # the pod's role is the composed ARN: no drift

    def no_imds() -> composearn.InstanceIdentity:
        raise composearn.IMDSError("no route to 169.254.169.254")

    monkeypatch.setattr(composearn, "instance_identity", no_imds)
    code, out, err = audit("--compose-role-arn")
    assert (code, out) == (2, "")
    assert "--compose-role-arn needs this instance's account: no route" in err

    code, out, _ = audit("--compose-role-arn", "--aws-account-id", "111122223333", "-o", "json")
    assert code == 1  # composed with another account: the pod's role is not the ServiceAccount's now
    (finding,) = json.loads(out)["findings"]
    assert finding["problems"][0]["currentRoleArn"] == "arn:aws:iam::111122223333:role/app"


def test_notes_about_ignored_flags_are_printed(serve: Callable[[FakeCluster], Audit]) -> None:
    code, _, err = serve(FakeCluster())("--aws-account-id", "111122223333")
    assert code == 0
    assert "only take effect with --compose-role-arn" in err


def test_an_unparseable_service_account_is_a_warning_line(serve: Callable[[FakeCluster], Audit]) -> None:
    cluster = FakeCluster(service_accounts=[7])  # type: ignore[list-item]  # not an object: skipped, said, the audit goes on
    code, _, err = serve(cluster)()
    assert code == 0
    assert "irsa-webhook audit: warning: skipping serviceaccount" in err


def test_registering_the_command_does_not_import_the_kubernetes_client() -> None:
    """`irsa-webhook mutate` and `certs` run without a cluster: registering `audit` next to them must
    not make every invocation pay for the kubernetes client's import."""
    code = "import sys, webhook.cli; webhook.cli.build_parser(); print('kubernetes' in sys.modules)"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True)
    assert result.stdout.strip() == "False"
