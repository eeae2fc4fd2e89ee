"""An IRSAIssuer object, read once and checked: the raw dict (from YAML or the API) becomes an IssuerSpec.

Every mistake is an :class:`InputError` of one line that names the field (``spec.discovery.s3.bucket``)
and says what to write instead. Unknown fields are refused, listing the known ones: a typo such as
``clientIds`` must not silently fall back to a default the user did not ask for.

What is refused and why, beyond the field shapes:

* a bucket name with dots when the issuer URL is derived from it: the virtual-hosted URL
  ``https://a.b.s3.<region>.amazonaws.com`` does not match S3's wildcard TLS certificate, so STS
  could never fetch the documents;
* a prefix with characters outside the URL-unreserved set: the prefix is both the object key and
  the issuer URL's path, and anything that needs percent-encoding makes the two differ;
* a private key in ``spec.keys.publicKeys``: a custom resource is readable by anyone who can list
  it and is stored unencrypted in etcd; key files read by the CLI may be private keys (only the
  public half is ever used), as kube-apiserver's ``--service-account-key-file`` may;
* keys (or ``source: Static``) without ``spec.discovery.s3``: nothing would publish them.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Callable, Mapping
from typing import Any, cast
from urllib.parse import urlsplit

from webhook.core.arn import REGION_RE, partition_for_region
from webhook.core.settings import DEFAULT_AUDIENCE
from webhook.oidc.errors import InputError
from webhook.oidc.issuer import validate_issuer
from webhook.oidc.jwks import key_id
from webhook.oidc.keys import load_public_keys, public_key_pem
from webhook.provisioner.fields import generation, known, mapping, string, strings, unique
from webhook.provisioner.model import (
    API_GROUP,
    API_VERSION,
    ISSUER_KIND,
    DeletionPolicy,
    IssuerSpec,
    KeySource,
    S3Discovery,
    owner_value,
)

TOP_LEVEL_FIELDS = ("apiVersion", "kind", "metadata", "spec", "status")
SPEC_FIELDS = ("issuerURL", "discovery", "keys", "oidcProvider", "deletionPolicy")
DISCOVERY_FIELDS = ("s3",)
S3_FIELDS = ("bucket", "region", "prefix", "createBucket")
KEYS_FIELDS = ("source", "publicKeys", "publicKeyFiles")
PROVIDER_FIELDS = ("clientIDs", "thumbprints")
KEY_SOURCES: tuple[KeySource, ...] = ("APIServer", "Static")
DELETION_POLICIES: tuple[DeletionPolicy, ...] = ("Retain", "Delete")

# S3's rules for new bucket names (general purpose buckets): 3-63 characters of lowercase letters,
# digits, dots and hyphens, starting and ending with a letter or digit, no two adjacent dots, not
# shaped like an IPv4 address.
_BUCKET_RE = re.compile(r"[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]")
# RFC 3986 unreserved characters: a prefix segment made of them is the same string as a URL path and as an S3 key.
_SEGMENT_RE = re.compile(r"[A-Za-z0-9._~-]+")
_THUMBPRINT_RE = re.compile(r"[0-9A-Fa-f]{40}")
# IAM's limits on CreateOpenIDConnectProvider: client IDs of 1-255 characters, at most 5 thumbprints.
MAX_CLIENT_ID = 255
MAX_THUMBPRINTS = 5
# The DNS suffix of S3's virtual-hosted endpoints per partition (botocore's partitions.json).
_DNS_SUFFIX = {
    "aws-cn": "amazonaws.com.cn",
    "aws-iso": "c2s.ic.gov",
    "aws-iso-b": "sc2s.sgov.gov",
    "aws-eusc": "amazonaws.eu",
}

ReadFile = Callable[[str], str]
NO_FILES_MESSAGE = "publicKeyFiles are read by `irsa-webhook provision` only; put the PEM in keys.publicKeys"


def read_issuer(obj: Mapping[str, Any], cluster: str, *, read_file: ReadFile | None = None) -> IssuerSpec:
    """The IRSAIssuer ``obj`` checked and normalised; ``read_file`` reads ``publicKeyFiles`` (CLI only)."""
    if not isinstance(obj, Mapping):
        raise InputError(f"an {ISSUER_KIND} must be a mapping, not {type(obj).__name__}")
    name = _name(obj)
    try:
        return _read(obj, name, cluster, read_file)
    except InputError as exc:
        raise InputError(f"{ISSUER_KIND} {name}: {exc}") from exc


def derived_issuer_url(s3: S3Discovery) -> str:
    """``https://<bucket>.s3.<region>.<dns suffix>`` plus ``/<prefix>`` when there is one."""
    suffix = _DNS_SUFFIX.get(partition_for_region(s3.region), "amazonaws.com")
    url = f"https://{s3.bucket}.s3.{s3.region}.{suffix}"
    return f"{url}/{s3.prefix}" if s3.prefix else url


