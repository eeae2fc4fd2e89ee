"""What the self-managed Secret holds, and the one next step that brings it, and the webhook
configuration's caBundle, where they should be. Pure: no I/O, the clock and the issuer passed in.

The Secret (``kubernetes.io/tls``):

    tls.crt, tls.key, ca.crt                          the pair every replica serves, and its CA
    pending-tls.crt, pending-tls.key, pending-ca.crt  the next pair, during a rotation
    previous-ca.crt                                   CAs still trusted for pairs being replaced

The caBundle of every webhook of the configuration is always a function of the Secret alone: the CAs
of ``ca.crt``, ``pending-ca.crt`` and ``previous-ca.crt`` (expired ones left out), oldest expiry
first, so that every replica that reads the same Secret computes the same bytes and never fights
another.

A rotation, one step at a time (each a write conditional on the resourceVersion read just before,
so when several replicas race only one write lands and the others read it and follow):

1. ``pending``: a new pair goes into ``pending-*``, the current one still served;
2. ``ca-bundle``: the caBundle gets the pending CA next to the current one;
3. ``promote``: once the configuration trusts the pending CA, the pending pair becomes the current
   one and the CA it replaces moves to ``previous-ca.crt``: replicas serving the old pair during the
   next seconds are still trusted;
4. ``prune``: a previous CA leaves the Secret (and then the caBundle) when it expires, with the
   pair it signed.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace

from cryptography import x509

from webhook.pki import pairs
from webhook.pki.pairs import Pair, PairError

CURRENT = ("tls.crt", "tls.key", "ca.crt")
PENDING = ("pending-tls.crt", "pending-tls.key", "pending-ca.crt")
PREVIOUS = "previous-ca.crt"
# CAs kept from a caBundle found when the Secret had no usable pair: enough for any real history,
# and a bound on what a caBundle full of junk can make us carry.
MAX_INHERITED_CAS = 4

Issue = Callable[[Sequence[str], float, float], Pair]


@dataclass(frozen=True, slots=True)
class Policy:
    hosts: tuple[str, ...]
    lifetime: float  # seconds
    renew_before: float  # seconds


@dataclass(frozen=True, slots=True)
class State:
    current: Pair | None = None
    pending: Pair | None = None
    previous: tuple[x509.Certificate, ...] = ()
    # What could not be read, one line each: the step that follows replaces it.
    problems: tuple[str, ...] = field(default=(), compare=False)


def _decoded(data: dict[str, object], key: str) -> bytes:
    value = data.get(key)
    if value is None:
        return b""
    if not isinstance(value, str):
        raise PairError(f"{key} is not a string")
    try:
        return base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        raise PairError(f"{key} is not base64") from None


def _pair(data: dict[str, object], keys: tuple[str, str, str], problems: list[str]) -> Pair | None:
    try:
        cert, key, ca = (_decoded(data, k) for k in keys)
        if not (cert or key or ca):
            return None
        if not (cert and key and ca):
            raise PairError(f"{', '.join(k for k, v in zip(keys, (cert, key, ca), strict=True) if not v)} missing")
        return pairs.load(cert, key, ca)
    except PairError as exc:
        problems.append(f"{keys[0]}: {exc}")
        return None


def read(secret: object) -> State:
    """The state a Secret object (raw JSON, or None when there is none) holds; what cannot be read is
    left out and named in ``problems``."""
    if secret is None:
        return State()
    data = secret.get("data") if isinstance(secret, dict) else None
    if not isinstance(data, dict):
        return State(problems=("the Secret has no data",)) if secret else State()
    problems: list[str] = []
    current = _pair(data, CURRENT, problems)
    pending = _pair(data, PENDING, problems)
    try:
        previous = tuple(pairs.certificates(_decoded(data, PREVIOUS)))
    except PairError as exc:
        problems.append(str(exc))
        previous = ()
    return State(current, pending, previous, tuple(problems))


def data_of(state: State) -> dict[str, str]:
    """The Secret's ``data`` for ``state`` (base64, as the API wants it)."""
    raw: dict[str, bytes] = {}
    for keys, pair in ((CURRENT, state.current), (PENDING, state.pending)):
        if pair is not None:
            raw.update(zip(keys, (pair.cert_pem, pair.key_pem, pair.ca_pem), strict=True))
    if state.previous:
        raw[PREVIOUS] = pairs.pem_of(state.previous)
    return {key: base64.b64encode(value).decode() for key, value in raw.items()}


