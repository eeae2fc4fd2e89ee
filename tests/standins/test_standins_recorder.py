"""The call recorder names every call as the IAM action it needs, passes it to moto unchanged, and
refuses the S3 writes AWS refuses."""

from __future__ import annotations

import contextlib
import http.client
import json
import urllib.parse
from typing import Any

import pytest
from botocore.exceptions import ClientError

from tests.support.standins import CallRecorder, MotoServer, admin_client
from tests.support.standins.actions import classify
from tests.support.standins.s3rules import is_public, put_policy_refusal

BUCKET = "recorded"
OPEN = {"BlockPublicAcls": True, "IgnorePublicAcls": True, "BlockPublicPolicy": False, "RestrictPublicBuckets": False}


def public_policy(key: str = "*") -> str:
    statement = {
        "Effect": "Allow",
        "Principal": "*",
        "Action": "s3:GetObject",
        "Resource": f"arn:aws:s3:::{BUCKET}/{key}",
    }
    return json.dumps({"Version": "2012-10-17", "Statement": [statement]})


def error_code(call: Any, **kwargs: Any) -> str:
    with pytest.raises(ClientError) as caught:
        call(**kwargs)
    return str(caught.value.response["Error"]["Code"])


def test_every_call_is_named_as_the_iam_action_it_needs(recorder: CallRecorder) -> None:
    s3 = admin_client(recorder.url, "s3")
    iam = admin_client(recorder.url, "iam")
    sts = admin_client(recorder.url, "sts")

    sts.get_caller_identity()
    s3.create_bucket(Bucket=BUCKET)
    s3.head_bucket(Bucket=BUCKET)
    s3.get_bucket_location(Bucket=BUCKET)
    s3.put_bucket_tagging(Bucket=BUCKET, Tagging={"TagSet": [{"Key": "owner", "Value": "me"}]})
    s3.get_bucket_tagging(Bucket=BUCKET)
    s3.put_public_access_block(Bucket=BUCKET, PublicAccessBlockConfiguration=OPEN)
    s3.get_public_access_block(Bucket=BUCKET)
    s3.put_bucket_policy(Bucket=BUCKET, Policy=public_policy())
    s3.get_bucket_policy(Bucket=BUCKET)
    s3.put_object(Bucket=BUCKET, Key="a/keys.json", Body=b"{}", ContentType="application/json", Metadata={"o": "x"})
    s3.head_object(Bucket=BUCKET, Key="a/keys.json")
    assert s3.get_object(Bucket=BUCKET, Key="a/keys.json")["Body"].read() == b"{}"
    s3.list_objects_v2(Bucket=BUCKET, Prefix="a/")
    s3.delete_object(Bucket=BUCKET, Key="a/keys.json")
    s3.delete_bucket_policy(Bucket=BUCKET)
    s3.delete_public_access_block(Bucket=BUCKET)
    s3.delete_bucket_tagging(Bucket=BUCKET)
    s3.delete_bucket(Bucket=BUCKET)

    arn = iam.create_open_id_connect_provider(
        Url="https://issuer.example/a", ClientIDList=["sts.amazonaws.com"], Tags=[{"Key": "owner", "Value": "me"}]
    )["OpenIDConnectProviderArn"]
    iam.list_open_id_connect_providers()
    iam.get_open_id_connect_provider(OpenIDConnectProviderArn=arn)
    iam.tag_open_id_connect_provider(OpenIDConnectProviderArn=arn, Tags=[{"Key": "k", "Value": "v"}])
    iam.untag_open_id_connect_provider(OpenIDConnectProviderArn=arn, TagKeys=["k"])
    iam.update_open_id_connect_provider_thumbprint(OpenIDConnectProviderArn=arn, ThumbprintList=["a" * 40])
    iam.list_open_id_connect_provider_tags(OpenIDConnectProviderArn=arn)
    iam.delete_open_id_connect_provider(OpenIDConnectProviderArn=arn)

    assert recorder.actions() == {
        "sts:GetCallerIdentity",
        "s3:CreateBucket",
        "s3:ListBucket",  # HeadBucket and ListObjectsV2
        "s3:GetBucketLocation",
        "s3:PutBucketTagging",  # and DeleteBucketTagging
        "s3:GetBucketTagging",
        "s3:PutBucketPublicAccessBlock",  # PutPublicAccessBlock and DeletePublicAccessBlock
        "s3:GetBucketPublicAccessBlock",
        "s3:PutBucketPolicy",
        "s3:GetBucketPolicy",
        "s3:DeleteBucketPolicy",
        "s3:PutObject",
        "s3:GetObject",  # GetObject and HeadObject
        "s3:DeleteObject",
        "s3:DeleteBucket",
        "iam:CreateOpenIDConnectProvider",
        "iam:TagOpenIDConnectProvider",  # tags given on create need the tagging permission too
        "iam:ListOpenIDConnectProviders",
        "iam:GetOpenIDConnectProvider",
        "iam:UntagOpenIDConnectProvider",
        "iam:UpdateOpenIDConnectProviderThumbprint",
        "iam:ListOpenIDConnectProviderTags",
        "iam:DeleteOpenIDConnectProvider",
    }
    assert {"s3:HeadBucket", "s3:HeadObject", "s3:PutPublicAccessBlock", "s3:DeletePublicAccessBlock"} <= (
        recorder.operations()
    )
    assert all(call.status < 300 for call in recorder.calls), [c for c in recorder.calls if c.status >= 300]
    assert [c.operation for c in recorder.writes()][:3] == ["CreateBucket", "PutBucketTagging", "PutPublicAccessBlock"]


