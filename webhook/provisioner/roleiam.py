"""The IAM parts of a role object, checked against IAM's own rules and limits: the path, the maximum
session, the permissions boundary, the managed policy ARNs, the inline policy documents and the tags.

Each reader takes the object's ``spec`` and raises an :class:`InputError` of one line naming the
field (``rolespec`` adds the object's name). A limit refused here is one IAM would refuse anyway,
later and less clearly, in the middle of a reconcile.
"""

from __future__ import annotations

import copy
import json
import re
from collections.abc import Mapping
from typing import Any

from webhook.core.arn import MAX_ROLE_PATH, POLICY_ARN_RE, ROLE_PATH_RE
from webhook.oidc.errors import InputError
from webhook.provisioner.fields import mapping, string, strings, unique
from webhook.provisioner.model import JSON

# IAM's limits (IAM User Guide, "IAM and AWS STS quotas").
MIN_SESSION, MAX_SESSION = 3600, 43200  # MaxSessionDuration: one to twelve hours
MAX_MANAGED_POLICIES = 20  # managed policies per role: 10 by default, raisable to 20
MAX_INLINE_SIZE = 10240  # all of a role's inline policies together, whitespace not counted
MAX_TAGS = 50  # per role, our owner tag included
MAX_TAG_KEY, MAX_TAG_VALUE = 128, 256
POLICY_VERSIONS = ("2012-10-17", "2008-10-17")
_POLICY_NAME_RE = re.compile(r"[A-Za-z0-9_+=,.@-]{1,128}")
# Tag keys and values: letters, digits and spaces of any script, and _ . : / = + - @ (IAM's
# [\p{L}\p{Z}\p{N}_.:/=+\-@]); Python's \w is the letters, digits and _ of any script.
_TAG_RE = re.compile(r"[\w .:/=+@-]*")
RESERVED_TAG_PREFIXES = ("irsa-webhook.io/", "aws:")  # ours (the owner tag), and AWS's own


def read_path(spec: Mapping[str, Any]) -> str:
    path = string(spec.get("path", "/"), "spec.path")
    if len(path) > MAX_ROLE_PATH or not ROLE_PATH_RE.fullmatch(path):
        raise InputError(
            f"spec.path {path!r} is not an IAM path: write / or /a/b/ (letters, digits and + = , . @ _ -, "
            f"starting and ending with /, at most {MAX_ROLE_PATH} characters)"
        )
    return path


def read_session(spec: Mapping[str, Any]) -> int:
    value = spec.get("maxSessionDuration", MIN_SESSION)
    if not isinstance(value, int) or isinstance(value, bool) or not MIN_SESSION <= value <= MAX_SESSION:
        raise InputError(
            f"spec.maxSessionDuration is {value!r}: give seconds from {MIN_SESSION} to {MAX_SESSION} (1 to 12 hours)"
        )
    return value


def _policy_arn(value: object, where: str) -> str:
    arn = string(value, where)
    if not POLICY_ARN_RE.fullmatch(arn):
        raise InputError(
            f"{where} {arn!r} is not a managed policy ARN (arn:aws:iam::<account or aws>:policy/<path/><name>)"
        )
    return arn


def read_boundary(spec: Mapping[str, Any]) -> str | None:
    value = spec.get("permissionsBoundary")
    return None if value is None else _policy_arn(value, "spec.permissionsBoundary")


def read_managed(spec: Mapping[str, Any]) -> tuple[str, ...]:
    where = "spec.managedPolicyARNs"
    arns = [
        _policy_arn(arn, f"{where}[{i}]") for i, arn in enumerate(strings(spec.get("managedPolicyARNs", []), where))
    ]
    unique(arns, where)
    if len(arns) > MAX_MANAGED_POLICIES:
        raise InputError(f"{where} lists {len(arns)} policies: IAM attaches at most {MAX_MANAGED_POLICIES} to a role")
    return tuple(arns)


def read_inline(spec: Mapping[str, Any]) -> dict[str, JSON]:
    policies: dict[str, JSON] = {}
    for policy_name, document in mapping(spec.get("inlinePolicies"), "spec.inlinePolicies").items():
        where = f"spec.inlinePolicies.{policy_name}"
        if not isinstance(policy_name, str) or not _POLICY_NAME_RE.fullmatch(policy_name):
            raise InputError(f"{where}: a policy name is 1-128 letters, digits and + = , . @ _ -")
        if not isinstance(document, Mapping):
            raise InputError(f"{where} must be a policy document (a mapping with Version and Statement)")
        if document.get("Version") not in POLICY_VERSIONS:
            raise InputError(f'{where}.Version is {document.get("Version")!r}: write Version: "2012-10-17"')
        statement = document.get("Statement")
        if not isinstance(statement, list | Mapping) or not statement:
            raise InputError(f"{where}.Statement must be a statement or a non-empty list of them")
        policies[policy_name] = copy.deepcopy(dict(document))
    size = sum(len(json.dumps(document, separators=(",", ":"))) for document in policies.values())
    if size > MAX_INLINE_SIZE:
        raise InputError(
            f"spec.inlinePolicies take {size} characters: IAM allows {MAX_INLINE_SIZE} for all of a role's inline "
            "policies together; move some into a managed policy"
        )
    return policies


def read_tags(spec: Mapping[str, Any]) -> dict[str, str]:
    tags: dict[str, str] = {}
    for key, value in mapping(spec.get("tags"), "spec.tags").items():
        if not isinstance(key, str) or not key or len(key) > MAX_TAG_KEY or not _TAG_RE.fullmatch(key):
            raise InputError(
                f"spec.tags: key {key!r} is not a tag key (1-{MAX_TAG_KEY} letters, digits, spaces, _.:/=+-@)"
            )
        if key.startswith(RESERVED_TAG_PREFIXES):
            raise InputError(f"spec.tags: key {key!r} is reserved (irsa-webhook.io/ is ours, aws: is AWS's): rename it")
        if not isinstance(value, str):
            raise InputError(f"spec.tags.{key} is {value!r}: a tag value is a string, quote it")
        if len(value) > MAX_TAG_VALUE or not _TAG_RE.fullmatch(value):
            raise InputError(
                f"spec.tags.{key}: a tag value is at most {MAX_TAG_VALUE} letters, digits, spaces and _.:/=+-@"
            )
        tags[key] = value
    if len(tags) >= MAX_TAGS:
        raise InputError(f"spec.tags has {len(tags)} tags: IAM allows {MAX_TAGS} per role, one of them the owner tag")
    return tags
