"""The ServiceAccounts of a role: which observed ones it binds, what state each is in, what to write.

A ServiceAccount is bound by the role-arn annotation of the webhook's settings, written by
server-side apply with our field manager, so that applying an intent without it retracts ours
and leaves every other field (and anyone else's annotation) alone. Three rules:

* an annotation someone else wrote with another role ARN is never overwritten (state
  ``Conflict``); neither is one our field manager wrote with another role ARN on a ServiceAccount
  this object did not create: that is another role object binding the same ServiceAccount, and
  taking turns would write on every resync;
* a ServiceAccount is created only when ``create: true`` and it is missing, carrying
  ``CREATED_BY_ANNOTATION`` = the owner, and it is the only kind ever deleted;
* an annotation is retracted only when our field manager wrote it with this role's ARN (a
  ServiceAccount dropped from ``spec.serviceAccounts``, or the object deleted).

What the observer reports (``ObservedRoleState.service_accounts``): one record per bound
ServiceAccount without wildcards (``exists: false`` when missing), the existing ServiceAccounts a
wildcard entry matches, and any other ServiceAccount carrying this role's ARN in the annotation.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from webhook.oidc.conditions import like_pattern
from webhook.provisioner.model import Change
from webhook.provisioner.rolemodel import (
    CREATED_BY_ANNOTATION,
    AnnotateServiceAccount,
    BoundServiceAccount,
    CreateServiceAccount,
    DeleteServiceAccount,
    ObservedRoleState,
    ObservedServiceAccount,
    RoleSpec,
)

BindingState = Literal["Created", "Annotated", "Pending", "Conflict", "Missing"]


@dataclass(frozen=True)
class Binding:
    """One ServiceAccount the role binds, as observed: ``Created`` / ``Annotated`` (bound, by us
    creating it or annotating it), ``Pending`` (a write is planned), ``Conflict`` (annotated with
    ``other`` and never overwritten), ``Missing`` (does not exist and ``create`` is false)."""

    namespace: str
    name: str
    state: BindingState
    other: str | None = None  # the role ARN found instead of ours (Conflict)
    ours: bool = False  # the other ARN was written by our field manager (another role object)


def target(namespace: str, name: str) -> str:
    return f"serviceaccount/{namespace}/{name}"


def matched(spec: RoleSpec, observed: ObservedRoleState) -> list[tuple[BoundServiceAccount, ObservedServiceAccount]]:
    """Each bound ServiceAccount with what was observed of it: for an entry without wildcards its
    record (a missing one when none was reported), for a wildcard entry every existing match."""
    found = {(sa.namespace, sa.name): sa for sa in observed.service_accounts}
    pairs: list[tuple[BoundServiceAccount, ObservedServiceAccount]] = []
    seen: set[tuple[str, str]] = set()
    for bound in spec.service_accounts:
        if any(ch in bound.namespace for ch in "*?"):
            pattern = like_pattern(bound.namespace)
            hits = [sa for sa in observed.service_accounts if sa.exists and sa.name == bound.name]
            candidates = [sa for sa in hits if pattern.fullmatch(sa.namespace)]
        else:
            key = (bound.namespace, bound.name)
            candidates = [found.get(key) or ObservedServiceAccount(namespace=key[0], name=key[1], exists=False)]
        for sa in candidates:
            if (sa.namespace, sa.name) not in seen:
                seen.add((sa.namespace, sa.name))
                pairs.append((bound, sa))
    return pairs


def binding(spec: RoleSpec, bound: BoundServiceAccount, sa: ObservedServiceAccount, key: str, arn: str) -> Binding:
    """The state of one matched ServiceAccount against the role ARN ``arn`` (see :class:`Binding`)."""
    if not sa.exists:
        return Binding(sa.namespace, sa.name, "Pending" if bound.create else "Missing")
    value = sa.annotations.get(key)
    if value == arn:
        return Binding(sa.namespace, sa.name, "Created" if sa.created_by == spec.owner else "Annotated")
    if value is None or (sa.annotation_managed_by_us and sa.created_by == spec.owner):
        return Binding(sa.namespace, sa.name, "Pending")
    return Binding(sa.namespace, sa.name, "Conflict", other=value, ours=sa.annotation_managed_by_us)


def binding_changes(spec: RoleSpec, observed: ObservedRoleState, key: str, arn: str) -> list[Change]:
    """The ServiceAccount writes that bind the role ``arn``: create, annotate, retract the unbound."""
    changes: list[Change] = []
    pairs = matched(spec, observed)
    for bound, sa in pairs:
        if binding(spec, bound, sa, key, arn).state != "Pending":
            continue
        where = target(sa.namespace, sa.name)
        if not sa.exists:
            changes.append(
                CreateServiceAccount(
                    action="k8s:CreateServiceAccount",
                    target=where,
                    summary=f"create ServiceAccount {sa.namespace}/{sa.name} annotated {key}={arn}",
                    namespace=sa.namespace,
                    name=sa.name,
                    annotations={key: arn, CREATED_BY_ANNOTATION: spec.owner},
                )
            )
            continue
        before = sa.annotations.get(key)
        changes.append(
            AnnotateServiceAccount(
                action="k8s:PatchServiceAccount",
                target=where,
                summary=f"annotate {key}={arn}" + (f" (was {before})" if before else ""),
                diff=f"- {key}: {before}\n+ {key}: {arn}" if before else f"+ {key}: {arn}",
                namespace=sa.namespace,
                name=sa.name,
                annotations=_intent(spec, sa, {key: arn}),
            )
        )
    bound_keys = {(sa.namespace, sa.name) for _, sa in pairs}
    for sa in observed.service_accounts:
        if (sa.namespace, sa.name) not in bound_keys and retractable(sa, key, arn):
            changes.append(retraction(spec, sa, key, "no longer in spec.serviceAccounts"))
    return changes


def retractable(sa: ObservedServiceAccount, key: str, arn: str) -> bool:
    """Whether our field manager wrote this role's ARN there (only then is it ours to take back)."""
    return sa.exists and sa.annotation_managed_by_us and sa.annotations.get(key) == arn


