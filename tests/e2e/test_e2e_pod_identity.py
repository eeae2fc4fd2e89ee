"""EKS Pod Identity end to end: a real webhook process watching a kubelet-style identities volume,
registered with kube-apiserver, and boto3's own container credential provider against an agent
stand-in (``tests.support.standins.podidentityagent``) that checks the pod's token with the API server.

1. a pod of a listed ServiceAccount, created through the API server, is stored with the agent's URI
   and token file, the token volume for ``pods.eks.amazonaws.com`` and the pod-identity label;
2. the kubelet's part: a TokenRequest with that volume's audience and lifetime, bound to the pod,
   written where AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE points (under a temp folder standing in for
   the container's "/");
3. the SDK's part: boto3 with exactly the injected env resolves credentials through
   AWS_CONTAINER_CREDENTIALS_FULL_URI, and gets the ones the agent issues for that ServiceAccount.
A token with another audience is refused by the agent, and boto3 gets no credentials. An update of the
identities file by a ``..data`` swap reaches the next pod within seconds, with no restart; a listed
ServiceAccount with a role-arn annotation gets Pod Identity, not IRSA.
"""

from __future__ import annotations

import json
import secrets
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.support import kuberest as k
from tests.support.certs import Certs
from tests.support.controlplane import STS_AUDIENCE, ControlPlane
from tests.support.kubeapi import identities_file
from tests.support.server import Server
from tests.support.standins.podidentityagent import POD_IDENTITY_AUDIENCE, PodIdentityAgent
from tests.support.volumes import KubeletVolume
from tests.support.waits import wait_for

from .chain import BOTO3_TIMEOUT, Injected, in_root, request_kubelet_token, write_token
from .shared import SELECTOR_LABEL

pytestmark = pytest.mark.e2e

CONFIG = "irsa-e2e-pod-identity"
LABELS = {SELECTOR_LABEL: CONFIG}
LABEL = "eks.amazonaws.com/pod-identity"
VOLUME = "eks-pod-identity-token"
MOUNT_PATH = "/var/run/secrets/pods.eks.amazonaws.com/serviceaccount"
TOKEN_FILE = f"{MOUNT_PATH}/eks-pod-identity-token"
ROLE = "arn:aws:iam::111122223333:role/e2e-irsa-role"
# The webhook polls its file every 2 s; the swap must reach pods well within this.
RELOAD_TIMEOUT = 15.0

# Prints the credentials boto3's default chain resolves, or the exception and exit 1. A subprocess,
# so that its environment is exactly the injected one.
_BOTO3_SCRIPT = """
import json, sys
import boto3
try:
    credentials = boto3.Session().get_credentials()
    if credentials is None:
        raise RuntimeError("no credentials")
    frozen = credentials.get_frozen_credentials()
except Exception as exc:
    print(json.dumps({"error": type(exc).__name__, "message": str(exc)}))
    sys.exit(1)
print(json.dumps({"AccessKeyId": frozen.access_key, "SecretAccessKey": frozen.secret_key,
                  "Token": frozen.token, "method": credentials.method}))
"""


IDENTITIES = "identities.json"


@dataclass
class World:
    namespace: str
    agent: PodIdentityAgent
    webhook: Server
    volume: KubeletVolume
    listed: list[tuple[str, str]]


