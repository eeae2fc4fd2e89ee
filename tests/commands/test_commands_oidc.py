"""The commands end to end in-process: exit codes, stdout documents, one-line stderr errors."""

from __future__ import annotations

import base64
import io
import json
import stat
from pathlib import Path

import pytest

from tests.support.cli import Runner
from tests.support.oidckeys import EC_KID, RSA_KID, TESTDATA
from webhook.cli import main

ISSUER = "https://oidc.example.com/cluster1"
PROVIDER = "oidc.example.com/cluster1"
ACCOUNT = "111122223333"
RSA_PUB = str(TESTDATA / "rsa-public.pem")
EC_PUB = str(TESTDATA / "ec-public.pem")


def _one_error_line(err: str) -> str:
    lines = err.splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith(("irsa-webhook keys: ", "irsa-webhook oidc: ", "irsa-webhook trust-policy: "))
    return lines[0]


# --- help ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("argv", "phrase"),
    [
        pytest.param(["keys", "generate", "--help"], "--service-account-signing-key-file", id="keys-generate"),
        pytest.param(["oidc", "discovery", "--help"], "jwks_uri is ISSUER/keys.json", id="oidc-discovery"),
        pytest.param(["oidc", "jwks", "--help"], "exactly as kube-apiserver derives it", id="oidc-jwks"),
        pytest.param(["trust-policy", "--help"], "--namespace-wildcard", id="trust-policy"),
        pytest.param(["trust-policy", "check", "--help"], "WITHOUT verifying the signature", id="check"),
        pytest.param(["--help"], "trust-policy", id="top-level"),
    ],
)
def test_help(argv: list[str], phrase: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        main(argv)
    assert info.value.code == 0
    assert phrase in " ".join(capsys.readouterr().out.split())


@pytest.mark.parametrize("group", [pytest.param("keys", id="keys"), pytest.param("oidc", id="oidc")])
def test_group_without_subcommand_prints_help_and_exits_2(group: str, cli: Runner) -> None:
    result = cli(group)
    assert result.code == 2
    assert "usage:" in result.err
    assert result.out == ""


def test_argparse_usage_errors_exit_2(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        main(["trust-policy", "check", "--token", "t"])
    assert info.value.code == 2
    assert "--policy" in capsys.readouterr().err


# --- oidc ---------------------------------------------------------------------------------------


def test_jwks_stdout(cli: Runner) -> None:
    result = cli("oidc", "jwks", "--key", RSA_PUB, "--key", EC_PUB)
    assert (result.code, result.err) == (0, "")
    assert [key["kid"] for key in json.loads(result.out)["keys"]] == [RSA_KID, EC_KID]


def test_jwks_from_a_private_key_says_so(cli: Runner) -> None:
    result = cli("oidc", "jwks", "--key", str(TESTDATA / "rsa-private.pem"))
    assert result.code == 0
    assert result.err_lines == [
        f"note: {TESTDATA / 'rsa-private.pem'} holds a private key; only its public half is used"
    ]
    document = json.loads(result.out)
    assert document["keys"][0]["kid"] == RSA_KID
    assert set(document["keys"][0]) == {
        "use",
        "kty",
        "kid",
        "alg",
        "n",
        "e",
    }  # nothing private ("d", "p", ...)


def test_jwks_out_dir(cli: Runner, tmp_path: Path) -> None:
    result = cli("oidc", "jwks", "--key", RSA_PUB, "--out", str(tmp_path / "site"))
    assert result.code == 0
    written = tmp_path / "site" / "keys.json"
    assert result.out == f"wrote {written}\n"
    assert stat.S_IMODE(written.stat().st_mode) == 0o644
    assert json.loads(written.read_text())["keys"][0]["kid"] == RSA_KID


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        pytest.param(
            ["oidc", "jwks", "--key", "/nonexistent.pem"],
            "cannot read key file /nonexistent.pem",
            id="missing",
        ),
        pytest.param(
            ["oidc", "jwks", "--key", str(TESTDATA / "ed25519-public.pem")],
            "unsupported key type Ed25519",
            id="ed25519",
        ),
        pytest.param(["oidc", "jwks", "--key", str(TESTDATA / "README.md")], "no PEM block found", id="not-pem"),
        pytest.param(["oidc", "discovery", "--issuer", "http://x.example.com"], "must start with https://", id="http"),
        pytest.param(["oidc", "discovery", "--issuer", ISSUER + "/"], "ends with '/'", id="trailing-slash"),
        pytest.param(
            ["oidc", "discovery", "--issuer", ISSUER, "--key", str(TESTDATA / "ed25519-private.pem")],
            "unsupported key type",
            id="discovery-bad-key",
        ),
    ],
)
def test_oidc_input_errors(argv: list[str], message: str, cli: Runner) -> None:
    result = cli(*argv)
    assert result.code == 2
    assert message in _one_error_line(result.err)
    assert result.out == ""


