"""An IRSAIssuer's ``.status``: what is published, since when, and conditions whose messages say what to do.

Built whole from what was observed after a reconcile, the plan made from it (what is still
pending), the anonymous fetch (``Reachability``) and the previous status. Two things are carried
over from the previous status: the time each key was first seen published (``since``: how long
STS has been able to see it) and each condition's ``lastTransitionTime`` while its status stays
the same (Kubernetes API conventions). Events are made only on transitions (:func:`events_for`).

Conditions, in order: ``Published`` (both documents in place), ``ProviderReady`` (the IAM OIDC
provider lists every client ID), ``KeysInSync`` (the published key set is the desired one),
``SigningKeyPublished`` (the key kube-apiserver signs new tokens with is published),
``Reachable`` (the documents fetched anonymously from the issuer URL, as STS does), and ``Ready``
(all of them).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any, Literal

from webhook.oidc.issuer import host_path
from webhook.provisioner.documents import CACHE_MAX_AGE, body_kids, desired_jwks, kids, object_keys
from webhook.provisioner.model import (
    JSON,
    OWNER_TAG,
    Event,
    IssuerSpec,
    ObservedIssuer,
    Plan,
    Reachability,
)
from webhook.provisioner.planner import foreign_provider_note, missing_client_ids

ConditionStatus = Literal["True", "False", "Unknown"]
CONDITION_TYPES = ("Published", "ProviderReady", "KeysInSync", "SigningKeyPublished", "Reachable", "Ready")
ROTATION_ORDER = (
    "rotate in this order: add the new public key to --service-account-key-file, wait until it is published "
    f"and STS caches have expired (published for more than {CACHE_MAX_AGE}s), then switch "
    "--service-account-signing-key-file to it, and remove the old key only later"
)


def rfc3339(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _parse_time(text: object) -> datetime | None:
    try:
        return datetime.fromisoformat(str(text)).astimezone(UTC)
    except ValueError:
        return None


def issuer_status(
    spec: IssuerSpec,
    observed_after: ObservedIssuer,
    plan_after: Plan,
    *,
    reach: Reachability | None,
    previous: Mapping[str, Any] | None,
    now: datetime,
    error: str | None = None,
) -> JSON:
    """The object's whole new ``.status`` (see the module docstring)."""
    previous = previous or {}
    published = _published_kids(spec, observed_after, reach)
    since = _since(published, previous, now)
    status: JSON = {"observedGeneration": spec.generation, "issuerURL": spec.issuer_url}
    if observed_after.provider is not None:
        status["providerARN"] = observed_after.provider.arn
    status["publishedKeys"] = [{"kid": kid, "since": when} for kid, when in since.items()]
    signing = observed_after.cluster.signing_kid
    if signing is not None:
        status["signingKey"] = {"kid": signing, "published": signing in since}
        if signing in since:
            status["signingKey"]["since"] = since[signing]
    found = [
        ("Published", _published(spec, observed_after, plan_after, error)),
        ("ProviderReady", _provider_ready(spec, observed_after, plan_after, error)),
        ("KeysInSync", _keys_in_sync(spec, observed_after, published)),
        ("SigningKeyPublished", _signing_key(signing, since, published, observed_after, now)),
        ("Reachable", _reachable(reach)),
    ]
    found.append(("Ready", _ready(found, plan_after, error)))
    before = {c.get("type"): c for c in previous.get("conditions", []) if isinstance(c, Mapping)}
    status["conditions"] = [condition(kind, value, before.get(kind), spec.generation, now) for kind, value in found]
    return status


Verdict = tuple[ConditionStatus, str, str]  # status, reason, message


def condition(kind: str, verdict: Verdict, before: Mapping[str, Any] | None, generation: int, now: datetime) -> JSON:
    """One condition; its ``lastTransitionTime`` is ``before``'s while the status stays the same."""
    state, reason, message = verdict
    unchanged = before is not None and before.get("status") == state and before.get("lastTransitionTime")
    return {
        "type": kind,
        "status": state,
        "reason": reason,
        "message": message,
        "lastTransitionTime": before["lastTransitionTime"] if unchanged and before else rfc3339(now),
        "observedGeneration": generation,
    }