def test_a_call_it_cannot_name_is_recorded_so_that_a_permissions_test_fails(recorder: CallRecorder) -> None:
    s3 = admin_client(recorder.url, "s3")
    s3.create_bucket(Bucket=BUCKET)
    s3.put_bucket_website(Bucket=BUCKET, WebsiteConfiguration={"IndexDocument": {"Suffix": "index.html"}})
    assert "s3:?PUT /{Bucket}?website" in recorder.actions()


@pytest.mark.parametrize(
    ("method", "path", "headers", "operation", "actions"),
    [
        pytest.param(
            "PUT", "/b/k", {"x-amz-copy-source": "/b/src"}, "CopyObject", ("s3:PutObject", "s3:GetObject"), id="copy"
        ),
        pytest.param(
            "PUT", "/b/k", {"x-amz-acl": "private"}, "PutObject", ("s3:PutObject", "s3:PutObjectAcl"), id="acl"
        ),
        pytest.param(
            "PUT", "/b/k", {"x-amz-tagging": "a=b"}, "PutObject", ("s3:PutObject", "s3:PutObjectTagging"), id="tags"
        ),
        pytest.param("GET", "/b/k?versionId=3", {}, "GetObject", ("s3:GetObjectVersion",), id="version"),
        pytest.param("GET", "/b/k?x-id=GetObject", {}, "GetObject", ("s3:GetObject",), id="x-id-is-no-subresource"),
        pytest.param("GET", "/", {}, "ListBuckets", ("s3:ListAllMyBuckets",), id="list-buckets"),
        pytest.param("POST", "/b?delete", {}, "DeleteObjects", ("s3:DeleteObject",), id="delete-objects"),
        pytest.param("GET", "/b?policyStatus", {}, "GetBucketPolicyStatus", ("s3:GetBucketPolicyStatus",), id="status"),
    ],
)
def test_s3_requests_map_to_operations_and_actions(
    method: str, path: str, headers: dict[str, str], operation: str, actions: tuple[str, ...]
) -> None:
    signed = {"Authorization": "AWS4-HMAC-SHA256 Credential=AKID/20250101/us-east-1/s3/aws4_request, Signature=x"}
    classified = classify(method, path, {**signed, **headers}, b"")
    assert (classified.service, classified.operation, classified.actions) == ("s3", operation, actions)


def test_query_actions_are_named_as_sent() -> None:
    """The client-ID calls, which moto 5.2.6 itself does not implement, are named like any other."""
    signed = {
        "Authorization": "AWS4-HMAC-SHA256 Credential=AKID/20250101/us-east-1/iam/aws4_request, Signature=x",
        "Content-Type": "application/x-www-form-urlencoded; charset=utf-8",
    }
    body = b"Action=AddClientIDToOpenIDConnectProvider&Version=2010-05-08&ClientID=x"
    assert classify("POST", "/", signed, body).actions == ("iam:AddClientIDToOpenIDConnectProvider",)


