"""The self-hosted tooling against a real kube-apiserver: what we publish is what the server serves.

- ``oidc jwks`` over the key passed to ``--service-account-key-file`` equals the server's own
  ``/openid/v1/jwks`` (kid, n, e): the kid derivation is kube-apiserver's, byte for byte;
- ``oidc discovery`` for the server's issuer has the issuer the server reports;
- ``trust-policy check --token`` allows a real projected token (TokenRequest, audience
  sts.amazonaws.com) of the right ServiceAccount and denies the same SA name in another namespace.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.support import kuberest as k
from tests.support.controlplane import STS_AUDIENCE, ControlPlane
from webhook.cli import main
from webhook.oidc.reach import check_published

from .shared import NamespaceFactory

pytestmark = pytest.mark.e2e

# Short but above kube-apiserver's 10-minute minimum for a TokenRequest's expirationSeconds.
TOKEN_SECONDS = 600
NO_WEBHOOK: dict[str, str] = {}  # these namespaces need no webhook: only tokens are involved


def _run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def _token(kube: k.KubeRest, namespace: str, name: str) -> str:
    review = kube.create(
        f"/api/v1/namespaces/{namespace}/serviceaccounts/{name}/token",
        {
            "apiVersion": "authentication.k8s.io/v1",
            "kind": "TokenRequest",
            "spec": {"audiences": [STS_AUDIENCE], "expirationSeconds": TOKEN_SECONDS},
        },
    )
    token: str = review["status"]["token"]
    return token


def test_jwks_equals_the_api_servers_own(
    control_plane: ControlPlane, kube: k.KubeRest, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = _run(capsys, "oidc", "jwks", "--key", str(control_plane.sa_public_key))
    assert (code, err) == (0, "")
    ours = json.loads(out)["keys"]
    served = kube.get("/openid/v1/jwks")["keys"]

    def essentials(keys: list[dict[str, str]]) -> list[tuple[str, ...]]:
        return sorted((key["kid"], key["kty"], key["alg"], key["use"], key["n"], key["e"]) for key in keys)

    assert essentials(ours) == essentials(served)
    assert len(ours) == 1


def test_discovery_issuer_equals_the_api_servers(
    control_plane: ControlPlane, kube: k.KubeRest, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _err = _run(
        capsys,
        "oidc",
        "discovery",
        "--issuer",
        control_plane.issuer,
        "--key",
        str(control_plane.sa_public_key),
    )
    assert code == 0
    ours = json.loads(out)
    served = kube.get("/.well-known/openid-configuration")
    assert ours["issuer"] == served["issuer"] == control_plane.issuer
    assert ours["id_token_signing_alg_values_supported"] == served["id_token_signing_alg_values_supported"]
    assert ours["response_types_supported"] == served["response_types_supported"]
    assert ours["subject_types_supported"] == served["subject_types_supported"]


def test_trust_policy_check_with_real_projected_tokens(
    control_plane: ControlPlane,
    kube: k.KubeRest,
    make_namespace: NamespaceFactory,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    home, elsewhere = make_namespace(NO_WEBHOOK), make_namespace(NO_WEBHOOK)
    for namespace in (home, elsewhere):
        kube.create_service_account(namespace, "app")

    code, policy_text, _err = _run(
        capsys,
        "trust-policy",
        "--issuer",
        control_plane.issuer,
        "--account-id",
        "111122223333",
        "--namespace",
        home,
        "--service-account",
        "app",
    )
    assert code == 0
    policy_file = tmp_path / "trust.json"
    policy_file.write_text(policy_text)

    right = tmp_path / "right.jwt"
    right.write_text(_token(kube, home, "app"))
    code, out, err = _run(capsys, "trust-policy", "check", "--policy", str(policy_file), "--token", str(right))
    assert (code, err) == (0, ""), out
    assert out.startswith("ALLOWED: allowed by statement 0")
    assert f"system:serviceaccount:{home}:app" in out

    wrong = tmp_path / "wrong.jwt"
    wrong.write_text(_token(kube, elsewhere, "app"))
    code, out, err = _run(
        capsys, "trust-policy", "check", "--policy", str(policy_file), "--token", str(wrong), "-o", "json"
    )
    assert (code, err) == (1, "")
    report = json.loads(out)
    assert report["allowed"] is False
    assert report["request"]["sub"] == f"system:serviceaccount:{elsewhere}:app"
    assert report["request"]["issuer"] == control_plane.issuer
    assert ":sub" in report["statements"][0]["reason"]


def test_the_reachability_check_reads_kube_apiservers_own_issuer(
    control_plane: ControlPlane, kube: k.KubeRest, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An issuer served by kube-apiserver itself (a self-hosted cluster's, the local cluster's): its
    JWKS is served only as application/jwk-set+json (HTTP 406 to a client accepting application/json
    alone), so the provisioner's check must ask for that media type, as STS's fetch does not mind."""
    binding = "e2e-anonymous-issuer-discovery"
    kube.request(
        "POST",
        "/apis/rbac.authorization.k8s.io/v1/clusterrolebindings",
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "ClusterRoleBinding",
            "metadata": {"name": binding},
            "roleRef": {
                "apiGroup": "rbac.authorization.k8s.io",
                "kind": "ClusterRole",
                "name": "system:service-account-issuer-discovery",
            },
            "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "Group", "name": "system:unauthenticated"}],
        },
    )
    try:
        monkeypatch.setenv("SSL_CERT_FILE", str(control_plane.ca_file))
        kids = [key["kid"] for key in kube.request("GET", "/openid/v1/jwks")["keys"]]
        result = check_published(control_plane.issuer, kids)
        assert result.ok, result.message
        assert sorted(result.kids) == sorted(kids)
    finally:
        kube.delete(f"/apis/rbac.authorization.k8s.io/v1/clusterrolebindings/{binding}")
