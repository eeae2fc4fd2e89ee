"""ServiceAccount writes of the provisioner against the fake API server: server-side apply of our
annotations only (other fields and other managers' keys untouched, conflicts refused, nothing ever
created by an apply), retraction of ours alone, creation and a delete bound to the uid that was read,
and failures that say what to do. The same behaviour against kube-apiserver itself:
tests/e2e/test_e2e_kube_serviceaccount_writes.py."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.support.kubeapi import FakeApiServer, FakeCluster, service_account, serviceaccounts
from webhook.kube.serviceaccountwrites import (
    APPLY_PATCH,
    FieldConflict,
    ServiceAccountError,
    annotated_by,
    apply_annotations,
    create_service_account,
    delete_service_account,
    read_service_account,
)

NS = "production"
KEY = "eks.amazonaws.com/role-arn"
ARN = "arn:aws:iam::123456789012:role/production-app"
OURS = "irsa-webhook-provisioner"
CREATED_BY = "irsa-webhook.io/created-by"


@pytest.fixture
def server() -> Iterator[FakeApiServer]:
    with FakeApiServer(FakeCluster()) as running:
        yield running


@pytest.fixture
def api(server: FakeApiServer, tmp_path: Path) -> Any:
    return server.api_client(tmp_path)


def existing(server: FakeApiServer, manager: str = "kubectl", **annotations: str) -> dict[str, Any]:
    """ServiceAccount ``app``, created by someone else (``manager``) with a label and ``annotations``."""
    body = service_account(NS, "app", annotations=annotations, labels={"app": "app"})
    with server.cluster.lock:
        code, created = serviceaccounts.create(server.cluster.service_accounts, NS, body, manager)
    assert code == 201
    return created


def annotations_of(api: Any, name: str = "app") -> dict[str, str]:
    sa = read_service_account(api, NS, name)
    assert sa is not None
    found: dict[str, str] = sa["metadata"].get("annotations") or {}
    return found


def test_read_gives_the_raw_object_with_managed_fields_or_none(server: FakeApiServer, api: Any) -> None:
    existing(server, note="x")
    sa = read_service_account(api, NS, "app")
    assert sa is not None
    assert sa["metadata"]["managedFields"][0]["manager"] == "kubectl"
    assert read_service_account(api, NS, "absent") is None


def test_apply_adds_ours_and_leaves_labels_and_other_annotations(server: FakeApiServer, api: Any) -> None:
    existing(server, note="kept")
    written = apply_annotations(api, NS, "app", {KEY: ARN}, OURS)
    assert written is not None
    assert written["metadata"]["annotations"] == {"note": "kept", KEY: ARN}
    assert written["metadata"]["labels"] == {"app": "app"}
    assert annotated_by(written, KEY, OURS)
    assert not annotated_by(written, "note", OURS)
    apply = next(r for r in server.cluster.requests if r.method == "PATCH")
    assert apply.headers["Content-Type"] == APPLY_PATCH
    assert apply.query == {"fieldManager": OURS, "force": "false"}
    # The uid that was read goes with the apply: a recreated or deleted object is never written.
    assert apply.body["metadata"]["uid"] == written["metadata"]["uid"]
    assert set(apply.body["metadata"]) == {"name", "namespace", "uid", "annotations"}
    again = apply_annotations(api, NS, "app", {KEY: ARN}, OURS)
    assert again is not None
    assert again["metadata"]["resourceVersion"] == written["metadata"]["resourceVersion"]


def test_a_value_another_manager_owns_is_not_overwritten(server: FakeApiServer, api: Any) -> None:
    existing(server, "helm", **{KEY: "arn:aws:iam::123456789012:role/theirs"})
    with pytest.raises(FieldConflict) as raised:
        apply_annotations(api, NS, "app", {KEY: ARN}, OURS)
    assert raised.value.owners == (("helm", f".metadata.annotations.{KEY}"),)
    assert raised.value.message == (
        f"ServiceAccount {NS}/app: .metadata.annotations.{KEY} (owned by helm) already set by another manager "
        "to another value: not overwritten; remove it there, or bind another ServiceAccount"
    )
    assert annotations_of(api)[KEY] == "arn:aws:iam::123456789012:role/theirs"


def test_retract_removes_ours_only(server: FakeApiServer, api: Any) -> None:
    existing(server, note="kept")
    apply_annotations(api, NS, "app", {KEY: ARN, "ours-too": "1"}, OURS)
    retracted = apply_annotations(api, NS, "app", {}, OURS)
    assert retracted is not None
    assert retracted["metadata"]["annotations"] == {"note": "kept"}
    assert not annotated_by(retracted, KEY, OURS)
    assert [e["manager"] for e in retracted["metadata"]["managedFields"]] == ["kubectl"]
    # Retracted: the applied intent carried no annotations at all.
    assert "annotations" not in server.cluster.requests[-1].body["metadata"]


def test_a_key_someone_else_also_set_to_the_same_value_stays_on_retract(server: FakeApiServer, api: Any) -> None:
    existing(server, **{KEY: ARN})
    written = apply_annotations(api, NS, "app", {KEY: ARN}, OURS)  # shared: no conflict
    assert written is not None
    assert annotated_by(written, KEY, OURS)
    apply_annotations(api, NS, "app", {}, OURS)
    assert annotations_of(api) == {KEY: ARN}


def test_an_apply_never_creates_a_service_account(server: FakeApiServer, api: Any) -> None:
    assert apply_annotations(api, NS, "absent", {KEY: ARN}, OURS) is None
    assert apply_annotations(api, NS, "absent", {}, OURS) is None
    assert read_service_account(api, NS, "absent") is None
    assert [r.method for r in server.cluster.requests] == ["GET", "GET", "GET"]


def test_an_apply_with_a_stale_uid_writes_nothing(server: FakeApiServer, api: Any) -> None:
    # Deleted since it was read: 409 from the API server, nothing created.
    assert apply_annotations(api, NS, "app", {KEY: ARN}, OURS, uid="gone-uid") is None
    assert read_service_account(api, NS, "app") is None
    # Recreated since it was read: the uid is immutable, nothing written.
    existing(server)
    with pytest.raises(ServiceAccountError, match="deleted and recreated since it was read") as raised:
        apply_annotations(api, NS, "app", {KEY: ARN}, OURS, uid="old-uid")
    assert raised.value.kind == "retryable"
    assert KEY not in annotations_of(api)


def test_annotated_by_reads_the_apply_entry_of_our_manager_only() -> None:
    def entry(manager: str, operation: str, key: str) -> dict[str, Any]:
        return {
            "manager": manager,
            "operation": operation,
            "fieldsType": "FieldsV1",
            "fieldsV1": {"f:metadata": {"f:annotations": {f"f:{key}": {}}}},
        }

    sa = service_account(NS, "app", ARN)
    assert not annotated_by(sa, KEY, OURS)
    sa["metadata"]["managedFields"] = [entry(OURS, "Update", KEY), entry("other", "Apply", KEY)]
    assert not annotated_by(sa, KEY, OURS)
    sa["metadata"]["managedFields"].append(entry(OURS, "Apply", KEY))
    assert annotated_by(sa, KEY, OURS)
    assert not annotated_by({"metadata": {"managedFields": "garbage"}}, KEY, OURS)


def test_create_marks_it_ours_and_applies_the_role_like_any_annotation(server: FakeApiServer, api: Any) -> None:
    created = create_service_account(
        api, NS, "new", {CREATED_BY: "c/irsarole/production/app"}, OURS, applied={KEY: ARN}
    )
    assert created["metadata"]["annotations"] == {CREATED_BY: "c/irsarole/production/app", KEY: ARN}
    assert annotated_by(created, KEY, OURS)
    # The role annotation is retracted as on any ServiceAccount; the mark stays until the deletion.
    apply_annotations(api, NS, "new", {}, OURS)
    assert annotations_of(api, "new") == {CREATED_BY: "c/irsarole/production/app"}


def test_create_of_an_existing_one_fails_and_changes_nothing(server: FakeApiServer, api: Any) -> None:
    existing(server, note="theirs")
    with pytest.raises(ServiceAccountError, match=r"exists now .* it is not ours") as raised:
        create_service_account(api, NS, "app", {CREATED_BY: "x"}, OURS, applied={KEY: ARN})
    assert raised.value.kind == "retryable"
    assert annotations_of(api) == {"note": "theirs"}


def test_create_in_a_namespace_that_does_not_exist(server: FakeApiServer, api: Any) -> None:
    server.cluster.namespaces.append({"metadata": {"name": "other"}})
    with pytest.raises(ServiceAccountError) as raised:
        create_service_account(api, NS, "new", {}, OURS)
    assert (raised.value.kind, raised.value.message) == (
        "terminal",
        f"create ServiceAccount {NS}/new: namespace {NS} does not exist: create it, or bind another",
    )


def test_delete_only_the_object_that_was_read(server: FakeApiServer, api: Any) -> None:
    uid = existing(server)["metadata"]["uid"]
    with pytest.raises(ServiceAccountError, match="recreated since it was read") as raised:
        delete_service_account(api, NS, "app", "another-uid")
    assert raised.value.kind == "retryable"
    assert read_service_account(api, NS, "app") is not None
    assert delete_service_account(api, NS, "app", uid) is True
    assert read_service_account(api, NS, "app") is None
    assert delete_service_account(api, NS, "app", uid) is False  # gone already: done


@pytest.mark.parametrize(
    ("verb", "call"),
    [
        pytest.param("get", lambda api: read_service_account(api, NS, "app"), id="get"),
        pytest.param("patch", lambda api: apply_annotations(api, NS, "app", {KEY: ARN}, OURS, uid="u"), id="patch"),
        pytest.param("create", lambda api: create_service_account(api, NS, "new", {}, OURS), id="create"),
        pytest.param("delete", lambda api: delete_service_account(api, NS, "app", "u"), id="delete"),
    ],
)
def test_forbidden_names_the_missing_grant(server: FakeApiServer, api: Any, verb: str, call: Any) -> None:
    existing(server)
    server.cluster.forbidden.add(verb)
    with pytest.raises(ServiceAccountError) as raised:
        call(api)
    assert raised.value.kind == "access-denied"
    assert raised.value.message.endswith(
        f"forbidden: grant the provisioner's ServiceAccount {verb} on serviceaccounts in namespace {NS}"
    )


@pytest.mark.parametrize(("code", "kind"), [(500, "retryable"), (429, "retryable"), (400, "terminal")])
def test_other_failures_are_classified(server: FakeApiServer, api: Any, code: int, kind: str) -> None:
    server.cluster.fail[f"/api/v1/namespaces/{NS}/serviceaccounts/app"] = code
    with pytest.raises(ServiceAccountError) as raised:
        read_service_account(api, NS, "app")
    assert raised.value.kind == kind
    assert f"get ServiceAccount {NS}/app: HTTP {code}" in raised.value.message


def test_an_api_server_that_does_not_answer_is_retryable(tmp_path: Path) -> None:
    with FakeApiServer(FakeCluster()) as gone:
        api = gone.api_client(tmp_path)
    with pytest.raises(ServiceAccountError, match="the API server did not answer") as raised:
        read_service_account(api, NS, "app")
    assert raised.value.kind == "retryable"
