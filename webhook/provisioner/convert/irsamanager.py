"""irsa-manager (github.com/kkb0318/irsa-manager) objects turned into ours.

* ``IRSASetup`` → an IRSAIssuer of the same name. In ``selfhosted`` mode (the default) irsa-manager
  published the discovery document and JWKS at the root of ``spec.discovery.s3.bucketName`` and used
  the path-style URL ``https://s3-<region>.amazonaws.com/<bucket>`` as the issuer (kube-apiserver's
  ``--service-account-issuer`` and the OIDC provider say exactly that), so the converted issuer names
  that URL explicitly: the URL derived from the bucket would be another issuer. The keys come from
  kube-apiserver (the default source), which verifies with the key irsa-manager generated. In ``eks``
  mode ``spec.iamOIDCProvider`` is the provider's host and path: the issuer URL is that, with https.
* ``IRSA`` → an IRSARole in the one namespace it binds, or a ClusterIRSARole when it binds several.
  ``spec.serviceAccount`` is one name in a list of namespaces; irsa-manager created or annotated each
  of those ServiceAccounts, so each is bound with ``create: true`` (created only if missing; ours never
  deletes one it did not create). ``spec.iamPolicies`` are full ARNs or AWS managed policy names,
  which irsa-manager completed to ``arn:aws:iam::aws:policy/<name>``.

``cleanup`` (irsa-manager deleted what it made when the object went) does not carry over: the
converted objects say the ``deletionPolicy`` of the options. Status and metadata other than the name
describe the old object, not the role, and are not converted.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from webhook.oidc.errors import InputError
from webhook.provisioner.convert.common import (
    ADOPTION,
    Converted,
    Options,
    flag,
    issuer_fields,
    mapping,
    our_object,
    string,
    strings,
    unknown_fields,
)
from webhook.provisioner.model import ISSUER_KIND, JSON
from webhook.provisioner.rolemodel import CLUSTER_ROLE_KIND, ROLE_KIND

API_GROUP = "irsa-manager.kkb0318.github.io"
IRSA_KIND = "IRSA"
SETUP_KIND = "IRSASetup"
KINDS = (IRSA_KIND, SETUP_KIND)
SETUP_FIELDS = ("cleanup", "mode", "discovery", "iamOIDCProvider")
IRSA_FIELDS = ("cleanup", "serviceAccount", "iamRole", "iamPolicies")
SERVICE_ACCOUNT_FIELDS = ("name", "namespaces")
ROLE_FIELDS = ("name",)
MODES = ("selfhosted", "eks")
# irsa-manager completes a policy that is not an ARN into an AWS managed policy of the aws partition.
MANAGED_POLICY_PREFIX = "arn:aws:iam::aws:policy/"
_WILDCARDS = "*?"


def handles(obj: Mapping[str, Any]) -> bool:
    return str(obj.get("apiVersion", "")).startswith(f"{API_GROUP}/") and obj.get("kind") in KINDS


def convert(obj: Mapping[str, Any], options: Options) -> Converted:
    """An irsa-manager IRSA or IRSASetup as our objects, with a warning per field that does not carry over."""
    kind = obj.get("kind")
    metadata = mapping(obj.get("metadata"), f"the {kind}'s metadata")
    name = string(metadata.get("name"), f"the {kind}'s metadata.name")
    namespace = metadata.get("namespace")
    who = f"{kind} {namespace}/{name}" if namespace else f"{kind} {name}"
    spec = mapping(obj.get("spec"), f"{who}: spec")
    try:
        if kind == SETUP_KIND:
            return _setup(spec, name, who, options)
        return _irsa(spec, name, who, options)
    except InputError as exc:
        message = str(exc)
        raise InputError(message if message.startswith(who) else f"{who}: {message}") from exc


def _setup(spec: Mapping[str, Any], name: str, who: str, options: Options) -> Converted:
    warnings = unknown_fields(spec, SETUP_FIELDS, who, "spec")
    flag(spec.get("cleanup"), "spec.cleanup")
    mode = spec.get("mode") or "selfhosted"
    if mode not in MODES:
        raise InputError(f"spec.mode is {mode!r}: irsa-manager knows {' and '.join(MODES)}")
    ours: JSON
    if mode == "eks":
        provider = string(spec.get("iamOIDCProvider"), "spec.iamOIDCProvider")
        ours = {"issuerURL": f"https://{provider.removeprefix('https://')}"}
    else:
        s3 = mapping(mapping(spec.get("discovery"), "spec.discovery").get("s3"), "spec.discovery.s3")
        warnings += unknown_fields(mapping(spec.get("discovery"), "spec.discovery"), ("s3",), who, "spec.discovery")
        warnings += unknown_fields(s3, ("region", "bucketName"), who, "spec.discovery.s3")
        region = string(s3.get("region"), "spec.discovery.s3.region")
        bucket = string(s3.get("bucketName"), "spec.discovery.s3.bucketName")
        ours = {
            "issuerURL": f"https://s3-{region}.amazonaws.com/{bucket}",
            "discovery": {"s3": {"bucket": bucket, "region": region}},
        }
    ours["deletionPolicy"] = options.deletion_policy
    return [our_object(ISSUER_KIND, name, None, f"irsa-manager {who}", ours)], warnings


def _irsa(spec: Mapping[str, Any], name: str, who: str, options: Options) -> Converted:
    warnings = unknown_fields(spec, IRSA_FIELDS, who, "spec")
    flag(spec.get("cleanup"), "spec.cleanup")
    account = mapping(spec.get("serviceAccount"), "spec.serviceAccount")
    role = mapping(spec.get("iamRole"), "spec.iamRole")
    warnings += unknown_fields(account, SERVICE_ACCOUNT_FIELDS, who, "spec.serviceAccount")
    warnings += unknown_fields(role, ROLE_FIELDS, who, "spec.iamRole")
    role_name = string(role.get("name"), "spec.iamRole.name")
    account_name = string(account.get("name"), "spec.serviceAccount.name")
    namespaces: list[str] = []
    for index, listed in enumerate(strings(account.get("namespaces"), "spec.serviceAccount.namespaces")):
        if any(ch in listed for ch in _WILDCARDS):
            warnings.append(
                f"{who}: spec.serviceAccount.namespaces[{index}] {listed!r} is not converted: irsa-manager "
                "matched it literally (StringEquals), so it bound no ServiceAccount"
            )
        elif listed not in namespaces:
            namespaces.append(listed)
    if not namespaces:
        warnings.append(f"{who}: spec.serviceAccount.namespaces names no namespace: it binds nothing, not converted")
        return [], warnings
    ours: JSON = issuer_fields(options, who)
    namespace: str | None = None  # a ClusterIRSARole has none
    if len(namespaces) == 1:
        kind, namespace = ROLE_KIND, namespaces[0]
        ours["serviceAccounts"] = [{"name": account_name, "create": True}]
    else:
        kind = CLUSTER_ROLE_KIND
        ours["serviceAccounts"] = [{"namespace": ns, "name": account_name, "create": True} for ns in namespaces]
    ours["roleName"] = role_name
    policies = strings(spec.get("iamPolicies"), "spec.iamPolicies")
    if policies:
        ours["managedPolicyARNs"] = [p if p.startswith("arn:") else MANAGED_POLICY_PREFIX + p for p in policies]
    ours["adoption"] = ADOPTION
    ours["deletionPolicy"] = options.deletion_policy
    return [our_object(kind, name, namespace, f"irsa-manager {who}", ours)], warnings
