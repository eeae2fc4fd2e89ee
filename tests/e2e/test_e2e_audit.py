"""`irsa-webhook audit` against a real kube-apiserver, run as the real command (`python -m webhook audit`).

- Pods created before the webhook configuration covered their namespace are stored without
  credentials: the audit finds them; a pod the real webhook mutated whose ServiceAccount's role-arn
  changed since, or whose ServiceAccount was deleted, is reported as role drift; finished pods are
  not even listed (the field selector reaches the API server), opted-out ones are left out by the
  configuration's own object selector, read from the cluster.
- `--evict --dry-run` writes nothing; `--evict` sends Evictions: the controller-owned pods are
  deleted (no controller-manager here, so nothing recreates them: the deletion is the proof), a
  bare pod is left alone, a pod whose ServiceAccount is gone is not evicted (its replacement would
  be refused), and a pod a PodDisruptionBudget protects is refused (429) and reported.
  (test_e2e_audit_loops.py runs the audit twice with a stand-in controller in between.)
- The audit component's RBAC is enough, and no more than that: a token of a ServiceAccount bound
  to its ClusterRole and Role audits cluster-wide (the ConfigMap mode included), is refused
  evictions (exit 2) until the audit-evict component's ClusterRole is bound too.
- The components, as rendered on the default overlay, pass a strict server-side dry run, the
  CronJob's pod template without a "restricted" Pod Security warning.
"""

from __future__ import annotations

import json
import secrets
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import yaml

from tests.deploy.render import documents, render_all_components
from tests.support import kuberest as k
from tests.support.audits import findings_of, run_audit
from tests.support.controlplane import ControlPlane
from tests.support.paths import MANIFESTS
from tests.support.waits import wait_for

from .shared import NamespaceFactory, SharedWebhook

pytestmark = pytest.mark.e2e

ROLE = "arn:aws:iam::123456789012:role/e2e-audit"
ROLE_NEW = "arn:aws:iam::123456789012:role/e2e-audit-v2"
ROLE_CM = "arn:aws:iam::123456789012:role/e2e-audit-configmap"
COMPONENTS = MANIFESTS / "components"
# RBAC changes reach the authorizer through a watch: allowed within a second or so.
RBAC_TIMEOUT = 20.0


def replica_set(kube: k.KubeRest, namespace: str, name: str) -> str:
    """A ReplicaSet (nothing reconciles it here) to own pods; its uid."""
    labels = {"app": name}
    body = {
        "apiVersion": "apps/v1",
        "kind": "ReplicaSet",
        "metadata": {"name": name},
        "spec": {
            "replicas": 1,
            "selector": {"matchLabels": labels},
            "template": {"metadata": {"labels": labels}, "spec": {"containers": [k.container("app")]}},
        },
    }
    created = kube.create(f"/apis/apps/v1/namespaces/{namespace}/replicasets", body)
    return str(created["metadata"]["uid"])


def owned(manifest: k.JSON, owner: str, owner_uid: str) -> k.JSON:
    manifest["metadata"]["ownerReferences"] = [
        {"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": owner, "uid": owner_uid, "controller": True}
    ]
    return manifest


def set_phase(kube: k.KubeRest, namespace: str, name: str, phase: str) -> None:
    kube.merge_patch(f"/api/v1/namespaces/{namespace}/pods/{name}/status", {"status": {"phase": phase}})


def is_gone(kube: k.KubeRest, namespace: str, name: str) -> bool:
    try:
        stored = kube.get_pod(namespace, name)
    except k.KubeApiError as exc:
        if exc.status == 404:
            return True
        raise
    return "deletionTimestamp" in stored["metadata"]


