"""Which AWS API operation a request is, and which IAM actions it needs: what a permissions policy
must allow for the code under test to make it.

- query-protocol services (IAM, STS): the ``Action`` parameter (query string or form body); a
  ``Create<Thing>`` carrying ``Tags`` also needs ``Tag<Thing>`` (IAM authorizes tagging on create);
- JSON services: the ``X-Amz-Target`` header (``Prefix.Operation``);
- S3 (REST): method, whether the path names a bucket or an object, and the sub-resource in the query
  (:data:`S3_BUCKET`, :data:`S3_OBJECT`); IAM action names differ from operation names where AWS says
  so (HeadBucket and ListObjects need s3:ListBucket, HeadObject s3:GetObject, the public access block
  s3:Get/PutBucketPublicAccessBlock, DeleteBucketTagging s3:PutBucketTagging, ...); an upload that
  sets an ACL or tags also needs s3:PutObjectAcl or s3:PutObjectTagging.

The service comes from the SigV4 credential scope (header or presigned query). A request this module
cannot name is reported as ``<service>:?<METHOD> <path shape>`` so that a permissions test fails on it
instead of missing it.
"""

from __future__ import annotations

import re
import urllib.parse
from collections.abc import Mapping
from dataclasses import dataclass

# Unsigned calls: STS's two federation actions (the token is the credential).
_UNSIGNED_ACTIONS = {"AssumeRoleWithWebIdentity": "sts", "AssumeRoleWithSAML": "sts"}
_SCOPE = re.compile(r"Credential=[^/,\s]+/\d{8}/[^/]+/([^/]+)/aws4_request")

