"""What deleting an IRSARole or ClusterIRSARole does: nothing for ``deletionPolicy: Retain``; for
``Delete``, only what is ours.

``Retain`` keeps the role and the ServiceAccounts' annotations: whoever takes the role over (another
tool, or a new object with ``adoption: Always``) finds the workloads still using it.

``Delete``, in this order:

1. the ServiceAccounts: one this object created (``CREATED_BY_ANNOTATION`` = its owner) is deleted;
   on any other, the role-arn annotation is retracted when our field manager wrote this role's ARN
   there, and nothing else is touched (``rolebindings``);
2. the role, only when it carries our owner tag: its managed policies detached and inline policies
   deleted first, since IAM refuses to delete a role that has any (``DeleteConflict``); the
   permissions boundary goes with the role.

A role that is not ours is kept, and the plan's notes say so.
"""

from __future__ import annotations

from webhook.core.arn import role_arn
from webhook.provisioner.model import OWNER_TAG
from webhook.provisioner.rolebindings import deletion_changes
from webhook.provisioner.rolemodel import (
    DeleteInlinePolicy,
    DeleteRole,
    DetachPolicy,
    ObservedRoleState,
    RolePlan,
    RoleSpec,
)


def plan_role_deletion(spec: RoleSpec, observed: ObservedRoleState, annotation_key: str) -> RolePlan:
    """The changes deleting the object makes (see the module docstring), in order."""
    if spec.deletion_policy == "Retain":
        return RolePlan(
            changes=(), notes=("deletionPolicy is Retain: the role and the ServiceAccounts' annotations are kept",)
        )
    role = observed.role
    arn = role.arn if role else role_arn(observed.partition, observed.account, spec.path, spec.role_name)
    changes = deletion_changes(spec, observed, annotation_key, arn)
    notes: list[str] = []
    if role is not None and role.tags.get(OWNER_TAG) != spec.owner:
        notes.append(f"role {spec.role_name} is kept: it does not carry {OWNER_TAG}={spec.owner}")
    elif role is not None:
        name = spec.role_name
        changes += [
            DetachPolicy(
                action="iam:DetachRolePolicy",
                target=arn,
                summary=f"detach {policy}",
                diff=f"- {policy}",
                role_name=name,
                policy_arn=policy,
            )
            for policy in role.managed_policy_arns
        ]
        changes += [
            DeleteInlinePolicy(
                action="iam:DeleteRolePolicy",
                target=arn,
                summary=f"delete inline policy {policy_name}",
                role_name=name,
                policy_name=policy_name,
            )
            for policy_name in role.inline_policies
        ]
        changes.append(DeleteRole(action="iam:DeleteRole", target=arn, summary=f"delete role {name}", role_name=name))
    return RolePlan(changes=tuple(changes), notes=tuple(notes))
