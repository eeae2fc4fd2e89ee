"""What the webhook injects really gets a pod AWS credentials: real token, real boto3, moto as STS.

The negative cases inject one wrong value each, as a buggy webhook would, and show the same chain
then breaks at the step that catches it: moto does not validate web identity tokens, so the token is
checked as AWS's OIDC provider would (chain.verify_web_identity_token) and the identity boto3 ends up
with is compared with the role the ServiceAccount names.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.support import kuberest as k
from tests.support.controlplane import STS_AUDIENCE, ControlPlane
from tests.support.moto import MotoServer

from .chain import (
    ChainBroken,
    Injected,
    assumed_role_arn_prefix,
    caller_identity,
    request_kubelet_token,
    sdk_environment,
    verify_web_identity_token,
    write_token,
)
from .shared import REGION

pytestmark = [pytest.mark.e2e, pytest.mark.usefixtures("irsa_webhook")]

ROLE = "arn:aws:iam::210987654321:role/e2e-chain"
LIFETIME = 3600


@pytest.fixture(scope="module")
def moto(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MotoServer]:
    server = MotoServer(tmp_path_factory.mktemp("moto"))
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def mutated_pod(kube: k.KubeRest, make_namespace: Any) -> k.JSON:
    """A stored pod of an annotated SA, as the webhook mutated it."""
    ns = make_namespace()
    kube.create_service_account(
        ns,
        "app",
        {k.ROLE_ANNOTATION: ROLE, k.REGIONAL_ANNOTATION: "true", k.EXPIRATION_ANNOTATION: str(LIFETIME)},
    )
    kube.create_pod(ns, k.pod("sdk", "app"))
    return kube.get_pod(ns, "sdk")


def run_chain(
    kube: k.KubeRest,
    control_plane: ControlPlane,
    moto: MotoServer,
    pod: k.JSON,
    injected: Injected,
    root: Path,
    role: str = ROLE,
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Kubelet, OIDC provider and SDK in turn; return (token claims, caller identity)."""
    token = request_kubelet_token(kube, pod, injected)
    ns, sa = pod["metadata"]["namespace"], pod["spec"]["serviceAccountName"]
    claims = verify_web_identity_token(
        token,
        kube.get("/openid/v1/jwks"),
        issuer=control_plane.issuer,
        subject=f"system:serviceaccount:{ns}:{sa}",
        lifetime=injected.expiration_seconds,
    )
    write_token(root, injected, token)
    identity = caller_identity(sdk_environment(root, injected, moto.url))
    # The role the ServiceAccount names, not whatever the env said: that is what IRSA promises.
    if not identity["Arn"].startswith(assumed_role_arn_prefix(role)):
        raise ChainBroken(f"caller identity {identity['Arn']} is not the role {role}")
    return claims, identity


def test_boto3_assumes_the_injected_role(
    kube: k.KubeRest, control_plane: ControlPlane, moto: MotoServer, mutated_pod: k.JSON, tmp_path: Path
) -> None:
    injected = Injected.from_pod(mutated_pod, "app")
    assert injected.audience == STS_AUDIENCE
    assert injected.expiration_seconds == LIFETIME
    assert injected.env["AWS_WEB_IDENTITY_TOKEN_FILE"] == injected.token_path_in_container
    assert injected.env["AWS_REGION"] == REGION
    assert injected.env["AWS_STS_REGIONAL_ENDPOINTS"] == "regional"

    claims, identity = run_chain(kube, control_plane, moto, mutated_pod, injected, tmp_path)

    assert claims["iss"] == control_plane.issuer
    assert claims["aud"] == [STS_AUDIENCE]
    assert claims["exp"] - claims["iat"] == LIFETIME
    bound = claims["kubernetes.io"]["pod"]
    assert bound == {"name": "sdk", "uid": mutated_pod["metadata"]["uid"]}
    assert identity["Account"] == "210987654321"
    assert identity["Arn"].startswith("arn:aws:sts::210987654321:assumed-role/e2e-chain/")


