"""The vocabulary of workload roles (IRSARole, ClusterIRSARole): the desired role, what was observed
in IAM and in the cluster, the guardrails, and the changes between them.

Same rules as :mod:`webhook.provisioner.model` (which this extends): frozen dataclasses, the planner
(pure) makes :class:`~webhook.provisioner.model.Change` values, the executors are the only code that
turns them into AWS or Kubernetes writes, the observers the only code that fills the ``Observed*``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Literal

from webhook.provisioner.model import JSON, Change, DeletionPolicy, Plan

ROLE_KIND = "IRSARole"
ROLE_PLURAL = "irsaroles"
CLUSTER_ROLE_KIND = "ClusterIRSARole"
CLUSTER_ROLE_PLURAL = "clusterirsaroles"

Adoption = Literal["Never", "IfOwned", "Always"]
# The field manager of the ServiceAccount annotation (server-side apply): ours alone, so that the
# annotation is retracted by applying an empty intent and every other field stays someone else's.
FIELD_MANAGER = "irsa-webhook-provisioner"
# Marks a ServiceAccount the provisioner created (only such a ServiceAccount may ever be deleted).
CREATED_BY_ANNOTATION = "irsa-webhook.io/created-by"


# --- what the user asked for ----------------------------------------------------------------------


@dataclass(frozen=True)
class BoundServiceAccount:
    namespace: str  # may hold * and ? only in a ClusterIRSARole with wildcards allowed
    name: str
    create: bool = False


@dataclass(frozen=True)
class RoleSpec:
    """An IRSARole or ClusterIRSARole, read and checked (``webhook.provisioner.rolespec.read_role``)."""

    kind: str  # ROLE_KIND or CLUSTER_ROLE_KIND
    name: str
    namespace: str | None  # the object's namespace (IRSARole), None for ClusterIRSARole
    generation: int
    owner: str  # owner_value(cluster, kind, "<ns>/<name>" or "<name>")
    issuer_ref: str | None  # an IRSAIssuer's name; or
    issuer_url: str | None  # an existing issuer (EKS, any IAM OIDC provider)
    service_accounts: tuple[BoundServiceAccount, ...]
    role_name: str
    path: str  # "/" by default
    max_session_duration: int  # 3600 by default
    permissions_boundary: str | None
    managed_policy_arns: tuple[str, ...]
    inline_policies: Mapping[str, JSON]
    tags: Mapping[str, str]
    audience: str
    adoption: Adoption
    deletion_policy: DeletionPolicy


@dataclass(frozen=True)
class Guardrails:
    """What the platform team allows tenants (namespaced IRSARoles); the controller's configuration."""

    require_permissions_boundary: tuple[str, ...] = ()  # ARN patterns (IAM wildcards); empty: not required
    allowed_policy_arns: tuple[str, ...] = ()  # ARN patterns; empty: any
    forbid_inline_policies: bool = False
    role_path: str | None = None  # forced path, e.g. /irsa/
    role_name_prefix: str | None = None  # forced prefix, e.g. tenant-


# --- what was observed ----------------------------------------------------------------------------


@dataclass(frozen=True)
class ObservedRole:
    arn: str
    path: str
    trust_policy: JSON  # parsed (IAM returns it URL-encoded)
    max_session_duration: int
    permissions_boundary: str | None
    tags: Mapping[str, str]
    managed_policy_arns: tuple[str, ...]
    inline_policies: Mapping[str, JSON]


@dataclass(frozen=True)
class ObservedServiceAccount:
    namespace: str
    name: str
    exists: bool
    annotations: Mapping[str, str] = field(default_factory=dict)
    annotation_managed_by_us: bool = False  # our field manager owns the role-arn annotation
    created_by: str | None = None  # CREATED_BY_ANNOTATION's value


@dataclass(frozen=True)
class IssuerFacts:
    """What a role needs of its issuer: ready or not (and why), and the provider to trust."""

    ready: bool
    issuer_url: str | None
    provider_arn: str | None
    message: str = ""


@dataclass(frozen=True)
class ObservedRoleState:
    account: str
    partition: str
    issuer: IssuerFacts
    role: ObservedRole | None  # the role of spec.role_name, if any
    service_accounts: tuple[ObservedServiceAccount, ...]


# --- the plan -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class RolePlan(Plan):
    """A role's plan: a :class:`~webhook.provisioner.model.Plan`, and when it is blocked, why in one
    word and whether it only waits.

    Two kinds of block: terminal (a guardrail, a role that is not ours, a path IAM cannot change:
    nothing happens until the object changes) and waiting (the issuer is not Ready, the OIDC provider
    of ``issuerURL`` does not exist yet: those change without the object changing, so the controller
    retries them with backoff instead of marking the object terminal).
    """

    reason: str = ""  # when blocked: the CamelCase reason of the status's condition and terminal flag
    waiting: bool = False  # blocked only until the issuer (or provider) is there: retried, not terminal


# --- changes (AWS) --------------------------------------------------------------------------------


@dataclass(frozen=True)
class CreateRole(Change):
    role_name: str = ""
    path: str = "/"
    trust_policy: JSON = field(default_factory=dict)
    max_session_duration: int = 3600
    permissions_boundary: str | None = None
    tags: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class UpdateTrustPolicy(Change):
    role_name: str = ""
    trust_policy: JSON = field(default_factory=dict)


@dataclass(frozen=True)
class UpdateMaxSessionDuration(Change):
    role_name: str = ""
    max_session_duration: int = 3600


@dataclass(frozen=True)
class PutPermissionsBoundary(Change):
    role_name: str = ""
    boundary: str = ""


@dataclass(frozen=True)
class DeletePermissionsBoundary(Change):
    role_name: str = ""


@dataclass(frozen=True)
class AttachPolicy(Change):
    role_name: str = ""
    policy_arn: str = ""


@dataclass(frozen=True)
class DetachPolicy(Change):
    role_name: str = ""
    policy_arn: str = ""


@dataclass(frozen=True)
class PutInlinePolicy(Change):
    role_name: str = ""
    policy_name: str = ""
    document: JSON = field(default_factory=dict)


@dataclass(frozen=True)
class DeleteInlinePolicy(Change):
    role_name: str = ""
    policy_name: str = ""


@dataclass(frozen=True)
class TagRole(Change):
    role_name: str = ""
    tags: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class UntagRole(Change):
    role_name: str = ""
    keys: tuple[str, ...] = ()


@dataclass(frozen=True)
class DeleteRole(Change):
    role_name: str = ""


# --- changes (Kubernetes) -------------------------------------------------------------------------


@dataclass(frozen=True)
class CreateServiceAccount(Change):
    namespace: str = ""
    name: str = ""
    annotations: Mapping[str, str] = field(default_factory=dict)  # the role-arn and CREATED_BY_ANNOTATION


@dataclass(frozen=True)
class AnnotateServiceAccount(Change):
    """Server-side apply, field manager FIELD_MANAGER, of exactly ``annotations`` (empty: retract ours)."""

    namespace: str = ""
    name: str = ""
    annotations: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class DeleteServiceAccount(Change):
    namespace: str = ""
    name: str = ""
