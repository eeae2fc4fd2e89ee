"""Would IAM let this web identity assume the role? Evaluating a trust policy like IAM does.

For one request (``sts:AssumeRoleWithWebIdentity`` by a token with issuer/sub/aud), each statement
*applies* when all of these hold (IAM's policy evaluation logic for a single trust policy):

* Action matches (``NotAction``: does not match). Actions compare case-insensitively, with ``*``
  and ``?`` wildcards (``sts:*``, ``sts:AssumeRole*``, ``*``).
* Principal matches (``NotPrincipal``: does not match): ``"*"``, ``{"AWS": "*"}``, or a
  ``Federated`` OIDC provider ARN whose provider name is the token issuer without ``https://``.
  The ARN's account is not checked: the role's account is not known here (IAM requires the
  provider to be in the role's account).
* Every condition holds (rules in :mod:`webhook.oidc.conditions`).

Then: an applying ``Deny`` denies, whatever else applies (explicit deny wins); otherwise an
applying ``Allow`` allows; otherwise the request is implicitly denied.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from webhook.oidc.conditions import Context, evaluate
from webhook.oidc.issuer import host_path
from webhook.oidc.policy import Statement
from webhook.oidc.trustpolicy import ACTION, parse_provider_arn


@dataclass(frozen=True)
class WebIdentityRequest:
    """The parts of an AssumeRoleWithWebIdentity request a trust policy can test."""

    issuer: str
    subject: str | None
    audiences: tuple[str, ...]

    @property
    def provider(self) -> str:
        """The IAM provider name: the issuer without ``https://``."""
        return host_path(self.issuer)

    def context(self) -> Context:
        """The request context: ``<provider>:sub`` and ``<provider>:aud`` (lowercased keys)."""
        values: dict[str, tuple[str, ...]] = {}
        if self.subject is not None:
            values[f"{self.provider}:sub".lower()] = (self.subject,)
        if self.audiences:
            values[f"{self.provider}:aud".lower()] = self.audiences
        return values


@dataclass(frozen=True)
class StatementResult:
    statement: Statement
    applies: bool
    reason: str  # why it applies, or the first thing that stops it


@dataclass(frozen=True)
class Decision:
    allowed: bool
    reason: str
    results: tuple[StatementResult, ...]


def _wildcard_match(pattern: str, value: str) -> bool:
    regex = "".join(".*" if ch == "*" else "." if ch == "?" else re.escape(ch) for ch in pattern)
    return re.fullmatch(regex, value, re.IGNORECASE | re.DOTALL) is not None


def _principal_matches(statement: Statement, request: WebIdentityRequest) -> bool:
    principals = statement.principals
    if principals.everyone:
        return True
    for arn in principals.federated:
        if arn.startswith("arn:"):
            try:
                _, _, name = parse_provider_arn(arn)
            except ValueError:
                continue
            if name == request.provider:
                return True
    return False


def evaluate_statement(statement: Statement, request: WebIdentityRequest) -> StatementResult:
    """Does ``statement`` apply to ``request``, and why (not)?"""
    action_hit = any(_wildcard_match(pattern, ACTION) for pattern in statement.actions)
    if action_hit == statement.not_action:
        word = "NotAction includes" if statement.not_action else "Action does not include"
        return StatementResult(statement, False, f"{word} {ACTION}")
    principal_hit = _principal_matches(statement, request)
    if principal_hit == statement.not_principal:
        if statement.not_principal:
            return StatementResult(statement, False, "NotPrincipal names this provider")
        named = ", ".join(statement.principals.federated + statement.principals.other) or "nothing"
        return StatementResult(statement, False, f"Principal ({named}) is not the OIDC provider {request.provider!r}")
    context = request.context()
    for condition in statement.conditions:
        if not evaluate(condition.operator, condition.key, condition.values, context):
            actual = context.get(condition.key.lower())
            got = "absent from the request" if not actual else _show(actual)
            return StatementResult(statement, False, f"condition {condition.describe()} is false (value: {got})")
    held = len(statement.conditions)
    suffix = f"and all {held} condition(s) hold" if held else "and it has no conditions"
    return StatementResult(statement, True, f"action and principal match {suffix}")


def _show(values: Sequence[str]) -> str:
    return repr(values[0]) if len(values) == 1 else repr(list(values))


def decide(statements: Sequence[Statement], request: WebIdentityRequest) -> Decision:
    """Evaluate every statement and combine them: explicit Deny > Allow > implicit deny."""
    results = tuple(evaluate_statement(statement, request) for statement in statements)
    for result in results:
        if result.applies and result.statement.effect == "Deny":
            return Decision(False, f"explicitly denied by {result.statement.label}", results)
    for result in results:
        if result.applies:
            return Decision(True, f"allowed by {result.statement.label}", results)
    return Decision(False, "implicitly denied: no Allow statement applies", results)
