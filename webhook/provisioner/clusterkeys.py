"""The cluster side of an issuer, as the engine wants it: kube-apiserver's key set and signing key.

Read through :mod:`webhook.kube.issuerkeys` for every reconcile of an issuer whose keys come from
the API server (two cheap GETs-or-POSTs to the API server; no AWS call), and mapped to the
provisioner's :class:`~webhook.provisioner.model.ClusterKeys`.
"""

from __future__ import annotations

from typing import Any

from webhook.kube.issuerkeys import read_cluster_keys
from webhook.provisioner.engine import KeysReader
from webhook.provisioner.model import ClusterKeys, IssuerSpec


def reader(api: Any, probe: tuple[str, str] | None) -> KeysReader:
    """A :data:`KeysReader` asking the cluster of ``api``, probing the signer with ``probe`` (NS, NAME)."""

    def read(spec: IssuerSpec) -> ClusterKeys:
        found = read_cluster_keys(api, probe)
        return ClusterKeys(jwks=found.jwks, signing_kid=found.signing_kid, error=found.error)

    return read