def retraction(spec: RoleSpec, sa: ObservedServiceAccount, key: str, why: str) -> AnnotateServiceAccount:
    return AnnotateServiceAccount(
        action="k8s:PatchServiceAccount",
        target=target(sa.namespace, sa.name),
        summary=f"retract {key} ({why})",
        diff=f"- {key}: {sa.annotations.get(key)}",
        namespace=sa.namespace,
        name=sa.name,
        annotations=_intent(spec, sa, {}),
    )


def deletion_changes(spec: RoleSpec, observed: ObservedRoleState, key: str, arn: str) -> list[Change]:
    """What deleting the role object does to ServiceAccounts: ours deleted, our annotations retracted."""
    changes: list[Change] = []
    for sa in observed.service_accounts:
        if not sa.exists:
            continue
        if sa.created_by == spec.owner:
            changes.append(
                DeleteServiceAccount(
                    action="k8s:DeleteServiceAccount",
                    target=target(sa.namespace, sa.name),
                    summary=f"delete ServiceAccount {sa.namespace}/{sa.name} (created by irsa-webhook for this role)",
                    namespace=sa.namespace,
                    name=sa.name,
                )
            )
        elif retractable(sa, key, arn):
            changes.append(retraction(spec, sa, key, "the role object is deleted"))
    return changes


def _intent(spec: RoleSpec, sa: ObservedServiceAccount, annotations: dict[str, str]) -> dict[str, str]:
    # A ServiceAccount we created keeps its mark in every intent we apply, whatever the executor
    # created it with: an apply that left it out could remove it, and then it would never be deleted.
    if sa.created_by == spec.owner:
        return {**annotations, CREATED_BY_ANNOTATION: spec.owner}
    return annotations