def test_an_unsigned_web_identity_call_is_sts() -> None:
    classified = classify(
        "POST",
        "/",
        {"Content-Type": "application/x-www-form-urlencoded"},
        b"Action=AssumeRoleWithWebIdentity&Version=2011-06-15&RoleArn=x",
    )
    assert classified.actions == ("sts:AssumeRoleWithWebIdentity",)


# --- what AWS refuses and moto does not ---------------------------------------------------------


def test_a_bucket_created_through_it_has_public_access_blocked_as_on_aws(
    recorder: CallRecorder, moto: MotoServer
) -> None:
    admin_client(recorder.url, "s3").create_bucket(Bucket=BUCKET)
    block = admin_client(moto.url, "s3").get_public_access_block(Bucket=BUCKET)["PublicAccessBlockConfiguration"]
    assert block == dict.fromkeys(OPEN, True)
    assert "s3:PutBucketPublicAccessBlock" not in recorder.actions()  # AWS's doing, not the caller's


def test_a_public_policy_is_refused_while_block_public_policy_is_on(recorder: CallRecorder, moto: MotoServer) -> None:
    s3 = admin_client(recorder.url, "s3")
    s3.create_bucket(Bucket=BUCKET)
    assert error_code(s3.put_bucket_policy, Bucket=BUCKET, Policy=public_policy()) == "AccessDenied"
    assert recorder.calls[-1].status == 403
    assert "s3:PutBucketPolicy" in recorder.actions()  # a refused call still needs its permission
    assert error_code(admin_client(moto.url, "s3").get_bucket_policy, Bucket=BUCKET) == "NoSuchBucketPolicy"

    s3.put_public_access_block(Bucket=BUCKET, PublicAccessBlockConfiguration=OPEN)
    s3.put_bucket_policy(Bucket=BUCKET, Policy=public_policy())


def test_a_private_policy_is_accepted_under_block_public_policy(recorder: CallRecorder) -> None:
    s3 = admin_client(recorder.url, "s3")
    s3.create_bucket(Bucket=BUCKET)
    statement = {
        "Effect": "Allow",
        "Principal": {"AWS": "arn:aws:iam::123456789012:root"},
        "Action": "s3:GetObject",
        "Resource": f"arn:aws:s3:::{BUCKET}/*",
    }
    s3.put_bucket_policy(Bucket=BUCKET, Policy=json.dumps({"Version": "2012-10-17", "Statement": [statement]}))


def test_acls_are_refused_as_on_a_bucket_with_acls_disabled(recorder: CallRecorder) -> None:
    s3 = admin_client(recorder.url, "s3")
    s3.create_bucket(Bucket=BUCKET)
    refused = error_code(s3.put_object, Bucket=BUCKET, Key="k", Body=b"x", ACL="public-read")
    assert refused == "AccessControlListNotSupported"
    assert error_code(s3.put_bucket_acl, Bucket=BUCKET, ACL="public-read") == "AccessControlListNotSupported"
    s3.put_object(Bucket=BUCKET, Key="k", Body=b"x", ACL="bucket-owner-full-control")


def test_without_the_s3_rules_it_only_records(moto: MotoServer) -> None:
    with CallRecorder(moto.url, s3_rules=False) as plain:
        s3 = admin_client(plain.url, "s3")
        s3.create_bucket(Bucket=BUCKET)
        s3.put_object(Bucket=BUCKET, Key="k", Body=b"x", ACL="public-read")
        s3.put_bucket_policy(Bucket=BUCKET, Policy=public_policy())
        assert error_code(s3.get_public_access_block, Bucket=BUCKET) == "NoSuchPublicAccessBlockConfiguration"


