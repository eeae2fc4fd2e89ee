"""The provisioner on AWS's bad day: a share of calls throttled, failed, or applied with the answer
lost. Every object still converges, nothing is created twice, and the writes it took are reported."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from tests.support.awsstate import BUCKET, CLUSTER, PREFIX, raw_iam, raw_s3
from tests.support.cli import Runner, runner
from tests.support.kubeapi import FakeApiServer, FakeCluster
from tests.support.moto import MotoServer
from tests.support.oidckeys import TESTDATA
from tests.support.standins import CallRecorder

# A third of all calls fail; botocore retries each at most twice more (webhook/aws/session.py), so
# some runs fail and the next run must pick up where the last stopped.
FAULTS = 0.33
RUNS = 12


@pytest.fixture
def cli(capsys: pytest.CaptureFixture[str]) -> Runner:
    return runner(capsys)


def test_the_issuer_converges_through_faults_and_nothing_is_made_twice(
    cli: Runner, moto: MotoServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    obj = {
        "apiVersion": "irsa-webhook.io/v1alpha1",
        "kind": "IRSAIssuer",
        "metadata": {"name": "main"},
        "spec": {
            "discovery": {"s3": {"bucket": BUCKET, "region": "us-east-1", "prefix": PREFIX, "createBucket": True}},
            "keys": {"source": "Static", "publicKeyFiles": [str(TESTDATA / "rsa-public.pem")]},
        },
    }
    manifest = tmp_path / "issuer.yaml"
    manifest.write_text(yaml.safe_dump(obj))
    with CallRecorder(moto.url, faults=FAULTS) as recorder:
        monkeypatch.setenv("AWS_ENDPOINT_URL", recorder.url)
        codes = []
        for _ in range(RUNS):
            result = cli("provision", "apply", "-f", str(manifest), "--cluster-name", CLUSTER, "--kubeconfig", "")
            codes.append(result.code)
            plan = cli("provision", "plan", "-f", str(manifest), "--cluster-name", CLUSTER, "--kubeconfig", "")
            if plan.code == 0:
                break
        faulted = recorder.faulted()
        writes = recorder.writes()
        calls = len(recorder.calls)
    monkeypatch.setenv("AWS_ENDPOINT_URL", moto.url)  # the checks below read moto itself
    assert plan.code == 0, f"not converged after {len(codes)} runs (apply exits {codes}): {plan.out}"
    assert faulted, "no call was faulted: the test proves nothing"
    assert any(c.fault == "lost" for c in writes), "no write lost its answer: the duplicate check proves nothing"
    # nothing made twice: one bucket, one provider, the two objects
    assert [b["Name"] for b in raw_s3().list_buckets()["Buckets"]] == [BUCKET]
    assert len(raw_iam().list_open_id_connect_providers()["OpenIDConnectProviderList"]) == 1
    keys = sorted(o["Key"] for o in raw_s3().list_objects_v2(Bucket=BUCKET)["Contents"])
    assert keys == [f"{PREFIX}/.well-known/openid-configuration", f"{PREFIX}/keys.json"]
    # the figure: how many writes convergence took under faults (a clean run takes 7)
    print(f"\nfaults: {len(faulted)} of {calls} calls; writes {len(writes)}; apply runs {codes}")


def test_a_role_and_its_service_account_converge_through_faults_and_nothing_is_made_twice(
    cli: Runner, moto: MotoServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    issuer_url = f"https://{BUCKET}.s3.us-east-1.amazonaws.com/{PREFIX}"
    issuer = {
        "apiVersion": "irsa-webhook.io/v1alpha1",
        "kind": "IRSAIssuer",
        "metadata": {"name": "main"},
        "spec": {
            "discovery": {"s3": {"bucket": BUCKET, "region": "us-east-1", "prefix": PREFIX, "createBucket": True}},
            "keys": {"source": "Static", "publicKeyFiles": [str(TESTDATA / "rsa-public.pem")]},
        },
    }
    # issuerURL, not issuerRef: the issuer cannot be Ready here (its real S3 URL is not reachable), but
    # its provider is made in the same run, and that is all a role of an existing issuer needs
    role = {
        "apiVersion": "irsa-webhook.io/v1alpha1",
        "kind": "IRSARole",
        "metadata": {"name": "reader", "namespace": "payments"},
        "spec": {
            "issuerURL": issuer_url,
            "serviceAccounts": [{"name": "reader", "create": True}],
            "inlinePolicies": {"read": {"Version": "2012-10-17", "Statement": [
                {"Effect": "Allow", "Action": "s3:GetObject", "Resource": "arn:aws:s3:::reports/*"}]}},
        },
    }  # fmt: skip
    manifest = tmp_path / "objects.yaml"
    manifest.write_text(yaml.safe_dump_all([issuer, role]))
    with FakeApiServer(FakeCluster()) as api, CallRecorder(moto.url, faults=FAULTS, seed=19) as recorder:
        argv = ["-f", str(manifest), "--cluster-name", CLUSTER, "--kubeconfig", str(api.kubeconfig(tmp_path))]
        monkeypatch.setenv("AWS_ENDPOINT_URL", recorder.url)
        codes = []
        for _ in range(RUNS):
            codes.append(cli("provision", "apply", *argv).code)
            plan = cli("provision", "plan", *argv, "-o", "json")
            changes = [c for report in json.loads(plan.out or "[]") for c in report["changes"]]
            if plan.code in (0, 1) and not changes:
                break
        faulted, writes, calls = recorder.faulted(), recorder.writes(), len(recorder.calls)
        annotated = [sa for sa in api.cluster.service_accounts if sa["metadata"].get("namespace") == "payments"]
    monkeypatch.setenv("AWS_ENDPOINT_URL", moto.url)
    assert not changes, f"not converged after {len(codes)} runs (apply exits {codes}): {plan.out}"
    assert faulted, "no call was faulted: the test proves nothing"
    roles = [r["RoleName"] for r in raw_iam().list_roles()["Roles"]]
    assert roles == ["payments-reader"]
    assert raw_iam().list_role_policies(RoleName="payments-reader")["PolicyNames"] == ["read"]
    assert len(raw_iam().list_open_id_connect_providers()["OpenIDConnectProviderList"]) == 1
    assert [sa["metadata"]["name"] for sa in annotated] == ["reader"]  # created once
    assert annotated[0]["metadata"]["annotations"]["eks.amazonaws.com/role-arn"].endswith(":role/payments-reader")
    print(f"\nfaults: {len(faulted)} of {calls} calls; writes {len(writes)}; apply runs {codes}")
