"""The flags of ``irsa-webhook controller`` for workload roles: which kinds run, the annotation written
on bound ServiceAccounts, and the guardrails for tenants (namespaced IRSARoles), each checked with a
one-line message that says what to give instead."""

from __future__ import annotations

import argparse
import re

from webhook.options.flags import FlagError, add_flags, resolve
from webhook.options.tables import mutation_flags
from webhook.provisioner.model import ISSUER_KIND, ISSUER_PLURAL
from webhook.provisioner.rolemodel import CLUSTER_ROLE_KIND, CLUSTER_ROLE_PLURAL, ROLE_KIND, ROLE_PLURAL, Guardrails

KINDS = (ISSUER_KIND, ROLE_KIND, CLUSTER_ROLE_KIND)  # in the order they depend on each other
# --kinds takes a kind or its plural, in any case (as kubectl does).
_KIND_NAMES = {
    name.lower(): kind
    for kind, plural in (
        (ISSUER_KIND, ISSUER_PLURAL),
        (ROLE_KIND, ROLE_PLURAL),
        (CLUSTER_ROLE_KIND, CLUSTER_ROLE_PLURAL),
    )
    for name in (kind, plural)
}
# serve's flag (name, environment variable, default), so the annotation written is the one the webhook reads.
ANNOTATION_FLAGS = mutation_flags(
    ("annotation-prefix",),
    {"annotation-prefix": "as serve's: bound ServiceAccounts get <prefix>/role-arn; give the webhook's value"},
)
ROLE_ARN_KEY = "role-arn"
# An annotation key's prefix is a DNS subdomain (the API server refuses any other).
_DNS_SUBDOMAIN = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*")
DNS_SUBDOMAIN_MAX = 253
# A managed policy's ARN, IAM wildcards (* ?) allowed: arn:<partition>:iam::<account or aws>:policy/<path/name>.
_POLICY_ARN_PATTERN = re.compile(r"arn:[^:\s]+:iam::[^:\s]+:policy/\S+")
ARN_MAX = 2048
# IAM's role path: / or /a/b/, printable ASCII between the slashes.
_ROLE_PATH = re.compile(r"/(?:[\x21-\x2e\x30-\x7e]+/)*")
ROLE_PATH_MAX = 512
# IAM's role name characters; below IAM's 64, so that a name fits after the prefix.
_ROLE_NAME_PREFIX = re.compile(r"[A-Za-z0-9+=,.@_-]{1,63}")
SHOWN = 64  # of a refused value, a message quotes this much


def add_role_flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--kinds",
        action="append",
        default=None,
        metavar="KIND[,KIND]",
        help=f"the kinds reconciled, comma-separated or repeated (default: {','.join(KINDS)}); roles run "
        "without IRSAIssuer still read the issuers they name",
    )
    add_flags(parser, ANNOTATION_FLAGS, "ServiceAccounts")
    group = parser.add_argument_group("guardrails (namespaced IRSARoles: a violation is terminal, and no AWS call)")
    group.add_argument(
        "--require-permissions-boundary",
        action="append",
        default=[],
        metavar="PATTERN",
        help="an IRSARole must set a permissions boundary matching one of these policy ARN patterns (IAM "
        "wildcards * and ?; repeatable), e.g. arn:aws:iam::*:policy/tenant-boundary",
    )
    group.add_argument(
        "--allowed-policy-arn",
        action="append",
        default=[],
        metavar="PATTERN",
        help="an IRSARole may attach only managed policies matching one of these ARN patterns (repeatable; "
        "default: any)",
    )
    group.add_argument("--forbid-inline-policies", action="store_true", help="an IRSARole may carry no inline policy")
    group.add_argument("--role-path", default=None, metavar="PATH", help="an IRSARole's IAM path, e.g. /tenants/")
    group.add_argument(
        "--role-name-prefix", default=None, metavar="PREFIX", help="an IRSARole's role name starts so, e.g. tenant-"
    )


def role_settings(args: argparse.Namespace) -> tuple[tuple[str, ...], str, Guardrails]:
    """The kinds, the role-arn annotation key and the guardrails; FlagError names the flag."""
    return kinds(args.kinds), annotation_key(resolve(args, ANNOTATION_FLAGS)["annotation_prefix"]), guardrails(args)


def kinds(given: list[str] | None) -> tuple[str, ...]:
    if given is None:
        return KINDS
    wanted = set()
    for name in (part.strip() for value in given for part in value.split(",")):
        if not name:
            continue
        kind = _KIND_NAMES.get(name.lower())
        if kind is None:
            raise FlagError(f"--kinds: unknown kind {name[:SHOWN]!r}: give {', '.join(KINDS)}")
        wanted.add(kind)
    if not wanted:
        raise FlagError(f"--kinds needs one or more of {', '.join(KINDS)}")
    return tuple(kind for kind in KINDS if kind in wanted)


def annotation_key(prefix: str) -> str:
    if len(prefix) > DNS_SUBDOMAIN_MAX or not _DNS_SUBDOMAIN.fullmatch(prefix):
        raise FlagError(
            f"--annotation-prefix must be a DNS subdomain such as eks.amazonaws.com, got {prefix[:SHOWN]!r}"
        )
    return f"{prefix}/{ROLE_ARN_KEY}"


def guardrails(args: argparse.Namespace) -> Guardrails:
    for flag, patterns in (
        ("--require-permissions-boundary", args.require_permissions_boundary),
        ("--allowed-policy-arn", args.allowed_policy_arn),
    ):
        for pattern in patterns:
            if len(pattern) > ARN_MAX or not _POLICY_ARN_PATTERN.fullmatch(pattern):
                raise FlagError(
                    f"{flag} {pattern[:SHOWN]!r} is not a policy ARN pattern: give one such as "
                    "arn:aws:iam::*:policy/tenant-*"
                )
    path = args.role_path
    if path is not None and (len(path) > ROLE_PATH_MAX or not _ROLE_PATH.fullmatch(path)):
        raise FlagError(
            f"--role-path must be / or /a/b/ (printable ASCII, starting and ending with /), got {path[:SHOWN]!r}"
        )
    prefix = args.role_name_prefix
    if prefix is not None and not _ROLE_NAME_PREFIX.fullmatch(prefix):
        raise FlagError(
            "--role-name-prefix must be 1 to 63 characters of IAM role names (A-Z a-z 0-9 + = , . @ _ -), "
            f"got {prefix[:SHOWN]!r}"
        )
    return Guardrails(
        require_permissions_boundary=tuple(args.require_permissions_boundary),
        allowed_policy_arns=tuple(args.allowed_policy_arn),
        forbid_inline_policies=args.forbid_inline_policies,
        role_path=path,
        role_name_prefix=prefix,
    )
