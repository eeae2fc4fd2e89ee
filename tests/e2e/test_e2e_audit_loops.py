"""`irsa-webhook audit --evict` never evicts in a loop: run twice against a real kube-apiserver, with a
stand-in controller recreating each evicted pod from its ReplicaSet's template through the real
webhook in between, the second run evicts nothing.

One webhook of this test's own, with the flags that used to make the audit disagree with it
(``--compose-role-arn --aws-account-id``, ``--strict``), registered with a configuration whose
selectors the audit has to read from the cluster: an opt-in namespace label, a namespace left out by
name (as the fail-closed component leaves out kube-system) and an object selector (as the chart's
``mutatingWebhook.objectSelector``). The audit is given exactly the webhook's arguments.

Every case of the audit hardening is here: pods the webhook is never called for (object selector,
unlabelled namespace, namespace excluded by name), a role name composed into an ARN, a container that
sets its own role, a ServiceAccount that is gone, a replacement ``--strict`` would deny, a Job's pod,
and a missing ConfigMap; plus the two that must be evicted once (a pod admitted while the webhook was
not registered, a pod whose ServiceAccount's role changed).
"""

from __future__ import annotations

import json
import secrets
from typing import Any

import pytest

from tests.support import kuberest as k
from tests.support.audits import findings_of, run_audit
from tests.support.certs import Certs
from tests.support.controlplane import ControlPlane
from tests.support.waits import wait_for

from .shared import NamespaceFactory

pytestmark = pytest.mark.e2e

ACCOUNT = "123456789012"
OTHER_ROLE = "arn:aws:iam::444455556666:role/cross-account"
OPT_IN = {"irsa-e2e.test/opt-in": "on"}
SELECTED = {"irsa-e2e.test/irsa": "on"}
# The flags that once made the audit and the webhook disagree; the audit gets the same list.
WEBHOOK_ARGS = ("--compose-role-arn", "--aws-account-id", ACCOUNT, "--strict")


def composed(name: str) -> str:
    return f"arn:aws:iam::{ACCOUNT}:role/{name}"


class Controller:
    """The stand-in controller: ReplicaSets (and a Job) whose pods it creates from their templates."""

    def __init__(self, kube: k.KubeRest) -> None:
        self.kube = kube
        self.templates: dict[tuple[str, str], tuple[k.JSON, k.JSON]] = {}  # pod -> (template, ownerReference)

    def run(self, namespace: str, name: str, pod: k.JSON, kind: str = "ReplicaSet") -> None:
        """An owner of ``kind`` whose template is ``pod``, and its first pod, named ``name``."""
        labels = {"app": name, **pod["metadata"].get("labels", {})}
        template = {"metadata": {"labels": labels}, "spec": pod["spec"]}
        if kind == "ReplicaSet":
            body = {
                "apiVersion": "apps/v1",
                "kind": "ReplicaSet",
                "metadata": {"name": name},
                "spec": {"replicas": 1, "selector": {"matchLabels": {"app": name}}, "template": template},
            }
            owner = self.kube.create(f"/apis/apps/v1/namespaces/{namespace}/replicasets", body)
            api_version = "apps/v1"
        else:
            job_template = {**template, "spec": {**template["spec"], "restartPolicy": "Never"}}
            job_spec = {"backoffLimit": 0, "manualSelector": True, "selector": {"matchLabels": {"app": name}}}
            body = {
                "apiVersion": "batch/v1",
                "kind": "Job",
                "metadata": {"name": name},
                "spec": {**job_spec, "template": job_template},
            }
            owner = self.kube.create(f"/apis/batch/v1/namespaces/{namespace}/jobs", body)
            api_version, template = "batch/v1", job_template
        reference = {
            "apiVersion": api_version,
            "kind": kind,
            "name": name,
            "uid": owner["metadata"]["uid"],
            "controller": True,
        }
        self.templates[(namespace, name)] = (template, reference)
        self.create(namespace, name, name)

    def create(self, namespace: str, owner: str, name: str) -> k.JSON:
        template, reference = self.templates[(namespace, owner)]
        manifest = {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {**template["metadata"], "name": name, "ownerReferences": [reference]},
            "spec": template["spec"],
        }
        return self.kube.create_pod(namespace, manifest)

    def _gone(self, namespace: str, name: str) -> bool:
        try:
            return "deletionTimestamp" in self.kube.get_pod(namespace, name)["metadata"]
        except k.KubeApiError as exc:
            if exc.status == 404:
                return True
            raise

    def recreate(self, namespace: str, name: str) -> str:
        """After an eviction: a new pod from the owner's template, through the webhook, as a ReplicaSet does."""
        wait_for(lambda: self._gone(namespace, name), timeout=10, what=f"{namespace}/{name} to be deleted")
        replacement = f"{name}-2"
        self.create(namespace, name, replacement)
        return replacement


def register(kube: k.KubeRest, name: str, url: str, ca_pem: bytes, fenced: str, probe_ns: str) -> None:
    """The configuration, and a wait until kube-apiserver calls it (a labelled dry-run pod comes back
    injected)."""
    namespace_selector = {
        "matchLabels": dict(OPT_IN),
        "matchExpressions": [{"key": "kubernetes.io/metadata.name", "operator": "NotIn", "values": [fenced]}],
    }
    config = k.webhook_configuration(name, url, ca_pem, "Fail", namespace_selector, {"matchLabels": dict(SELECTED)})
    kube.apply_webhook_configuration(config)
    probe = k.pod("probe", "probe", labels=SELECTED)
    wait_for(
        lambda: k.is_injected(kube.create_pod(probe_ns, probe, dry_run=True)),
        timeout=30,
        what=f"kube-apiserver to call webhook configuration {name}",
    )


