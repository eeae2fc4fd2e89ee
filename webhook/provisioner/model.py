"""The provisioner's vocabulary: the desired issuer, what was observed, and the changes between them.

Plain frozen dataclasses, no behaviour beyond describing themselves: the planner (pure) produces
:class:`Change` values from an :class:`IssuerSpec` and an :class:`ObservedIssuer`; the executor
(``webhook.provisioner.executor``) is the only code that turns a change into an AWS call; the
observer (``webhook.provisioner.observe``) is the only code that fills an :class:`ObservedIssuer`.

Documents (bucket policies, JWKS) are carried parsed (``JSON``), bodies of S3 objects as the exact
bytes written or read, so a comparison can be semantic (policies) or exact (what STS reads).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

JSON = dict[str, Any]

API_GROUP = "irsa-webhook.io"
API_VERSION = "v1alpha1"
ISSUER_KIND = "IRSAIssuer"
ISSUER_PLURAL = "irsaissuers"

# Every AWS resource the provisioner creates carries this tag (S3 objects: this user metadata key,
# without the prefix rules of tags), valued "<cluster>/<kind>/<name>": nothing without it is ever
# deleted, and an IAM OIDC provider without it is never modified.
OWNER_TAG = "irsa-webhook.io/owner"
OWNER_METADATA = "irsa-webhook-owner"  # S3 user metadata (x-amz-meta-irsa-webhook-owner)

KeySource = Literal["APIServer", "Static"]
DeletionPolicy = Literal["Retain", "Delete"]


def owner_value(cluster: str, kind: str, name: str) -> str:
    """The owner tag's value for one object of one cluster: ``<cluster>/<kind lowercased>/<name>``."""
    return f"{cluster}/{kind.lower()}/{name}"


# --- what the user asked for ----------------------------------------------------------------------


@dataclass(frozen=True)
class S3Discovery:
    """Where the discovery document and JWKS are published: ``s3://bucket/prefix/...``."""

    bucket: str
    region: str
    prefix: str  # "" or "a/b" (no leading or trailing slash)
    create_bucket: bool

    def key(self, path: str) -> str:
        """The object key of ``path`` (``.well-known/openid-configuration``, ``keys.json``) under the prefix."""
        return f"{self.prefix}/{path}" if self.prefix else path


@dataclass(frozen=True)
class IssuerSpec:
    """An IRSAIssuer, read and checked (``webhook.provisioner.spec.read_issuer``)."""

    name: str
    generation: int
    owner: str  # owner_value(cluster, ISSUER_KIND, name)
    issuer_url: str  # exactly kube-apiserver's --service-account-issuer
    s3: S3Discovery | None  # None: published elsewhere (EKS, any existing issuer); only the provider is ensured
    key_source: KeySource
    public_keys: tuple[str, ...]  # PEM texts given in the object (and files, read by the CLI)
    client_ids: tuple[str, ...]
    thumbprints: tuple[str, ...]  # () = let IAM use its own trust store (no thumbprint needed)
    deletion_policy: DeletionPolicy


# --- what was observed ----------------------------------------------------------------------------


@dataclass(frozen=True)
class PublicAccessBlock:
    block_public_acls: bool = True
    ignore_public_acls: bool = True
    block_public_policy: bool = True
    restrict_public_buckets: bool = True


@dataclass(frozen=True)
class ObservedObject:
    body: bytes
    content_type: str | None
    cache_control: str | None
    owner: str | None  # our owner metadata, when present
    last_modified: str | None = None  # ISO 8601, informational


@dataclass(frozen=True)
class ObservedBucket:
    name: str
    exists: bool
    region: str | None = None
    owner: str | None = None  # the bucket's OWNER_TAG value, when tagged
    public_access_block: PublicAccessBlock | None = None  # None: no bucket-level block configured
    policy: JSON | None = None  # the parsed bucket policy, None when there is none
    objects: Mapping[str, ObservedObject | None] = field(default_factory=dict)  # key -> object (None: absent)
    # Whether the bucket holds objects besides the keys in ``objects``: a deletion removes a bucket
    # it created only when nothing else is left in it.
    other_objects: bool = False


@dataclass(frozen=True)
class ObservedProvider:
    arn: str
    url: str  # as IAM returns it: host/path, no scheme
    client_ids: tuple[str, ...]
    thumbprints: tuple[str, ...]
    tags: Mapping[str, str]


