"""Generating an IAM role trust policy for IRSA: the role a set of service accounts may assume.

The policy has one statement::

    Effect: Allow
    Principal: {Federated: arn:<partition>:iam::<account>:oidc-provider/<issuer host/path>}
    Action: sts:AssumeRoleWithWebIdentity
    Condition:
      StringEquals:
        <issuer host/path>:sub: system:serviceaccount:<namespace>:<name>   (one value per SA)
        <issuer host/path>:aud: sts.amazonaws.com                          (or --audience)

Several service accounts are several values of the one ``:sub`` key, which IAM ORs. How they are
named on the command line: ``--service-account NAME`` uses ``--namespace``; ``--service-account
NS:NAME`` names its own namespace (Kubernetes names cannot contain ``:``, so this is unambiguous).

Wildcards: only in the namespace part, and only with ``allow_namespace_wildcard`` (the
``--namespace-wildcard`` flag). Then *all* subjects move to ``StringLike`` (IAM ANDs separate
operators, so the subjects cannot be split between StringEquals and StringLike), ``:aud`` stays
``StringEquals``, and the caller tells the user. Service-account names are never wildcards.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from webhook.core.arn import ACCOUNT_RE, OIDC_PROVIDER_ARN_RE, PARTITION_RE, oidc_provider_arn
from webhook.core.settings import DEFAULT_AUDIENCE
from webhook.oidc.errors import InputError
from webhook.oidc.issuer import host_path, validate_issuer
from webhook.oidc.jwks import JSONObject

ACTION = "sts:AssumeRoleWithWebIdentity"
POLICY_VERSION = "2012-10-17"  # the current policy language version (needed for variables etc.)
SUBJECT_PREFIX = "system:serviceaccount:"

# Namespace: an RFC 1123 label (what Kubernetes enforces), optionally with IAM's * and ? wildcards.
_NAMESPACE = re.compile(r"[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?")
_NAMESPACE_PATTERN = re.compile(r"[-a-z0-9*?]{1,63}")
# ServiceAccount name: an RFC 1123 subdomain.
_SA_NAME = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*")
_SA_NAME_MAX = 253


@dataclass(frozen=True)
class ServiceAccountRef:
    """One namespace/name pair; the namespace may hold IAM wildcards when they were allowed."""

    namespace: str
    name: str

    @property
    def subject(self) -> str:
        """The ``sub`` claim of this service account's tokens."""
        return f"{SUBJECT_PREFIX}{self.namespace}:{self.name}"

    @property
    def has_wildcard(self) -> bool:
        return any(ch in self.namespace for ch in "*?")


def parse_service_accounts(
    values: Sequence[str], namespace: str | None, allow_namespace_wildcard: bool = False
) -> list[ServiceAccountRef]:
    """Turn ``--service-account`` values (``NAME`` or ``NS:NAME``) into refs, validating names."""
    if not values:
        raise InputError("at least one --service-account is required")
    refs: list[ServiceAccountRef] = []
    for value in values:
        ns, sep, name = value.rpartition(":")
        if not sep:
            if namespace is None:
                raise InputError(
                    f"--service-account {value!r} has no namespace: add --namespace NS or write NS:{value}"
                )
            ns = namespace
        ref = ServiceAccountRef(namespace=ns, name=name)
        _validate(ref, value, allow_namespace_wildcard)
        if ref not in refs:
            refs.append(ref)
    return refs


def _validate(ref: ServiceAccountRef, value: str, allow_wildcard: bool) -> None:
    if ":" in ref.namespace:
        raise InputError(f"--service-account {value!r}: write NS:NAME with exactly one ':'")
    if any(ch in ref.name for ch in "*?"):
        raise InputError(f"service account name {ref.name!r}: wildcards are not allowed in names, only namespaces")
    if not valid_service_account_name(ref.name):
        raise InputError(f"service account name {ref.name!r} is not a valid Kubernetes name")
    if ref.has_wildcard:
        if not allow_wildcard:
            raise InputError(f"namespace {ref.namespace!r} contains a wildcard; pass --namespace-wildcard to allow it")
        if not valid_namespace(ref.namespace, wildcard=True):
            raise InputError(f"namespace pattern {ref.namespace!r} is not a valid Kubernetes namespace pattern")
    elif not valid_namespace(ref.namespace):
        raise InputError(f"namespace {ref.namespace!r} is not a valid Kubernetes namespace name")