def trusted(state: State, now: float) -> list[x509.Certificate]:
    """The CAs the caBundle must hold (duplicates and expired previous CAs out), oldest expiry first:
    an order that depends on the CAs alone, so a promotion (pending becomes current, current becomes
    previous) leaves the bytes as they were and costs no caBundle write."""
    cas = [x509.load_pem_x509_certificate(p.ca_pem) for p in (state.current, state.pending) if p is not None]
    cas += [ca for ca in state.previous if ca.not_valid_after_utc.timestamp() > now]
    seen: set[bytes] = set()
    unique = []
    for ca in cas:
        if (print_ := pairs.fingerprint(ca)) not in seen:
            seen.add(print_)
            unique.append(ca)
    return sorted(unique, key=lambda ca: (ca.not_valid_after_utc, pairs.fingerprint(ca)))


def bundle(state: State, now: float) -> bytes:
    """The caBundle (PEM) for ``state``."""
    return pairs.pem_of(trusted(state, now))


def renewal_reason(pair: Pair, policy: Policy, now: float) -> str | None:
    """Why ``pair`` must be replaced now, or None while it is good."""
    if pair.hosts != frozenset(policy.hosts):
        return f"it names {sorted(pair.hosts)}, not {list(policy.hosts)}"
    if now >= pair.not_after - policy.renew_before:
        return "it expires within the renewal window" if now < pair.not_after else "it has expired"
    return None


@dataclass(frozen=True, slots=True)
class Step:
    """One write: ``name`` (issue, pending, promote, prune) and the Secret state it writes, or
    ``ca-bundle`` and the bundle to write."""

    name: str
    reason: str
    state: State | None = None
    bundle: bytes = b""


def next_step(
    state: State,
    policy: Policy,
    now: float,
    webhook_bundle: bytes | None,
    issue: Issue = pairs.issue,
) -> Step | None:
    """The next write, or None when the Secret and the caBundle are where they should be.

    ``webhook_bundle`` is the caBundle every webhook of the configuration has now (None: there is no
    configuration, so no caBundle to write and no pending pair to promote).
    """
    if state.current is None:
        # Nothing to serve. Replicas may still serve a pair the Secret lost, whose CAs are in the
        # caBundle: those stay trusted (until they expire) next to the new one.
        inherited = tuple(
            c for c in pairs.certificates(webhook_bundle or b"") if c.not_valid_after_utc.timestamp() > now
        )[:MAX_INHERITED_CAS]
        pair = issue(policy.hosts, policy.lifetime, now)
        return Step("issue", "the Secret holds no usable pair", State(pair, None, inherited))
    desired = bundle(state, now)
    if webhook_bundle is not None and webhook_bundle != desired:
        return Step("ca-bundle", "the caBundle is not the Secret's CAs", bundle=desired)
    due = renewal_reason(state.pending if state.pending is not None else state.current, policy, now)
    if due is not None:
        which = "the pending pair is stale" if state.pending is not None else "the serving pair is due"
        return Step("pending", f"{which}: {due}", replace(state, pending=issue(policy.hosts, policy.lifetime, now)))
    webhook_cas = {pairs.fingerprint(c) for c in pairs.certificates(webhook_bundle or b"")}
    if state.pending is not None and state.pending.ca_fingerprint in webhook_cas:
        outgoing = x509.load_pem_x509_certificate(state.current.ca_pem)
        return Step("promote", "the caBundle trusts the pending pair", State(state.pending, None, (outgoing,)))
    live = tuple(ca for ca in state.previous if ca.not_valid_after_utc.timestamp() > now)
    if len(live) != len(state.previous):
        return Step("prune", "a previous CA expired", replace(state, previous=live))
    return None


def next_deadline(state: State, policy: Policy) -> float | None:
    """When :func:`next_step` will next have something to do without anything else changing."""
    times = [ca.not_valid_after_utc.timestamp() for ca in state.previous]
    for pair in (state.current, state.pending):
        if pair is not None:
            times.append(pair.not_after - policy.renew_before)
    return min(times) if times else None


def may_serve(current: Pair, served: tuple[bytes, float] | None, webhook_bundle: bytes | None, now: float) -> bool:
    """Whether a replica serving ``served`` (fingerprint, expiry; None: nothing real) switches to the
    Secret's ``current`` pair now: once the caBundle trusts its CA, so kube-apiserver never meets a
    certificate it cannot verify; at once when there is nothing to protect (no pair yet, or an
    expired one)."""
    if served is None:
        return True
    fingerprint, not_after = served
    if fingerprint == current.fingerprint:
        return False
    if not_after <= now:
        return True
    return current.ca_fingerprint in {pairs.fingerprint(c) for c in pairs.certificates(webhook_bundle or b"")}