def test_pods_without_credentials_and_with_changed_roles_are_found_and_owned_ones_evicted(
    control_plane: ControlPlane, kube: k.KubeRest, make_namespace: NamespaceFactory, irsa_webhook: SharedWebhook
) -> None:
    # No webhook configuration selects this namespace yet: its pods are stored as they are sent.
    down = make_namespace(labels={}, prefix="audit-down")
    kube.create_service_account(down, "app", {k.ROLE_ANNOTATION: ROLE})
    kube.create_service_account(down, "plain")
    web = replica_set(kube, down, "web")
    kube.create_pod(down, owned(k.pod("web-1", "app"), "web", web))
    kube.create_pod(down, k.pod("bare", "app"))
    kube.create_pod(down, owned(k.pod("plain", "plain"), "web", web))  # no role: nothing lacking
    kube.create_pod(down, owned(k.pod("opted-out", "app", labels={k.SKIP_POD_LABEL: "false"}), "web", web))
    kube.create_pod(down, owned(k.pod("done", "app"), "web", web))
    set_phase(kube, down, "done", "Succeeded")
    # Running and protected by a budget the (absent) disruption controller never processed: its
    # eviction is refused with 429, as a budget allowing no disruption refuses it.
    kube.create_pod(down, owned(k.pod("guarded", "app", labels={"app": "guarded"}), "web", web))
    set_phase(kube, down, "guarded", "Running")
    kube.create(
        f"/apis/policy/v1/namespaces/{down}/poddisruptionbudgets",
        {
            "apiVersion": "policy/v1",
            "kind": "PodDisruptionBudget",
            "metadata": {"name": "guarded"},
            "spec": {"minAvailable": 1, "selector": {"matchLabels": {"app": "guarded"}}},
        },
    )

    # Now the shared webhook is called for it: its pods are the webhook's, stored without credentials.
    kube.merge_patch(f"/api/v1/namespaces/{down}", {"metadata": {"labels": dict(irsa_webhook.labels)}})

    # The shared webhook mutates this namespace's pods; then the roles change under them.
    served = make_namespace(prefix="audit-served")
    for account in ("app", "steady", "doomed"):
        kube.create_service_account(served, account, {k.ROLE_ANNOTATION: ROLE})
    api = replica_set(kube, served, "api")
    for name, account in (("drifted", "app"), ("steady", "steady"), ("orphaned", "doomed")):
        kube.create_pod(served, owned(k.pod(name, account), "api", api))
        assert k.env_of(kube.get_pod(served, name)["spec"]["containers"][0])["AWS_ROLE_ARN"] == ROLE
    kube.merge_patch(
        f"/api/v1/namespaces/{served}/serviceaccounts/app", {"metadata": {"annotations": {k.ROLE_ANNOTATION: ROLE_NEW}}}
    )
    kube.delete(f"/api/v1/namespaces/{served}/serviceaccounts/doomed")

    scope = ("--webhook-configuration", irsa_webhook.config_name, "--pods-namespace", down, "--pods-namespace", served)
    result = run_audit(control_plane.kubeconfig, *scope, "-o", "json")
    assert result.returncode == 1, result.stderr
    found = findings_of(result)
    assert set(found) == {(down, "web-1"), (down, "bare"), (down, "guarded"), (served, "drifted"), (served, "orphaned")}
    assert found[(down, "web-1")]["owner"] == {"kind": "ReplicaSet", "name": "web"}
    assert found[(down, "bare")]["owner"] is None
    assert found[(down, "web-1")]["problems"] == [
        {
            "type": "missing-credentials",
            "mode": "sts_web_identity",
            "source": "serviceaccount",
            "roleArn": ROLE,
            "tokenVolume": k.TOKEN_VOLUME,
            "containers": ["app"],
            "variables": ["AWS_ROLE_ARN", "AWS_WEB_IDENTITY_TOKEN_FILE"],
        }
    ]
    assert found[(served, "drifted")]["problems"] == [
        {
            "type": "role-drift",
            "reason": "changed",
            "marked": True,
            "currentRoleArn": ROLE_NEW,
            "containers": [{"name": "app", "roleArn": ROLE}],
        }
    ]
    assert found[(served, "orphaned")]["problems"][0]["reason"] == "serviceaccount-not-found"
    summary = json.loads(result.stdout)["summary"]
    # The finished pod was left out by the API server (field selector), the opted-out one by the
    # configuration's object selector.
    assert (summary["listed"], summary["audited"], summary["findings"]) == (8, 7, 5)
    assert summary["skipped"] == {"not-called": 1}
    assert all(f["eviction"] is None for f in found.values())

    # A dry run: every eviction is checked by the API server, nothing is deleted.
    result = run_audit(control_plane.kubeconfig, *scope, "--evict", "--dry-run")
    assert result.returncode == 1, result.stderr
    header, *rows = result.stdout.splitlines()
    assert header.split() == ["NAMESPACE", "POD", "SERVICEACCOUNT", "PROBLEM", "DETAIL", "OWNER/ACTION"]
    by_pod = {row.split()[1]: row for row in rows}
    assert by_pod["web-1"].endswith("ReplicaSet/web: would be evicted (dry run)")
    assert by_pod["bare"].endswith("<none>: not evicted: no controller")
    assert "not evicted: disruption budget" in by_pod["guarded"]
    assert "missing-credentials" in by_pod["web-1"]
    assert f"app: {ROLE} -> {ROLE_NEW}" in by_pod["drifted"]
    for namespace, name in found:
        assert not is_gone(kube, namespace, name)

    result = run_audit(control_plane.kubeconfig, *scope, "--evict", "-o", "json")
    assert result.returncode == 1, result.stderr
    evictions = {key: f["eviction"]["result"] for key, f in findings_of(result).items()}
    assert evictions == {
        (down, "web-1"): "evicted",
        (served, "drifted"): "evicted",
        (served, "orphaned"): "serviceaccount-not-found",
        (down, "bare"): "no-controller",
        (down, "guarded"): "disruption-budget",
    }
    for namespace, name in [(down, "web-1"), (served, "drifted")]:
        assert is_gone(kube, namespace, name), f"{namespace}/{name} was not deleted by its eviction"
    assert not is_gone(kube, served, "orphaned")
    for name in ("bare", "guarded", "plain"):
        assert not is_gone(kube, down, name)
    assert not k.is_injected(kube.get_pod(down, "bare"))  # read, never written
    assert not is_gone(kube, served, "steady")