def _name(obj: Mapping[str, Any]) -> str:
    api_version = f"{API_GROUP}/{API_VERSION}"
    if obj.get("apiVersion") != api_version:
        raise InputError(f"apiVersion is {obj.get('apiVersion')!r}: an {ISSUER_KIND} needs apiVersion: {api_version}")
    if obj.get("kind") != ISSUER_KIND:
        raise InputError(f"kind is {obj.get('kind')!r}, expected {ISSUER_KIND}")
    metadata = obj.get("metadata")
    name = metadata.get("name") if isinstance(metadata, Mapping) else None
    if not isinstance(name, str) or not name:
        raise InputError(f"the {ISSUER_KIND} has no metadata.name: give it one")
    return name


def _read(obj: Mapping[str, Any], name: str, cluster: str, read_file: ReadFile | None) -> IssuerSpec:
    if not cluster:
        raise InputError("the cluster name is empty: pass --cluster-name (it goes into the owner tag)")
    known(obj, TOP_LEVEL_FIELDS, "the object")
    spec = mapping(obj.get("spec"), "spec")
    known(spec, SPEC_FIELDS, "spec")
    s3 = _s3(mapping(spec.get("discovery"), "spec.discovery"), "issuerURL" not in spec)
    issuer_url = _issuer_url(spec, s3)
    key_source, public_keys = _keys(mapping(spec.get("keys"), "spec.keys"), s3, read_file)
    client_ids, thumbprints = _provider(mapping(spec.get("oidcProvider"), "spec.oidcProvider"))
    deletion_policy = spec.get("deletionPolicy", "Retain")
    if deletion_policy not in DELETION_POLICIES:
        raise InputError(f"spec.deletionPolicy is {deletion_policy!r}: use {' or '.join(DELETION_POLICIES)}")
    return IssuerSpec(
        name=name,
        generation=generation(obj["metadata"]),
        owner=owner_value(cluster, ISSUER_KIND, name),
        issuer_url=issuer_url,
        s3=s3,
        key_source=key_source,
        public_keys=public_keys,
        client_ids=client_ids,
        thumbprints=thumbprints,
        deletion_policy=cast(DeletionPolicy, deletion_policy),
    )


def _s3(discovery: Mapping[str, Any], derived: bool) -> S3Discovery | None:
    known(discovery, DISCOVERY_FIELDS, "spec.discovery")
    if discovery.get("s3") is None:
        return None
    s3 = mapping(discovery["s3"], "spec.discovery.s3")
    known(s3, S3_FIELDS, "spec.discovery.s3")
    bucket = _bucket(string(s3.get("bucket"), "spec.discovery.s3.bucket"), derived)
    region = string(s3.get("region"), "spec.discovery.s3.region")
    if not REGION_RE.fullmatch(region):
        raise InputError(f"spec.discovery.s3.region {region!r} is not an AWS region name (like us-east-1)")
    create = s3.get("createBucket", False)
    if not isinstance(create, bool):
        raise InputError(f"spec.discovery.s3.createBucket is {create!r}: use true or false")
    return S3Discovery(bucket=bucket, region=region, prefix=_prefix(s3.get("prefix", "")), create_bucket=create)


def _bucket(bucket: str, derived: bool) -> str:
    where = "spec.discovery.s3.bucket"
    if not _BUCKET_RE.fullmatch(bucket) or ".." in bucket or _is_ipv4(bucket):
        raise InputError(
            f"{where} {bucket!r} is not a valid S3 bucket name: use 3-63 lowercase letters, digits, "
            "hyphens and dots, starting and ending with a letter or digit"
        )
    if derived and "." in bucket:
        raise InputError(
            f"{where} {bucket!r} contains dots, which break the TLS certificate of the derived issuer URL: "
            "use a bucket name without dots, or set spec.issuerURL to a URL you serve it under"
        )
    return bucket


def _is_ipv4(name: str) -> bool:
    try:
        ipaddress.IPv4Address(name)
    except ValueError:
        return False
    return True