def test_the_check_is_there_for_tests_that_write_policies_directly(moto: MotoServer) -> None:
    s3 = admin_client(moto.url, "s3")
    s3.create_bucket(Bucket=BUCKET)
    assert put_policy_refusal(s3, BUCKET, public_policy()) is None  # no block configured
    s3.put_public_access_block(Bucket=BUCKET, PublicAccessBlockConfiguration=dict.fromkeys(OPEN, True))
    assert "BlockPublicPolicy" in (put_policy_refusal(s3, BUCKET, public_policy()) or "")


@pytest.mark.parametrize(
    ("statement", "public"),
    [
        pytest.param({"Principal": "*"}, True, id="star"),
        pytest.param({"Principal": {"AWS": "*"}}, True, id="aws-star"),
        pytest.param({"Principal": {"AWS": "arn:aws:iam::123456789012:root"}}, False, id="an-account"),
        pytest.param({"Principal": "*", "Effect": "Deny"}, False, id="a-deny"),
        pytest.param(
            {"Principal": "*", "Condition": {"StringEquals": {"aws:SourceAccount": "123456789012"}}}, False, id="pinned"
        ),
        pytest.param({"Principal": "*", "Condition": {"StringLike": {"aws:SourceArn": "*"}}}, True, id="pinned-to-any"),
        pytest.param({"Principal": "*", "Condition": {"Bool": {"aws:SecureTransport": "true"}}}, True, id="tls-only"),
    ],
)
def test_public_means_what_aws_says_it_means(statement: dict[str, Any], public: bool) -> None:
    base = {"Effect": "Allow", "Action": "s3:GetObject", "Resource": "arn:aws:s3:::b/*"}
    assert is_public({"Statement": [{**base, **statement}]}) is public


def test_a_chunked_upload_is_relayed_verbatim(recorder: CallRecorder, moto: MotoServer) -> None:
    """botocore streams bodies of unknown length with Transfer-Encoding: chunked; the framing is passed on."""
    admin_client(moto.url, "s3").create_bucket(Bucket=BUCKET)
    target = urllib.parse.urlsplit(recorder.url)
    connection = http.client.HTTPConnection(target.hostname or "", target.port, timeout=10)
    scope = "Credential=AKID/20250101/us-east-1/s3/aws4_request, SignedHeaders=host, Signature=0"
    headers = {"Authorization": f"AWS4-HMAC-SHA256 {scope}", "Transfer-Encoding": "chunked"}
    connection.request(
        "PUT", f"/{BUCKET}/streamed", body=iter([b"abc", b"def" * 1000]), headers=headers, encode_chunked=True
    )
    with connection.getresponse() as response:
        assert response.status == 200, response.read()
    connection.close()
    body = admin_client(moto.url, "s3").get_object(Bucket=BUCKET, Key="streamed")["Body"].read()
    assert body == b"abc" + b"def" * 1000
    assert recorder.operations() == {"s3:PutObject"}


def test_faults_fail_calls_as_aws_does_and_a_lost_answer_still_made_the_change(moto: MotoServer) -> None:
    with CallRecorder(moto.url, faults=1.0, seed=3) as recorder:
        s3, iam = admin_client(recorder.url, "s3"), admin_client(recorder.url, "iam")
        codes = {error_code(s3.create_bucket, Bucket=f"fault-{n}") for n in range(12)}
        codes |= {error_code(iam.list_roles) for _ in range(12)}
        kinds = {c.fault for c in recorder.calls}
    assert kinds == {"throttle", "error", "lost"}
    assert codes <= {"SlowDown", "InternalError", "Throttling", "InternalFailure"}
    assert {"SlowDown", "Throttling"} <= codes
    made = {b["Name"] for b in admin_client(moto.url, "s3").list_buckets()["Buckets"]}
    lost = {c.path.strip("/") for c in recorder.calls if c.fault == "lost" and c.operation == "CreateBucket"}
    assert lost
    assert made == lost  # exactly the calls whose answer was lost reached moto


def test_the_same_seed_fails_the_same_calls(moto: MotoServer) -> None:
    def run() -> list[str]:
        with CallRecorder(moto.url, faults=0.5, seed=7) as recorder:
            iam = admin_client(recorder.url, "iam")
            for _ in range(10):
                with contextlib.suppress(ClientError):
                    iam.list_roles()
            return [c.fault for c in recorder.calls]

    assert run() == run()