def rbac_object(path: Path, suffix: str, namespace: str) -> k.JSON:
    """A component's RBAC object as shipped, renamed for this test, its subjects in ``namespace``."""
    obj: k.JSON = yaml.safe_load(path.read_text())
    obj["metadata"]["name"] += suffix
    for rule in obj.get("rules", []):
        if "resourceNames" in rule and rule["resources"] == ["mutatingwebhookconfigurations"]:
            rule["resourceNames"] = [f"{name}{suffix}" for name in rule["resourceNames"]]
    if "namespace" in obj["metadata"]:
        obj["metadata"]["namespace"] = namespace
    if "roleRef" in obj:
        obj["roleRef"]["name"] += suffix
    for subject in obj.get("subjects", []):
        subject["name"] = "auditor"
        subject["namespace"] = namespace
    return obj


@pytest.fixture
def cluster_rbac(kube: k.KubeRest) -> Iterator[Callable[[k.JSON], None]]:
    """``create(obj)``: a ClusterRole or ClusterRoleBinding, deleted after the test."""
    created: list[str] = []

    def create(obj: k.JSON) -> None:
        plural = {"ClusterRole": "clusterroles", "ClusterRoleBinding": "clusterrolebindings"}[obj["kind"]]
        path = f"/apis/rbac.authorization.k8s.io/v1/{plural}"
        kube.create(path, obj)
        created.append(f"{path}/{obj['metadata']['name']}")

    yield create
    for path in reversed(created):
        kube.delete(path)


