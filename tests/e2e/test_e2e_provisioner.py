"""The whole self-hosted chain, provisioned from one IRSAIssuer and proven as STS would prove it.

A kube-apiserver of this module's own is started with ``--service-account-issuer`` set to the S3
issuer URL (served over HTTPS by the public S3 front from the moto S3 the provisioner writes to:
only what the bucket policy makes public is served). The provisioner writes through a recorder of
the IAM actions it needs; STS is the verifying stand-in (signature against the published JWKS,
issuer, audience, expiry, the role's trust policy as stored in IAM), so nothing passes that AWS
would refuse.

In order, as an operator meets them:

1. bootstrap from a laptop: ``provision plan`` (changes pending), ``apply`` (ready: STS can read
   the documents), ``plan`` in sync, a second ``apply`` that makes no write call;
2. a pod of an annotated ServiceAccount, mutated by the webhook, gets credentials from its
   projected token through boto3's web-identity provider;
3. drift made by hand shows in ``plan`` and ``apply`` repairs it;
4. the controller, itself on IRSA through this very webhook (no stored keys), reconciles the same
   object with no write, repairs drift on resync, and mirrors a key rotation made on kube-apiserver
   (tokens of both keys verify, then the old key leaves S3);
5. deleting the object with ``deletionPolicy: Delete`` removes what it created and nothing else;
6. every AWS call made over the whole module is allowed by the documented IAM policy.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from botocore.exceptions import ClientError

from tests.support import kuberest as k
from tests.support.certs import Certs
from tests.support.moto import ACCOUNT, MotoServer
from tests.support.paths import REPO
from tests.support.server import Server
from tests.support.waits import wait_for
from webhook.oidc.jwks import key_id
from webhook.oidc.keys import generate_key_pair, load_public_keys

from .chain import (
    Injected,
    assumed_role_arn_prefix,
    caller_identity,
    request_kubelet_token,
    sdk_environment,
    write_token,
)
from .provisioning import (
    BUCKET,
    CONTROLLER_NS,
    CONTROLLER_SA,
    CRD,
    ISSUERS,
    LABEL,
    POLICY,
    PREFIX,
    SETTLE,
    Stack,
    condition,
    create_role,
    credentials_through_a_pod,
    issuer_object,
    issuer_status,
    provision,
    running_stack,
    running_webhook,
    start_controller,
)

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(900)]


@pytest.fixture(scope="module")
def stack(moto_server: MotoServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    with running_stack(moto_server, tmp_path_factory.mktemp("provisioner")) as running:
        yield running


@pytest.fixture(scope="module")
def webhook(stack: Stack, tmp_path_factory: pytest.TempPathFactory, webhook_certs: Certs) -> Iterator[Server]:
    with running_webhook(stack, tmp_path_factory.mktemp("provisioner-webhook"), webhook_certs) as server:
        yield server


def test_bootstrap_from_a_laptop_then_a_pod_gets_credentials(stack: Stack, webhook: Server, tmp_path: Path) -> None:
    obj = issuer_object(stack.issuer)
    plan = provision(stack, "plan", obj)
    assert plan.returncode == 1, plan.stdout + plan.stderr
    assert "s3:CreateBucket" in plan.stdout

    applied = provision(stack, "apply", obj)
    assert applied.returncode == 0, applied.stdout + applied.stderr
    assert "✓ Ready" in applied.stdout
    assert "✓ Reachable" in applied.stdout
    api_kid = key_id(load_public_keys(stack.plane.sa_public_key.read_bytes())[0].key)
    assert stack.served_kids() == [api_kid]

    again = provision(stack, "plan", obj)
    assert again.returncode == 0, again.stdout
    mark = len(stack.recorder.writes())
    second = provision(stack, "apply", obj, extra=("-o", "json"))
    assert second.returncode == 0, second.stderr
    assert json.loads(second.stdout)[0]["changes"] == []
    assert stack.recorder.writes()[mark:] == []  # a converged issuer: not one write call

    ns = f"app-{os.getpid()}"
    stack.kube.create_namespace(ns, LABEL)
    role = create_role(stack, "e2e-app", ns, "app")
    stack.kube.create_service_account(ns, "app", {k.ROLE_ANNOTATION: role})
    env, kid = credentials_through_a_pod(stack, ns, "sdk", tmp_path)
    assert kid == api_kid
    identity = caller_identity(env)
    assert identity["Arn"].startswith(assumed_role_arn_prefix(role))
    decision = stack.sts.decisions[-1]
    assert decision.allowed, decision.reason
    assert decision.subject == f"system:serviceaccount:{ns}:app"


def test_drift_shows_in_plan_and_apply_repairs_it(stack: Stack) -> None:
    obj = issuer_object(stack.issuer)
    assert provision(stack, "apply", obj).returncode == 0
    s3, iam = stack.s3(), stack.iam()
    s3.delete_object(Bucket=BUCKET, Key=f"{PREFIX}/keys.json")
    s3.put_bucket_policy(Bucket=BUCKET, Policy=json.dumps({"Version": "2012-10-17", "Statement": []}))
    arn = iam.list_open_id_connect_providers()["OpenIDConnectProviderList"][0]["Arn"]
    iam.remove_client_id_from_open_id_connect_provider(OpenIDConnectProviderArn=arn, ClientID="sts.amazonaws.com")

    plan = provision(stack, "plan", obj, extra=("-o", "json"))
    assert plan.returncode == 1, plan.stderr
    actions = [c["action"] for c in json.loads(plan.stdout)[0]["changes"]]
    assert "s3:PutObject" in actions
    assert "s3:PutBucketPolicy" in actions
    assert "iam:AddClientIDToOpenIDConnectProvider" in actions
    assert provision(stack, "plan", obj).returncode == 1
    repaired = provision(stack, "apply", obj)
    assert repaired.returncode == 0, repaired.stdout + repaired.stderr
    assert provision(stack, "plan", obj).returncode == 0


def test_the_controller_on_irsa_reconciles_repairs_and_mirrors_a_rotation(
    stack: Stack, webhook: Server, tmp_path: Path
) -> None:
    # The controller's own credentials: a role trusted by its ServiceAccount only, with the
    # documented policy, and a token the webhook's mutation points the SDK at: no stored keys.
    policy = POLICY.read_text()
    for placeholder, value in (
        ("BUCKET", BUCKET), ("PREFIX", PREFIX), ("ACCOUNT_ID", ACCOUNT),
        ("ISSUER_HOST_PATH", stack.issuer.removeprefix("https://")),
    ):  # fmt: skip
        policy = policy.replace(placeholder, value)
    role = create_role(stack, "irsa-webhook-provisioner", CONTROLLER_NS, CONTROLLER_SA, policy)
    stack.kube.create_service_account(CONTROLLER_NS, CONTROLLER_SA, {k.ROLE_ANNOTATION: role})
    stack.kube.create_pod(CONTROLLER_NS, k.pod("controller", CONTROLLER_SA))
    pod = stack.kube.get_pod(CONTROLLER_NS, "controller")
    injected = Injected.from_pod(pod, "app")
    write_token(tmp_path, injected, request_kubelet_token(stack.kube, pod, injected))
    env = sdk_environment(tmp_path, injected, stack.sts.url)
    assert "AWS_ACCESS_KEY_ID" not in env
    env |= {
        "PATH": os.environ.get("PATH", ""),
        "AWS_ENDPOINT_URL": stack.recorder.url,
        "AWS_ENDPOINT_URL_STS": stack.sts.url,
        "SSL_CERT_FILE": str(stack.front.ca_file),
        "PYTHONPATH": str(REPO),
    }

    stack.plane.kubectl("apply", "--server-side", "-f", str(CRD))
    stack.plane.kubectl("wait", "--for=condition=Established", "crd/irsaissuers.irsa-webhook.io", "--timeout=60s")
    stack.kube.create(ISSUERS, issuer_object(stack.issuer))
    mark = len(stack.recorder.writes())
    decisions_before = len(stack.sts.decisions)
    controller = start_controller(stack, env)
    try:
        wait_for(lambda: condition(issuer_status(stack), "Ready") == "True", timeout=SETTLE,
                 what="the issuer Ready", on_timeout=controller.process.tail)  # fmt: skip
        # converged by the laptop's apply: the controller's reconciles and resyncs write nothing
        # (the STS exchange of its own token goes through the recorder too: not a write to what it owns)
        assert [c for c in stack.recorder.writes()[mark:] if c.service != "sts"] == []
        ours = stack.sts.decisions[decisions_before:]
        assert ours, "the controller never went through STS"
        assert all(d.allowed and d.subject == f"system:serviceaccount:{CONTROLLER_NS}:{CONTROLLER_SA}" for d in ours)

        # drift: repaired by resync
        stack.s3().delete_object(Bucket=BUCKET, Key=f"{PREFIX}/keys.json")
        wait_for(lambda: _served_or_none(stack) is not None, timeout=SETTLE, what="keys.json restored",
                 on_timeout=controller.process.tail)  # fmt: skip

        # rotation, as docs/self-hosted.md says: add key B, switch the signer, remove key A
        key_a = stack.plane.sa_public_key
        kid_a = key_id(load_public_keys(key_a.read_bytes())[0].key)
        pair = generate_key_pair()
        key_b_pub, key_b = tmp_path / "b.pub", tmp_path / "b.key"
        key_b_pub.write_bytes(pair.public_pem)
        key_b.write_bytes(pair.private_pem)
        key_b.chmod(0o600)
        kid_b = key_id(load_public_keys(pair.public_pem)[0].key)

        stack.plane.reconfigure_apiserver(add=(f"--service-account-key-file={key_b_pub}",))
        wait_for(lambda: sorted(_served_or_none(stack) or []) == sorted([kid_a, kid_b]), timeout=SETTLE,
                 what="keys A and B published", on_timeout=controller.process.tail)  # fmt: skip
        ns = f"rot-{os.getpid()}"
        stack.kube.create_namespace(ns, LABEL)
        role_app = create_role(stack, "e2e-rotation", ns, "app")
        stack.kube.create_service_account(ns, "app", {k.ROLE_ANNOTATION: role_app})
        env_a, signed_a = credentials_through_a_pod(stack, ns, "signed-by-a", tmp_path / "a")
        assert signed_a == kid_a
        assert caller_identity(env_a)["Arn"].startswith(assumed_role_arn_prefix(role_app))

        stack.plane.reconfigure_apiserver(add=(f"--service-account-signing-key-file={key_b}",))
        wait_for(lambda: issuer_status(stack).get("signingKey", {}).get("kid") == kid_b, timeout=SETTLE,
                 what="the signing key seen as B", on_timeout=controller.process.tail)  # fmt: skip
        assert issuer_status(stack)["signingKey"]["published"] is True
        env_b, signed_b = credentials_through_a_pod(stack, ns, "signed-by-b", tmp_path / "b")
        assert signed_b == kid_b
        assert caller_identity(env_b)["Arn"].startswith(assumed_role_arn_prefix(role_app))
        assert caller_identity(env_a)["Arn"].startswith(assumed_role_arn_prefix(role_app))  # A's token still verifies

        stack.plane.reconfigure_apiserver(
            drop=("--service-account-key-file=",), add=(f"--service-account-key-file={key_b_pub}",)
        )
        wait_for(lambda: _served_or_none(stack) == [kid_b], timeout=SETTLE, what="key A gone from S3",
                 on_timeout=controller.process.tail)  # fmt: skip
        assert stack.sts.decisions[-1].allowed

        # deletion: what it created goes, and nothing else
        stack.s3().put_object(Bucket=BUCKET, Key="someone-else/notes.txt", Body=b"not ours")
        stack.iam().create_open_id_connect_provider(Url="https://other.example.com", ClientIDList=["sts.amazonaws.com"])
        stack.kube.merge_patch(f"{ISSUERS}/main", {"spec": {"deletionPolicy": "Delete"}})
        wait_for(lambda: "irsa-webhook.io/provisioner" in _finalizers(stack), timeout=SETTLE,
                 what="the finalizer", on_timeout=controller.process.tail)  # fmt: skip
        stack.kube.delete(f"{ISSUERS}/main")
        wait_for(lambda: not stack.kube.exists(f"{ISSUERS}/main"), timeout=SETTLE, what="the object gone",
                 on_timeout=controller.process.tail)  # fmt: skip
    finally:
        controller.process.stop()
    s3 = stack.s3()
    left = [o["Key"] for o in s3.list_objects_v2(Bucket=BUCKET).get("Contents", [])]
    assert left == ["someone-else/notes.txt"]
    with pytest.raises(ClientError, match="NoSuchBucketPolicy"):
        s3.get_bucket_policy(Bucket=BUCKET)  # our statement was the only one
    providers = [p["Arn"] for p in stack.iam().list_open_id_connect_providers()["OpenIDConnectProviderList"]]
    assert providers == [f"arn:aws:iam::{ACCOUNT}:oidc-provider/other.example.com"]


def test_the_documented_policy_allows_every_call_the_provisioner_made(stack: Stack) -> None:
    # After the laptop's bootstrap, the drift repair, the controller's whole life and its deletion
    # above (module order), run a deletion of a bucket of our own too, so every action is exercised.
    obj = issuer_object(stack.issuer, deletion="Delete")
    assert provision(stack, "apply", obj).returncode == 0
    assert provision(stack, "delete", obj).returncode == 0
    document = json.loads(POLICY.read_text())
    allowed = {
        a for s in document["Statement"] for a in ([s["Action"]] if isinstance(s["Action"], str) else s["Action"])
    }
    # GetCallerIdentity needs no permission; AssumeRoleWithWebIdentity is the controller's own
    # exchange of its token, allowed by the role's trust policy, not by this document.
    made = stack.recorder.actions() - {"sts:GetCallerIdentity", "sts:AssumeRoleWithWebIdentity"}
    assert made, "nothing was recorded"
    assert made <= allowed, f"calls the documented policy does not allow: {sorted(made - allowed)}"


def _served_or_none(stack: Stack) -> list[str] | None:
    try:
        return stack.served_kids()
    except OSError:
        return None


def _finalizers(stack: Stack) -> list[str]:
    finalizers: list[str] = stack.kube.get(f"{ISSUERS}/main")["metadata"].get("finalizers", [])
    return finalizers