# (method, sub-resource or "" for none) -> (operation, IAM actions), for /<bucket> paths.
S3_BUCKET: dict[tuple[str, str], tuple[str, tuple[str, ...]]] = {
    ("PUT", ""): ("CreateBucket", ("s3:CreateBucket",)),
    ("DELETE", ""): ("DeleteBucket", ("s3:DeleteBucket",)),
    ("HEAD", ""): ("HeadBucket", ("s3:ListBucket",)),
    ("GET", ""): ("ListObjects", ("s3:ListBucket",)),
    ("GET", "list-type"): ("ListObjectsV2", ("s3:ListBucket",)),
    ("GET", "versions"): ("ListObjectVersions", ("s3:ListBucketVersions",)),
    ("GET", "uploads"): ("ListMultipartUploads", ("s3:ListBucketMultipartUploads",)),
    ("GET", "location"): ("GetBucketLocation", ("s3:GetBucketLocation",)),
    ("GET", "policy"): ("GetBucketPolicy", ("s3:GetBucketPolicy",)),
    ("PUT", "policy"): ("PutBucketPolicy", ("s3:PutBucketPolicy",)),
    ("DELETE", "policy"): ("DeleteBucketPolicy", ("s3:DeleteBucketPolicy",)),
    ("GET", "policyStatus"): ("GetBucketPolicyStatus", ("s3:GetBucketPolicyStatus",)),
    ("GET", "publicAccessBlock"): ("GetPublicAccessBlock", ("s3:GetBucketPublicAccessBlock",)),
    ("PUT", "publicAccessBlock"): ("PutPublicAccessBlock", ("s3:PutBucketPublicAccessBlock",)),
    ("DELETE", "publicAccessBlock"): ("DeletePublicAccessBlock", ("s3:PutBucketPublicAccessBlock",)),
    ("GET", "tagging"): ("GetBucketTagging", ("s3:GetBucketTagging",)),
    ("PUT", "tagging"): ("PutBucketTagging", ("s3:PutBucketTagging",)),
    ("DELETE", "tagging"): ("DeleteBucketTagging", ("s3:PutBucketTagging",)),
    ("GET", "acl"): ("GetBucketAcl", ("s3:GetBucketAcl",)),
    ("PUT", "acl"): ("PutBucketAcl", ("s3:PutBucketAcl",)),
    ("GET", "ownershipControls"): ("GetBucketOwnershipControls", ("s3:GetBucketOwnershipControls",)),
    ("PUT", "ownershipControls"): ("PutBucketOwnershipControls", ("s3:PutBucketOwnershipControls",)),
    ("DELETE", "ownershipControls"): ("DeleteBucketOwnershipControls", ("s3:PutBucketOwnershipControls",)),
    ("GET", "versioning"): ("GetBucketVersioning", ("s3:GetBucketVersioning",)),
    ("PUT", "versioning"): ("PutBucketVersioning", ("s3:PutBucketVersioning",)),
    ("GET", "encryption"): ("GetBucketEncryption", ("s3:GetEncryptionConfiguration",)),
    ("PUT", "encryption"): ("PutBucketEncryption", ("s3:PutEncryptionConfiguration",)),
    ("DELETE", "encryption"): ("DeleteBucketEncryption", ("s3:PutEncryptionConfiguration",)),
    ("GET", "cors"): ("GetBucketCors", ("s3:GetBucketCORS",)),
    ("PUT", "cors"): ("PutBucketCors", ("s3:PutBucketCORS",)),
    ("DELETE", "cors"): ("DeleteBucketCors", ("s3:PutBucketCORS",)),
    ("GET", "lifecycle"): ("GetBucketLifecycleConfiguration", ("s3:GetLifecycleConfiguration",)),
    ("PUT", "lifecycle"): ("PutBucketLifecycleConfiguration", ("s3:PutLifecycleConfiguration",)),
    ("DELETE", "lifecycle"): ("DeleteBucketLifecycle", ("s3:PutLifecycleConfiguration",)),
    ("POST", "delete"): ("DeleteObjects", ("s3:DeleteObject",)),
}
# The same for /<bucket>/<key> paths.
S3_OBJECT: dict[tuple[str, str], tuple[str, tuple[str, ...]]] = {
    ("GET", ""): ("GetObject", ("s3:GetObject",)),
    ("HEAD", ""): ("HeadObject", ("s3:GetObject",)),
    ("PUT", ""): ("PutObject", ("s3:PutObject",)),
    ("DELETE", ""): ("DeleteObject", ("s3:DeleteObject",)),
    ("GET", "tagging"): ("GetObjectTagging", ("s3:GetObjectTagging",)),
    ("PUT", "tagging"): ("PutObjectTagging", ("s3:PutObjectTagging",)),
    ("DELETE", "tagging"): ("DeleteObjectTagging", ("s3:DeleteObjectTagging",)),
    ("GET", "acl"): ("GetObjectAcl", ("s3:GetObjectAcl",)),
    ("PUT", "acl"): ("PutObjectAcl", ("s3:PutObjectAcl",)),
    ("GET", "attributes"): ("GetObjectAttributes", ("s3:GetObjectAttributes",)),
    ("POST", "uploads"): ("CreateMultipartUpload", ("s3:PutObject",)),
    ("PUT", "uploadId"): ("UploadPart", ("s3:PutObject",)),
    ("POST", "uploadId"): ("CompleteMultipartUpload", ("s3:PutObject",)),
    ("DELETE", "uploadId"): ("AbortMultipartUpload", ("s3:AbortMultipartUpload",)),
    ("GET", "uploadId"): ("ListParts", ("s3:ListMultipartUploadParts",)),
}
# Query parameters that are arguments, not sub-resources.
_S3_ARGUMENTS = frozenset(
    {"versionId", "partNumber", "prefix", "delimiter", "marker", "max-keys", "encoding-type", "x-id"}
    | {"continuation-token", "fetch-owner", "start-after", "key-marker", "version-id-marker", "upload-id-marker"}
    | {"max-uploads", "max-parts", "part-number-marker", "response-content-type", "response-cache-control"}
)


@dataclass(frozen=True)
class Classified:
    service: str
    operation: str
    actions: tuple[str, ...]


