"""``irsa-webhook provision plan|apply|delete`` against moto's server: exit codes, output, no write
without a difference, drift shown and repaired, deletion as the object says, input errors."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.support.awsstate import BUCKET, CLUSTER, PREFIX, raw_iam, raw_s3
from tests.support.cli import Runner, runner
from tests.support.moto import MotoServer
from tests.support.oidckeys import RSA_KID, TESTDATA

KEYS_JSON = f"{PREFIX}/keys.json"
DISCOVERY = f"{PREFIX}/.well-known/openid-configuration"


@pytest.fixture
def cli(capsys: pytest.CaptureFixture[str]) -> Runner:
    return runner(capsys)


def issuer(tmp_path: Path, deletion: str = "Retain", **spec: Any) -> str:
    obj = {
        "apiVersion": "irsa-webhook.io/v1alpha1",
        "kind": "IRSAIssuer",
        "metadata": {"name": "main"},
        "spec": {
            "discovery": {"s3": {"bucket": BUCKET, "region": "us-east-1", "prefix": PREFIX, "createBucket": True}},
            "keys": {"source": "Static", "publicKeyFiles": [str(TESTDATA / "rsa-public.pem")]},
            "deletionPolicy": deletion,
            **spec,
        },
    }
    path = tmp_path / "issuer.yaml"
    # a file mixing kinds, as a kustomization output would
    path.write_text(yaml.safe_dump_all([{"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "x"}}, obj]))
    return str(path)


def provision(cli: Runner, verb: str, path: str, *extra: str) -> Any:
    return cli("provision", verb, "-f", path, "--cluster-name", CLUSTER, "--kubeconfig", "", *extra)


@pytest.mark.usefixtures("moto")
def test_plan_apply_plan_converges_and_a_second_apply_writes_nothing(cli: Runner, tmp_path: Path) -> None:
    path = issuer(tmp_path)
    first = provision(cli, "plan", path)
    assert first.code == 1, first.err
    assert "IRSAIssuer/main:" in first.out
    for action in ("s3:CreateBucket", "s3:PutBucketPolicy", "s3:PutObject", "iam:CreateOpenIDConnectProvider"):
        assert action in first.out
    assert "skipping" in first.err
    assert "Namespace" in first.err
    assert raw_s3().list_buckets()["Buckets"] == []  # plan wrote nothing

    applied = provision(cli, "apply", path)
    # The issuer's real S3 URL is not reachable from here: applied, but not ready, and it says why.
    assert applied.code == 1, applied.err
    assert "✗ Reachable" in applied.out
    assert "✓ KeysInSync" in applied.out
    body = raw_s3().get_object(Bucket=BUCKET, Key=KEYS_JSON)
    assert body["ContentType"] == "application/json"
    assert [k["kid"] for k in json.loads(body["Body"].read())["keys"]] == [RSA_KID]

    again = provision(cli, "plan", path)
    assert again.code == 0, again.out
    assert "IRSAIssuer/main: in sync" in again.out
    second = provision(cli, "apply", path, "-o", "json")
    assert json.loads(second.out)[0]["changes"] == []


@pytest.mark.usefixtures("moto")
def test_drift_made_out_of_band_is_shown_then_repaired(cli: Runner, tmp_path: Path) -> None:
    path = issuer(tmp_path)
    provision(cli, "apply", path)
    s3, iam = raw_s3(), raw_iam()
    s3.delete_object(Bucket=BUCKET, Key=KEYS_JSON)
    s3.put_bucket_policy(Bucket=BUCKET, Policy=json.dumps({"Version": "2012-10-17", "Statement": []}))
    arn = iam.list_open_id_connect_providers()["OpenIDConnectProviderList"][0]["Arn"]
    iam.add_client_id_to_open_id_connect_provider(OpenIDConnectProviderArn=arn, ClientID="someone-else")
    plan = provision(cli, "plan", path, "-o", "json")
    assert plan.code == 1
    changes = {(c["action"], c["target"].rsplit("/", 1)[-1]) for c in json.loads(plan.out)[0]["changes"]}
    assert ("s3:PutObject", "keys.json") in changes
    assert any(action == "s3:PutBucketPolicy" for action, _ in changes)
    assert any(action == "iam:RemoveClientIDFromOpenIDConnectProvider" for action, _ in changes)
    assert provision(cli, "apply", path).code == 1  # still unreachable from here, but repaired:
    assert provision(cli, "plan", path).code == 0
    assert iam.get_open_id_connect_provider(OpenIDConnectProviderArn=arn)["ClientIDList"] == ["sts.amazonaws.com"]


@pytest.mark.usefixtures("moto")
def test_delete_honours_the_deletion_policy(cli: Runner, tmp_path: Path) -> None:
    retained = issuer(tmp_path)
    provision(cli, "apply", retained)
    kept = provision(cli, "delete", retained)
    assert kept.code == 0, kept.err
    assert "nothing to do" in kept.out
    assert raw_s3().get_object(Bucket=BUCKET, Key=KEYS_JSON)
    deleted = provision(cli, "delete", issuer(tmp_path, deletion="Delete"))
    assert deleted.code == 0, deleted.err
    assert "s3:DeleteBucket" in deleted.out
    assert raw_s3().list_buckets()["Buckets"] == []
    assert raw_iam().list_open_id_connect_providers()["OpenIDConnectProviderList"] == []


@pytest.mark.usefixtures("moto")
def test_a_bucket_that_does_not_exist_without_create_bucket_is_an_error(cli: Runner, tmp_path: Path) -> None:
    path = issuer(tmp_path, discovery={"s3": {"bucket": BUCKET, "region": "us-east-1", "prefix": PREFIX}})
    result = provision(cli, "plan", path)
    assert result.code == 2
    assert "blocked:" in result.out
    assert "createBucket" in result.out


@pytest.mark.parametrize(
    ("content", "extra", "message"),
    [
        ("kind: [", (), "is not valid YAML"),
        ("apiVersion: v1\nkind: ConfigMap\n", (), "no IRSAIssuer, ClusterIRSARole, IRSARole object"),
        ("apiVersion: irsa-webhook.io/v1alpha1\nkind: IRSARoleX\nmetadata: {name: a}\n", (), "unknown kind"),
        (
            "apiVersion: irsa-webhook.io/v1alpha1\nkind: IRSAIssuer\nmetadata: {name: a}\nspec: {issuerURL: http://x}\n",
            (),
            "https://",
        ),
    ],
)
def test_bad_input_is_one_line_and_exit_2(
    cli: Runner, tmp_path: Path, content: str, extra: tuple[str, ...], message: str, moto: MotoServer
) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(content)
    result = provision(cli, "plan", str(path), *extra)
    assert result.code == 2, (result.out, result.err)
    assert message in result.out + result.err


def test_the_cluster_name_is_required(cli: Runner, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("IRSA_WEBHOOK_CLUSTER_NAME", raising=False)
    result = cli("provision", "plan", "-f", issuer(tmp_path))
    assert result.code == 2
    assert result.err_lines == [
        "irsa-webhook provision: --cluster-name is required (or IRSA_WEBHOOK_CLUSTER_NAME): "
        "it names this cluster in the owner tags"
    ]


def test_kind_config_uses_the_objects_issuer(cli: Runner, tmp_path: Path) -> None:
    keys = tmp_path / "keys"
    assert cli("keys", "generate", "--out", str(keys)).code == 0
    result = cli("provision", "kind-config", "-f", issuer(tmp_path), "--keys-dir", str(keys))
    assert result.code == 0, result.err
    config = yaml.safe_load(result.out)
    patch = yaml.safe_load(config["kubeadmConfigPatches"][0])
    issuer_url = f"https://{BUCKET}.s3.us-east-1.amazonaws.com/{PREFIX}"
    assert patch["apiServer"]["extraArgs"]["service-account-issuer"] == issuer_url
    assert patch["apiServer"]["extraArgs"]["api-audiences"] == issuer_url
    assert config["nodes"][0]["extraMounts"][0]["hostPath"] == str(keys.resolve())
    missing = cli("provision", "kind-config", "-f", issuer(tmp_path), "--keys-dir", str(tmp_path / "none"))
    assert missing.code == 2
    assert "keys generate" in missing.err
