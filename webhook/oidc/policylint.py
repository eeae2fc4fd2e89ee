"""Lints for IRSA trust policies: the mistakes behind most "AccessDenied" and over-broad roles.

Each finding has a stable code. They look only at ``Allow`` statements that can grant
``sts:AssumeRoleWithWebIdentity`` (Deny statements only ever narrow access):

``missing-aud``
    No positive condition on ``<provider>:aud``: the role accepts tokens minted for any audience
    (for example a token the pod sends to some other service).
``missing-sub``
    No positive condition on ``<provider>:sub``: every service account of the cluster can assume
    the role.
``wildcard-sub``
    A ``StringLike`` value on ``:sub`` with ``*`` or ``?``: easy to match more service accounts
    than intended (``system:serviceaccount:*`` is every one of them).
``https-in-key``
    A condition key starting with ``https://``. IAM's keys are ``<host/path>:<claim>``; the key
    never exists in the request, so the condition is always false (or, negated, always true).
``provider-key-mismatch``
    A condition key's provider differs from the ``Federated`` provider ARN's: the condition tests
    a key the request never has (typically after copying a policy between clusters).
``shared-across-namespaces``
    The role's ``:sub`` values span more than one namespace (or a namespace wildcard): one
    namespace's workloads can use another's role.
``multi-value-without-set-operator``
    (only with a request) The token has several audiences but ``:aud`` is tested with a plain
    operator; IAM documents set operators (``ForAnyValue:``/``ForAllValues:``) for such keys.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from webhook.oidc.conditions import like_pattern
from webhook.oidc.policy import Condition, Statement
from webhook.oidc.trustpolicy import ACTION, SUBJECT_PREFIX, parse_provider_arn

# Global (aws:) and service (sts:, ...) keys are not provider claims; they are never linted.
_SERVICE_PREFIXES = ("aws:", "sts:", "iam:")


@dataclass(frozen=True)
class Finding:
    code: str
    statement: int | None  # None for role-wide findings
    message: str

    def describe(self) -> str:
        where = "role" if self.statement is None else f"statement {self.statement}"
        return f"{self.code} ({where}): {self.message}"


def _can_grant(statement: Statement) -> bool:
    if statement.effect != "Allow":
        return False
    hit = any(like_pattern(p.lower()).fullmatch(ACTION.lower()) for p in statement.actions)
    return hit != statement.not_action


def _claim(key: str) -> tuple[str, str] | None:
    """``host/path:claim`` -> (provider, claim); None for aws:/sts: keys."""
    if key.lower().startswith(_SERVICE_PREFIXES):
        return None
    provider, sep, claim = key.rpartition(":")
    return (provider, claim.lower()) if sep else None


def _providers(statement: Statement) -> set[str]:
    names = set()
    for arn in statement.principals.federated:
        try:
            names.add(parse_provider_arn(arn)[2])
        except ValueError:
            continue
    return names


def _on_claim(statement: Statement, claim: str) -> list[Condition]:
    return [c for c in statement.conditions if (parsed := _claim(c.key)) and parsed[1] == claim]


def lint_statement(statement: Statement) -> list[Finding]:
    """Findings for one statement (empty unless it is an Allow that can grant the action)."""
    if not _can_grant(statement):
        return []
    index = statement.index
    found: list[Finding] = []
    providers = _providers(statement)
    for condition in statement.conditions:
        if condition.key.lower().startswith("https://"):
            found.append(Finding("https-in-key", index, f"condition key {condition.key!r}: drop the https://"))
            continue
        parsed = _claim(condition.key)
        if parsed and providers and parsed[0] not in providers:
            expected = " or ".join(sorted(providers))
            found.append(
                Finding(
                    "provider-key-mismatch",
                    index,
                    f"condition key {condition.key!r} is for provider {parsed[0]!r}, the principal is {expected!r}",
                )
            )
    if not any(c.operator.positive for c in _on_claim(statement, "aud")):
        found.append(Finding("missing-aud", index, "no StringEquals condition on <provider>:aud"))
    subs = [c for c in _on_claim(statement, "sub") if c.operator.positive]
    if not subs:
        found.append(Finding("missing-sub", index, "no condition on <provider>:sub: any service account can assume"))
    for condition in subs:
        wild = [v for v in condition.values if condition.operator.is_like and _has_wildcard(v)]
        if wild:
            found.append(Finding("wildcard-sub", index, f"{condition.operator.text} on :sub with wildcards {wild}"))
    return found


def _has_wildcard(value: str) -> bool:
    escaped = value.replace("${*}", "").replace("${?}", "")
    return "*" in escaped or "?" in escaped


def subject_namespaces(statements: Sequence[Statement]) -> set[str]:
    """The namespaces (or namespace patterns) named by the ``:sub`` values of granting statements."""
    namespaces = set()
    for statement in statements:
        if not _can_grant(statement):
            continue
        for condition in _on_claim(statement, "sub"):
            if not condition.operator.positive:
                continue
            for value in condition.values:
                if not value.startswith(SUBJECT_PREFIX):
                    if condition.operator.is_like and _has_wildcard(value):
                        namespaces.add("*")
                    continue
                namespace = value.removeprefix(SUBJECT_PREFIX).partition(":")[0]
                # Under StringEquals a "*" is literal and names no real namespace.
                if condition.operator.is_like or not _has_wildcard(namespace):
                    namespaces.add(namespace)
    return namespaces


def lint(statements: Sequence[Statement], audiences: Sequence[str] = ()) -> list[Finding]:
    """All findings for a policy; ``audiences`` (a token's) enables the multi-value lint."""
    found = [finding for statement in statements for finding in lint_statement(statement)]
    namespaces = subject_namespaces(statements)
    wildcarded = sorted(ns for ns in namespaces if _has_wildcard(ns))
    if len(namespaces) > 1 or wildcarded:
        shown = ", ".join(sorted(namespaces))
        found.append(Finding("shared-across-namespaces", None, f"the role is assumable from namespaces: {shown}"))
    if len(audiences) > 1:
        for statement in statements:
            for condition in _on_claim(statement, "aud"):
                if condition.operator.set_qualifier is None and condition.operator.base != "Null":
                    found.append(
                        Finding(
                            "multi-value-without-set-operator",
                            statement.index,
                            f"the token has {len(audiences)} audiences but {condition.operator.text} "
                            "has no ForAnyValue:/ForAllValues: qualifier",
                        )
                    )
    return found