@dataclass(frozen=True)
class ClusterKeys:
    """What kube-apiserver says about its keys."""

    jwks: JSON | None  # its /openid/v1/jwks, None when it could not be read
    signing_kid: str | None  # the kid in the header of a freshly requested token, None when unknown
    error: str | None = None  # why either is missing, for the condition message


@dataclass(frozen=True)
class ObservedIssuer:
    account: str  # the AWS account the credentials belong to (sts:GetCallerIdentity)
    partition: str
    bucket: ObservedBucket | None  # None when the spec has no S3 discovery
    provider: ObservedProvider | None  # the provider whose URL is the issuer's host/path, if any
    cluster: ClusterKeys


@dataclass(frozen=True)
class Reachability:
    """The anonymous HTTPS fetch of both documents from the issuer URL, as STS makes it."""

    ok: bool
    message: str
    kids: tuple[str, ...] = ()  # the kids served at jwks_uri


# --- changes --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Change:
    """One write. ``action`` is the AWS API action it maps to (``s3:PutObject``,
    ``iam:AddClientIDToOpenIDConnectProvider``), ``target`` what it writes to, ``summary`` one line for
    ``plan``, ``diff`` optional readable detail."""

    action: str
    target: str
    summary: str
    diff: str = ""


@dataclass(frozen=True)
class CreateBucket(Change):
    bucket: str = ""
    region: str = ""
    tags: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class PutPublicAccessBlock(Change):
    bucket: str = ""
    block: PublicAccessBlock = field(default_factory=PublicAccessBlock)


@dataclass(frozen=True)
class PutBucketPolicy(Change):
    bucket: str = ""
    policy: JSON = field(default_factory=dict)


@dataclass(frozen=True)
class DeleteBucketPolicy(Change):
    bucket: str = ""


@dataclass(frozen=True)
class PutObject(Change):
    bucket: str = ""
    key: str = ""
    body: bytes = b""
    content_type: str = "application/json"
    cache_control: str = ""
    owner: str = ""


@dataclass(frozen=True)
class DeleteObject(Change):
    bucket: str = ""
    key: str = ""


@dataclass(frozen=True)
class DeleteBucket(Change):
    bucket: str = ""


@dataclass(frozen=True)
class CreateProvider(Change):
    url: str = ""  # https://...
    client_ids: tuple[str, ...] = ()
    thumbprints: tuple[str, ...] = ()
    tags: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class AddClientID(Change):
    provider_arn: str = ""
    client_id: str = ""


@dataclass(frozen=True)
class RemoveClientID(Change):
    provider_arn: str = ""
    client_id: str = ""


@dataclass(frozen=True)
class UpdateThumbprints(Change):
    provider_arn: str = ""
    thumbprints: tuple[str, ...] = ()


@dataclass(frozen=True)
class TagProvider(Change):
    provider_arn: str = ""
    tags: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class DeleteProvider(Change):
    provider_arn: str = ""


@dataclass(frozen=True)
class Plan:
    """The planner's answer: the changes in the order they must be made, and what it noticed."""

    changes: tuple[Change, ...]
    notes: tuple[str, ...] = ()  # one line each: things the user should know that are not changes
    desired_kids: tuple[str, ...] = ()  # the kids the published JWKS must hold
    blocked: str | None = None  # why nothing can be done (a terminal problem), else None

    @property
    def in_sync(self) -> bool:
        return not self.changes and self.blocked is None


# --- what one reconcile tells its front end -------------------------------------------------------

Retry = Literal["none", "backoff", "terminal"]


@dataclass(frozen=True)
class Event:
    """A Kubernetes Event to record on the object (only on condition transitions)."""

    type: Literal["Normal", "Warning"]
    reason: str
    message: str


@dataclass(frozen=True)
class Outcome:
    """The result of reconciling (or deleting) one object, for the controller and the CLI.

    ``status`` is the object's whole new ``.status`` (None: leave it alone, e.g. after deletion);
    ``retry`` says what the controller does next: ``none`` (resync later), ``backoff`` (a retryable
    error: throttling, 5xx, AccessDenied), ``terminal`` (nothing changes until the object does).
    For a deletion, ``done`` says the AWS side is cleaned up and the finalizer may go.
    """

    status: JSON | None
    applied: tuple[Change, ...] = ()
    events: tuple[Event, ...] = ()
    retry: Retry = "none"
    error: str | None = None
    done: bool = True