def test_a_second_audit_evicts_nothing(
    control_plane: ControlPlane,
    kube: k.KubeRest,
    make_namespace: NamespaceFactory,
    start_webhook: Any,
    webhook_certs: Certs,
) -> None:
    apps = make_namespace(labels=OPT_IN, prefix="loops-apps")
    fenced = make_namespace(labels=OPT_IN, prefix="loops-fenced")  # opted in, but excluded by name
    outside = make_namespace(labels={}, prefix="loops-outside")  # never opted in
    kube.create_service_account(apps, "probe", {k.ROLE_ANNOTATION: "probe"})
    for namespace in (apps, fenced, outside):
        kube.create_service_account(namespace, "app", {k.ROLE_ANNOTATION: "app-role"})  # composed into an ARN
    kube.create_service_account(apps, "moving", {k.ROLE_ANNOTATION: "role-a"})
    kube.create_service_account(apps, "doomed", {k.ROLE_ANNOTATION: "doomed-role"})
    kube.create_service_account(apps, "bad", {k.ROLE_ANNOTATION: "arn:aws:iam::1234:role/short-account"})
    controller = Controller(kube)

    # Before the webhook is registered: stored as sent, without credentials.
    controller.run(apps, "lacking", k.pod("lacking", "app", labels=SELECTED))  # evicted once
    controller.run(apps, "unselected", k.pod("unselected", "app"))  # the object selector: not called
    controller.run(fenced, "fenced", k.pod("fenced", "app", labels=SELECTED))  # namespace excluded by name
    controller.run(outside, "outside", k.pod("outside", "app", labels=SELECTED))  # namespace not opted in
    controller.run(apps, "strict", k.pod("strict", "bad", labels=SELECTED))  # --strict denies its replacement
    controller.run(apps, "job", k.pod("job", "app", labels=SELECTED), kind="Job")  # a Job does not recreate it

    webhook = start_webhook(*WEBHOOK_ARGS)
    config = f"loops-{secrets.token_hex(3)}"
    register(kube, config, webhook.mutate_url, webhook_certs.ca_pem, fenced, apps)
    try:
        # Through the webhook: mutated and marked.
        controller.run(apps, "composed", k.pod("composed", "app", labels=SELECTED))
        own = k.container("app", {"AWS_ROLE_ARN": OTHER_ROLE, "AWS_WEB_IDENTITY_TOKEN_FILE": k.DEFAULT_TOKEN_FILE})
        controller.run(apps, "own-role", k.pod("own-role", "app", containers=[own], labels=SELECTED))
        controller.run(apps, "drifted", k.pod("drifted", "moving", labels=SELECTED))
        controller.run(apps, "orphan", k.pod("orphan", "doomed", labels=SELECTED))
        stored = kube.get_pod(apps, "composed")
        assert k.env_of(stored["spec"]["containers"][0])["AWS_ROLE_ARN"] == composed("app-role")
        own_stored = kube.get_pod(apps, "own-role")
        assert k.env_of(own_stored["spec"]["containers"][0])["AWS_ROLE_ARN"] == OTHER_ROLE
        assert k.token_mount(own_stored["spec"]["containers"][0]) is not None  # the webhook mounted the token
        kube.merge_patch(
            f"/api/v1/namespaces/{apps}/serviceaccounts/moving",
            {"metadata": {"annotations": {k.ROLE_ANNOTATION: "role-b"}}},
        )
        kube.delete(f"/api/v1/namespaces/{apps}/serviceaccounts/doomed")

        scope = ("--pods-namespace", apps, "--pods-namespace", fenced, "--pods-namespace", outside)
        audit = (*WEBHOOK_ARGS, "--webhook-configuration", config, *scope, "--evict", "-o", "json")

        # A missing ConfigMap stops the audit before any eviction.
        missing = run_audit(control_plane.kubeconfig, *audit, "--watch-config-map", "--namespace", outside)
        assert missing.returncode == 2
        assert "configmap" in missing.stderr
        assert kube.exists(f"/api/v1/namespaces/{apps}/pods/lacking")

        first = run_audit(control_plane.kubeconfig, *audit)
        assert first.returncode == 1, first.stderr
        results = {key: f["eviction"]["result"] for key, f in findings_of(first).items()}
        assert results == {
            (apps, "lacking"): "evicted",
            (apps, "drifted"): "evicted",
            (apps, "orphan"): "serviceaccount-not-found",
            (apps, "strict"): "replacement-denied",
            (apps, "job"): "owner-does-not-recreate",
        }
        summary = json.loads(first.stdout)["summary"]
        assert summary["skipped"] == {"not-called": 3}  # unselected, fenced, outside

        for name in ("lacking", "drifted"):
            replacement = controller.recreate(apps, name)
            env = k.env_of(kube.get_pod(apps, replacement)["spec"]["containers"][0])
            want = composed("app-role") if name == "lacking" else composed("role-b")
            assert env["AWS_ROLE_ARN"] == want

        second = run_audit(control_plane.kubeconfig, *audit)
        evicted = {key for key, f in findings_of(second).items() if f["eviction"]["result"] == "evicted"}
        assert evicted == set(), second.stdout
        assert set(findings_of(second)) == {(apps, "orphan"), (apps, "strict"), (apps, "job")}
    finally:
        kube.delete_webhook_configuration(config)