@pytest.fixture(scope="module")
def world(
    control_plane: ControlPlane, kube: k.KubeRest, webhook_certs: Certs, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[World]:
    namespace = f"pod-identity-{secrets.token_hex(3)}"
    kube.create_namespace(namespace, LABELS)
    kube.create_service_account(namespace, "app")
    kube.create_service_account(namespace, "both", {k.ROLE_ANNOTATION: ROLE})
    kube.create_service_account(namespace, "later")
    volume = KubeletVolume(tmp_path_factory.mktemp("pod-identity-config") / "volume")
    listed = [(namespace, "app"), (namespace, "both")]
    volume.write({IDENTITIES: identities_file(*listed)})
    agent = PodIdentityAgent(control_plane.server, control_plane.token, control_plane.ca_file).start()
    webhook = None
    try:
        webhook = Server(
            tmp_path_factory.mktemp("pod-identity-webhook"),
            webhook_certs,
            "--watch-container-credentials-config",
            str(volume.folder / IDENTITIES),
            "--container-credentials-full-uri",
            agent.url,
            kubeconfig=control_plane.kubeconfig,
            bind_address=None,
        ).start()
        k.register_webhook(kube, CONFIG, webhook.mutate_url, webhook_certs.ca_pem, "Fail", LABELS)
        yield World(namespace, agent, webhook, volume, listed)
    finally:
        kube.delete_webhook_configuration(CONFIG)
        if webhook is not None:
            webhook.stop()
        agent.stop()
        kube.delete(f"/api/v1/namespaces/{namespace}")


def injected(pod: k.JSON, container: str) -> Injected:
    """What the stored pod tells the kubelet and the SDK about its Pod Identity token."""
    c = k.find_container(pod, container)
    volume = next(v for v in pod["spec"].get("volumes", []) if v["name"] == VOLUME)
    mount = next(m for m in c.get("volumeMounts", []) if m["name"] == VOLUME)
    source = volume["projected"]["sources"][0]["serviceAccountToken"]
    return Injected(
        env=k.env_of(c),
        audience=source.get("audience", ""),
        expiration_seconds=source["expirationSeconds"],
        token_path_in_container=f"{mount['mountPath']}/{source['path']}",
    )


def sdk_credentials(root: Path, env: dict[str, str]) -> dict[str, Any]:
    """boto3's default credential chain with exactly the injected AWS_* env (the token file mapped under
    ``root``), no config or credentials files and no EC2 metadata service."""
    sdk_env = {name: value for name, value in env.items() if name.startswith("AWS_")}
    if "AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE" in sdk_env:
        sdk_env["AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE"] = str(
            in_root(root, sdk_env["AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE"])
        )
    home = root / "home"
    home.mkdir(exist_ok=True)
    sdk_env.update(
        {
            "HOME": str(home),
            "AWS_CONFIG_FILE": str(root / "no-aws-config"),
            "AWS_SHARED_CREDENTIALS_FILE": str(root / "no-aws-credentials"),
            "AWS_EC2_METADATA_DISABLED": "true",
        }
    )
    result = subprocess.run(
        [sys.executable, "-c", _BOTO3_SCRIPT],
        env=sdk_env,
        capture_output=True,
        text=True,
        timeout=BOTO3_TIMEOUT,
        check=False,
    )
    answer: dict[str, Any] = json.loads(result.stdout or "{}") if result.stdout.strip() else {}
    if result.returncode != 0 and "error" not in answer:
        answer = {"error": "crashed", "message": result.stderr[-2000:]}
    return answer


def is_pod_identity(pod: k.JSON) -> bool:
    return (pod["metadata"].get("labels") or {}).get(LABEL) == "enabled"


def assert_stored_with_pod_identity(pod: k.JSON, agent_url: str) -> None:
    assert pod["metadata"]["labels"][LABEL] == "enabled"
    env = k.env_of(k.find_container(pod, "app"))
    assert env["AWS_CONTAINER_CREDENTIALS_FULL_URI"] == agent_url
    assert env["AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE"] == TOKEN_FILE
    assert "AWS_ROLE_ARN" not in env
    assert "AWS_WEB_IDENTITY_TOKEN_FILE" not in env
    assert k.token_volume(pod) is None, "an IRSA token volume next to Pod Identity"
    volume = next(v for v in pod["spec"]["volumes"] if v["name"] == VOLUME)
    token = volume["projected"]["sources"][0]["serviceAccountToken"]
    assert token["audience"] == POD_IDENTITY_AUDIENCE
    assert token["path"] == "eks-pod-identity-token"
    assert 79200 <= token["expirationSeconds"] <= 86400  # the flag's 86400, jittered
    mount = next(m for m in k.find_container(pod, "app")["volumeMounts"] if m["name"] == VOLUME)
    assert mount == {"name": VOLUME, "mountPath": MOUNT_PATH, "readOnly": True}


def test_boto3_gets_the_agents_credentials(world: World, kube: k.KubeRest, tmp_path: Path) -> None:
    kube.create_pod(world.namespace, k.pod("sdk", "app"))
    pod = kube.get_pod(world.namespace, "sdk")
    assert_stored_with_pod_identity(pod, world.agent.url)
    issued = world.agent.associate(world.namespace, "app")

    chain = injected(pod, "app")
    assert chain.audience == POD_IDENTITY_AUDIENCE
    write_token(tmp_path, chain, request_kubelet_token(kube, pod, chain))
    credentials = sdk_credentials(tmp_path, chain.env)

    assert credentials == {
        "AccessKeyId": issued["AccessKeyId"],
        "SecretAccessKey": issued["SecretAccessKey"],
        "Token": issued["Token"],
        "method": "container-role",
    }
    assert world.agent.answers[-1].status == 200
    assert world.agent.answers[-1].subject == f"system:serviceaccount:{world.namespace}:app"


def test_a_token_for_another_audience_gets_no_credentials(world: World, kube: k.KubeRest, tmp_path: Path) -> None:
    kube.create_pod(world.namespace, k.pod("wrong-audience", "app"))
    pod = kube.get_pod(world.namespace, "wrong-audience")
    world.agent.associate(world.namespace, "app")
    # A kubelet that requested what an IRSA volume asks for: a valid token, not for the agent.
    chain = injected(pod, "app").tampered(audience=STS_AUDIENCE)
    write_token(tmp_path, chain, request_kubelet_token(kube, pod, chain))
    before = len(world.agent.answers)

    credentials = sdk_credentials(tmp_path, chain.env)

    assert credentials.get("error") == "CredentialRetrievalError", credentials
    assert "AccessKeyId" not in credentials
    refused = world.agent.answers[before:]
    assert refused, "boto3 never asked the agent"
    assert {a.status for a in refused} == {403}
    assert all(not a.subject for a in refused), "the API server authenticated a token of the wrong audience"


def test_a_listed_service_account_with_a_role_arn_gets_pod_identity(world: World, kube: k.KubeRest) -> None:
    kube.create_pod(world.namespace, k.pod("precedence", "both"))
    pod = kube.get_pod(world.namespace, "precedence")
    assert_stored_with_pod_identity(pod, world.agent.url)
    assert ROLE not in json.dumps(pod)


def test_a_data_swap_reaches_the_next_pod_without_a_restart(world: World, kube: k.KubeRest) -> None:
    probe = k.pod("swap-probe", "later")
    before = kube.create_pod(world.namespace, probe, dry_run=True)
    assert not is_pod_identity(before)
    assert "AWS_CONTAINER_CREDENTIALS_FULL_URI" not in k.env_of(k.find_container(before, "app"))
    assert world.webhook.process is not None
    pid = world.webhook.process.pid

    world.listed.append((world.namespace, "later"))
    world.volume.write({IDENTITIES: identities_file(*world.listed)})
    wait_for(
        lambda: is_pod_identity(kube.create_pod(world.namespace, probe, dry_run=True)),
        timeout=RELOAD_TIMEOUT,
        what="the swapped identities file to reach the webhook",
    )

    kube.create_pod(world.namespace, k.pod("after-swap", "later"))
    assert_stored_with_pod_identity(kube.get_pod(world.namespace, "after-swap"), world.agent.url)
    assert world.webhook.process.pid == pid
    assert world.webhook.process.alive()
    logs = world.webhook.logs()
    assert logs.count('"msg":"starting"') == 1, logs[-3000:]
    assert logs.count('"msg":"container credentials config loaded"') == 2, logs[-3000:]  # at start, at the swap
