"""What kube-apiserver STORES for pods created through the real webhook."""

from __future__ import annotations

import json
from typing import Any

import pytest

from tests.support import kuberest as k
from tests.support.controlplane import ControlPlane

from .shared import REGION

pytestmark = [pytest.mark.e2e, pytest.mark.usefixtures("irsa_webhook")]

ROLE = "arn:aws:iam::123456789012:role/e2e-app"


def expected_env(role: str = ROLE, regional: bool = False, token_file: str = k.DEFAULT_TOKEN_FILE) -> list[Any]:
    """What the webhook appends, in the documented order, with the shared webhook's default region."""
    env = [{"name": "AWS_STS_REGIONAL_ENDPOINTS", "value": "regional"}] if regional else []
    return [
        *env,
        {"name": "AWS_DEFAULT_REGION", "value": REGION},
        {"name": "AWS_REGION", "value": REGION},
        {"name": "AWS_ROLE_ARN", "value": role},
        {"name": "AWS_WEB_IDENTITY_TOKEN_FILE", "value": token_file},
    ]


TOKEN_MOUNT = {"name": k.TOKEN_VOLUME, "mountPath": k.DEFAULT_MOUNT_PATH, "readOnly": True}


def token_source(p: k.JSON) -> k.JSON:
    volume = k.token_volume(p)
    assert volume is not None, f"no {k.TOKEN_VOLUME} volume in {json.dumps(p['spec'])}"
    (source,) = volume["projected"]["sources"]
    token: k.JSON = source["serviceAccountToken"]
    return token


def assert_not_injected(p: k.JSON) -> None:
    assert k.token_volume(p) is None
    for c in k.all_containers(p):
        assert not {"AWS_ROLE_ARN", "AWS_WEB_IDENTITY_TOKEN_FILE"} & set(k.env_names(c)), c["name"]
        assert k.token_mount(c) is None, c["name"]


def test_annotated_sa_injects_every_container_including_init_and_native_sidecar(
    kube: k.KubeRest, make_namespace: Any
) -> None:
    ns = make_namespace()
    kube.create_service_account(
        ns,
        "app",
        {k.ROLE_ANNOTATION: ROLE, k.REGIONAL_ANNOTATION: "true", k.EXPIRATION_ANNOTATION: "3600"},
    )
    sidecar = k.container("log-shipper", restartPolicy="Always")
    manifest = k.pod(
        "web",
        "app",
        init_containers=[k.container("migrate", {"FOO": "bar"}), sidecar],
        containers=[
            k.container("app", {"KEEP": "me"}, startupProbe={"grpc": {"port": 8080}}),
            k.container("metrics"),
        ],
    )
    kube.create_pod(ns, manifest)
    stored = kube.get_pod(ns, "web")

    assert token_source(stored) == {
        "audience": "sts.amazonaws.com",
        "expirationSeconds": 3600,
        "path": "token",
    }
    first_env = {"migrate": [{"name": "FOO", "value": "bar"}], "app": [{"name": "KEEP", "value": "me"}]}
    for c in k.all_containers(stored):
        assert c["env"] == first_env.get(c["name"], []) + expected_env(regional=True), c["name"]
        assert c["volumeMounts"][-1] == TOKEN_MOUNT, c["name"]
    # Fields the webhook does not model survive the round trip through its patch.
    assert k.find_container(stored, "log-shipper")["restartPolicy"] == "Always"
    assert k.find_container(stored, "app")["startupProbe"]["grpc"]["port"] == 8080
    assert [c["name"] for c in stored["spec"]["initContainers"]] == ["migrate", "log-shipper"]


def test_plain_sa_pod_is_stored_unmutated(kube: k.KubeRest, make_namespace: Any) -> None:
    ns = make_namespace()
    kube.create_service_account(ns, "plain")
    kube.create_pod(ns, k.pod("plain", "plain", init_containers=[k.container("init")]))
    assert_not_injected(kube.get_pod(ns, "plain"))


def test_pod_naming_its_sa_in_the_deprecated_field_is_injected(kube: k.KubeRest, make_namespace: Any) -> None:
    ns = make_namespace()
    kube.create_service_account(ns, "legacy", {k.ROLE_ANNOTATION: ROLE})
    manifest = k.pod("legacy")
    manifest["spec"]["serviceAccount"] = "legacy"  # v1's alias of serviceAccountName
    kube.create_pod(ns, manifest)
    stored = kube.get_pod(ns, "legacy")
    assert stored["spec"]["serviceAccountName"] == "legacy"
    assert stored["spec"]["containers"][0]["env"] == expected_env()


# A pod with no ServiceAccount at all is not tested here: in a real cluster the ServiceAccount admission
# plugin sets serviceAccountName "default" before any webhook runs; it is off in this control plane
# (see controlplane.py), and kube-apiserver rejects a token projection in a pod without
# serviceAccountName. The webhook's own "default" fallback is covered by the unit tests.