def _published_kids(spec: IssuerSpec, observed: ObservedIssuer, reach: Reachability | None) -> list[str] | None:
    """The kids STS can see now; None when unknown (published elsewhere and not fetched)."""
    if spec.s3 is not None:
        bucket = observed.bucket
        found = bucket.objects.get(object_keys(spec.s3)[1]) if bucket is not None and bucket.exists else None
        return (body_kids(found.body) or []) if found is not None else []
    if reach is not None and reach.ok:
        return list(reach.kids)
    return None


def _since(published: list[str] | None, previous: Mapping[str, Any], now: datetime) -> dict[str, str]:
    """kid -> when it was first seen published: kept from ``previous`` for kids still published."""
    known: dict[str, str] = {}
    for entry in previous.get("publishedKeys", []):
        if isinstance(entry, Mapping) and isinstance(entry.get("kid"), str) and _parse_time(entry.get("since")):
            known[entry["kid"]] = str(entry["since"])
    if published is None:
        return known  # nothing new was learnt: keep what was known
    return {kid: known.get(kid, rfc3339(now)) for kid in published}


def _pending(plan: Plan, service: str) -> list[str]:
    return [change.summary for change in plan.changes if change.action.startswith(service + ":")]


def pending_message(pending: Sequence[str], error: str | None) -> str:
    """How many changes are pending (the summaries of ``pending``), the first, and the last error if any."""
    message = f"{len(pending)} change(s) pending, first: {pending[0]}"
    return message + (f"; last error: {error}" if error else "; they are made at the next reconcile")


def _published(spec: IssuerSpec, observed: ObservedIssuer, plan: Plan, error: str | None) -> Verdict:
    if spec.s3 is None:
        return "True", "PublishedElsewhere", "no spec.discovery.s3: the issuer serves its own documents"
    if plan.blocked:
        return "False", "Blocked", plan.blocked
    pending = _pending(plan, "s3")
    if pending:
        return "False", "ChangesPending", pending_message(pending, error)
    bucket = observed.bucket
    objects = bucket.objects if bucket is not None and bucket.exists else {}
    missing = [key for key in object_keys(spec.s3) if objects.get(key) is None]
    if missing:
        why = plan.notes[0] if plan.notes else "nothing to publish yet"
        return "False", "NotPublished", f"s3://{spec.s3.bucket}/{missing[0]} is missing: {why}"
    return "True", "Published", f"the discovery document and the JWKS are published for {spec.issuer_url}"


def _provider_ready(spec: IssuerSpec, observed: ObservedIssuer, plan: Plan, error: str | None) -> Verdict:
    provider = observed.provider
    if provider is None:
        if plan.blocked:
            return "False", "Blocked", f"the OIDC provider waits until the issuer is published: {plan.blocked}"
        message = f"no OIDC provider for {host_path(spec.issuer_url)} yet"
        return "False", "ProviderMissing", message + (f"; last error: {error}" if error else "")
    if provider.tags.get(OWNER_TAG) != spec.owner:
        state: ConditionStatus = "False" if missing_client_ids(spec, provider) else "True"
        return state, "ProviderNotOurs", foreign_provider_note(spec, provider)
    pending = _pending(plan, "iam")
    if pending:
        return "False", "ChangesPending", pending_message(pending, error)
    return "True", "ProviderReady", f"{provider.arn} lists client IDs {', '.join(spec.client_ids)}"


def _keys_in_sync(spec: IssuerSpec, observed: ObservedIssuer, published: list[str] | None) -> Verdict:
    keys = desired_jwks(spec, observed.cluster.jwks)
    if keys is None:
        why = observed.cluster.error or "it could not be read"
        return (
            "Unknown",
            "ClusterKeysUnknown",
            f"kube-apiserver's key set is unknown ({why}): allow the provisioner to GET /openid/v1/jwks "
            "(ClusterRole system:service-account-issuer-discovery)",
        )
    if not keys:
        return "False", "NoKeys", "kube-apiserver serves no key and spec.keys gives none: there is nothing to publish"
    if published is None:
        return "Unknown", "NotChecked", "the key set served at the issuer URL was not fetched"
    desired = kids(keys)
    missing = [kid for kid in desired if kid not in published]
    extra = [kid for kid in published if kid not in desired]
    if not missing and not extra:
        source = "the keys kube-apiserver verifies with" if spec.key_source == "APIServer" else "the keys of spec.keys"
        return "True", "InSync", f"the published key set is {source} ({len(desired)} key(s))"
    parts = [f"not published: {', '.join(missing)}"] if missing else []
    parts += [f"published but no longer wanted: {', '.join(extra)}"] if extra else []
    where = "they are republished at the next reconcile" if spec.s3 else "update the JWKS served at the issuer URL"
    return "False", "OutOfSync", f"{'; '.join(parts)}: {where}"