def service_of(headers: Mapping[str, str], query: Mapping[str, list[str]], action: str | None) -> str:
    lowered = {name.lower(): value for name, value in headers.items()}
    match = _SCOPE.search(lowered.get("authorization", ""))
    if match is None and "X-Amz-Credential" in query:
        match = _SCOPE.search("Credential=" + query["X-Amz-Credential"][0])
    if match is not None:
        return match.group(1)
    target = lowered.get("x-amz-target")
    if target:
        return target.split(".", 1)[0].split("_", 1)[0].lower()
    return _UNSIGNED_ACTIONS.get(action or "", "unknown")


def classify(method: str, path: str, headers: Mapping[str, str], body: bytes) -> Classified:
    """The operation ``method path`` (with ``headers`` and ``body``) is, and the IAM actions it needs."""
    split = urllib.parse.urlsplit(path)
    query = urllib.parse.parse_qs(split.query, keep_blank_values=True)
    params = {name: values[0] for name, values in query.items()}
    content_type = {n.lower(): v for n, v in headers.items()}.get("content-type", "")
    if content_type.startswith("application/x-www-form-urlencoded"):
        params.update(urllib.parse.parse_qsl(body.decode("utf-8", "replace"), keep_blank_values=True))
    action = params.get("Action")
    service = service_of(headers, query, action)
    target = {n.lower(): v for n, v in headers.items()}.get("x-amz-target")
    if service == "s3":
        return _s3(method, split.path, query, headers)
    if action:
        actions = [f"{service}:{action}"]
        if any(name.startswith("Tags.member.") for name in params):
            if service == "sts":
                actions.append("sts:TagSession")
            elif action.startswith("Create"):
                actions.append(f"{service}:Tag{action.removeprefix('Create')}")
        return Classified(service, action, tuple(actions))
    if target:
        operation = target.rsplit(".", 1)[-1]
        return Classified(service, operation, (f"{service}:{operation}",))
    return Classified(service, f"?{method} {split.path}", (f"{service}:?{method} {split.path}",))


def _s3(method: str, path: str, query: Mapping[str, list[str]], headers: Mapping[str, str]) -> Classified:
    bucket, _, key = path.lstrip("/").partition("/")
    if not bucket:
        if method == "GET":
            return Classified("s3", "ListBuckets", ("s3:ListAllMyBuckets",))
        return Classified("s3", f"?{method} /", (f"s3:?{method} /",))
    subresources = sorted(name for name in query if name not in _S3_ARGUMENTS and not name.startswith("X-Amz-"))
    sub = subresources[0] if len(subresources) == 1 else "" if not subresources else "+".join(subresources)
    table, shape = (S3_OBJECT, "/{Bucket}/{Key}") if key else (S3_BUCKET, "/{Bucket}")
    found = table.get((method, sub))
    if found is None:
        unknown = f"?{method} {shape}" + (f"?{sub}" if sub else "")
        return Classified("s3", unknown, (f"s3:{unknown}",))
    operation, actions = found
    lowered = {name.lower(): value for name, value in headers.items()}
    extra: list[str] = []
    if key and sub == "":
        if "versionId" in query and method in ("GET", "HEAD", "DELETE"):
            actions = (actions[0] + "Version",)  # s3:GetObjectVersion, s3:DeleteObjectVersion
        if method == "PUT" and "x-amz-copy-source" in lowered:
            operation, actions = "CopyObject", ("s3:PutObject", "s3:GetObject")
        if method in ("PUT", "POST") and ("x-amz-acl" in lowered or any(h.startswith("x-amz-grant-") for h in lowered)):
            extra.append("s3:PutObjectAcl")
        if method in ("PUT", "POST") and "x-amz-tagging" in lowered:
            extra.append("s3:PutObjectTagging")
    return Classified("s3", operation, tuple(dict.fromkeys([*actions, *extra])))
