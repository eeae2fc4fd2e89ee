"""The changes that converge a role we own (or are adopting) to the object, part by part.

On a role we own, everything converges exactly to the object: the trust policy, the boundary, the
maximum session, the managed policies and inline policies (unlisted ones detached or deleted), and
the tags: ``spec.tags`` plus the owner tag, any other tag removed (``aws:`` tags, which no one can
remove, excepted). Tags follow the same rule as policies because a rule that left unlisted tags
alone could never remove a tag the object stops listing.

Each comparison is semantic (``documents.same_policy``), and each change carries a readable diff.
"""

from __future__ import annotations

from collections.abc import Mapping

from webhook.provisioner.documents import json_diff, same_policy
from webhook.provisioner.model import JSON, OWNER_TAG, Change
from webhook.provisioner.rolemodel import (
    AttachPolicy,
    DeleteInlinePolicy,
    DeletePermissionsBoundary,
    DetachPolicy,
    ObservedRole,
    PutInlinePolicy,
    PutPermissionsBoundary,
    RoleSpec,
    TagRole,
    UntagRole,
    UpdateMaxSessionDuration,
    UpdateTrustPolicy,
)

# IAM's default quota of managed policies per role: past it, AttachRolePolicy fails (LimitExceeded).
DEFAULT_POLICY_QUOTA = 10
AWS_TAG_PREFIX = "aws:"  # AWS's own tags: nobody can remove them


def desired_tags(spec: RoleSpec) -> dict[str, str]:
    return {**spec.tags, OWNER_TAG: spec.owner}


def role_changes(spec: RoleSpec, role: ObservedRole, trust: JSON) -> list[Change]:
    name, arn = spec.role_name, role.arn
    tags = _tag_changes(spec, role)
    adopting = role.tags.get(OWNER_TAG) != spec.owner
    # Adopting: the tags first, so the role is marked ours before anything else of it changes.
    changes: list[Change] = list(tags) if adopting else []
    if not same_policy(role.trust_policy, trust):
        changes.append(
            UpdateTrustPolicy(
                action="iam:UpdateAssumeRolePolicy",
                target=arn,
                summary="update the trust policy",
                diff=json_diff(role.trust_policy, trust, "trust policy"),
                role_name=name,
                trust_policy=trust,
            )
        )
    boundary = spec.permissions_boundary
    if boundary is not None and boundary != role.permissions_boundary:
        was = f" (was {role.permissions_boundary})" if role.permissions_boundary else ""
        changes.append(
            PutPermissionsBoundary(
                action="iam:PutRolePermissionsBoundary",
                target=arn,
                summary=f"set the permissions boundary to {boundary}{was}",
                role_name=name,
                boundary=boundary,
            )
        )
    elif boundary is None and role.permissions_boundary is not None:
        changes.append(
            DeletePermissionsBoundary(
                action="iam:DeleteRolePermissionsBoundary",
                target=arn,
                summary=f"remove the permissions boundary {role.permissions_boundary}",
                role_name=name,
            )
        )
    if role.max_session_duration != spec.max_session_duration:
        changes.append(
            UpdateMaxSessionDuration(
                action="iam:UpdateRole",
                target=arn,
                summary=f"set the maximum session to {spec.max_session_duration}s (was {role.max_session_duration}s)",
                role_name=name,
                max_session_duration=spec.max_session_duration,
            )
        )
    return changes if adopting else changes + tags


def _tag_changes(spec: RoleSpec, role: ObservedRole) -> list[Change]:
    wanted = desired_tags(spec)
    changed = {key: value for key, value in wanted.items() if role.tags.get(key) != value}
    extra = tuple(sorted(key for key in role.tags if key not in wanted and not key.startswith(AWS_TAG_PREFIX)))
    changes: list[Change] = []
    if changed:
        shown = ", ".join(f"{key}={value}" for key, value in changed.items())
        lines = [f"- {key}={role.tags[key]}" for key in changed if key in role.tags]
        changes.append(
            TagRole(
                action="iam:TagRole",
                target=role.arn,
                summary=f"tag {shown}",
                diff="\n".join([*lines, *(f"+ {key}={value}" for key, value in changed.items())]),
                role_name=spec.role_name,
                tags=changed,
            )
        )
    if extra:
        changes.append(
            UntagRole(
                action="iam:UntagRole",
                target=role.arn,
                summary=f"remove tag {', '.join(extra)} (not in spec.tags)",
                diff="\n".join(f"- {key}={role.tags[key]}" for key in extra),
                role_name=spec.role_name,
                keys=extra,
            )
        )
    return changes


def policy_changes(spec: RoleSpec, arn: str, attached: tuple[str, ...], current: Mapping[str, JSON]) -> list[Change]:
    name = spec.role_name
    attach: list[Change] = [
        AttachPolicy(
            action="iam:AttachRolePolicy",
            target=arn,
            summary=f"attach {policy}",
            diff=f"+ {policy}",
            role_name=name,
            policy_arn=policy,
        )
        for policy in spec.managed_policy_arns
        if policy not in attached
    ]
    detach: list[Change] = [
        DetachPolicy(
            action="iam:DetachRolePolicy",
            target=arn,
            summary=f"detach {policy} (not in spec.managedPolicyARNs)",
            diff=f"- {policy}",
            role_name=name,
            policy_arn=policy,
        )
        for policy in attached
        if policy not in spec.managed_policy_arns
    ]
    # Attached before detached, so a permission both sets grant is never missing in between; but
    # detached first when the role would otherwise pass IAM's default quota and the attach fail.
    over = len(attached) + len(attach) > DEFAULT_POLICY_QUOTA
    changes = detach + attach if over else attach + detach
    for policy_name, document in spec.inline_policies.items():
        before = current.get(policy_name)
        if before is not None and same_policy(before, document):
            continue
        changes.append(
            PutInlinePolicy(
                action="iam:PutRolePolicy",
                target=arn,
                summary=f"{'update' if before is not None else 'put'} inline policy {policy_name}",
                diff=json_diff(before, document, f"inline policy {policy_name}"),
                role_name=name,
                policy_name=policy_name,
                document=dict(document),
            )
        )
    for policy_name, document in current.items():
        if policy_name not in spec.inline_policies:
            changes.append(
                DeleteInlinePolicy(
                    action="iam:DeleteRolePolicy",
                    target=arn,
                    summary=f"delete inline policy {policy_name} (not in spec.inlinePolicies)",
                    diff=json_diff(document, None, f"inline policy {policy_name}"),
                    role_name=name,
                    policy_name=policy_name,
                )
            )
    return changes
