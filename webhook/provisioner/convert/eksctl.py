"""eksctl ClusterConfig (``eksctl.io/v1alpha5``) ``iam.serviceAccounts`` entries turned into IRSARoles.

eksctl made each role through a CloudFormation stack ``eksctl-<cluster>-addon-iamserviceaccount-<ns>-<name>``
(``status.stackName`` when the config was written back by eksctl): the role is the stack's ``Role1``,
the ``attachPolicy`` document an inline policy named ``<stack>-Policy1``. The converted role lists that
inline policy under that name, so adopting the role keeps it instead of replacing it.

What does not carry over, each a warning naming the entry and the field:

* no ``roleName``: CloudFormation named the role (``...-Role1-<random>``), which the config does not
  record; ``status.roleARN`` does when eksctl wrote it back, and is used then;
* ``wellKnownPolicies``: eksctl expanded them into managed and inline policies of its own choosing,
  which an adopted role would lose unless they are listed;
* ``attachRoleARN``: eksctl did not make that role, only annotated the ServiceAccount: not converted;
* ``subjectPattern``: a wildcard in the ServiceAccount name, which our roles never trust: not converted;
* ``metadata.labels`` and ``metadata.annotations`` of the ServiceAccount (ours sets only the role-arn
  annotation), and ``iam.podIdentityAssociations`` (EKS Pod Identity, not IRSA).

``iam.withOIDC`` made the EKS cluster's OIDC provider, whose issuer URL is not in the config: the roles
trust ``--issuer-url`` (``aws eks describe-cluster ... cluster.identity.oidc.issuer``) or ``--issuer``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from webhook.core.arn import ROLE_ARN_RE
from webhook.oidc.errors import InputError
from webhook.provisioner.convert.common import (
    ADOPTION,
    Converted,
    Options,
    flag,
    issuer_fields,
    mapping,
    optional_string,
    our_object,
    string,
    string_map,
    strings,
    unknown_fields,
)
from webhook.provisioner.model import JSON
from webhook.provisioner.rolemodel import ROLE_KIND

API_VERSION = "eksctl.io/v1alpha5"
KIND = "ClusterConfig"
DEFAULT_NAMESPACE = "default"  # eksctl's default for an entry without metadata.namespace
ACCOUNT_FIELDS = (
    "metadata",
    "attachPolicyARNs",
    "wellKnownPolicies",
    "attachPolicy",
    "attachRoleARN",
    "permissionsBoundary",
    "status",
    "roleName",
    "roleOnly",
    "tags",
    "subjectPattern",
)
METADATA_FIELDS = ("name", "namespace", "labels", "annotations")
STATUS_FIELDS = ("roleARN", "stackName", "tags", "capabilities")
INLINE_POLICY_SUFFIX = "-Policy1"  # eksctl's AttachPolicy resource, named <stack>-Policy1 in IAM


def handles(obj: Mapping[str, Any]) -> bool:
    return obj.get("apiVersion") == API_VERSION and obj.get("kind") == KIND


def stack_name(cluster: str, namespace: str, name: str) -> str:
    """The CloudFormation stack eksctl made the role of one ServiceAccount entry with."""
    return f"eksctl-{cluster}-addon-iamserviceaccount-{namespace}-{name}"


def convert(obj: Mapping[str, Any], options: Options) -> Converted:
    """Every ``iam.serviceAccounts`` entry as an IRSARole, with a warning per field that does not carry over."""
    metadata = mapping(obj.get("metadata"), "the ClusterConfig's metadata")
    cluster = string(metadata.get("name"), "the ClusterConfig's metadata.name")
    who = f"ClusterConfig {cluster}"
    iam = mapping(obj.get("iam"), f"{who}: iam")
    objects: list[JSON] = []
    warnings: list[str] = []
    if iam.get("podIdentityAssociations"):
        warnings.append(f"{who}: iam.podIdentityAssociations are EKS Pod Identity, not IRSA: not converted")
    entries = iam.get("serviceAccounts") or []
    if not isinstance(entries, list):
        raise InputError(f"{who}: iam.serviceAccounts must be a list")
    if entries and not (options.issuer_url or options.issuer_ref):
        raise InputError(
            f"{who}: the cluster's issuer URL is not in a ClusterConfig: pass --issuer-url $(aws eks describe-cluster "
            f"--name {cluster} --query cluster.identity.oidc.issuer --output text), or --issuer NAME"
        )
    for index, entry in enumerate(entries):
        where = f"iam.serviceAccounts[{index}]"
        try:
            converted, notes = _entry(mapping(entry, where), where, cluster, who, options)
        except InputError as exc:
            message = str(exc)
            raise InputError(message if message.startswith(who) else f"{who}: {message}") from exc
        objects += converted
        warnings += notes
    return objects, warnings


def _entry(entry: Mapping[str, Any], where: str, cluster: str, who: str, options: Options) -> Converted:
    meta = mapping(entry.get("metadata"), f"{where}.metadata")
    name = string(meta.get("name"), f"{where}.metadata.name")
    namespace = optional_string(meta.get("namespace"), f"{where}.metadata.namespace") or DEFAULT_NAMESPACE
    who = f"{who} {where} ({namespace}/{name})"
    status = mapping(entry.get("status"), f"{where}.status")
    warnings = unknown_fields(entry, ACCOUNT_FIELDS, who, "")
    warnings += unknown_fields(meta, METADATA_FIELDS, who, "metadata")
    warnings += unknown_fields(status, STATUS_FIELDS, who, "status")
    if optional_string(entry.get("attachRoleARN"), f"{where}.attachRoleARN"):
        warnings.append(
            f"{who}: attachRoleARN: eksctl did not make that role, it only annotated the ServiceAccount: "
            "not converted (write an IRSARole for it by hand if irsa-webhook should manage it)"
        )
        return [], warnings
    if optional_string(entry.get("subjectPattern"), f"{where}.subjectPattern"):
        warnings.append(
            f"{who}: subjectPattern: the role trusts a wildcard ServiceAccount name, which an IRSARole never "
            "does: not converted (list the ServiceAccounts, or keep this role out of irsa-webhook)"
        )
        return [], warnings
    for field in ("labels", "annotations"):
        extra = [k for k in string_map(meta.get(field), f"{where}.metadata.{field}") if not k.endswith("/role-arn")]
        if extra:
            warnings.append(
                f"{who}: metadata.{field} {', '.join(sorted(extra))} not converted: an IRSARole sets only the "
                "role-arn annotation (an existing ServiceAccount keeps them; set them on it yourself otherwise)"
            )
    ours: JSON = issuer_fields(options, who)
    account: JSON = {"name": name}
    if not flag(entry.get("roleOnly"), f"{where}.roleOnly"):
        account["create"] = True  # eksctl created the ServiceAccount too
    ours["serviceAccounts"] = [account]
    ours.update(_role_name(entry, status, where))
    if "roleName" not in ours:
        warnings.append(
            f"{who}: no roleName, and CloudFormation named the role: set spec.roleName to the name in the ROLE ARN "
            f"of `eksctl get iamserviceaccount --cluster {cluster} --namespace {namespace} --name {name}`, or a "
            "new role is made instead of adopting eksctl's"
        )
    boundary = optional_string(entry.get("permissionsBoundary"), f"{where}.permissionsBoundary")
    if boundary:
        ours["permissionsBoundary"] = boundary
    managed = strings(entry.get("attachPolicyARNs"), f"{where}.attachPolicyARNs")
    if managed:
        ours["managedPolicyARNs"] = managed
    document = mapping(entry.get("attachPolicy"), f"{where}.attachPolicy")
    if document:
        stack = optional_string(status.get("stackName"), f"{where}.status.stackName")
        policy_name = (stack or stack_name(cluster, namespace, name)) + INLINE_POLICY_SUFFIX
        ours["inlinePolicies"] = {policy_name: dict(document)}
    tags = string_map(entry.get("tags"), f"{where}.tags")
    if tags:
        ours["tags"] = tags
    well_known = [k for k, on in mapping(entry.get("wellKnownPolicies"), f"{where}.wellKnownPolicies").items() if on]
    if well_known:
        warnings.append(
            f"{who}: wellKnownPolicies {', '.join(well_known)} not converted: list the policies eksctl attached "
            "for them (aws iam list-attached-role-policies, list-role-policies) in managedPolicyARNs and "
            "inlinePolicies, or adopting the role removes them"
        )
    ours["adoption"] = ADOPTION
    ours["deletionPolicy"] = options.deletion_policy
    source = f"eksctl {who}"
    return [our_object(ROLE_KIND, name, namespace, source, ours)], warnings


def _role_name(entry: Mapping[str, Any], status: Mapping[str, Any], where: str) -> JSON:
    """``roleName`` (and ``path``) of the role eksctl made: the config's, else the one in ``status.roleARN``;
    empty when neither says (CloudFormation named the role)."""
    role_name = optional_string(entry.get("roleName"), f"{where}.roleName")
    if role_name:
        return {"roleName": role_name}
    arn = optional_string(status.get("roleARN"), f"{where}.status.roleARN")
    if arn is None:
        return {}
    if not ROLE_ARN_RE.fullmatch(arn):
        raise InputError(f"{where}.status.roleARN {arn!r} is not a role ARN")
    *path, name = arn.split(":role/", 1)[1].split("/")
    found: JSON = {"roleName": name}
    if path:
        found["path"] = "/" + "/".join(path) + "/"
    return found
