"""Every subcommand speaks the same way: one line on stderr, ``irsa-webhook <command>: <message>``, and
the exit code of the one table (webhook.commands.common.Exit)."""

from __future__ import annotations

from pathlib import Path

import pytest

from webhook.cli import main
from webhook.commands.common import Exit

# {tmp} is the test's temporary folder: {tmp}/missing.yaml never exists, {tmp}/taken is a file.
BAD_INPUT = [
    pytest.param(["serve", "--port", "not-a-port"], "serve", id="serve"),
    pytest.param(
        ["mutate", "--pod", "{tmp}/missing.yaml", "--service-account", "{tmp}/missing.yaml"], "mutate", id="mutate"
    ),
    pytest.param(["certs", "--out", "{tmp}/certs", "--days", "0"], "certs", id="certs"),
    pytest.param(["audit", "--kubeconfig", "{tmp}/missing.yaml"], "audit", id="audit"),
    pytest.param(["keys", "generate", "--out", "{tmp}/taken"], "keys", id="keys"),
    pytest.param(["oidc", "jwks", "--key", "{tmp}/missing.yaml"], "oidc", id="oidc"),
    pytest.param(["provision", "convert", "-f", "{tmp}/missing.yaml"], "provision", id="provision-convert"),
    pytest.param(
        ["trust-policy", "--issuer", "http://x", "--account-id", "111122223333", "--service-account", "a:b"],
        "trust-policy",
        id="trust-policy",
    ),
    pytest.param(["controller", "--cluster-name", "c", "--kinds", "Nothing"], "controller", id="controller"),
]


@pytest.mark.parametrize(("argv", "command"), BAD_INPUT)
def test_bad_input_is_one_line_naming_the_command_and_exit_2(
    argv: list[str], command: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "taken").write_text("a file where a folder is wanted\n")
    code = main([arg.replace("{tmp}", str(tmp_path)) for arg in argv])
    err = capsys.readouterr().err
    assert code == Exit.USAGE, err
    assert int(Exit.USAGE) == 2
    lines = err.splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith(f"irsa-webhook {command}: "), lines[0]


def test_the_exit_table() -> None:
    """The codes scripts and CronJobs already rely on; a change here is a breaking change."""
    assert [(e.name, int(e)) for e in Exit] == [("OK", 0), ("NO", 1), ("USAGE", 2), ("FINDINGS", 3)]
