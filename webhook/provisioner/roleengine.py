"""The engine for workload roles (IRSARole, ClusterIRSARole): observe, plan, apply, observe again, judge.

The issuer's engine (:mod:`webhook.provisioner.engine`) with two differences:

* a role depends on its issuer: the facts it needs (Ready, the provider to trust) come from an
  ``IssuerLookup`` (the controller's cache of IRSAIssuer objects, or the issuers handled earlier in
  the same ``provision`` run), and the role waits, with a condition that says so, until they are there;
* it writes to two places: IAM (the role and its policies) and the cluster (the ServiceAccount
  annotation, created ServiceAccounts); both are observed before planning and again after writing.

Guardrails are checked before anything is read from AWS: a violating tenant object costs no AWS call.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from webhook.aws.errors import AwsError
from webhook.aws.session import AwsClients
from webhook.core.arn import oidc_provider_arn, role_arn
from webhook.oidc.errors import InputError
from webhook.oidc.issuer import host_path
from webhook.provisioner import model
from webhook.provisioner.model import JSON, Outcome
from webhook.provisioner.roleexecute import execute_role
from webhook.provisioner.rolemodel import Guardrails, IssuerFacts, ObservedRoleState, RolePlan, RoleSpec
from webhook.provisioner.roleobserve import (
    issuer_facts_from_status,
    observe_role,
    observe_service_accounts,
    provider_exists,
)
from webhook.provisioner.roleplanner import plan_role, plan_role_deletion
from webhook.provisioner.rolespec import check_guardrails, read_role
from webhook.provisioner.rolestatus import invalid_role_status, role_status
from webhook.provisioner.status import events_for

log = logging.getLogger("irsa_webhook.provisioner")

IssuerLookup = Callable[[str], JSON | None]
"""The IRSAIssuer object of a name (with its status), None when there is none."""


@dataclass(frozen=True)
class RoleResult:
    name: str
    spec: RoleSpec | None
    plan: RolePlan | model.Plan | None
    outcome: Outcome


@dataclass
class RoleEngine:
    cluster_name: str
    aws: AwsClients
    kube: Any  # kubernetes ApiClient: ServiceAccounts are read and written through it
    issuers: IssuerLookup
    annotation_key: str = "eks.amazonaws.com/role-arn"
    guardrails: Guardrails = field(default_factory=Guardrails)
    now: Callable[[], datetime] = field(default=lambda: datetime.now(UTC))

    def reconcile(self, obj: JSON) -> Outcome:
        return self.run(obj, apply=True).outcome

    def delete(self, obj: JSON) -> Outcome:
        return self.run_deletion(obj, apply=True).outcome

    def run(self, obj: JSON, apply: bool) -> RoleResult:
        name = _name(obj)
        previous = obj.get("status") if isinstance(obj.get("status"), dict) else None
        try:
            spec = read_role(obj, self.cluster_name)
        except InputError as exc:
            return self._terminal(name, obj, previous, str(exc), reason="InvalidSpec")
        violation = check_guardrails(spec, self.guardrails)
        if violation is not None:  # before anything is read: a tenant's violation costs no AWS call
            return self._terminal(name, obj, previous, violation, reason="GuardrailViolation", spec=spec)
        applied: list[model.Change] = []
        try:
            observed = self._observe(spec)
            plan = plan_role(spec, observed, self.annotation_key, self.guardrails)
            if apply and plan.changes and plan.blocked is None:
                try:
                    applied = execute_role(plan.changes, self.aws, self.kube, self.annotation_key)
                finally:
                    observed = self._observe(spec)
                    plan = plan_role(spec, observed, self.annotation_key, self.guardrails)
        except AwsError as exc:
            applied = list(getattr(exc, "applied", applied))
            reason = {"access-denied": "AccessDenied", "retryable": "AWSUnavailable"}.get(exc.kind, "AWSRefused")
            status = invalid_role_status(obj, str(exc), previous, self.now(), reason=reason, terminal=False)
            retry: model.Retry = "terminal" if exc.kind == "terminal" else "backoff"
            outcome = Outcome(status, tuple(applied), tuple(events_for(previous, status)), retry, str(exc))
            return RoleResult(name, spec, None, outcome)
        status = role_status(
            spec, observed, plan, annotation_key=self.annotation_key, previous=previous, now=self.now()
        )
        ready = any(c.get("type") == "Ready" and c.get("status") == "True" for c in status.get("conditions", []))
        # Waiting for the issuer is retried with backoff: the issuer changes without this object changing.
        retry = "terminal" if plan.blocked and not plan.waiting else ("none" if ready else "backoff")
        outcome = Outcome(status, tuple(applied), tuple(events_for(previous, status)), retry, plan.blocked)
        return RoleResult(name, spec, plan, outcome)

    def run_deletion(self, obj: JSON, apply: bool) -> RoleResult:
        name = _name(obj)
        try:
            spec = read_role(obj, self.cluster_name)
        except InputError as exc:
            return RoleResult(name, None, None, Outcome(None, error=str(exc), done=True))
        if spec.deletion_policy == "Retain":
            return RoleResult(name, spec, model.Plan(changes=()), Outcome(None, done=True))
        applied: list[model.Change] = []
        try:
            observed = self._observe(spec)
            plan = plan_role_deletion(spec, observed, self.annotation_key)
            if apply and plan.changes:
                applied = execute_role(plan.changes, self.aws, self.kube, self.annotation_key)
        except AwsError as exc:
            applied = list(getattr(exc, "applied", applied))
            retry: model.Retry = "terminal" if exc.kind == "terminal" else "backoff"
            return RoleResult(name, spec, None, Outcome(None, tuple(applied), retry=retry, error=str(exc), done=False))
        return RoleResult(name, spec, plan, Outcome(None, tuple(applied), done=True))

    # --- steps --------------------------------------------------------------------------------------

    def _observe(self, spec: RoleSpec) -> ObservedRoleState:
        from webhook.aws.errors import translated

        with translated("sts:GetCallerIdentity"):
            identity = self.aws.sts.get_caller_identity()
        account, partition = str(identity["Account"]), str(identity["Arn"]).split(":")[1]
        role = observe_role(spec.role_name, self.aws)
        arn = role.arn if role is not None else role_arn(partition, account, spec.path, spec.role_name)
        return ObservedRoleState(
            account=account,
            partition=partition,
            issuer=self._issuer(spec, account, partition),
            role=role,
            service_accounts=observe_service_accounts(spec, self.kube, self.annotation_key, arn),
        )

    def _issuer(self, spec: RoleSpec, account: str, partition: str) -> IssuerFacts:
        if spec.issuer_ref is not None:
            return issuer_facts_from_status(self.issuers(spec.issuer_ref), spec.issuer_ref)
        url = spec.issuer_url or ""  # read_role: exactly one of the two
        arn = oidc_provider_arn(partition, account, host_path(url))
        if not provider_exists(arn, self.aws):
            return IssuerFacts(False, url, arn, f"IAM has no OIDC provider {arn}")
        return IssuerFacts(True, url, arn)

    def _terminal(
        self, name: str, obj: JSON, previous: JSON | None, message: str, *, reason: str, spec: RoleSpec | None = None
    ) -> RoleResult:
        status = invalid_role_status(obj, message, previous, self.now(), reason=reason)
        outcome = Outcome(status, events=tuple(events_for(previous, status)), retry="terminal", error=message)
        return RoleResult(name, spec, None, outcome)


def _name(obj: JSON) -> str:
    metadata = obj.get("metadata")
    if not isinstance(metadata, dict):
        return "<unnamed>"
    namespace, name = metadata.get("namespace"), metadata.get("name")
    if not isinstance(name, str) or not name:
        return "<unnamed>"
    return f"{namespace}/{name}" if isinstance(namespace, str) and namespace else name