def valid_service_account_name(name: str) -> bool:
    """An RFC 1123 subdomain, as Kubernetes requires of a ServiceAccount's name (never a wildcard)."""
    return len(name) <= _SA_NAME_MAX and _SA_NAME.fullmatch(name) is not None


def valid_namespace(namespace: str, *, wildcard: bool = False) -> bool:
    """An RFC 1123 label; with ``wildcard``, a pattern of one that may hold IAM's ``*`` and ``?``."""
    if wildcard and any(ch in namespace for ch in "*?"):
        return _NAMESPACE_PATTERN.fullmatch(namespace) is not None
    return _NAMESPACE.fullmatch(namespace) is not None


def provider_arn(issuer: str, account_id: str, partition: str = "aws") -> str:
    """``arn:<partition>:iam::<account>:oidc-provider/<issuer host/path>``."""
    validate_issuer(issuer)
    if not ACCOUNT_RE.fullmatch(account_id):
        raise InputError(f"account ID {account_id!r} must be 12 digits")
    if not PARTITION_RE.fullmatch(partition):
        raise InputError(f"partition {partition!r} is not an AWS partition (aws, aws-cn, aws-us-gov, ...)")
    return oidc_provider_arn(partition, account_id, host_path(issuer))


def parse_provider_arn(arn: str) -> tuple[str, str, str]:
    """``(partition, account, provider name)`` of an OIDC provider ARN; raises for anything else."""
    match = OIDC_PROVIDER_ARN_RE.fullmatch(arn)
    if match is None:
        raise InputError(f"{arn!r} is not an OIDC provider ARN (arn:aws:iam::<account>:oidc-provider/<host/path>)")
    return match["partition"], match["account"], match["name"]


def check_provider_matches(arn: str, issuer: str) -> None:
    """Refuse a provider ARN that names another issuer than ``issuer`` (STS would never match)."""
    _, _, name = parse_provider_arn(arn)
    if name != host_path(issuer):
        raise InputError(f"--provider-arn names provider {name!r} but the issuer is {host_path(issuer)!r}")


def trust_policy(
    issuer: str,
    principal_arn: str,
    service_accounts: Sequence[ServiceAccountRef],
    audiences: Sequence[str] = (DEFAULT_AUDIENCE,),
) -> JSONObject:
    """The trust policy document (see the module docstring). Inputs must already be validated."""
    validate_issuer(issuer)
    if not service_accounts:
        raise InputError("at least one --service-account is required")
    if not audiences or any(not aud for aud in audiences):
        raise InputError("--audience must not be empty")
    provider = host_path(issuer)
    subjects = [ref.subject for ref in service_accounts]
    sub_operator = "StringLike" if any(ref.has_wildcard for ref in service_accounts) else "StringEquals"
    aud_condition = {f"{provider}:aud": _one_or_many(list(dict.fromkeys(audiences)))}
    sub_condition = {f"{provider}:sub": _one_or_many(subjects)}
    if sub_operator == "StringEquals":
        condition = {"StringEquals": sub_condition | aud_condition}
    else:
        condition = {"StringEquals": aud_condition, "StringLike": sub_condition}
    return {
        "Version": POLICY_VERSION,
        "Statement": [
            {
                "Effect": "Allow",
                "Principal": {"Federated": principal_arn},
                "Action": ACTION,
                "Condition": condition,
            }
        ],
    }


def _one_or_many(values: list[str]) -> str | list[str]:
    # A single value as a plain string is what the IAM console and the EKS docs write.
    return values[0] if len(values) == 1 else values
