"""boto3's own web-identity provider, in a clean process, gets credentials through the verifying STS
only when the whole chain holds: the injected env, the token file, the published keys, the role."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.support.standins import ManualIssuer, SigningKey, VerifyingSTS
from tests.support.standins.issuer import service_account_subject

# What a pod's SDK runs: the default credential chain, nothing but the env to go on.
_SCRIPT = """
import json, sys
import boto3
try:
    identity = boto3.client("sts").get_caller_identity()
except Exception as exc:
    print(json.dumps({"error": getattr(exc, "response", {}).get("Error", {}).get("Code", type(exc).__name__)}))
    sys.exit(1)
print(json.dumps({"arn": identity["Arn"]}))
"""


def sdk(tmp_path: Path, sts: VerifyingSTS, role_arn: str, token: str) -> dict[str, Any]:
    """Run the SDK with the env the webhook injects (plus the STS endpoint), and nothing else."""
    token_file = tmp_path / "token"
    token_file.write_text(token)
    home = tmp_path / "home"
    home.mkdir(exist_ok=True)
    env = {
        "AWS_ROLE_ARN": role_arn,
        "AWS_WEB_IDENTITY_TOKEN_FILE": str(token_file),
        "AWS_REGION": "us-east-1",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_STS_REGIONAL_ENDPOINTS": "regional",
        "AWS_ENDPOINT_URL_STS": sts.url,
        # No other source of credentials: no files, no instance metadata.
        "HOME": str(home),
        "AWS_CONFIG_FILE": str(tmp_path / "no-config"),
        "AWS_SHARED_CREDENTIALS_FILE": str(tmp_path / "no-credentials"),
        "AWS_EC2_METADATA_DISABLED": "true",
    }
    result = subprocess.run(
        [sys.executable, "-c", _SCRIPT], env=env, capture_output=True, text=True, timeout=120, check=False
    )
    assert result.stdout, result.stderr
    answer: dict[str, Any] = json.loads(result.stdout)
    return answer


@pytest.fixture
def role(issuer: ManualIssuer) -> str:
    return issuer.create_role("app", "default", "app")


def test_boto3_s_web_identity_provider_gets_credentials(
    tmp_path: Path, sts: VerifyingSTS, issuer: ManualIssuer, signer: SigningKey, role: str
) -> None:
    token = signer.token(issuer.issuer_url, service_account_subject("default", "app"))
    answer = sdk(tmp_path, sts, role, token)
    assert answer.get("arn", "").startswith("arn:aws:sts::123456789012:assumed-role/app/"), answer
    assert [d.allowed for d in sts.decisions] == [True]


def test_boto3_is_refused_for_a_token_of_another_service_account(
    tmp_path: Path, sts: VerifyingSTS, issuer: ManualIssuer, signer: SigningKey, role: str
) -> None:
    token = signer.token(issuer.issuer_url, service_account_subject("default", "intruder"))
    assert sdk(tmp_path, sts, role, token) == {"error": "AccessDenied"}
    assert sts.decisions[-1].subject == service_account_subject("default", "intruder")
