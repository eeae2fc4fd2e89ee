"""The engine both front ends share: observe, plan, apply, observe again, judge.

``irsa-webhook provision`` and ``irsa-webhook controller`` differ only in where objects come from
and where the result goes (stdout, or the object's status and Events); what is read from AWS and
the cluster, what is written and how the result is judged is this module, once.

One reconcile of an IRSAIssuer:

1. read and check the object (a mistake is terminal: nothing changes until the object does);
2. observe AWS (the bucket, its policy and objects, the IAM OIDC provider) and the cluster
   (kube-apiserver's key set and the key signing new tokens);
3. plan (pure), then apply the changes in order; after any write, observe and plan again, so the
   status describes what is there and not what was meant to be;
4. fetch both documents anonymously, as STS will;
5. build the status and the Events for the conditions that changed.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from webhook.aws.errors import AwsError
from webhook.aws.session import AwsClients
from webhook.oidc.errors import InputError
from webhook.oidc.reach import Published, check_published
from webhook.provisioner import model
from webhook.provisioner.executor import execute
from webhook.provisioner.model import JSON, ClusterKeys, IssuerSpec, ObservedIssuer, Outcome, Plan, Reachability
from webhook.provisioner.observe import observe_issuer
from webhook.provisioner.planner import plan_deletion, plan_issuer
from webhook.provisioner.spec import read_issuer
from webhook.provisioner.status import events_for, invalid_status, issuer_status

log = logging.getLogger("irsa_webhook.provisioner")

KeysReader = Callable[[IssuerSpec], ClusterKeys]
Reach = Callable[[str, tuple[str, ...]], Published]


def no_cluster(spec: IssuerSpec) -> ClusterKeys:
    """The cluster side when there is no cluster to ask (``provision`` without a kubeconfig)."""
    return ClusterKeys(jwks=None, signing_kid=None, error="no cluster to read the keys from (give --kubeconfig)")


@dataclass(frozen=True)
class Result:
    """What one run found and did, for ``provision`` to print."""

    name: str
    spec: IssuerSpec | None
    plan: Plan | None
    outcome: Outcome


@dataclass
class Engine:
    """Observe → plan → apply → judge for IRSAIssuer objects of one cluster (``cluster_name``)."""

    cluster_name: str
    aws: AwsClients
    cluster_keys: KeysReader = no_cluster
    reach: Reach = check_published
    now: Callable[[], datetime] = field(default=lambda: datetime.now(UTC))
    read_file: Callable[[str], str] | None = None  # only the CLI reads keys.publicKeyFiles

    # --- the front ends' entry points -----------------------------------------------------------

    def reconcile(self, obj: JSON) -> Outcome:
        return self.run(obj, apply=True).outcome

    def delete(self, obj: JSON) -> Outcome:
        return self.run_deletion(obj, apply=True).outcome

    # --- one run ------------------------------------------------------------------------------------

    def run(self, obj: JSON, apply: bool) -> Result:
        """Plan (``apply=False``) or reconcile (``apply=True``) one object."""
        name = _name(obj)
        previous = obj.get("status") if isinstance(obj.get("status"), dict) else None
        try:
            spec = read_issuer(obj, self.cluster_name, read_file=self.read_file)
        except InputError as exc:
            status = invalid_status(obj, str(exc), previous, self.now())
            outcome = Outcome(status, events=tuple(events_for(previous, status)), retry="terminal", error=str(exc))
            return Result(name, None, None, outcome)
        applied: list[model.Change] = []
        try:
            observed = self._observe(spec)
            plan = plan_issuer(spec, observed)
            if apply and plan.changes and plan.blocked is None:
                try:
                    applied = execute(plan.changes, self.aws)
                finally:
                    # Whatever got written, the status describes what is there now.
                    if applied or apply:
                        observed = self._observe(spec)
                        plan = plan_issuer(spec, observed)
        except AwsError as exc:
            applied = list(getattr(exc, "applied", applied))
            return Result(name, spec, None, self._failed(spec, obj, previous, exc, applied))
        reach = self._reach(spec, plan)
        status = issuer_status(spec, observed, plan, reach=reach, previous=previous, now=self.now())
        retry: model.Retry = "terminal" if plan.blocked else ("none" if _ready(status) else "backoff")
        outcome = Outcome(status, tuple(applied), tuple(events_for(previous, status)), retry, plan.blocked)
        return Result(name, spec, plan, outcome)

    def run_deletion(self, obj: JSON, apply: bool) -> Result:
        """Plan or make the deletion ``deletionPolicy`` asks for; Retain touches nothing in AWS."""
        name = _name(obj)
        try:
            spec = read_issuer(obj, self.cluster_name, read_file=self.read_file)
        except InputError as exc:
            # An object that cannot be read cannot say what it owns: nothing is deleted, and the
            # finalizer goes (keeping the object forever would block its namespace-less deletion).
            log.warning("deleting %s: the object is invalid (%s); nothing is deleted in AWS", name, exc)
            return Result(name, None, None, Outcome(None, error=str(exc), done=True))
        if spec.deletion_policy == "Retain":
            return Result(name, spec, model.Plan(changes=()), Outcome(None, done=True))
        applied: list[model.Change] = []
        try:
            observed = self._observe(spec)
            plan = plan_deletion(spec, observed)
            if apply and plan.changes:
                applied = execute(plan.changes, self.aws)
        except AwsError as exc:
            applied = list(getattr(exc, "applied", applied))
            return Result(
                name, spec, None, Outcome(None, tuple(applied), retry=_retry(exc), error=str(exc), done=False)
            )
        return Result(name, spec, plan, Outcome(None, tuple(applied), done=True))

    # --- steps ----------------------------------------------------------------------------------------

    def _observe(self, spec: IssuerSpec) -> ObservedIssuer:
        return observe_issuer(spec, self.aws, self.cluster_keys(spec))

    def _reach(self, spec: IssuerSpec, plan: Plan) -> Reachability | None:
        if plan.blocked is not None:
            return None
        published = self.reach(spec.issuer_url, plan.desired_kids)
        return Reachability(ok=published.ok, message=published.message, kids=published.kids)

    def _failed(
        self, spec: IssuerSpec, obj: JSON, previous: JSON | None, exc: AwsError, applied: list[model.Change]
    ) -> Outcome:
        message = str(exc)
        status = invalid_status(obj, message, previous, self.now(), reason=_reason(exc))
        return Outcome(status, tuple(applied), tuple(events_for(previous, status)), _retry(exc), message)


def _retry(exc: AwsError) -> model.Retry:
    # AccessDenied is retried (with backoff): the fix is a policy change in AWS, which no event announces.
    return "terminal" if exc.kind == "terminal" else "backoff"


def _reason(exc: AwsError) -> str:
    return {"terminal": "AWSRefused", "retryable": "AWSUnavailable", "access-denied": "AccessDenied"}.get(
        exc.kind, "AWSError"
    )


def _ready(status: JSON) -> bool:
    conditions: list[dict[str, Any]] = status.get("conditions") or []
    return any(c.get("type") == "Ready" and c.get("status") == "True" for c in conditions)


def _name(obj: JSON) -> str:
    metadata = obj.get("metadata")
    name = metadata.get("name") if isinstance(metadata, dict) else None
    return name if isinstance(name, str) and name else "<unnamed>"
