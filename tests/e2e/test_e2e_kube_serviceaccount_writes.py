"""The provisioner's ServiceAccount writes against the real kube-apiserver: its field ownership is what
keeps our annotation ours alone. An apply under our field manager leaves labels, other annotations and
other managers' fields as they were; a retraction removes only what we own; another manager's value
is never overwritten; an apply never creates a ServiceAccount; a ServiceAccount we create carries our
mark, and a delete takes only the object that was read. The fake API server
(tests/support/kubeapi/serviceaccounts.py) models exactly these answers."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from tests.support import kuberest as k
from tests.support.controlplane import ControlPlane
from webhook.kube.serviceaccountwrites import (
    FieldConflict,
    ServiceAccountError,
    annotated_by,
    apply_annotations,
    create_service_account,
    delete_service_account,
    read_service_account,
)

from .shared import NamespaceFactory

pytestmark = pytest.mark.e2e

NO_WEBHOOK: dict[str, str] = {}
KEY = "eks.amazonaws.com/role-arn"
ARN = "arn:aws:iam::123456789012:role/app"
OTHER_ARN = "arn:aws:iam::123456789012:role/someone-elses"
OURS = "irsa-webhook-provisioner"
CREATED_BY = "irsa-webhook.io/created-by"


@pytest.fixture
def api(control_plane: ControlPlane) -> Iterator[Any]:
    client = control_plane.api_client_as(None)
    yield client
    client.close()


def theirs(kube: k.KubeRest, namespace: str, name: str, manager: str, annotations: dict[str, str]) -> k.JSON:
    """A ServiceAccount another tool created (field manager ``manager``), with a label and ``annotations``."""
    body = {
        "apiVersion": "v1",
        "kind": "ServiceAccount",
        "metadata": {"name": name, "labels": {"team": "payments"}, "annotations": annotations},
    }
    return kube.request(
        "POST", f"/api/v1/namespaces/{namespace}/serviceaccounts", body, params={"fieldManager": manager}
    )


def stored(kube: k.KubeRest, namespace: str, name: str) -> k.JSON:
    return kube.get(f"/api/v1/namespaces/{namespace}/serviceaccounts/{name}")


def managers(sa: k.JSON) -> list[tuple[str, str]]:
    return sorted((e["manager"], e["operation"]) for e in sa["metadata"].get("managedFields", []))


def test_apply_touches_our_annotation_only_and_retract_removes_only_ours(
    kube: k.KubeRest, make_namespace: NamespaceFactory, api: Any
) -> None:
    namespace = make_namespace(labels=NO_WEBHOOK)
    before = theirs(kube, namespace, "app", "helm", {"note": "kept"})
    written = apply_annotations(api, namespace, "app", {KEY: ARN}, OURS)
    assert written is not None
    assert written["metadata"]["annotations"] == {"note": "kept", KEY: ARN}
    assert written["metadata"]["labels"] == before["metadata"]["labels"]
    assert annotated_by(written, KEY, OURS)
    assert managers(written) == [("helm", "Update"), (OURS, "Apply")]
    # Applying again changes nothing (a converged ServiceAccount costs no change).
    again = apply_annotations(api, namespace, "app", {KEY: ARN}, OURS)
    assert again is not None
    assert again["metadata"]["resourceVersion"] == written["metadata"]["resourceVersion"]

    retracted = apply_annotations(api, namespace, "app", {}, OURS)
    assert retracted is not None
    assert retracted["metadata"]["annotations"] == {"note": "kept"}
    assert retracted["metadata"]["labels"] == {"team": "payments"}
    assert managers(retracted) == [("helm", "Update")]
    assert not annotated_by(retracted, KEY, OURS)


def test_a_value_someone_else_set_is_never_overwritten(
    kube: k.KubeRest, make_namespace: NamespaceFactory, api: Any
) -> None:
    namespace = make_namespace(labels=NO_WEBHOOK)
    theirs(kube, namespace, "app", "helm", {KEY: OTHER_ARN})
    with pytest.raises(FieldConflict) as raised:
        apply_annotations(api, namespace, "app", {KEY: ARN}, OURS)
    assert raised.value.owners == (("helm", f".metadata.annotations.{KEY}"),)
    assert stored(kube, namespace, "app")["metadata"]["annotations"] == {KEY: OTHER_ARN}


def test_the_same_value_is_shared_and_stays_when_we_retract(
    kube: k.KubeRest, make_namespace: NamespaceFactory, api: Any
) -> None:
    namespace = make_namespace(labels=NO_WEBHOOK)
    theirs(kube, namespace, "app", "helm", {KEY: ARN})
    written = apply_annotations(api, namespace, "app", {KEY: ARN}, OURS)
    assert written is not None
    assert annotated_by(written, KEY, OURS)
    apply_annotations(api, namespace, "app", {}, OURS)
    assert stored(kube, namespace, "app")["metadata"]["annotations"] == {KEY: ARN}  # it is theirs too


def test_an_apply_never_creates_and_never_writes_a_recreated_one(
    kube: k.KubeRest, make_namespace: NamespaceFactory, api: Any
) -> None:
    namespace = make_namespace(labels=NO_WEBHOOK)
    assert apply_annotations(api, namespace, "app", {KEY: ARN}, OURS) is None
    assert (
        apply_annotations(api, namespace, "app", {KEY: ARN}, OURS, uid="0b0b0b0b-0000-4000-8000-000000000000") is None
    )
    assert not kube.exists(f"/api/v1/namespaces/{namespace}/serviceaccounts/app")
    theirs(kube, namespace, "app", "helm", {})
    with pytest.raises(ServiceAccountError, match="deleted and recreated since it was read"):
        apply_annotations(api, namespace, "app", {KEY: ARN}, OURS, uid="0b0b0b0b-0000-4000-8000-000000000000")
    assert "annotations" not in stored(kube, namespace, "app")["metadata"]


def test_created_by_us_then_deleted_only_as_read(kube: k.KubeRest, make_namespace: NamespaceFactory, api: Any) -> None:
    namespace = make_namespace(labels=NO_WEBHOOK)
    created = create_service_account(api, namespace, "app", {CREATED_BY: "owner"}, OURS, applied={KEY: ARN})
    assert created["metadata"]["annotations"] == {CREATED_BY: "owner", KEY: ARN}
    assert annotated_by(created, KEY, OURS)
    with pytest.raises(ServiceAccountError, match="exists now"):
        create_service_account(api, namespace, "app", {CREATED_BY: "owner"}, OURS)
    # The role annotation is retracted as on any ServiceAccount; our mark stays.
    apply_annotations(api, namespace, "app", {}, OURS)
    assert stored(kube, namespace, "app")["metadata"]["annotations"] == {CREATED_BY: "owner"}

    uid = created["metadata"]["uid"]
    with pytest.raises(ServiceAccountError, match="recreated since it was read"):
        delete_service_account(api, namespace, "app", "0b0b0b0b-0000-4000-8000-000000000000")
    assert kube.exists(f"/api/v1/namespaces/{namespace}/serviceaccounts/app")
    assert delete_service_account(api, namespace, "app", uid) is True
    assert read_service_account(api, namespace, "app") is None
    assert delete_service_account(api, namespace, "app", uid) is False


def test_missing_namespace_and_missing_grants_say_what_to_do(
    control_plane: ControlPlane, kube: k.KubeRest, make_namespace: NamespaceFactory, api: Any
) -> None:
    with pytest.raises(ServiceAccountError) as raised:
        create_service_account(api, "no-such-namespace", "app", {}, OURS)
    assert raised.value.message == (
        "create ServiceAccount no-such-namespace/app: namespace no-such-namespace does not exist: "
        "create it, or bind another"
    )
    namespace = make_namespace(labels=NO_WEBHOOK)
    theirs(kube, namespace, "app", "helm", {})
    nobody = control_plane.api_client_as("e2e-nobody")
    try:
        for verb, call in (
            ("get", lambda: read_service_account(nobody, namespace, "app")),
            ("patch", lambda: apply_annotations(nobody, namespace, "app", {KEY: ARN}, OURS, uid="u")),
            ("create", lambda: create_service_account(nobody, namespace, "new", {}, OURS)),
            ("delete", lambda: delete_service_account(nobody, namespace, "app", "u")),
        ):
            with pytest.raises(ServiceAccountError) as denied:
                call()
            assert denied.value.kind == "access-denied"
            assert denied.value.message.endswith(
                f"forbidden: grant the provisioner's ServiceAccount {verb} on serviceaccounts in namespace {namespace}"
            )
    finally:
        nobody.close()