@pytest.mark.parametrize(
    ("tamper", "broken_step"),
    [
        pytest.param(
            {"env": {"AWS_ROLE_ARN": "arn:aws:iam::210987654321:role/someone-else"}},
            "caller identity .* is not the role",
            id="wrong-role-arn",
        ),
        pytest.param(
            # Not where the mount makes the kubelet write: the SDK finds no token file.
            {"env": {"AWS_WEB_IDENTITY_TOKEN_FILE": "/var/run/secrets/eks.amazonaws.com/token"}},
            "boto3 failed",
            id="wrong-token-path",
        ),
        pytest.param(
            # The kubelet requests what the volume says; STS only trusts sts.amazonaws.com.
            {"audience": "https://kubernetes.default.svc"},
            "token rejected: InvalidAudienceError",
            id="wrong-audience",
        ),
    ],
)
def test_chain_breaks_when_an_injected_value_is_wrong(
    kube: k.KubeRest,
    control_plane: ControlPlane,
    moto: MotoServer,
    mutated_pod: k.JSON,
    tmp_path: Path,
    tamper: dict[str, Any],
    broken_step: str,
) -> None:
    injected = Injected.from_pod(mutated_pod, "app").tampered(**tamper)
    with pytest.raises(ChainBroken, match=broken_step):
        run_chain(kube, control_plane, moto, mutated_pod, injected, tmp_path)


def test_session_name_is_the_pods_final_name_in_the_assumed_role_arn(
    kube: k.KubeRest, control_plane: ControlPlane, moto: MotoServer, make_namespace: Any, tmp_path: Path
) -> None:
    """role-session-name: pod on a generateName pod: the name kube-apiserver chose is the session name."""
    ns = make_namespace()
    role = "arn:aws:iam::210987654321:role/e2e-session-name"
    kube.create_service_account(ns, "named", {k.ROLE_ANNOTATION: role, k.SESSION_NAME_ANNOTATION: "pod"})
    created = kube.create_pod(ns, k.pod("reports-", "named", generate_name=True))
    name = created["metadata"]["name"]
    assert name.startswith("reports-")
    assert len(name) == len("reports-") + 5
    stored = kube.get_pod(ns, name)

    entry = next(e for e in k.find_container(stored, "app")["env"] if e["name"] == "AWS_ROLE_SESSION_NAME")
    assert entry == {
        "name": "AWS_ROLE_SESSION_NAME",
        "valueFrom": {"fieldRef": {"apiVersion": "v1", "fieldPath": "metadata.name"}},
    }
    injected = Injected.from_pod(stored, "app")
    assert injected.env["AWS_ROLE_SESSION_NAME"] == name

    _, identity = run_chain(kube, control_plane, moto, stored, injected, tmp_path, role=role)
    assert identity["Arn"] == assumed_role_arn_prefix(role) + name


def test_service_account_region_is_the_region_boto3_uses(kube: k.KubeRest, make_namespace: Any) -> None:
    """The account's region annotation beats the webhook's --aws-default-region, and the SDK reads it."""
    ns = make_namespace()
    kube.create_service_account(ns, "gov", {k.ROLE_ANNOTATION: ROLE, k.REGION_ANNOTATION: "us-gov-west-1"})
    kube.create_pod(ns, k.pod("gov", "gov"))
    stored = kube.get_pod(ns, "gov")
    injected = Injected.from_pod(stored, "app")
    assert REGION != "us-gov-west-1"
    assert injected.env["AWS_REGION"] == injected.env["AWS_DEFAULT_REGION"] == "us-gov-west-1"
    env = {name: value for name, value in injected.env.items() if name.startswith("AWS_")}
    env["AWS_CONFIG_FILE"] = env["AWS_SHARED_CREDENTIALS_FILE"] = "/nonexistent"
    result = subprocess.run(
        [sys.executable, "-c", "import boto3; print(boto3.session.Session().region_name)"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    assert result.stdout.strip() == "us-gov-west-1"