def test_discovery_stdout_algorithms_follow_the_keys(cli: Runner) -> None:
    rsa_only = json.loads(cli("oidc", "discovery", "--issuer", ISSUER).out)
    assert rsa_only["id_token_signing_alg_values_supported"] == ["RS256"]
    assert rsa_only["jwks_uri"] == f"{ISSUER}/keys.json"
    ec_only = json.loads(cli("oidc", "discovery", "--issuer", ISSUER, "--key", EC_PUB).out)
    assert ec_only["id_token_signing_alg_values_supported"] == ["ES256"]


def test_discovery_out_dir_writes_both_files(cli: Runner, tmp_path: Path) -> None:
    result = cli("oidc", "discovery", "--issuer", ISSUER, "--key", RSA_PUB, "--out", str(tmp_path))
    assert (result.code, result.err) == (0, "")
    discovery = tmp_path / ".well-known" / "openid-configuration"
    keys = tmp_path / "keys.json"
    assert result.out.splitlines() == [f"wrote {discovery}", f"wrote {keys}"]
    assert json.loads(discovery.read_text())["issuer"] == ISSUER
    assert json.loads(keys.read_text())["keys"][0]["kid"] == RSA_KID


def test_discovery_notes_a_port(cli: Runner) -> None:
    result = cli("oidc", "discovery", "--issuer", "https://127.0.0.1:6443")
    assert result.code == 0
    assert result.err_lines == [
        "note: issuer 'https://127.0.0.1:6443' contains a port; IAM OIDC provider URLs should not contain one"
    ]


# --- trust-policy -------------------------------------------------------------------------------

GENERATE = ["trust-policy", "--issuer", ISSUER, "--account-id", ACCOUNT]


def test_trust_policy_generate(cli: Runner) -> None:
    result = cli(*GENERATE, "--namespace", "app", "--service-account", "api")
    assert (result.code, result.err) == (0, "")
    statement = json.loads(result.out)["Statement"][0]
    assert statement["Principal"] == {"Federated": f"arn:aws:iam::{ACCOUNT}:oidc-provider/{PROVIDER}"}
    assert statement["Condition"]["StringEquals"][f"{PROVIDER}:sub"] == "system:serviceaccount:app:api"


def test_trust_policy_wildcard_says_so_on_stderr(cli: Runner) -> None:
    result = cli(*GENERATE, "--service-account", "team-*:api", "--namespace-wildcard")
    assert result.code == 0
    assert result.err_lines == [
        "note: namespace wildcard: the sub condition uses StringLike and matches system:serviceaccount:team-*:api"
    ]
    assert "StringLike" in json.loads(result.out)["Statement"][0]["Condition"]


def test_trust_policy_provider_arn_instead_of_account(cli: Runner) -> None:
    arn = f"arn:aws-cn:iam::{ACCOUNT}:oidc-provider/{PROVIDER}"
    result = cli("trust-policy", "--issuer", ISSUER, "--provider-arn", arn, "--service-account", "app:api")
    assert result.code == 0
    assert json.loads(result.out)["Statement"][0]["Principal"] == {"Federated": arn}


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        pytest.param(["trust-policy", "--service-account", "app:api"], "--issuer is required", id="no-issuer"),
        pytest.param(
            ["trust-policy", "--issuer", ISSUER, "--service-account", "app:api"],
            "--account-id",
            id="no-account",
        ),
        pytest.param([*GENERATE], "at least one --service-account", id="no-sa"),
        pytest.param([*GENERATE, "--service-account", "api"], "has no namespace", id="no-namespace"),
        pytest.param([*GENERATE, "--service-account", "*:api"], "pass --namespace-wildcard", id="wildcard-no-flag"),
        pytest.param(
            ["trust-policy", "--issuer", ISSUER + "/", "--account-id", ACCOUNT, "--service-account", "a:b"],
            "ends with '/'",
            id="trailing-slash",
        ),
        pytest.param(
            [
                "trust-policy",
                "--issuer",
                ISSUER,
                "--provider-arn",
                f"arn:aws:iam::{ACCOUNT}:oidc-provider/other.example.com",
                "--service-account",
                "a:b",
            ],
            "names provider 'other.example.com'",
            id="provider-mismatch",
        ),
    ],
)
def test_trust_policy_input_errors(argv: list[str], message: str, cli: Runner) -> None:
    result = cli(*argv)
    assert result.code == 2
    assert message in _one_error_line(result.err)