def test_generate_name_pod_is_injected(kube: k.KubeRest, make_namespace: Any) -> None:
    ns = make_namespace()
    kube.create_service_account(ns, "app", {k.ROLE_ANNOTATION: ROLE})
    created = kube.create_pod(ns, k.pod("batch-", "app", generate_name=True))
    name = created["metadata"]["name"]
    assert name.startswith("batch-")
    assert name != "batch-"
    stored = kube.get_pod(ns, name)
    assert stored["spec"]["containers"][0]["env"] == expected_env()
    assert token_source(stored)["audience"] == "sts.amazonaws.com"


def test_server_side_dry_run_is_mutated_and_nothing_is_stored(
    kube: k.KubeRest, control_plane: ControlPlane, make_namespace: Any
) -> None:
    ns = make_namespace()
    kube.create_service_account(ns, "app", {k.ROLE_ANNOTATION: ROLE})
    result = control_plane.kubectl(
        "create", "-n", ns, "--dry-run=server", "-o", "json", "-f", "-",
        input=json.dumps(k.pod("dry", "app")),
    )  # fmt: skip
    answered = json.loads(result.stdout)
    assert answered["spec"]["containers"][0]["env"] == expected_env()
    assert not kube.exists(f"/api/v1/namespaces/{ns}/pods/dry")


def test_sa_audience_pod_expiration_and_skip_containers(kube: k.KubeRest, make_namespace: Any) -> None:
    ns = make_namespace()
    kube.create_service_account(
        ns,
        "app",
        {k.ROLE_ANNOTATION: ROLE, k.AUDIENCE_ANNOTATION: "custom.example", k.EXPIRATION_ANNOTATION: "3600"},
    )
    manifest = k.pod(
        "tuned",
        "app",
        containers=[k.container("app"), k.container("debug")],
        # The pod's expiration wins over the SA's; names in skip-containers are trimmed [ours].
        annotations={k.EXPIRATION_ANNOTATION: "7200", k.SKIP_CONTAINERS_ANNOTATION: " debug "},
    )
    kube.create_pod(ns, manifest)
    stored = kube.get_pod(ns, "tuned")
    assert token_source(stored) == {"audience": "custom.example", "expirationSeconds": 7200, "path": "token"}
    assert k.find_container(stored, "app")["env"] == expected_env()
    debug = k.find_container(stored, "debug")
    assert "env" not in debug
    assert k.token_mount(debug) is None


def test_existing_region_is_kept_and_completed_with_its_partner(kube: k.KubeRest, make_namespace: Any) -> None:
    ns = make_namespace()
    kube.create_service_account(ns, "app", {k.ROLE_ANNOTATION: ROLE})
    kube.create_pod(ns, k.pod("pinned", "app", containers=[k.container("app", {"AWS_REGION": "eu-west-1"})]))
    env = kube.get_pod(ns, "pinned")["spec"]["containers"][0]["env"]
    # The pod's own region under both names (boto3 reads only AWS_DEFAULT_REGION), not the webhook's.
    own = [{"name": "AWS_REGION", "value": "eu-west-1"}, {"name": "AWS_DEFAULT_REGION", "value": "eu-west-1"}]
    assert env == [*own, *expected_env()[2:]]


def test_windows_pod_gets_a_windows_token_path(kube: k.KubeRest, make_namespace: Any) -> None:
    ns = make_namespace()
    kube.create_service_account(ns, "app", {k.ROLE_ANNOTATION: ROLE})
    manifest = k.pod("win", "app")
    manifest["spec"]["nodeSelector"] = {"kubernetes.io/os": "windows"}
    kube.create_pod(ns, manifest)
    stored = k.find_container(kube.get_pod(ns, "win"), "app")
    windows_path = "C:\\var\\run\\secrets\\eks.amazonaws.com\\serviceaccount\\token"
    assert stored["env"] == expected_env(token_file=windows_path)
    assert k.token_mount(stored) == TOKEN_MOUNT


def test_skip_label_pod_is_never_sent_to_the_webhook(kube: k.KubeRest, make_namespace: Any) -> None:
    ns = make_namespace()
    kube.create_service_account(ns, "app", {k.ROLE_ANNOTATION: ROLE})
    kube.create_pod(ns, k.pod("opted-out", "app", labels={k.SKIP_POD_LABEL: "true"}))
    assert_not_injected(kube.get_pod(ns, "opted-out"))


def test_bad_role_arn_is_injected_with_a_warning_kubectl_prints(
    kube: k.KubeRest, control_plane: ControlPlane, make_namespace: Any
) -> None:
    ns = make_namespace()
    kube.create_service_account(ns, "app", {k.ROLE_ANNOTATION: "not-an-arn"})
    result = control_plane.kubectl("create", "-n", ns, "-f", "-", input=json.dumps(k.pod("warned", "app")))
    assert "Warning:" in result.stderr, result.stderr
    stored = kube.get_pod(ns, "warned")
    assert stored["spec"]["containers"][0]["env"] == expected_env(role="not-an-arn")