def _prefix(value: object) -> str:
    if value is None:
        return ""
    if not isinstance(value, str):
        raise InputError("spec.discovery.s3.prefix must be a string")
    prefix = value.strip("/")
    if not prefix:
        return ""
    for segment in prefix.split("/"):
        if not segment or segment in (".", ".."):
            raise InputError(f"spec.discovery.s3.prefix {value!r} has an empty, '.' or '..' segment: write it as a/b")
        if not _SEGMENT_RE.fullmatch(segment):
            raise InputError(
                f"spec.discovery.s3.prefix {value!r}: use only letters, digits and - . _ ~ "
                "(the prefix is also the issuer URL's path, which must not need percent-encoding)"
            )
    return prefix


def _issuer_url(spec: Mapping[str, Any], s3: S3Discovery | None) -> str:
    if "issuerURL" not in spec:
        if s3 is None:
            raise InputError("spec needs issuerURL, or discovery.s3 to publish to (the issuer URL is then derived)")
        return derived_issuer_url(s3)
    url = validate_issuer(string(spec["issuerURL"], "spec.issuerURL"), "spec.issuerURL")
    if s3 is not None:
        # An issuer URL on the bucket's own endpoint must name the same prefix, or STS would fetch
        # documents from a path nothing is published to.
        derived = urlsplit(derived_issuer_url(s3))
        given = urlsplit(url)
        if given.netloc == derived.netloc and given.path != derived.path:
            raise InputError(
                f"spec.issuerURL {url!r} is on bucket {s3.bucket} but its path is not the prefix "
                f"{s3.prefix!r}: make them agree (or leave issuerURL out to derive it)"
            )
    return url


def _keys(
    keys: Mapping[str, Any], s3: S3Discovery | None, read_file: ReadFile | None
) -> tuple[KeySource, tuple[str, ...]]:
    known(keys, KEYS_FIELDS, "spec.keys")
    source = keys.get("source", "APIServer")
    if source not in KEY_SOURCES:
        raise InputError(f"spec.keys.source is {source!r}: use {' or '.join(KEY_SOURCES)}")
    pems: dict[str, str] = {}  # kid -> public PEM, in the order given
    for index, text in enumerate(strings(keys.get("publicKeys", []), "spec.keys.publicKeys")):
        where = f"spec.keys.publicKeys[{index}]"
        for loaded in load_public_keys(text.encode(), where):
            if loaded.from_private_key:
                raise InputError(
                    f"{where} is a private key: a private key must never be stored in a custom resource; "
                    "put its public key there (openssl pkey -pubout)"
                )
            pems.setdefault(key_id(loaded.key), public_key_pem(loaded.key).decode())
    files = strings(keys.get("publicKeyFiles", []), "spec.keys.publicKeyFiles")
    if files and read_file is None:
        raise InputError(NO_FILES_MESSAGE)
    for path in files:
        assert read_file is not None  # checked just above; narrows the type
        for loaded in load_public_keys(read_file(path).encode(), path):
            pems.setdefault(key_id(loaded.key), public_key_pem(loaded.key).decode())
    if s3 is None and (pems or source == "Static"):
        raise InputError("spec.keys gives keys but there is no spec.discovery.s3 to publish them to: add one")
    if source == "Static" and not pems:
        raise InputError("spec.keys.source is Static but no key is given: add spec.keys.publicKeys")
    return cast(KeySource, source), tuple(pems.values())


def _provider(provider: Mapping[str, Any]) -> tuple[tuple[str, ...], tuple[str, ...]]:
    known(provider, PROVIDER_FIELDS, "spec.oidcProvider")
    client_ids = strings(provider.get("clientIDs", [DEFAULT_AUDIENCE]), "spec.oidcProvider.clientIDs")
    if not client_ids:
        raise InputError(f"spec.oidcProvider.clientIDs is empty: list at least one (usually {DEFAULT_AUDIENCE})")
    for client_id in client_ids:
        if len(client_id) > MAX_CLIENT_ID:
            raise InputError(f"spec.oidcProvider.clientIDs: {client_id[:40]!r}... is longer than {MAX_CLIENT_ID}")
    unique(client_ids, "spec.oidcProvider.clientIDs")
    thumbprints = [t.lower() for t in strings(provider.get("thumbprints", []), "spec.oidcProvider.thumbprints")]
    for thumbprint in thumbprints:
        if not _THUMBPRINT_RE.fullmatch(thumbprint):
            raise InputError(
                f"spec.oidcProvider.thumbprints: {thumbprint!r} is not 40 hex characters (a SHA-1 fingerprint)"
            )
    if len(thumbprints) > MAX_THUMBPRINTS:
        raise InputError(f"spec.oidcProvider.thumbprints has {len(thumbprints)} entries: IAM allows {MAX_THUMBPRINTS}")
    unique(thumbprints, "spec.oidcProvider.thumbprints")
    return tuple(client_ids), tuple(thumbprints)
