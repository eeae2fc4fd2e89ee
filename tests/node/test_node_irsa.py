"""IRSA on a real node: the kubelet writes the projected token the webhook asked for, and the AWS SDK
inside the container exchanges it with the verifying STS (signature against the cluster's JWKS, trust
policy evaluated) for the injected role, in the main container, an init container and a native sidecar.
Nothing here is emulated: the kubelet resolves the variables, mounts the volume and rotates the file.
"""

from __future__ import annotations

import pytest

from tests.support import kuberest as k
from tests.support.controlplane import STS_AUDIENCE
from tests.support.node.aws import NodeAWS
from tests.support.node.cluster import LocalCluster
from tests.support.node.pods import pod, probe_container, run_probe_pod
from tests.support.server import Server

from .shared import NamespaceFactory

pytestmark = pytest.mark.node

TOKEN_FILE = "/var/run/secrets/eks.amazonaws.com/serviceaccount/token"


def assumed(identity: dict[str, str], role_arn: str) -> str:
    """The session name of an assumed-role ARN of ``role_arn`` (AssertionError if it is another role)."""
    prefix = role_arn.replace(":iam::", ":sts::").replace(":role/", ":assumed-role/") + "/"
    assert identity["Arn"].startswith(prefix), (identity, role_arn)
    return identity["Arn"].removeprefix(prefix)


def test_main_init_and_sidecar_containers_get_credentials_from_the_kubelets_token(
    local_cluster: LocalCluster,
    kube: k.KubeRest,
    make_namespace: NamespaceFactory,
    node_aws: NodeAWS,
    node_webhook: Server,
    pod_env: dict[str, str],
) -> None:
    namespace = make_namespace()
    role_arn = node_aws.create_role(f"node-app-{namespace}"[:64], namespace, "app")
    kube.create_service_account(namespace, "app", {k.ROLE_ANNOTATION: role_arn})
    env = {**pod_env, "PROBE_STS": "1"}
    sidecar = probe_container(
        "sidecar",
        {**env, "PROBE_DONE": "/tmp/probed", "PROBE_SLEEP": "600"},
        restartPolicy="Always",
        # The main container starts once the sidecar has probed (then the kubelet stops the sidecar).
        startupProbe={"exec": {"command": ["cat", "/tmp/probed"]}, "periodSeconds": 1, "failureThreshold": 120},
    )
    manifest = pod("app", "app", [probe_container("main", env)], initContainers=[probe_container("init", env), sidecar])
    finished, seen = run_probe_pod(kube, local_cluster.plane, namespace, manifest)
    assert finished["status"]["phase"] == "Succeeded", finished["status"]

    for name in ("init", "sidecar", "main"):
        probe = seen[name]
        assert "error" not in probe, (name, probe.get("error"))
        assert probe["env"]["AWS_ROLE_ARN"] == role_arn
        assert probe["env"]["AWS_WEB_IDENTITY_TOKEN_FILE"] == TOKEN_FILE
        claims = probe["claims"]
        assert claims["aud"] == [STS_AUDIENCE]
        assert claims["iss"] == node_aws.issuer
        assert claims["sub"] == f"system:serviceaccount:{namespace}:app"
        assert claims["kubernetes.io"]["pod"]["name"] == "app"  # bound to this very pod by the kubelet
        assert probe["token_file"] == {"mode": "0o644", "uid": 0, "gid": 0}  # no runAsUser: world-readable
        assert probe["credential_method"] == "assume-role-with-web-identity"
        # The session name is the pod's name, resolved by the kubelet from metadata.name.
        assert assumed(probe["identity"], role_arn) == "app", probe["identity"]
    allowed = [d for d in node_aws.sts.decisions if d.role_arn == role_arn and d.allowed]
    assert len(allowed) >= 3
    assert {d.subject for d in allowed} == {f"system:serviceaccount:{namespace}:app"}


def test_a_serviceaccount_the_role_does_not_trust_gets_no_credentials(
    local_cluster: LocalCluster,
    kube: k.KubeRest,
    make_namespace: NamespaceFactory,
    node_aws: NodeAWS,
    node_webhook: Server,
    pod_env: dict[str, str],
) -> None:
    namespace = make_namespace()
    role_arn = node_aws.create_role(f"node-only-{namespace}"[:64], namespace, "trusted")
    kube.create_service_account(namespace, "other", {k.ROLE_ANNOTATION: role_arn})
    manifest = pod("other", "other", [probe_container("main", {**pod_env, "PROBE_STS": "1"})])
    _, seen = run_probe_pod(kube, local_cluster.plane, namespace, manifest)
    probe = seen["main"]
    assert probe["env"]["AWS_ROLE_ARN"] == role_arn  # injected: the webhook does not judge trust
    assert "AccessDenied" in probe.get("error", ""), probe  # STS does, as AWS would