def test_the_components_rbac_is_enough_and_evicts_only_when_granted(
    control_plane: ControlPlane,
    kube: k.KubeRest,
    make_namespace: NamespaceFactory,
    cluster_rbac: Callable[[k.JSON], None],
    tmp_path: Path,
) -> None:
    hook = make_namespace(labels={}, prefix="audit-hook")  # stands for the webhook's namespace
    apps = make_namespace(labels={}, prefix="audit-apps")
    kube.merge_patch(f"/api/v1/namespaces/{apps}", {"metadata": {"labels": {"app-ns": apps}}})
    kube.create_service_account(apps, "app", {k.ROLE_ANNOTATION: ROLE})
    kube.create_service_account(apps, "mapped")  # its role comes from the ConfigMap
    owner = replica_set(kube, apps, "rs")
    kube.create_pod(apps, owned(k.pod("unmutated", "app"), "rs", owner))
    kube.create_pod(apps, owned(k.pod("mapped", "mapped"), "rs", owner))
    kube.create(
        f"/api/v1/namespaces/{hook}/configmaps",
        {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {"name": "pod-identity-webhook"},
            "data": {"config": json.dumps({f"{apps}/mapped": {"RoleARN": ROLE_CM}})},
        },
    )
    kube.create_service_account(hook, "auditor")
    token = kube.create(
        f"/api/v1/namespaces/{hook}/serviceaccounts/auditor/token",
        {"apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest", "spec": {"expirationSeconds": 3600}},
    )["status"]["token"]
    kubeconfig = tmp_path / "auditor.kubeconfig"
    kubeconfig.write_text(
        yaml.safe_dump(
            {
                "apiVersion": "v1",
                "kind": "Config",
                "clusters": [
                    {
                        "name": "e2e",
                        "cluster": {
                            "server": control_plane.server,
                            "certificate-authority": str(control_plane.ca_file),
                        },
                    }
                ],
                "users": [{"name": "auditor", "user": {"token": token}}],
                "contexts": [{"name": "e2e", "context": {"cluster": "e2e", "user": "auditor"}}],
                "current-context": "e2e",
            }
        )
    )
    suffix = f"-{secrets.token_hex(3)}"
    # The webhook's configuration as the component's ClusterRole names it (renamed for this test): it
    # is called for the apps namespace, whose pods were stored before it existed.
    configuration = k.webhook_configuration(
        f"irsa-webhook{suffix}", "https://127.0.0.1:1/mutate", b"unused", "Ignore", {"matchLabels": {"app-ns": apps}}
    )
    kube.apply_webhook_configuration(configuration)
    sources = ("--namespace", hook, "--watch-config-map", "--webhook-configuration", f"irsa-webhook{suffix}")

    # Nothing granted yet: forbidden is an error, said in one line.
    refused = run_audit(kubeconfig, *sources)
    assert refused.returncode == 2
    assert f"cannot read mutatingwebhookconfiguration irsa-webhook{suffix}: HTTP 403" in refused.stderr
    assert refused.stdout == ""

    audit = COMPONENTS / "audit"
    cluster_rbac(rbac_object(audit / "cluster_role.yaml", suffix, hook))
    cluster_rbac(rbac_object(audit / "cluster_role_binding.yaml", suffix, hook))
    kube.create(
        f"/apis/rbac.authorization.k8s.io/v1/namespaces/{hook}/roles", rbac_object(audit / "role.yaml", suffix, hook)
    )
    kube.create(
        f"/apis/rbac.authorization.k8s.io/v1/namespaces/{hook}/rolebindings",
        rbac_object(audit / "role_binding.yaml", suffix, hook),
    )

    # Cluster-wide, as the CronJob runs: every list, the ConfigMap and the re-reads are allowed.
    def audited(*args: str) -> subprocess.CompletedProcess[str] | None:
        """The audit's run if it found something (exit 1), else None: not yet allowed."""
        result = run_audit(kubeconfig, *args)
        return result if result.returncode == 1 else None

    result = wait_for(
        lambda: audited(*sources, "-o", "json"),
        timeout=RBAC_TIMEOUT,
        what="the audit ClusterRole and Role to apply",
    )
    found = findings_of(result)
    assert found[(apps, "unmutated")]["problems"][0]["source"] == "serviceaccount"
    mapped = found[(apps, "mapped")]["problems"][0]
    assert (mapped["source"], mapped["roleArn"]) == ("configmap", ROLE_CM)
    assert all(namespace == apps for namespace, _ in found)  # only where the configuration calls the webhook

    # --evict without the audit-evict component's ClusterRole: refused, exit 2, nothing deleted.
    scoped = (*sources, "--pods-namespace", apps, "-o", "json")
    result = run_audit(kubeconfig, *scoped, "--evict")
    assert result.returncode == 2, result.stderr
    for finding in findings_of(result).values():
        assert finding["eviction"]["result"] == "failed"
        assert "HTTP 403" in finding["eviction"]["message"]
    assert not is_gone(kube, apps, "unmutated")

    evict = COMPONENTS / "audit-evict"
    cluster_rbac(rbac_object(evict / "cluster_role.yaml", suffix, hook))
    cluster_rbac(rbac_object(evict / "cluster_role_binding.yaml", suffix, hook))
    result = wait_for(
        lambda: audited(*scoped, "--evict"),
        timeout=RBAC_TIMEOUT,
        what="the audit-evict ClusterRole to apply",
    )
    assert {key: f["eviction"]["result"] for key, f in findings_of(result).items()} == {
        (apps, "unmutated"): "evicted",
        (apps, "mapped"): "evicted",
    }
    assert is_gone(kube, apps, "unmutated")
    assert is_gone(kube, apps, "mapped")
    kube.delete_webhook_configuration(configuration["metadata"]["name"])


def test_an_unreachable_api_server_is_an_error_not_a_traceback(control_plane: ControlPlane) -> None:
    result = run_audit(control_plane.kubeconfig, "--kube-api", "https://127.0.0.1:1")
    assert result.returncode == 2
    assert result.stdout == ""
    assert result.stderr.startswith("irsa-webhook audit: cannot read mutatingwebhookconfiguration irsa-webhook:")
    assert len(result.stderr.strip().splitlines()) == 1


def test_the_components_pass_a_server_side_dry_run(control_plane: ControlPlane, tmp_path: Path) -> None:
    rendered = render_all_components(tmp_path, control_plane.assets / "kubectl")["default+audit-evict"]
    objs = documents(rendered)
    # The webhook's namespace as the overlay makes it ("restricted" enforced and warned), so that the
    # namespaced objects can be dry-run there; the other e2e modules apply the same (idempotent).
    (namespace,) = [o for o in objs if o["kind"] == "Namespace"]
    control_plane.kubectl("apply", "-f", "-", input=yaml.safe_dump(namespace))
    audit_objects = [o for o in objs if "audit" in o["metadata"]["name"]]
    assert {o["kind"] for o in audit_objects} == {
        "ServiceAccount",
        "ClusterRole",
        "ClusterRoleBinding",
        "Role",
        "RoleBinding",
        "CronJob",
    }
    output = control_plane.dry_run_apply(audit_objects)  # a Pod Security "warn" violation would fail it
    assert output.count("(server dry run)") == len(audit_objects)
