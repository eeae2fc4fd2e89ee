"""kube-apiserver's keys read by the provisioner's Kubernetes edge, against the real API server: the
JWKS it serves and the kid of a token it issues now are the control plane's key; what a
ServiceAccount without the needed RBAC gets is a message naming the grant, and the grant named is
the one that works."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from tests.support import kuberest as k
from tests.support.controlplane import ControlPlane
from webhook.kube.issuerkeys import read_cluster_keys
from webhook.oidc.jwks import key_id
from webhook.oidc.keys import load_public_keys

from .shared import NamespaceFactory

pytestmark = pytest.mark.e2e

NO_WEBHOOK: dict[str, str] = {}


@pytest.fixture
def as_admin(control_plane: ControlPlane) -> Iterator[Any]:
    api = control_plane.api_client_as(None)
    yield api
    api.close()


def the_control_planes_kid(control_plane: ControlPlane) -> str:
    (loaded,) = load_public_keys(control_plane.sa_public_key.read_bytes())
    return key_id(loaded.key)


def test_the_key_set_and_the_signing_kid_are_the_control_planes_key(
    control_plane: ControlPlane, kube: k.KubeRest, make_namespace: NamespaceFactory, as_admin: Any
) -> None:
    namespace = make_namespace(labels=NO_WEBHOOK)
    kube.create_service_account(namespace, "probe")
    keys = read_cluster_keys(as_admin, (namespace, "probe"))
    assert keys.error is None
    assert keys.jwks is not None
    kid = the_control_planes_kid(control_plane)
    assert [key["kid"] for key in keys.jwks["keys"]] == [kid]
    assert keys.signing_kid == kid


def test_a_missing_probe_service_account_is_named(
    kube: k.KubeRest, make_namespace: NamespaceFactory, as_admin: Any
) -> None:
    namespace = make_namespace(labels=NO_WEBHOOK)
    keys = read_cluster_keys(as_admin, (namespace, "absent"))
    assert keys.jwks is not None
    assert keys.signing_kid is None
    assert keys.error == (
        f"cannot request a token: ServiceAccount {namespace}/absent not found: "
        "create it or name another probe ServiceAccount"
    )


def test_without_rbac_the_message_names_the_grant_and_that_grant_suffices(
    control_plane: ControlPlane, kube: k.KubeRest, make_namespace: NamespaceFactory
) -> None:
    namespace = make_namespace(labels=NO_WEBHOOK)
    kube.create_service_account(namespace, "provisioner")
    api = control_plane.api_client_as(f"system:serviceaccount:{namespace}:provisioner")
    try:
        keys = read_cluster_keys(api, (namespace, "provisioner"))
        # Every ServiceAccount may read the key set (system:service-account-issuer-discovery); a token
        # for itself needs a grant of its own.
        assert keys.jwks is not None
        assert keys.signing_kid is None
        assert keys.error == (
            f"cannot request a token for ServiceAccount {namespace}/provisioner: forbidden: grant the "
            f"provisioner's ServiceAccount create on serviceaccounts/token for ServiceAccount {namespace}/provisioner"
        )
        rules = [
            {
                "apiGroups": [""],
                "resources": ["serviceaccounts/token"],
                "verbs": ["create"],
                "resourceNames": ["provisioner"],
            }
        ]
        rbac = f"/apis/rbac.authorization.k8s.io/v1/namespaces/{namespace}"
        kube.create(f"{rbac}/roles", {"metadata": {"name": "probe-token"}, "rules": rules})
        binding = {
            "metadata": {"name": "probe-token"},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "probe-token"},
            "subjects": [{"kind": "ServiceAccount", "name": "provisioner", "namespace": namespace}],
        }
        kube.create(f"{rbac}/rolebindings", binding)
        keys = read_cluster_keys(api, (namespace, "provisioner"))
        assert keys.error is None
        assert keys.signing_kid == the_control_planes_kid(control_plane)
    finally:
        api.close()


def test_a_user_who_may_not_read_the_key_set_is_told_what_to_grant(control_plane: ControlPlane) -> None:
    api = control_plane.api_client_as("e2e-nobody")
    try:
        keys = read_cluster_keys(api, None)
    finally:
        api.close()
    assert keys.jwks is None
    assert keys.error == (
        "cannot read /openid/v1/jwks: forbidden: grant the provisioner's ServiceAccount get on the "
        "non-resource URL /openid/v1/jwks; no probe ServiceAccount is configured: the signing key cannot be checked"
    )
