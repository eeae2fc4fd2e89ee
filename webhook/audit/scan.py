"""The walk over a cluster: list what the audit needs, judge every pod, re-check and evict the findings.

1. The MutatingWebhookConfiguration (``--webhook-configuration``), whose selectors say which pods the
   webhook is called for, and every namespace's labels, which its namespaceSelector is evaluated
   against.
2. ServiceAccounts, reduced at once to their parsed identities (what the webhook's cache keeps).
3. Pods, page by page (``limit`` and ``continue``). Each page is judged and dropped before the next is
   asked for; only findings are kept, so memory is one page plus the findings whatever the size of
   the cluster. The phase and label filters are also sent as selectors, so that finished pods and
   opted-out ones are not even transferred; the client-side checks stay the authority.
4. Each finding is read again (a GET of the pod and of its ServiceAccount) and judged again, so that
   nothing is reported, or evicted, from a snapshot that has changed since: a ServiceAccount created or
   re-annotated during the walk, a pod replaced by another of the same name. What no longer has a
   problem is counted as resolved and dropped.
5. With ``--evict``: an Eviction (policy/v1, so PodDisruptionBudgets are honoured) for each finding
   whose replacement would help (:func:`~webhook.audit.findings.replacement_verdict`) and whose pod
   has a controller that recreates it, with the pod's UID as a precondition (a StatefulSet's new pod of the
   same name is never evicted in its place). A refused eviction is reported, never retried.

Nothing is written unless ``evict`` is set. The ConfigMap (``--watch-config-map``) is read once with
a GET, not watched.
"""

from __future__ import annotations

import dataclasses
import functools
import logging
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from kubernetes import client
from kubernetes.client.exceptions import ApiException
from urllib3.exceptions import HTTPError

from webhook.audit import DEFAULT_PAGE_SIZE
from webhook.audit.findings import (
    BLOCKED,
    CHANGED,
    DEFAULT_MAX_EVICTIONS,
    EVICTED,
    EVICTED_DRY_RUN,
    FAILED,
    GONE,
    LIMITED,
    NO_CONTROLLER,
    NOT_RECREATED,
    RECREATING_KINDS,
    Eviction,
    Finding,
    Scope,
    examine,
    skip_reason,
)
from webhook.audit.selection import DEFAULT_WEBHOOK_CONFIGURATION, Selection, SelectorError, selection
from webhook.core.records import Identity
from webhook.core.settings import Settings
from webhook.kube.paginate import REQUEST_TIMEOUT, Paginator, RequestError, describe, get
from webhook.sources import Source
from webhook.sources.chain import compose
from webhook.sources.configmap import CONFIG_MAP_NAME, ConfigMapSource
from webhook.sources.serviceaccounts import parse_object

log = logging.getLogger("irsa_webhook.audit")

# Finished pods are not audited; the API server leaves them out when told (only = and != exist).
PHASE_SELECTOR = "status.phase!=Succeeded,status.phase!=Failed"


Compose = Callable[[str, str, "Identity | None"], "Identity | None"]
"""The identity chain with this audit's optional sources bound (:func:`~webhook.sources.chain.compose`)."""


class AuditError(Exception):
    """The audit could not be completed; the message says what failed, in one line."""


@dataclass(frozen=True, slots=True)
class Plan:
    """What to audit, and how."""

    settings: Settings
    scope: Scope = field(default_factory=Scope)
    webhook_configuration: str = DEFAULT_WEBHOOK_CONFIGURATION  # its selectors say which pods are called
    namespaces: tuple[str, ...] = ()  # only these namespaces (empty: every namespace)
    page_size: int = DEFAULT_PAGE_SIZE
    config_map_namespace: str = ""  # --watch-config-map: read the ConfigMap from this namespace
    evict: bool = False
    dry_run: bool = False  # with evict: server-side dry-run evictions
    recreating_kinds: frozenset[str] = RECREATING_KINDS  # owners whose pods are evicted
    # Eviction requests one run may make: no single misconfiguration can drain a cluster in one run.
    max_evictions: int = DEFAULT_MAX_EVICTIONS


@dataclass(slots=True)
class Stats:
    listed: int = 0  # pods the API server returned
    audited: int = 0  # of those, pods judged (the rest: skipped, by reason)
    skipped: Counter[str] = field(default_factory=Counter)
    pages: int = 0  # pages of pods
    service_accounts: int = 0
    resolved: int = 0  # findings gone when read again (fixed, deleted, replaced, finished)
    restarts: int = 0  # listings started over after an expired continue token
    inconsistent: int = 0  # listings continued with the API server's inconsistent continue token


