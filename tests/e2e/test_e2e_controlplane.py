"""The harness itself: the control plane is what the other e2e tests take it to be."""

from __future__ import annotations

import json
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from tests.support import kuberest as k
from tests.support.controlplane import STS_AUDIENCE, ControlPlane, MissingBinaries, find_binaries

pytestmark = pytest.mark.e2e


def test_missing_binaries_message_says_how_to_provide_them(tmp_path: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KUBEBUILDER_ASSETS", str(tmp_path))
    with pytest.raises(MissingBinaries) as info:
        find_binaries()
    message = str(info.value)
    assert "\n" not in message
    assert "KUBEBUILDER_ASSETS=" in message
    assert "make envtest" in message


def test_issuer_discovery_and_jwks_serve_the_signing_key(kube: k.KubeRest, control_plane: ControlPlane) -> None:
    discovery = kube.get("/.well-known/openid-configuration")
    assert discovery["issuer"] == control_plane.issuer
    assert discovery["jwks_uri"].endswith("/openid/v1/jwks")
    assert "RS256" in discovery["id_token_signing_alg_values_supported"]

    jwks = kube.get("/openid/v1/jwks")
    (key,) = jwks["keys"]
    served = jwt.PyJWK.from_dict(key).key
    ours = serialization.load_pem_public_key(control_plane.sa_public_key.read_bytes())
    assert isinstance(served, rsa.RSAPublicKey)
    assert isinstance(ours, rsa.RSAPublicKey)
    assert served.public_numbers() == ours.public_numbers()


def test_token_request_issues_a_token_for_the_sts_audience(
    kube: k.KubeRest, control_plane: ControlPlane, make_namespace: Any
) -> None:
    namespace = make_namespace(labels={})
    kube.create_service_account(namespace, "app")
    review = kube.create(
        f"/api/v1/namespaces/{namespace}/serviceaccounts/app/token",
        {
            "apiVersion": "authentication.k8s.io/v1",
            "kind": "TokenRequest",
            "spec": {"audiences": [STS_AUDIENCE], "expirationSeconds": 3600},
        },
    )
    claims = jwt.decode(review["status"]["token"], options={"verify_signature": False})
    assert claims["aud"] == [STS_AUDIENCE]
    assert claims["iss"] == control_plane.issuer
    assert claims["exp"] - claims["iat"] == 3600


def test_kubectl_talks_to_the_control_plane_as_admin(control_plane: ControlPlane) -> None:
    version = json.loads(control_plane.kubectl("version", "-o", "json").stdout)
    assert version["serverVersion"]["major"] == "1"
    assert control_plane.kubectl("auth", "can-i", "create", "pods").stdout.strip() == "yes"


def test_kubernetes_client_fixture_works(api_client: Any) -> None:
    from kubernetes import client

    names = [ns.metadata.name for ns in client.CoreV1Api(api_client).list_namespace().items if ns.metadata]
    assert "default" in names
