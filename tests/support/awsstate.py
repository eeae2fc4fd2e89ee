"""AWS state for the provisioner's tests: an issuer spec to observe or apply, the documents and
policies of a workload role, and plain boto3 clients that set up or read back what is in moto without
going through the code under test.

The plain clients use boto3's standard chain as the environment has it (the ``moto`` fixture points
it at the moto server), path-style S3 addressing, and no tally or rate limit of ours.
"""

from __future__ import annotations

import json
from typing import Any

import boto3
from botocore.config import Config

from webhook.oidc.trustpolicy import ServiceAccountRef, trust_policy
from webhook.provisioner.model import ISSUER_KIND, IssuerSpec, S3Discovery, owner_value

CLUSTER = "test-cluster"
NAME = "main"
OWNER = owner_value(CLUSTER, ISSUER_KIND, NAME)
BUCKET = "irsa-test-issuer"
PREFIX = "cluster-a"


def issuer_spec(
    *,
    bucket: str = BUCKET,
    region: str = "us-east-1",
    prefix: str = PREFIX,
    issuer_url: str | None = None,
    s3: bool = True,
    create_bucket: bool = True,
    client_ids: tuple[str, ...] = ("sts.amazonaws.com",),
    thumbprints: tuple[str, ...] = (),
) -> IssuerSpec:
    """An IRSAIssuer as the spec reader would return it; the issuer URL derived from the bucket unless given."""
    derived = f"https://{bucket}.s3.{region}.amazonaws.com" + (f"/{prefix}" if prefix else "")
    return IssuerSpec(
        name=NAME,
        generation=1,
        owner=OWNER,
        issuer_url=issuer_url or derived,
        s3=S3Discovery(bucket=bucket, region=region, prefix=prefix, create_bucket=create_bucket) if s3 else None,
        key_source="APIServer",
        public_keys=(),
        client_ids=client_ids,
        thumbprints=thumbprints,
        deletion_policy="Retain",
    )


def raw_s3(region: str = "us-east-1") -> Any:
    """A plain boto3 S3 client of ``region`` (path style: the endpoint is moto on 127.0.0.1)."""
    return boto3.client("s3", region_name=region, config=Config(s3={"addressing_style": "path"}))


def raw_iam() -> Any:
    return boto3.client("iam", region_name="us-east-1")


def make_bucket(bucket: str, region: str = "us-east-1") -> Any:
    """Create ``bucket`` in ``region`` with a plain client, and return that client."""
    client = raw_s3(region)
    if region == "us-east-1":
        client.create_bucket(Bucket=bucket)
    else:
        client.create_bucket(Bucket=bucket, CreateBucketConfiguration={"LocationConstraint": region})
    return client


def provider_arn(host_path: str, account: str = "123456789012") -> str:
    return f"arn:aws:iam::{account}:oidc-provider/{host_path}"


# --- workload roles -------------------------------------------------------------------------------

ROLE_ISSUER = "https://issuer.example.com/cluster-a"
ROLE_PROVIDER = provider_arn("issuer.example.com/cluster-a")


def role_trust_policy(*subjects: str, audience: str = "sts.amazonaws.com") -> dict[str, Any]:
    """A trust policy as the provisioner builds it (webhook.oidc.trustpolicy) for ``namespace:name``
    subjects of ROLE_ISSUER."""
    refs = [ServiceAccountRef(*subject.split(":", 1)) for subject in subjects or ("production:app",)]
    return trust_policy(ROLE_ISSUER, ROLE_PROVIDER, refs, (audience,))


def permission_policy(action: str = "s3:GetObject", resource: str = "*") -> dict[str, Any]:
    return {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": action, "Resource": resource}]}


def make_policy(name: str, action: str = "s3:GetObject") -> str:
    """A customer-managed policy with a plain client (moto has no AWS-managed ones); its ARN."""
    created = raw_iam().create_policy(PolicyName=name, PolicyDocument=json.dumps(permission_policy(action)))
    arn: str = created["Policy"]["Arn"]
    return arn
