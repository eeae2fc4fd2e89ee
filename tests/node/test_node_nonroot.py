"""A non-root container reads its token (upstream's most asked question): the kubelet writes the
projected token file for the container's user.

What kubelet 1.36 does, asserted here: every container of the pod running as the same non-root
``runAsUser`` gets the file owned by that user, mode 0600; with ``fsGroup`` it is group-owned by the
fsGroup, mode 0640; containers of different users share a root-owned 0644 file. In each case the SDK in
the container exchanges the token for credentials.
"""

from __future__ import annotations

from typing import Any

import pytest

from tests.support import kuberest as k
from tests.support.node.aws import NodeAWS
from tests.support.node.cluster import LocalCluster
from tests.support.node.pods import pod, probe_container, run_probe_pod
from tests.support.server import Server

from .shared import NamespaceFactory

pytestmark = pytest.mark.node


@pytest.mark.parametrize(
    ("security", "users", "expected"),
    [
        pytest.param({"runAsUser": 1000}, {"main": 1000}, {"mode": "0o600", "uid": 1000, "gid": 0}, id="runAsUser"),
        pytest.param(
            {"runAsUser": 1000, "runAsGroup": 3000, "fsGroup": 2000},
            {"main": 1000},
            {"mode": "0o640", "uid": 1000, "gid": 2000},
            id="fsGroup",
        ),
        pytest.param({}, {"main": 1000, "second": 1001}, {"mode": "0o644", "uid": 0, "gid": 0}, id="two-users"),
    ],
)
def test_a_non_root_container_reads_its_token_and_gets_credentials(
    local_cluster: LocalCluster,
    kube: k.KubeRest,
    make_namespace: NamespaceFactory,
    node_aws: NodeAWS,
    node_webhook: Server,
    pod_env: dict[str, str],
    security: dict[str, Any],
    users: dict[str, int],
    expected: dict[str, Any],
) -> None:
    namespace = make_namespace()
    role_arn = node_aws.create_role(f"node-nonroot-{namespace}"[:64], namespace, "app")
    kube.create_service_account(namespace, "app", {k.ROLE_ANNOTATION: role_arn})
    containers = [
        probe_container(name, {**pod_env, "PROBE_STS": "1"}, securityContext={"runAsUser": uid})
        for name, uid in users.items()
    ]
    manifest = pod("nonroot", "app", containers, securityContext=security)
    finished, seen = run_probe_pod(kube, local_cluster.plane, namespace, manifest)
    assert finished["status"]["phase"] == "Succeeded", finished["status"]
    for name, uid in users.items():
        probe = seen[name]
        assert probe["uid"] == uid
        assert "token_error" not in probe, probe["token_error"]
        assert probe["token_file"] == expected, name
        assert "error" not in probe, probe.get("error")
        assert probe["identity"]["Arn"].startswith(
            role_arn.replace(":iam::", ":sts::").replace(":role/", ":assumed-role/")
        )