# --- trust-policy check -------------------------------------------------------------------------


def _segment(data: object) -> str:
    return base64.urlsafe_b64encode(json.dumps(data).encode()).decode().rstrip("=")


def _unsigned_token(sub: str, aud: list[str], iss: str = ISSUER) -> str:
    return f"{_segment({'alg': 'RS256'})}.{_segment({'iss': iss, 'sub': sub, 'aud': aud})}.AA"


@pytest.fixture
def policy_file(cli: Runner, tmp_path: Path) -> Path:
    path = tmp_path / "trust.json"
    path.write_text(cli(*GENERATE, "--namespace", "app", "--service-account", "api").out)
    return path


@pytest.mark.parametrize(
    ("request_args", "code", "first_line"),
    [
        pytest.param(
            ["--issuer", ISSUER, "--namespace", "app", "--service-account", "api"],
            0,
            "ALLOWED: allowed by statement 0",
            id="allowed",
        ),
        pytest.param(
            ["--issuer", ISSUER, "--service-account", "app:api"],
            0,
            "ALLOWED: allowed by statement 0",
            id="ns-colon",
        ),
        pytest.param(
            ["--issuer", ISSUER, "--namespace", "other", "--service-account", "api"],
            1,
            "DENIED: implicitly denied: no Allow statement applies",
            id="other-namespace",
        ),
        pytest.param(
            ["--issuer", ISSUER, "--namespace", "app", "--service-account", "api", "--audience", "x"],
            1,
            "DENIED: implicitly denied: no Allow statement applies",
            id="other-audience",
        ),
        pytest.param(
            ["--issuer", "https://other.example.com", "--namespace", "app", "--service-account", "api"],
            1,
            "DENIED: implicitly denied: no Allow statement applies",
            id="other-issuer",
        ),
    ],
)
def test_check_exit_codes(policy_file: Path, request_args: list[str], code: int, first_line: str, cli: Runner) -> None:
    result = cli("trust-policy", "check", "--policy", str(policy_file), *request_args)
    assert (result.code, result.err) == (code, "")
    assert result.out.splitlines()[0] == first_line


def test_check_denied_explains_the_condition(policy_file: Path, cli: Runner) -> None:
    result = cli(
        "trust-policy",
        "check",
        "--policy",
        str(policy_file),
        "--issuer",
        ISSUER,
        "--service-account",
        "other:api",
    )
    assert result.code == 1
    assert (
        f"statement 0 [Allow]: does not apply: condition StringEquals {PROVIDER}:sub = "
        "\"system:serviceaccount:app:api\" is false (value: 'system:serviceaccount:other:api')"
    ) in result.out


def test_check_allowed_with_findings_exits_3(tmp_path: Path, cli: Runner) -> None:
    policy = tmp_path / "loose.json"
    policy.write_text(cli(*GENERATE, "--service-account", "app:api", "--service-account", "batch:api").out)
    result = cli("trust-policy", "check", "--policy", str(policy), "--issuer", ISSUER, "--service-account", "app:api")
    assert result.code == 3
    assert result.out.splitlines()[0] == "ALLOWED: allowed by statement 0"
    assert "lint: shared-across-namespaces (role): the role is assumable from namespaces: app, batch" in result.out


def test_check_denied_with_findings_still_exits_1(tmp_path: Path, cli: Runner) -> None:
    policy = tmp_path / "https.json"
    document = json.loads(cli(*GENERATE, "--service-account", "app:api").out)
    condition = document["Statement"][0]["Condition"]["StringEquals"]
    document["Statement"][0]["Condition"]["StringEquals"] = {
        f"https://{key}": value for key, value in condition.items()
    }
    policy.write_text(json.dumps(document))
    result = cli("trust-policy", "check", "--policy", str(policy), "--issuer", ISSUER, "--service-account", "app:api")
    assert result.code == 1
    assert "lint: https-in-key (statement 0)" in result.out


