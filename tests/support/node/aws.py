"""The AWS side of a local node, as a pod meets it: moto, the IAM OIDC provider of the cluster's own
issuer, and the verifying STS on the node's address, where pods reach it.

The issuer is kube-apiserver itself (``https://10.201.0.1:PORT``), serving its discovery document and
JWKS; STS fetches them anonymously, as it fetches a public issuer's, so anonymous users are granted
``system:service-account-issuer-discovery`` (what a self-hosted cluster serving its own issuer does).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from ..controlplane import STS_AUDIENCE, ControlPlane
from ..kuberest import KubeRest
from ..moto import MotoServer
from ..standins.issuer import trust_policy
from ..standins.motoserver import ACCOUNT_ID, admin_client
from ..standins.verifying_sts import VerifyingSTS
from .network import NODE_ADDRESS

DISCOVERY_BINDING = "irsa-node-anonymous-issuer-discovery"


def allow_anonymous_discovery(kube: KubeRest) -> None:
    kube.request(
        "POST",
        "/apis/rbac.authorization.k8s.io/v1/clusterrolebindings",
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "ClusterRoleBinding",
            "metadata": {"name": DISCOVERY_BINDING},
            "roleRef": {
                "apiGroup": "rbac.authorization.k8s.io",
                "kind": "ClusterRole",
                "name": "system:service-account-issuer-discovery",
            },
            "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "Group", "name": "system:unauthenticated"}],
        },
    )


class NodeAWS:
    """moto + the provider of ``plane``'s issuer + the verifying STS on the node address (``sts_url``)."""

    def __init__(self, workdir: Path, plane: ControlPlane, kube: KubeRest) -> None:
        allow_anonymous_discovery(kube)
        self.moto = MotoServer(workdir)
        try:
            self.iam = admin_client(self.moto.url, "iam")
            self.issuer = plane.issuer
            self.host_path = self.issuer.removeprefix("https://")
            self.provider_arn = f"arn:aws:iam::{ACCOUNT_ID}:oidc-provider/{self.host_path}"
            self.iam.create_open_id_connect_provider(Url=self.issuer, ClientIDList=[STS_AUDIENCE])
            self.sts = VerifyingSTS(self.moto.url, ca_file=plane.ca_file, host=NODE_ADDRESS)
        except BaseException:
            self.moto.stop()
            raise
        self.sts_url = self.sts.url

    def trust_policy(self, namespace: str, service_account: str) -> dict[str, Any]:
        return trust_policy(self.provider_arn, self.host_path, namespace, service_account)

    def create_role(self, name: str, namespace: str, service_account: str) -> str:
        """A role only ``namespace/service_account`` may assume; its ARN."""
        document = json.dumps(self.trust_policy(namespace, service_account))
        return str(self.iam.create_role(RoleName=name, AssumeRolePolicyDocument=document)["Role"]["Arn"])

    def stop(self) -> None:
        self.sts.stop()
        self.moto.stop()