def _signing_key(
    kid: str | None, since: Mapping[str, str], published: list[str] | None, observed: ObservedIssuer, now: datetime
) -> Verdict:
    if kid is None:
        why = observed.cluster.error or "no token could be requested"
        return (
            "Unknown",
            "SigningKeyUnknown",
            f"the key that signs new tokens is unknown ({why}): allow the provisioner to create "
            "serviceaccounts/token for its own ServiceAccount",
        )
    if published is None:
        return "Unknown", "NotChecked", "the key set served at the issuer URL was not fetched"
    if kid not in since:
        return (
            "False",
            "SigningKeyNotPublished",
            f"kube-apiserver signs new tokens with key {kid}, which is not published: STS rejects every token "
            f"signed with it; {ROTATION_ORDER}",
        )
    first = _parse_time(since[kid]) or now
    age = int((now - first).total_seconds())
    if age < CACHE_MAX_AGE:
        return (
            "True",
            "PublishedRecently",
            f"the signing key {kid} was published {age}s ago: STS may use a cached key set without it "
            f"for up to {CACHE_MAX_AGE - age}s more",
        )
    return "True", "SigningKeyPublished", f"the key that signs new tokens ({kid}) is published since {since[kid]}"


def _reachable(reach: Reachability | None) -> Verdict:
    if reach is None:
        return "Unknown", "NotChecked", "the documents were not fetched from the issuer URL"
    if reach.ok:
        return "True", "Reachable", reach.message
    return "False", "Unreachable", reach.message


def _ready(found: Sequence[tuple[str, Verdict]], plan: Plan, error: str | None) -> Verdict:
    if error:
        return "False", "ReconcileError", error
    for wanted in ("False", "Unknown"):
        for kind, (state, reason, message) in found:
            if state == wanted:
                return state, reason, f"{kind}: {message}"
    return "True", "Ready", "the issuer is published, its keys are in sync and its OIDC provider is ready"


def events_for(previous_status: Mapping[str, Any] | None, new_status: Mapping[str, Any]) -> list[Event]:
    """One Event per condition whose status changed (a missing condition counts as Unknown)."""
    before = {
        c.get("type"): c.get("status") for c in (previous_status or {}).get("conditions", []) if isinstance(c, Mapping)
    }
    events = []
    for condition in new_status.get("conditions", []):
        state = condition["status"]
        if before.get(condition["type"], "Unknown") == state:
            continue
        events.append(
            Event(
                type="Warning" if state == "False" else "Normal",
                reason=condition["reason"],
                message=f"{condition['type']} is {state}: {condition['message']}",
            )
        )
    return events


def invalid_status(
    obj: Mapping[str, Any], message: str, previous: Mapping[str, Any] | None, now: datetime, reason: str = "InvalidSpec"
) -> JSON:
    """The status when nothing could be observed: the object is invalid (terminal) or AWS refused or
    failed (``reason`` AccessDenied, AWSUnavailable, AWSRefused). What was known before is kept (the
    published keys and their times, the other conditions: nothing was observed to change them) and
    ``Ready`` says what stopped the reconcile."""
    metadata = obj.get("metadata")
    generation = metadata.get("generation") if isinstance(metadata, Mapping) else None
    status: JSON = {key: value for key, value in (previous or {}).items() if key != "conditions"}
    status["observedGeneration"] = generation if isinstance(generation, int) else 0
    kept = [c for c in (previous or {}).get("conditions", []) if isinstance(c, Mapping) and c.get("type") != "Ready"]
    before = next(
        (c for c in (previous or {}).get("conditions", []) if isinstance(c, Mapping) and c.get("type") == "Ready"), None
    )
    ready = condition("Ready", ("False", reason, message), before, status["observedGeneration"], now)
    status["conditions"] = [*(dict(c) for c in kept), ready]
    return status