def test_check_token_file(policy_file: Path, tmp_path: Path, cli: Runner) -> None:
    token = tmp_path / "token"
    token.write_text(_unsigned_token("system:serviceaccount:app:api", ["sts.amazonaws.com"]))
    result = cli("trust-policy", "check", "--policy", str(policy_file), "--token", str(token))
    assert result.code == 0
    assert "WITHOUT verifying its signature" in result.out


def test_check_token_from_stdin_json(policy_file: Path, cli: Runner, monkeypatch: pytest.MonkeyPatch) -> None:
    token = _unsigned_token("system:serviceaccount:other:api", ["sts.amazonaws.com"])
    monkeypatch.setattr("sys.stdin", io.TextIOWrapper(io.BytesIO(token.encode())))
    result = cli("trust-policy", "check", "--policy", str(policy_file), "--token", "-", "-o", "json")
    assert result.code == 1
    report = json.loads(result.out)
    assert report["allowed"] is False
    assert report["exit_code"] == 1
    assert report["request"] == {
        "action": "sts:AssumeRoleWithWebIdentity",
        "issuer": ISSUER,
        "provider": PROVIDER,
        "sub": "system:serviceaccount:other:api",
        "aud": ["sts.amazonaws.com"],
        "from_token": True,
        "signature_verified": False,
    }
    assert report["statements"][0]["applies"] is False
    assert report["lints"] == []


def test_check_token_with_two_audiences_lints_the_plain_operator(
    policy_file: Path, tmp_path: Path, cli: Runner
) -> None:
    token = tmp_path / "token"
    token.write_text(_unsigned_token("system:serviceaccount:app:api", ["sts.amazonaws.com", "vault"]))
    result = cli("trust-policy", "check", "--policy", str(policy_file), "--token", str(token))
    assert result.code == 3
    assert "lint: multi-value-without-set-operator (statement 0)" in result.out


@pytest.mark.parametrize(
    ("policy_text", "message"),
    [
        pytest.param("{", "is not valid JSON", id="not-json"),
        pytest.param('{"Statement": [{"Effect": "Allow"}]}', "neither Action nor NotAction", id="bad-shape"),
        pytest.param(
            '{"Statement": {"Effect": "Allow", "Principal": "*", "Action": "*", "Condition": {"Bad": 1}}}',
            "must map condition keys",
            id="bad-condition-block",
        ),
    ],
)
def test_check_bad_policy(policy_text: str, message: str, tmp_path: Path, cli: Runner) -> None:
    path = tmp_path / "bad.json"
    path.write_text(policy_text)
    request = ["--issuer", ISSUER, "--service-account", "a:b"]
    result = cli("trust-policy", "check", "--policy", str(path), *request)
    assert result.code == 2
    assert message in _one_error_line(result.err)


@pytest.mark.parametrize(
    ("request_args", "message"),
    [
        pytest.param(["--token", "T", "--issuer", ISSUER], "use either --token or", id="token-and-issuer"),
        pytest.param(["--token", "T", "--audience", "x"], "use either --token or", id="token-and-audience"),
        pytest.param(["--audience", "x"], "needs --token FILE, or --issuer", id="nothing-to-check"),
        pytest.param(["--issuer", ISSUER], "needs --token FILE, or --issuer", id="no-service-account"),
        pytest.param(["--issuer", ISSUER, "--service-account", "api"], "has no namespace", id="no-namespace"),
    ],
)
def test_check_request_errors(request_args: list[str], message: str, cli: Runner, policy_file: Path) -> None:
    result = cli("trust-policy", "check", "--policy", str(policy_file), *request_args)
    assert result.code == 2
    assert message in _one_error_line(result.err)


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        pytest.param(["--policy", "/nonexistent.json", "--token", "t"], "cannot read token file t", id="no-token-file"),
        pytest.param(
            ["--policy", "/nonexistent.json", "--issuer", ISSUER, "--service-account", "a:b"],
            "cannot read policy file /nonexistent.json",
            id="no-policy-file",
        ),
        pytest.param(
            ["--policy", "p", "--issuer", ISSUER + "/", "--service-account", "a:b"],
            "ends with '/'",
            id="bad-issuer",
        ),
    ],
)
def test_check_file_errors(
    argv: list[str], message: str, cli: Runner, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    result = cli("trust-policy", "check", *argv)
    assert result.code == 2
    assert message in _one_error_line(result.err)