@dataclass(slots=True)
class Result:
    findings: list[Finding]
    stats: Stats
    plan: Plan

    def count(self, kind: str) -> int:
        """Pods with a problem of this kind (``MISSING`` or ``DRIFT``)."""
        return sum(1 for f in self.findings if any(p.kind == kind for p in f.problems))

    def evictions(self) -> Counter[str]:
        return Counter(f.eviction.result for f in self.findings if f.eviction is not None)

    @property
    def exit_code(self) -> int:
        """2 when an eviction failed, 1 when pods were found, 0 when none were."""
        if self.evictions()[FAILED]:
            return 2
        return 1 if self.findings else 0


class Auditor:
    """One audit of the cluster ``api_client`` reaches; :meth:`run` does it all."""

    def __init__(self, api_client: Any, plan: Plan, *, pod_identity: Source | None = None) -> None:
        self._api = client.CoreV1Api(api_client)
        self._admission = client.AdmissionregistrationV1Api(api_client)
        self.plan = plan
        self.stats = Stats()
        self._pod_identity = pod_identity
        self._lists = Paginator(plan.page_size)
        self._sent = 0  # Eviction requests made: at most plan.max_evictions

    # -- the walk ---------------------------------------------------------------------------------
    def run(self) -> Result:
        """List, judge, re-check and (with ``evict``) evict. AuditError when a step cannot be done."""
        try:
            return self._run()
        except RequestError as exc:
            raise AuditError(str(exc)) from None
        finally:
            self.stats.restarts = self._lists.restarts
            self.stats.inconsistent = self._lists.inconsistent

    def _run(self) -> Result:
        plan = self.plan
        scope = dataclasses.replace(plan.scope, selection=self._selection(), namespace_labels=self._namespace_labels())
        config_map = self._config_map() if plan.config_map_namespace else None
        accounts = {(identity.namespace, identity.name): identity for identity in self._service_accounts()}
        self.stats.service_accounts = len(accounts)
        chain = functools.partial(compose, pod_identity=self._pod_identity, config_map=config_map)

        def listed(namespace: str, name: str) -> Identity | None:
            return chain(namespace, name, accounts.get((namespace, name)))

        findings = self._pods(scope, listed)
        findings = self._recheck(findings, scope, chain)
        if plan.evict:
            findings = [dataclasses.replace(f, eviction=self._evict(f)) for f in findings]
        return Result(findings, self.stats, plan)

    def _selection(self) -> Selection:
        name = self.plan.webhook_configuration
        obj = get(
            f"mutatingwebhookconfiguration {name}",
            lambda **kw: self._admission.read_mutating_webhook_configuration(name, **kw),
        )
        if obj is None:
            # Without it the audit cannot know which pods the webhook is called for, and evicting a pod
            # it is not called for only brings the same pod back.
            raise AuditError(
                f"mutatingwebhookconfiguration {name} not found: --webhook-configuration must name the webhook's"
            )
        try:
            return selection(obj)
        except SelectorError as exc:
            raise AuditError(f"mutatingwebhookconfiguration {name}: {exc}") from None

    def _namespace_labels(self) -> dict[str, dict[str, Any]]:
        labels: dict[str, dict[str, Any]] = {}

        def page(items: list[Any]) -> None:
            for item in items:
                meta = item.get("metadata") if isinstance(item, dict) else None
                name = meta.get("name") if isinstance(meta, dict) else None
                if isinstance(name, str):
                    found = meta.get("labels") if isinstance(meta, dict) else None
                    labels[name] = found if isinstance(found, dict) else {}

        self._lists.list_all("namespaces", self._api.list_namespace, page, labels.clear)
        return labels

    def _targets(self, kind: str, every: Callable[..., Any], namespaced: Callable[..., Any]) -> list[tuple[str, Any]]:
        """(what, list call) for every namespace at once, or for each namespace of the plan."""
        if not self.plan.namespaces:
            return [(kind, every)]
        return [(f"{kind} in {ns}", functools.partial(namespaced, ns)) for ns in self.plan.namespaces]

    def _service_accounts(self) -> list[Identity]:
        identities: list[Identity] = []

        def page(items: list[Any]) -> None:
            for item in items:
                identity = parse_object(item, self.plan.settings, "list")  # None: logged and skipped
                if identity is not None:
                    identities.append(identity)

        api = self._api
        targets = self._targets(
            "serviceaccounts", api.list_service_account_for_all_namespaces, api.list_namespaced_service_account
        )
        for what, call in targets:

            def restart(done: int = len(identities)) -> None:
                del identities[done:]

            self._lists.list_all(what, call, page, restart)
        return identities

    def _pods(self, scope: Scope, lookup: Callable[[str, str], Identity | None]) -> list[Finding]:
        findings: list[Finding] = []
        stats = self.stats
        settings = self.plan.settings

        def page(items: list[Any]) -> None:
            stats.pages += 1
            for pod in items:
                stats.listed += 1
                reason = skip_reason(pod, scope)
                if reason is not None:
                    stats.skipped[reason] += 1
                    continue
                stats.audited += 1
                finding = examine(pod, lookup, settings, scope.calls(pod, pod["metadata"]["namespace"]))
                if finding is not None:
                    findings.append(finding)

        selectors = {"field_selector": PHASE_SELECTOR}
        for what, call in self._targets("pods", self._api.list_pod_for_all_namespaces, self._api.list_namespaced_pod):
            # A listing that starts over judges its pods again: forget what its first try found and counted.
            kept = (len(findings), stats.listed, stats.audited, stats.pages, Counter(stats.skipped))

            def restart(kept: tuple[int, int, int, int, Counter[str]] = kept) -> None:
                del findings[kept[0] :]
                stats.listed, stats.audited, stats.pages = kept[1:4]
                stats.skipped = Counter(kept[4])

            self._lists.list_all(what, call, page, restart, **selectors)
        return findings

    def _recheck(self, findings: list[Finding], scope: Scope, chain: Compose) -> list[Finding]:
        """Each finding judged again on the pod and ServiceAccount as they are now (see the module doc)."""
        accounts: dict[tuple[str, str], Identity | None] = {}

        def current(namespace: str, name: str) -> Identity | None:
            key = (namespace, name)
            if key not in accounts:
                accounts[key] = self._read_service_account(namespace, name)
            return chain(namespace, name, accounts[key])

        kept = []
        for finding in findings:
            pod = self._read_pod(finding.namespace, finding.pod)
            fresh = None
            if pod is not None and _uid(pod) == finding.uid and skip_reason(pod, scope) is None:
                fresh = examine(pod, current, self.plan.settings, scope.calls(pod, finding.namespace))
            if fresh is None:
                self.stats.resolved += 1
                continue
            kept.append(fresh)
        return kept

    # -- one request each -------------------------------------------------------------------------
    def _read_pod(self, namespace: str, name: str) -> dict[str, Any] | None:
        return get(f"pod {namespace}/{name}", lambda **kw: self._api.read_namespaced_pod(name, namespace, **kw))

    def _read_service_account(self, namespace: str, name: str) -> Identity | None:
        obj = get(
            f"serviceaccount {namespace}/{name}",
            lambda **kw: self._api.read_namespaced_service_account(name, namespace, **kw),
        )
        return None if obj is None else parse_object(obj, self.plan.settings, "live")

    def _config_map(self) -> ConfigMapSource:
        namespace = self.plan.config_map_namespace
        obj = get(
            f"configmap {namespace}/{CONFIG_MAP_NAME}",
            lambda **kw: self._api.read_namespaced_config_map(CONFIG_MAP_NAME, namespace, **kw),
        )
        if obj is None:
            # The webhook serves no ConfigMap roles then, but for the audit every mapped pod would look
            # like drift and be evicted: a wrong --namespace must stop it, as an unreadable Pod Identity
            # file does.
            raise AuditError(
                f"configmap {namespace}/{CONFIG_MAP_NAME} not found: --watch-config-map reads it from "
                "--namespace, which must be the webhook's"
            )
        source = ConfigMapSource(self.plan.settings)
        source.replace(obj)
        return source

    def _evict(self, finding: Finding) -> Eviction:  # noqa: PLR0911 - one return per outcome
        if finding.verdict is not None:
            return finding.verdict
        if finding.owner is None:
            return Eviction(NO_CONTROLLER, "a bare pod: nothing would recreate it")
        if finding.owner.kind not in self.plan.recreating_kinds:
            kind = finding.owner.kind
            return Eviction(
                NOT_RECREATED, f"a {kind} does not recreate an evicted pod (--evict-owner-kind {kind} if yours does)"
            )
        if self._sent >= self.plan.max_evictions:
            return Eviction(LIMITED, f"--max-evictions {self.plan.max_evictions} reached in this run")
        self._sent += 1
        body = client.V1Eviction(
            api_version="policy/v1",
            kind="Eviction",
            metadata=client.V1ObjectMeta(name=finding.pod, namespace=finding.namespace),
            delete_options=client.V1DeleteOptions(preconditions=client.V1Preconditions(uid=finding.uid)),
        )
        try:
            raw: Any = self._api.create_namespaced_pod_eviction(  # _preload_content=False: the raw response
                finding.pod,
                finding.namespace,
                body,
                dry_run="All" if self.plan.dry_run else None,
                _preload_content=False,
                _request_timeout=REQUEST_TIMEOUT,
            )
            raw.release_conn()
        except ApiException as exc:
            result = {429: BLOCKED, 404: GONE, 409: CHANGED}.get(exc.status or 0, FAILED)
            return Eviction(result, describe(exc))
        except (HTTPError, OSError) as exc:
            return Eviction(FAILED, describe(exc))
        return Eviction(EVICTED_DRY_RUN if self.plan.dry_run else EVICTED)


def _uid(pod: dict[str, Any]) -> str:
    meta = pod.get("metadata")
    uid = meta.get("uid") if isinstance(meta, dict) else None
    return uid if isinstance(uid, str) else ""
