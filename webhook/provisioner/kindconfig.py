"""A kind cluster configuration whose kube-apiserver uses the issuer of an IRSAIssuer.

The issuer string must be the same, byte for byte, in kube-apiserver's ``--service-account-issuer``,
in the published discovery document and in IAM; generating the cluster's flags from the same object
the provisioner publishes removes the one place it was typed by hand.

kube-apiserver runs as a static pod inside the kind node container, so the keys travel two hops:
``extraMounts`` puts the host folder into the node, and the kubeadm patch mounts it into the API
server and the controller manager (which signs legacy Secret-based tokens with the same key).
"""

from __future__ import annotations

from typing import Any

# Where the keys are inside the node and the control-plane pods.
NODE_KEYS = "/etc/kubernetes/irsa"
SIGNING_KEY = "sa-signer.key"  # the names `irsa-webhook keys generate` writes
PUBLIC_KEY = "sa-signer.pub"


def kind_config(issuer_url: str, keys_dir: str) -> dict[str, Any]:
    """The kind ``Cluster`` (kind.x-k8s.io/v1alpha4) for ``issuer_url``; ``keys_dir`` is an absolute host path."""
    volume = {
        "name": "irsa-keys",
        "hostPath": NODE_KEYS,
        "mountPath": NODE_KEYS,
        "readOnly": True,
        "pathType": "Directory",
    }
    cluster_configuration = {
        "kind": "ClusterConfiguration",
        "apiServer": {
            "extraArgs": {
                "service-account-issuer": issuer_url,
                "service-account-key-file": f"{NODE_KEYS}/{PUBLIC_KEY}",
                "service-account-signing-key-file": f"{NODE_KEYS}/{SIGNING_KEY}",
                # Its default, written out: adding sts.amazonaws.com here would let tokens minted
                # for STS authenticate to the cluster.
                "api-audiences": issuer_url,
            },
            "extraVolumes": [volume],
        },
        "controllerManager": {
            "extraArgs": {"service-account-private-key-file": f"{NODE_KEYS}/{SIGNING_KEY}"},
            "extraVolumes": [volume],
        },
    }
    return {
        "kind": "Cluster",
        "apiVersion": "kind.x-k8s.io/v1alpha4",
        "nodes": [
            {
                "role": "control-plane",
                "extraMounts": [{"hostPath": keys_dir, "containerPath": NODE_KEYS, "readOnly": True}],
            }
        ],
        # kind takes each patch as a YAML string: the command writing the file serialises it.
        "kubeadmConfigPatches": [cluster_configuration],
    }
