"""An issuer set up by hand, the way docs/self-hosted.md's manual commands do it, with plain boto3:
a bucket, the discovery document and JWKS as objects, a public-read bucket policy, the IAM OIDC
provider and a role for one ServiceAccount, plus signing keys and tokens for it.

It exists to prove the stand-ins (a chain that must pass) and to give tests of the provisioner's
reachability check an issuer it did not publish itself. Each step is its own method, so a test can
leave one out. Nothing here uses the provisioner's code; keys and ``kid`` come from
``webhook.oidc.keys``/``webhook.oidc.jwks`` (kube-apiserver's derivation, tested on their own).
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import jwt
from cryptography.hazmat.primitives import serialization

from webhook.oidc.jwks import jwk
from webhook.oidc.keys import KeyType, generate_key_pair

from .motoserver import ACCOUNT_ID, Credentials, admin_client
from .public_s3 import PublicS3

STS_AUDIENCE = "sts.amazonaws.com"
JSON = dict[str, Any]


@dataclass(frozen=True)
class SigningKey:
    """A service-account signing key as kube-apiserver holds it, and its JWK."""

    private_pem: bytes
    jwk: JSON

    @classmethod
    def generate(cls, key_type: KeyType = "rsa") -> SigningKey:
        pair = generate_key_pair(key_type)
        public = serialization.load_pem_public_key(pair.public_pem)
        return cls(pair.private_pem, jwk(public))  # type: ignore[arg-type]

    @property
    def kid(self) -> str:
        return str(self.jwk["kid"])

    def token(
        self,
        issuer: str,
        subject: str,
        audience: str | Sequence[str] = STS_AUDIENCE,
        lifetime: int = 3600,
        issued_at: float | None = None,
        kid: str | None = None,
        **claims: Any,
    ) -> str:
        """A token as kube-apiserver issues it (audience as a list, the key's kid in the header)."""
        now = int(time.time() if issued_at is None else issued_at)
        payload = {
            "iss": issuer,
            "sub": subject,
            "aud": [audience] if isinstance(audience, str) else list(audience),
            "iat": now,
            "nbf": now,
            "exp": now + lifetime,
            **claims,
        }
        return jwt.encode(payload, self.private_pem, algorithm=self.jwk["alg"], headers={"kid": kid or self.kid})


def service_account_subject(namespace: str, name: str) -> str:
    return f"system:serviceaccount:{namespace}:{name}"


def trust_policy(
    provider_arn: str, host_path: str, namespace: str, service_account: str, audience: str = STS_AUDIENCE
) -> JSON:
    """The trust policy of an IRSA role for one ServiceAccount (the documented shape), written here by
    hand: the stand-ins share no code with the project's own trust-policy command they judge."""
    return {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Effect": "Allow",
                "Principal": {"Federated": provider_arn},
                "Action": "sts:AssumeRoleWithWebIdentity",
                "Condition": {
                    "StringEquals": {
                        f"{host_path}:sub": service_account_subject(namespace, service_account),
                        f"{host_path}:aud": audience,
                    }
                },
            }
        ],
    }


class ManualIssuer:
    """An issuer at ``s3://bucket/prefix`` behind ``front``; ``setup()`` does every step."""

    def __init__(
        self,
        moto_url: str,
        front: PublicS3,
        bucket: str = "irsa-issuer",
        prefix: str = "cluster-a",
        client_ids: Sequence[str] = (STS_AUDIENCE,),
        credentials: Credentials | None = None,
    ) -> None:
        self.bucket, self.prefix, self.client_ids = bucket, prefix.strip("/"), list(client_ids)
        self.issuer_url = front.issuer_url(bucket, self.prefix)
        self.host_path = self.issuer_url.removeprefix("https://")
        self.provider_arn = f"arn:{front.partition}:iam::{ACCOUNT_ID}:oidc-provider/{self.host_path}"
        self.s3 = admin_client(moto_url, "s3", front.region, credentials)
        self.iam = admin_client(moto_url, "iam", front.region, credentials)
        self._partition = front.partition
        self._region = front.region

    def key(self, path: str) -> str:
        return f"{self.prefix}/{path}" if self.prefix else path

    def setup(self, keys: Iterable[SigningKey]) -> ManualIssuer:
        self.create_bucket()
        self.publish(keys)
        self.make_public()
        self.create_provider()
        return self

    def create_bucket(self) -> None:
        extra = (
            {} if self._region == "us-east-1" else {"CreateBucketConfiguration": {"LocationConstraint": self._region}}
        )
        self.s3.create_bucket(Bucket=self.bucket, **extra)

    def put_json(self, path: str, document: JSON) -> None:
        self.s3.put_object(
            Bucket=self.bucket,
            Key=self.key(path),
            Body=json.dumps(document).encode(),
            ContentType="application/json",
            CacheControl="max-age=300",
        )

    def discovery(self, issuer: str | None = None) -> JSON:
        return {
            "issuer": issuer or self.issuer_url,
            "jwks_uri": f"{self.issuer_url}/keys.json",
            "response_types_supported": ["id_token"],
            "subject_types_supported": ["public"],
            "id_token_signing_alg_values_supported": ["RS256", "ES256"],
        }

    def publish(self, keys: Iterable[SigningKey], issuer: str | None = None) -> None:
        """Put the discovery document (``issuer`` overrides its issuer field) and the JWKS of ``keys``."""
        self.put_json(".well-known/openid-configuration", self.discovery(issuer))
        self.publish_keys(keys)

    def publish_keys(self, keys: Iterable[SigningKey]) -> None:
        self.put_json("keys.json", {"keys": [k.jwk for k in keys]})

    def object_arns(self) -> list[str]:
        return [
            f"arn:{self._partition}:s3:::{self.bucket}/{self.key(path)}"
            for path in (".well-known/openid-configuration", "keys.json")
        ]

    def public_policy(self) -> JSON:
        return {
            "Version": "2012-10-17",
            "Statement": [
                {
                    "Sid": "PublicIssuer",
                    "Effect": "Allow",
                    "Principal": "*",
                    "Action": "s3:GetObject",
                    "Resource": self.object_arns(),
                }
            ],
        }

    def make_public(self, policy: JSON | None = None) -> None:
        """Relax Block Public Access as far as a public policy needs, then put the policy."""
        self.s3.put_public_access_block(
            Bucket=self.bucket,
            PublicAccessBlockConfiguration={
                "BlockPublicAcls": True,
                "IgnorePublicAcls": True,
                "BlockPublicPolicy": False,
                "RestrictPublicBuckets": False,
            },
        )
        self.s3.put_bucket_policy(Bucket=self.bucket, Policy=json.dumps(policy or self.public_policy()))

    def create_provider(self, client_ids: Sequence[str] | None = None) -> str:
        self.iam.create_open_id_connect_provider(
            Url=self.issuer_url, ClientIDList=list(client_ids if client_ids is not None else self.client_ids)
        )
        return self.provider_arn

    def trust_policy(self, namespace: str, service_account: str, audience: str = STS_AUDIENCE) -> JSON:
        return trust_policy(self.provider_arn, self.host_path, namespace, service_account, audience)

    def create_role(self, name: str, namespace: str, service_account: str, policy: JSON | None = None) -> str:
        """A role that ``namespace/service_account`` may assume (or with ``policy`` as its trust policy)."""
        document = policy or self.trust_policy(namespace, service_account)
        role = self.iam.create_role(RoleName=name, AssumeRolePolicyDocument=json.dumps(document))["Role"]
        return str(role["Arn"])
