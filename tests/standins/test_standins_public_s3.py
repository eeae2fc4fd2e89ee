"""The public S3 front serves an object anonymously exactly when AWS would."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from tests.support.standins import ManualIssuer, MotoServer, PublicS3, SigningKey


@pytest.fixture
def bucket(moto: MotoServer, front: PublicS3, signer: SigningKey) -> ManualIssuer:
    """A bucket with the discovery document and JWKS in it, not public (yet)."""
    issuer = ManualIssuer(moto.url, front)
    issuer.create_bucket()
    issuer.publish([signer])
    return issuer


def get(front: PublicS3, url: str, method: str = "GET") -> httpx.Response:
    with httpx.Client(verify=front.client_context(), trust_env=False) as client:
        return client.request(method, url)


def keys_url(issuer: ManualIssuer) -> str:
    return f"{issuer.issuer_url}/keys.json"


def policy_with(issuer: ManualIssuer, **statement: Any) -> dict[str, Any]:
    return {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Principal": "*", **statement}]}


def test_an_object_is_not_public_until_the_bucket_policy_grants_it(
    front: PublicS3, bucket: ManualIssuer, signer: SigningKey
) -> None:
    denied = get(front, keys_url(bucket))
    assert denied.status_code == 403
    assert "<Code>AccessDenied</Code>" in denied.text
    bucket.make_public()
    served = get(front, keys_url(bucket))
    assert served.status_code == 200
    assert served.json() == {"keys": [signer.jwk]}
    assert served.headers["Content-Type"] == "application/json"
    assert served.headers["Cache-Control"] == "max-age=300"
    assert front.reasons() == ["the bucket has no policy", "allowed by statement PublicIssuer"]


def test_head_answers_like_get_without_a_body(front: PublicS3, bucket: ManualIssuer) -> None:
    bucket.make_public()
    head = get(front, keys_url(bucket), "HEAD")
    assert head.status_code == 200
    assert int(head.headers["Content-Length"]) == len(get(front, keys_url(bucket)).content)


def test_the_discovery_document_comes_from_s3_not_moto_s_cognito_stub(
    moto: MotoServer, front: PublicS3, bucket: ManualIssuer
) -> None:
    bucket.make_public()
    served = get(front, f"{bucket.issuer_url}/.well-known/openid-configuration")
    assert served.status_code == 200
    assert served.json() == bucket.discovery()
    # Why the front reads with a signed request: moto sends an anonymous GET of that path to Cognito.
    direct = httpx.get(f"{moto.url}/{bucket.bucket}/{bucket.key('.well-known/openid-configuration')}")
    assert direct.status_code == 404


def test_moto_alone_ignores_restrict_public_buckets_and_honours_acls(moto: MotoServer, bucket: ManualIssuer) -> None:
    """Why the front exists: anonymous reads from moto itself get what AWS would refuse."""
    url = f"{moto.url}/{bucket.bucket}/{bucket.key('keys.json')}"
    bucket.s3.put_object_acl(Bucket=bucket.bucket, Key=bucket.key("keys.json"), ACL="public-read")
    assert httpx.get(url).status_code == 200  # an ACL publishes; on a bucket with ACLs disabled it does not
    bucket.make_public()
    restricted = dict.fromkeys(
        ("BlockPublicAcls", "IgnorePublicAcls", "BlockPublicPolicy", "RestrictPublicBuckets"), True
    )
    bucket.s3.put_public_access_block(Bucket=bucket.bucket, PublicAccessBlockConfiguration=restricted)
    assert httpx.get(url).status_code == 200  # RestrictPublicBuckets is not looked at


def test_restrict_public_buckets_stops_a_public_policy_from_serving(
    moto: MotoServer, front: PublicS3, bucket: ManualIssuer
) -> None:
    bucket.make_public()
    config = {
        "BlockPublicAcls": True,
        "IgnorePublicAcls": True,
        "BlockPublicPolicy": False,
        "RestrictPublicBuckets": True,
    }
    bucket.s3.put_public_access_block(Bucket=bucket.bucket, PublicAccessBlockConfiguration=config)
    assert get(front, keys_url(bucket)).status_code == 403
    assert front.reasons()[-1].startswith("RestrictPublicBuckets is on")


def test_a_public_read_acl_alone_publishes_nothing(moto: MotoServer, front: PublicS3, bucket: ManualIssuer) -> None:
    bucket.s3.put_bucket_acl(Bucket=bucket.bucket, ACL="public-read")
    bucket.s3.put_object_acl(Bucket=bucket.bucket, Key=bucket.key("keys.json"), ACL="public-read")
    assert get(front, keys_url(bucket)).status_code == 403


def test_a_grant_of_another_object_does_not_serve_this_one(front: PublicS3, bucket: ManualIssuer) -> None:
    arn = f"arn:aws:s3:::{bucket.bucket}/{bucket.key('.well-known/openid-configuration')}"
    bucket.make_public(policy_with(bucket, Action="s3:GetObject", Resource=arn))
    assert get(front, f"{bucket.issuer_url}/.well-known/openid-configuration").status_code == 200
    assert get(front, keys_url(bucket)).status_code == 403


@pytest.mark.parametrize(
    ("action", "resource", "status"),
    [
        pytest.param("s3:GetObject", "arn:aws:s3:::irsa-issuer/*", 200, id="resource-wildcard"),
        pytest.param("s3:Get*", "arn:aws:s3:::irsa-issuer/cluster-a/keys.json", 200, id="action-wildcard"),
        pytest.param("S3:GETOBJECT", "arn:aws:s3:::irsa-issuer/cluster-a/keys.json", 200, id="action-any-case"),
        pytest.param("s3:*", "arn:aws:s3:::irsa-issuer/cluster-?/*", 200, id="single-character-wildcard"),
        pytest.param("s3:GetObject", "arn:aws:s3:::IRSA-ISSUER/*", 403, id="resource-is-case-sensitive"),
        pytest.param("s3:PutObject", "arn:aws:s3:::irsa-issuer/*", 403, id="another-action"),
        pytest.param("s3:GetObject", "arn:aws:s3:::irsa-issuer", 403, id="the-bucket-not-its-objects"),
    ],
)
def test_actions_and_resources_match_as_iam_matches_them(
    front: PublicS3, bucket: ManualIssuer, action: str, resource: str, status: int
) -> None:
    bucket.make_public(policy_with(bucket, Action=action, Resource=resource))
    assert get(front, keys_url(bucket)).status_code == status


@pytest.mark.parametrize(
    ("principal", "status"),
    [
        pytest.param({"AWS": "*"}, 200, id="aws-star"),
        pytest.param({"AWS": ["*"]}, 200, id="aws-star-list"),
        pytest.param({"AWS": "arn:aws:iam::123456789012:root"}, 403, id="an-account"),
    ],
)
def test_only_a_wildcard_principal_reaches_anonymous_callers(
    front: PublicS3, bucket: ManualIssuer, principal: Any, status: int
) -> None:
    policy = policy_with(bucket, Action="s3:GetObject", Resource=bucket.object_arns())
    policy["Statement"][0]["Principal"] = principal
    bucket.make_public(policy)
    assert get(front, keys_url(bucket)).status_code == status


def test_a_deny_statement_wins(front: PublicS3, bucket: ManualIssuer) -> None:
    policy = bucket.public_policy()
    policy["Statement"].append(
        {"Effect": "Deny", "Principal": "*", "Action": "s3:*", "Resource": f"arn:aws:s3:::{bucket.bucket}/*/keys.json"}
    )
    bucket.make_public(policy)
    assert get(front, keys_url(bucket)).status_code == 403
    assert front.reasons()[-1].endswith("explicitly denied by statement #1")


def test_a_conditional_statement_stops_moto_itself_and_the_front_says_so(front: PublicS3, bucket: ManualIssuer) -> None:
    """On AWS a Deny of plain HTTP leaves HTTPS reads alone; moto denies every read under it."""
    policy = bucket.public_policy()
    policy["Statement"].append(
        {
            "Effect": "Deny",
            "Principal": "*",
            "Action": "s3:*",
            "Resource": f"arn:aws:s3:::{bucket.bucket}/*",
            "Condition": {"Bool": {"aws:SecureTransport": "false"}},
        }
    )
    bucket.make_public(policy)
    assert get(front, keys_url(bucket)).status_code == 500
    assert front.reasons()[-1].startswith("moto refused the stand-in's signed read")


def test_a_missing_object_is_403_unless_listing_is_granted(front: PublicS3, bucket: ManualIssuer) -> None:
    bucket.make_public()
    bucket.s3.delete_object(Bucket=bucket.bucket, Key=bucket.key("keys.json"))
    assert get(front, keys_url(bucket)).status_code == 403
    policy = bucket.public_policy()
    policy["Statement"].append(
        {"Effect": "Allow", "Principal": "*", "Action": "s3:ListBucket", "Resource": f"arn:aws:s3:::{bucket.bucket}"}
    )
    bucket.make_public(policy)
    missing = get(front, keys_url(bucket))
    assert missing.status_code == 404
    assert "<Code>NoSuchKey</Code>" in missing.text


def test_a_missing_bucket_is_404(front: PublicS3) -> None:
    missing = get(front, front.object_url("no-such-bucket", "keys.json"))
    assert missing.status_code == 404
    assert "<Code>NoSuchBucket</Code>" in missing.text


def test_only_anonymous_reads_of_objects_are_modelled(front: PublicS3, bucket: ManualIssuer) -> None:
    bucket.make_public()
    assert get(front, f"{front.url}/{bucket.bucket}").status_code == 403
    assert get(front, keys_url(bucket), "PUT").status_code == 403
    assert get(front, keys_url(bucket) + "?acl").status_code == 403


def test_a_policy_the_stand_in_cannot_evaluate_is_refused_and_says_why(front: PublicS3, bucket: ManualIssuer) -> None:
    policy = bucket.public_policy()
    policy["Statement"][0]["Condition"] = {"IpAddress": {"aws:SourceIp": "127.0.0.0/8"}}
    bucket.make_public(policy)
    assert get(front, keys_url(bucket)).status_code == 403
    assert "operator IpAddress is not supported" in front.reasons()[-1]


def test_the_front_speaks_tls_that_only_its_ca_verifies(front: PublicS3, bucket: ManualIssuer) -> None:
    bucket.make_public()
    with httpx.Client(trust_env=False) as client, pytest.raises(httpx.ConnectError, match="CERTIFICATE_VERIFY_FAILED"):
        client.get(keys_url(bucket))
    assert front.ca_file.read_bytes().startswith(b"-----BEGIN CERTIFICATE-----")
