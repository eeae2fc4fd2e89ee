"""`irsa-webhook audit` end to end in-process (main()), through a kubeconfig, against the stand-in API
server of tests.support.kubeapi: what is listed and how, the re-check of each finding, evictions, scoping, the
identity sources and every way it ends (exit 0, 1, 2)."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.support.kubeapi import FakeApiServer, FakeCluster, pod, service_account
from webhook.audit.scan import PHASE_SELECTOR
from webhook.cli import main
from webhook.kube.paginate import MAX_LIST_RESTARTS

from .standin import Audit

ROLE = "arn:aws:iam::111122223333:role/app"
ROLE_OLD = "arn:aws:iam::111122223333:role/old"


def findings(out: str) -> dict[tuple[str, str], Any]:
    return {(f["namespace"], f["pod"]): f for f in json.loads(out)["findings"]}


def summary(out: str) -> dict[str, Any]:
    result: dict[str, Any] = json.loads(out)["summary"]
    return result


def mixed_cluster(**extra: Any) -> FakeCluster:
    """Seven pods in one namespace: every third lacks credentials, one runs with an old role."""
    pods = [pod("shop", f"p{i}", role=None if i % 3 == 0 else ROLE) for i in range(7)]
    pods[4] = pod("shop", "p4", role=ROLE_OLD)
    return FakeCluster(pods=pods, service_accounts=[service_account("shop", "app", ROLE)], **extra)


CONFIGURATIONS = "/apis/admissionregistration.k8s.io/v1/mutatingwebhookconfigurations"
EXPECTED = {("shop", "p0"), ("shop", "p3"), ("shop", "p4"), ("shop", "p6")}


def test_pages_follow_the_continue_token_at_the_page_size(serve: Callable[[FakeCluster], Audit]) -> None:
    cluster = mixed_cluster()
    code, out, _ = serve(cluster)("--page-size", "3", "-o", "json")
    assert code == 1
    assert set(findings(out)) == EXPECTED
    pages = cluster.of_kind("/api/v1/pods")
    assert [r.query.get("continue") for r in pages] == [None, "3", "6"]
    assert {r.query["limit"] for r in pages} == {"3"}
    # Finished pods are never transferred; which pods the webhook is called for is the configuration's
    # business, read from the cluster, so no label selector is assumed.
    assert {r.query["fieldSelector"] for r in pages} == {PHASE_SELECTOR}
    assert not any("labelSelector" in r.query for r in pages)
    assert PHASE_SELECTOR == "status.phase!=Succeeded,status.phase!=Failed"
    (namespaces,) = cluster.of_kind("/api/v1/namespaces")
    assert "labelSelector" not in namespaces.query  # every namespace: the namespaceSelector needs their labels
    (configuration,) = cluster.of_kind(
        "/apis/admissionregistration.k8s.io/v1/mutatingwebhookconfigurations/irsa-webhook"
    )
    assert configuration.method == "GET"
    assert (summary(out)["pages"], summary(out)["audited"]) == (3, 7)


def test_an_expired_continue_token_is_replaced_by_the_servers(serve: Callable[[FakeCluster], Audit]) -> None:
    cluster = mixed_cluster(expire={"3": "inconsistent"})
    code, out, err = serve(cluster)("--page-size", "3", "-o", "json")
    assert code == 1
    assert set(findings(out)) == EXPECTED
    stats = summary(out)
    assert (stats["inconsistentContinues"], stats["listRestarts"], stats["audited"]) == (1, 0, 7)
    assert "continuing from the current state" in err


def test_an_expired_listing_without_a_token_starts_over_once(serve: Callable[[FakeCluster], Audit]) -> None:
    cluster = mixed_cluster(expire={"6": "restart"})
    code, out, err = serve(cluster)("--page-size", "3", "-o", "json")
    assert code == 1
    # Nothing counted or reported twice from the first try.
    assert sorted(findings(out)) == sorted(EXPECTED)
    assert len(json.loads(out)["findings"]) == len(EXPECTED)
    stats = summary(out)
    assert (stats["listRestarts"], stats["audited"], stats["listed"], stats["pages"]) == (1, 7, 7, 3)
    assert [r.query.get("continue") for r in cluster.of_kind("/api/v1/pods")] == [None, "3", "6", None, "3", "6"]
    assert "listing again from the start" in err


def test_an_expired_service_account_listing_starts_over_too(serve: Callable[[FakeCluster], Audit]) -> None:
    accounts = [service_account("shop", name, ROLE) for name in ("app", "b", "c", "d", "e")]
    cluster = FakeCluster(pods=[pod("shop", "p"), pod("shop", "q", role=ROLE)], service_accounts=accounts)
    cluster.expire = {"2": "restart", "4": "inconsistent"}
    code, out, _ = serve(cluster)("--pods-namespace", "shop", "--page-size", "2", "-o", "json")
    assert code == 1
    assert set(findings(out)) == {("shop", "p")}
    stats = summary(out)
    assert (stats["serviceAccounts"], stats["listRestarts"], stats["inconsistentContinues"]) == (5, 1, 1)
    listed = [r.query.get("continue") for r in cluster.of_kind("/api/v1/namespaces/shop/serviceaccounts")]
    assert listed == [None, "2", None, "2", "4", "4"]


def test_a_listing_that_never_completes_is_an_error(serve: Callable[[FakeCluster], Audit]) -> None:
    code, out, err = serve(mixed_cluster(expire={"3": "always"}))("--page-size", "3")
    assert code == 2
    assert out == ""
    assert f"cannot list pods: its continue token expired {MAX_LIST_RESTARTS + 1} times in a row" in err


def test_a_clean_cluster_exits_0_and_prints_no_table(serve: Callable[[FakeCluster], Audit]) -> None:
    cluster = FakeCluster(pods=[pod("shop", "ok", role=ROLE)], service_accounts=[service_account("shop", "app", ROLE)])
    audit = serve(cluster)
    code, out, err = audit()
    assert (code, out) == (0, "")
    assert "1 pods audited (0 skipped): 0 lacking credentials, 0 with a changed role" in err
    code, out, _ = audit("-o", "json")
    assert code == 0
    assert json.loads(out)["findings"] == []


def test_nothing_is_written_without_evict(serve: Callable[[FakeCluster], Audit]) -> None:
    cluster = mixed_cluster()
    code, _, _ = serve(cluster)()
    assert code == 1
    assert {r.method for r in cluster.requests} == {"GET"}


def test_findings_are_judged_again_before_they_are_reported(serve: Callable[[FakeCluster], Audit]) -> None:
    """A pod fixed, deleted or replaced since it was listed, and a ServiceAccount created since the
    ServiceAccounts were listed, are what the re-check catches."""
    cluster = mixed_cluster()
    cluster.pods = [*cluster.pods, pod("shop", "late", "late", role=ROLE)]  # its SA is not in the list
    cluster.overrides = {
        ("pods", "p0"): pod("shop", "p0", role=ROLE),  # mutated since: a replacement by its controller
        ("pods", "p3"): None,  # deleted since
        ("pods", "p6"): pod("shop", "p6", uid="another-uid"),  # a new pod of the same name
        ("serviceaccounts", "late"): service_account("shop", "late", ROLE),
    }
    code, out, _ = serve(cluster)("-o", "json", "--evict")
    assert code == 1
    assert set(findings(out)) == {("shop", "p4")}
    assert summary(out)["resolvedOnRecheck"] == 4
    # The replaced pod was not evicted in place of the one that was listed.
    assert [r.path for r in cluster.requests if r.method == "POST"] == ["/api/v1/namespaces/shop/pods/p4/eviction"]


def test_eviction_outcomes(serve: Callable[[FakeCluster], Audit]) -> None:
    pods = [pod("shop", name) for name in ("evicted", "budget", "gone", "changed")]
    pods.append(pod("shop", "bare", owner=None))
    cluster = FakeCluster(
        pods=pods,
        service_accounts=[service_account("shop", "app", ROLE)],
        evictions={"budget": 429, "gone": 404, "changed": 409},
    )
    code, out, err = serve(cluster)("--evict", "-o", "json")
    assert code == 1  # a budget, a vanished or a replaced pod is an outcome, not an error
    results = {name: f["eviction"]["result"] for (_ns, name), f in findings(out).items()}
    assert results == {
        "evicted": "evicted",
        "budget": "disruption-budget",
        "gone": "gone",
        "changed": "changed",
        "bare": "no-controller",
    }
    assert "429" in findings(out)[("shop", "budget")]["eviction"]["message"]
    assert cluster.deleted == {("shop", "evicted")}
    evictions = [r for r in cluster.requests if r.method == "POST"]
    assert len(evictions) == 4  # once each: a refusal is not retried; the bare pod never
    assert summary(out)["evictions"] == {
        "evicted": 1,
        "no-controller": 1,
        "disruption-budget": 1,
        "gone": 1,
        "changed": 1,
    }
    assert "1 evicted, 1 not evicted: no controller, 1 not evicted: disruption budget" in err


def test_only_owners_that_recreate_their_pods_have_them_evicted(serve: Callable[[FakeCluster], Audit]) -> None:
    """A Job counts an API-initiated eviction against its backoffLimit (it fails outright at 0), and a
    workflow engine's pods are not recreated: they lose their work. Only ReplicaSet, StatefulSet and
    DaemonSet pods are evicted, plus the kinds an operator names."""
    owners = {"rs": "ReplicaSet", "sts": "StatefulSet", "ds": "DaemonSet", "job": "Job", "wf": "Workflow"}
    cluster = FakeCluster(
        pods=[pod("shop", name, owner=kind) for name, kind in owners.items()],
        service_accounts=[service_account("shop", "app", ROLE)],
    )
    code, out, err = serve(cluster)("--evict", "-o", "json")
    assert code == 1
    results = {name: f["eviction"]["result"] for (_ns, name), f in findings(out).items()}
    assert results == {
        "rs": "evicted",
        "sts": "evicted",
        "ds": "evicted",
        "job": "owner-does-not-recreate",
        "wf": "owner-does-not-recreate",
    }
    assert "--evict-owner-kind Job" in findings(out)[("shop", "job")]["eviction"]["message"]
    assert cluster.deleted == {("shop", "rs"), ("shop", "sts"), ("shop", "ds")}
    assert "2 not evicted: owner does not recreate pods" in err

    # A controller of the operator's own that does recreate its pods: named, it is evicted too.
    cluster = FakeCluster(
        pods=[pod("shop", "wf", owner="Workflow"), pod("shop", "job", owner="Job")],
        service_accounts=[service_account("shop", "app", ROLE)],
    )
    code, out, _ = serve(cluster)("--evict", "--evict-owner-kind", "Workflow", "-o", "json")
    assert {name: f["eviction"]["result"] for (_ns, name), f in findings(out).items()} == {
        "wf": "evicted",
        "job": "owner-does-not-recreate",
    }


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        pytest.param(["--evict-owner-kind", "Workflow"], "--evict-owner-kind only applies to --evict", id="no-evict"),
        pytest.param(["--evict", "--evict-owner-kind", "workflow"], "must be a Kubernetes kind", id="lowercase"),
        pytest.param(["--evict", "--evict-owner-kind", "Work flow"], "must be a Kubernetes kind", id="space"),
    ],
)
def test_evict_owner_kind_is_checked(serve: Callable[[FakeCluster], Audit], argv: list[str], message: str) -> None:
    code, out, err = serve(FakeCluster())(*argv)
    assert (code, out) == (2, "")
    assert message in err


def test_max_evictions_caps_the_requests_of_one_run(serve: Callable[[FakeCluster], Audit]) -> None:
    cluster = FakeCluster(
        pods=[pod("shop", f"p{i}") for i in range(13)] + [pod("shop", "bare", owner=None)],
        service_accounts=[service_account("shop", "app", ROLE)],
    )
    code, out, err = serve(cluster)("--evict", "-o", "json")
    assert code == 1
    assert len([r for r in cluster.requests if r.method == "POST"]) == 10  # the default cap
    assert summary(out)["evictions"] == {"evicted": 10, "no-controller": 1, "eviction-limit": 3}
    assert "3 not evicted: --max-evictions reached" in err
    # The next run goes on with what is left; a cap of its own.
    code, out, _ = serve(cluster)("--evict", "--max-evictions", "2", "-o", "json")
    assert summary(out)["evictions"] == {"evicted": 2, "no-controller": 1, "eviction-limit": 1}
    assert len(cluster.deleted) == 12
    code, _, err = serve(cluster)("--evict", "--max-evictions", "0")
    assert code == 2
    assert "--max-evictions must be at least 1" in err


def test_an_eviction_refused_otherwise_is_an_error_with_the_report(serve: Callable[[FakeCluster], Audit]) -> None:
    cluster = FakeCluster(
        pods=[pod("shop", "a"), pod("shop", "b")],
        service_accounts=[service_account("shop", "app", ROLE)],
        evictions={"a": 403},
    )
    code, out, _ = serve(cluster)("--evict")
    assert code == 2
    rows = {line.split()[1]: line for line in out.splitlines()[1:]}
    assert "ReplicaSet/a-owner: eviction failed (HTTP 403" in rows["a"]
    assert rows["b"].endswith("ReplicaSet/b-owner: evicted")


def test_a_dropped_connection_is_a_failed_eviction(serve: Callable[[FakeCluster], Audit]) -> None:
    cluster = FakeCluster(pods=[pod("shop", "a")], service_accounts=[service_account("shop", "app", ROLE)])
    cluster.evictions = {"a": 0}
    code, out, _ = serve(cluster)("--evict", "-o", "json")
    assert code == 2
    eviction = findings(out)[("shop", "a")]["eviction"]
    assert eviction["result"] == "failed"
    assert "RemoteDisconnected" in eviction["message"] or "ProtocolError" in eviction["message"]


def test_a_dry_run_eviction_deletes_nothing(serve: Callable[[FakeCluster], Audit]) -> None:
    cluster = mixed_cluster()
    code, out, _ = serve(cluster)("--evict", "--dry-run", "-o", "json")
    assert code == 1
    assert {f["eviction"]["result"] for f in findings(out).values()} == {"dry-run"}
    posts = [r for r in cluster.requests if r.method == "POST"]
    assert len(posts) == len(EXPECTED)
    assert all(r.query == {"dryRun": "All"} for r in posts)
    assert cluster.deleted == set()
    assert summary(out)["dryRun"] is True


def test_scoping_and_excluded_namespaces(
    serve: Callable[[FakeCluster], Audit], monkeypatch: pytest.MonkeyPatch
) -> None:
    namespaces = ("shop", "kube-system", "legacy", "irsa-webhook", "other")
    cluster = FakeCluster(
        pods=[pod(ns, "p") for ns in namespaces],
        service_accounts=[service_account(ns, "app", ROLE) for ns in namespaces],
        namespaces=[
            {"metadata": {"name": ns, "labels": {"kubernetes.io/metadata.name": ns}}}
            for ns in namespaces
            if ns != "legacy"
        ]
        + [{"metadata": {"name": "legacy", "labels": {"eks.amazonaws.com/skip-pod-identity-webhook": "x"}}}],
    )
    audit = serve(cluster)
    # The configuration's name from its environment variable, as the kustomize component sets it.
    monkeypatch.setenv("IRSA_WEBHOOK_CONFIGURATION", "irsa-webhook")
    code, out, _ = audit("--exclude-namespace", "kube-system", "-o", "json")
    assert code == 1
    assert set(findings(out)) == {("shop", "p"), ("other", "p")}
    # The shipped namespaceSelector leaves out the webhook's namespace and the labelled one.
    assert summary(out)["skipped"] == {"excluded-namespace": 1, "not-called": 2}
    monkeypatch.setenv("IRSA_WEBHOOK_CONFIGURATION", "missing")
    code, _, err = audit("-o", "json")
    assert code == 2
    assert "mutatingwebhookconfiguration missing not found" in err
    monkeypatch.delenv("IRSA_WEBHOOK_CONFIGURATION")

    cluster.requests.clear()
    code, out, _ = audit("--pods-namespace", "shop", "--pods-namespace", "legacy", "-o", "json")
    assert code == 1
    assert set(findings(out)) == {("shop", "p")}
    listed = {r.path for r in cluster.requests if "limit" in r.query}
    assert listed == {
        "/api/v1/namespaces",
        "/api/v1/namespaces/shop/pods",
        "/api/v1/namespaces/legacy/pods",
        "/api/v1/namespaces/shop/serviceaccounts",
        "/api/v1/namespaces/legacy/serviceaccounts",
    }


def test_the_configmap_is_read_once_from_the_webhooks_namespace(serve: Callable[[FakeCluster], Audit]) -> None:
    config = {"data": {"config": json.dumps({"shop/mapped": {"RoleARN": ROLE}})}}
    cluster = FakeCluster(
        pods=[pod("shop", "mapped", "mapped"), pod("shop", "annotated")],
        service_accounts=[service_account("shop", "mapped"), service_account("shop", "app")],
        config_maps={("hook", "pod-identity-webhook"): config},
    )
    audit = serve(cluster)
    code, out, _ = audit("--watch-config-map", "--namespace", "hook", "-o", "json")
    assert code == 1
    (problem,) = findings(out)[("shop", "mapped")]["problems"]
    assert (problem["source"], problem["roleArn"]) == ("configmap", ROLE)
    assert set(findings(out)) == {("shop", "mapped")}
    assert len(cluster.of_kind("/api/v1/namespaces/hook/configmaps/pod-identity-webhook")) == 1
    # Without the flag, the ConfigMap is not read and gives no role.
    assert audit()[0] == 0
    # A missing ConfigMap (a wrong --namespace, say) stops the audit before any eviction: every pod it
    # maps would otherwise look like drift (5 of 5 such pods were once evicted).
    cluster.config_maps.clear()
    code, out, err = audit("--watch-config-map", "--namespace", "hook", "--evict")
    assert (code, out) == (2, "")
    assert "configmap hook/pod-identity-webhook not found" in err
    assert not [r for r in cluster.requests if r.method == "POST"]


def test_the_pod_identity_file_is_read_once(serve: Callable[[FakeCluster], Audit], tmp_path: Path) -> None:
    cluster = FakeCluster(pods=[pod("shop", "p", role=ROLE)], service_accounts=[service_account("shop", "app", ROLE)])
    identities = tmp_path / "identities.json"
    identities.write_text(json.dumps({"identities": [{"namespace": "shop", "serviceAccount": "app"}]}))
    audit = serve(cluster)
    code, out, _ = audit("--watch-container-credentials-config", str(identities), "-o", "json")
    assert code == 1
    (problem,) = findings(out)[("shop", "p")]["problems"]
    assert (problem["mode"], problem["source"]) == ("container_credentials", "pod-identity")

    identities.write_text('{"identities": "not a list"}')
    code, out, err = audit("--watch-container-credentials-config", str(identities))
    assert (code, out) == (2, "")
    assert "identities must be a list" in err
    code, _, err = audit("--watch-container-credentials-config", str(tmp_path / "missing.json"))
    assert code == 2
    assert "cannot read --watch-container-credentials-config" in err


@pytest.mark.parametrize(
    ("path", "status", "message"),
    [
        pytest.param("/api/v1/namespaces", 403, "cannot list namespaces: HTTP 403", id="namespaces-forbidden"),
        pytest.param("/api/v1/serviceaccounts", 403, "cannot list serviceaccounts: HTTP 403", id="sa-forbidden"),
        pytest.param("/api/v1/pods", 500, "cannot list pods: HTTP 500", id="pods-error"),
        pytest.param(
            "/api/v1/namespaces/shop/pods/p0", 403, "cannot read pod shop/p0: HTTP 403", id="recheck-forbidden"
        ),
        pytest.param(
            "/api/v1/namespaces/shop/serviceaccounts/app",
            403,
            "cannot read serviceaccount shop/app: HTTP 403",
            id="recheck-sa-forbidden",
        ),
    ],
)
def test_a_refused_request_is_exit_2_in_one_line(
    serve: Callable[[FakeCluster], Audit], path: str, status: int, message: str
) -> None:
    code, out, err = serve(mixed_cluster(fail={path: status}))()
    assert (code, out) == (2, "")
    assert err.startswith(f"irsa-webhook audit: {message}")
    assert "is scripted to fail" in err  # the API server's own message is kept
    assert len(err.strip().splitlines()) == 1


def test_an_unreachable_api_server_is_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with FakeApiServer(FakeCluster()) as server:
        kubeconfig = server.kubeconfig(tmp_path)
    code = main(["audit", "--kubeconfig", str(kubeconfig)])  # the server is gone
    out, err = capsys.readouterr()
    assert (code, out) == (2, "")
    assert err.startswith("irsa-webhook audit: cannot read mutatingwebhookconfiguration irsa-webhook:")
    assert "Traceback" not in err
