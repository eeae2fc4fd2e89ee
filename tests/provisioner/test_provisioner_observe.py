"""The observer (``webhook.provisioner.observe``) against moto's server: what AWS holds for an issuer,
set up with plain boto3 calls, read back into an ObservedIssuer, with reads only."""

from __future__ import annotations

import json

import pytest

from tests.support.awsstate import BUCKET, OWNER, PREFIX, issuer_spec, make_bucket, provider_arn, raw_iam, raw_s3
from tests.support.moto import ACCOUNT, MotoServer
from webhook.aws.errors import AwsError
from webhook.aws.session import AwsClients
from webhook.provisioner.model import (
    OWNER_METADATA,
    OWNER_TAG,
    ClusterKeys,
    ObservedBucket,
    ObservedObject,
    PublicAccessBlock,
)
from webhook.provisioner.observe import MAX_OBJECT_BYTES, observe_bucket, observe_issuer, observe_provider

CLUSTER_KEYS = ClusterKeys(jwks={"keys": []}, signing_kid="kid-1")
DISCOVERY_KEY = f"{PREFIX}/.well-known/openid-configuration"
JWKS_KEY = f"{PREFIX}/keys.json"


def test_an_empty_account(moto: MotoServer) -> None:
    aws = AwsClients()
    observed = observe_issuer(issuer_spec(), aws, CLUSTER_KEYS)
    assert (observed.account, observed.partition) == (ACCOUNT, "aws")
    assert observed.bucket == ObservedBucket(name=BUCKET, exists=False)
    assert observed.provider is None
    assert observed.cluster is CLUSTER_KEYS
    assert aws.tally.calls() == {
        "sts:GetCallerIdentity": 1,
        "s3:HeadBucket": 1,
        "iam:ListOpenIDConnectProviders": 1,
    }


def test_no_s3_discovery_reads_no_bucket(moto: MotoServer) -> None:
    aws = AwsClients()
    observed = observe_issuer(
        issuer_spec(s3=False, issuer_url="https://oidc.eks.example.com/id/ABC"), aws, CLUSTER_KEYS
    )
    assert observed.bucket is None
    assert not any(action.startswith("s3:") for action in aws.tally.calls())


def test_a_bare_bucket(moto: MotoServer) -> None:
    make_bucket(BUCKET)
    observed = observe_bucket(issuer_spec().s3 or pytest.fail("no s3"), AwsClients())
    assert observed == ObservedBucket(
        name=BUCKET,
        exists=True,
        region="us-east-1",
        owner=None,
        public_access_block=None,
        policy=None,
        objects={DISCOVERY_KEY: None, JWKS_KEY: None},
    )


def test_everything_published(moto: MotoServer) -> None:
    s3 = make_bucket(BUCKET, "eu-west-1")
    s3.put_bucket_tagging(
        Bucket=BUCKET, Tagging={"TagSet": [{"Key": OWNER_TAG, "Value": OWNER}, {"Key": "team", "Value": "a"}]}
    )
    block = {
        "BlockPublicAcls": True,
        "IgnorePublicAcls": True,
        "BlockPublicPolicy": False,
        "RestrictPublicBuckets": False,
    }
    s3.put_public_access_block(Bucket=BUCKET, PublicAccessBlockConfiguration=block)
    policy = {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Sid": "Other",
                "Effect": "Allow",
                "Principal": "*",
                "Action": "s3:GetObject",
                "Resource": "arn:aws:s3:::x/y",
            }
        ],
    }
    s3.put_bucket_policy(Bucket=BUCKET, Policy=json.dumps(policy))
    for key, body in ((DISCOVERY_KEY, b'{"issuer": "x"}'), (JWKS_KEY, b'{"keys": []}')):
        s3.put_object(
            Bucket=BUCKET,
            Key=key,
            Body=body,
            ContentType="application/json",
            CacheControl="max-age=300",
            Metadata={OWNER_METADATA: OWNER},
        )
    aws = AwsClients()
    observed = observe_bucket(issuer_spec(region="eu-west-1").s3 or pytest.fail("no s3"), aws)
    assert (observed.exists, observed.region, observed.owner) == (True, "eu-west-1", OWNER)
    assert observed.public_access_block == PublicAccessBlock(
        block_public_acls=True, ignore_public_acls=True, block_public_policy=False, restrict_public_buckets=False
    )
    assert observed.policy == policy
    jwks = observed.objects[JWKS_KEY]
    assert jwks is not None
    assert (jwks.body, jwks.content_type, jwks.cache_control, jwks.owner) == (
        b'{"keys": []}',
        "application/json",
        "max-age=300",
        OWNER,
    )
    assert jwks.last_modified is not None
    discovery = observed.objects[DISCOVERY_KEY]
    assert isinstance(discovery, ObservedObject)
    assert discovery.body == b'{"issuer": "x"}'
    assert aws.tally.writes() == {}
    # Every read went to the bucket's own region.
    assert aws.s3_for(BUCKET) is aws.s3("eu-west-1")


def test_the_bucket_region_is_where_it_is_not_where_the_spec_says(moto: MotoServer) -> None:
    make_bucket(BUCKET, "eu-west-1")
    aws = AwsClients()
    observed = observe_bucket(issuer_spec(region="us-east-1").s3 or pytest.fail("no s3"), aws)
    assert observed.region == "eu-west-1"
    assert aws.s3_for(BUCKET).meta.region_name == "eu-west-1"


def test_an_object_without_our_metadata_has_no_owner(moto: MotoServer) -> None:
    make_bucket(BUCKET).put_object(Bucket=BUCKET, Key=JWKS_KEY, Body=b"{}")
    observed = observe_bucket(issuer_spec().s3 or pytest.fail("no s3"), AwsClients())
    jwks = observed.objects[JWKS_KEY]
    assert jwks is not None
    assert jwks.owner is None
    assert jwks.cache_control is None


def test_an_unprefixed_issuer_reads_the_keys_at_the_root(moto: MotoServer) -> None:
    make_bucket(BUCKET).put_object(Bucket=BUCKET, Key="keys.json", Body=b"{}")
    observed = observe_bucket(issuer_spec(prefix="").s3 or pytest.fail("no s3"), AwsClients())
    assert set(observed.objects) == {".well-known/openid-configuration", "keys.json"}
    assert observed.objects["keys.json"] is not None


def test_an_oversized_object_is_read_only_past_the_limit(moto: MotoServer) -> None:
    make_bucket(BUCKET).put_object(Bucket=BUCKET, Key=JWKS_KEY, Body=b"x" * (MAX_OBJECT_BYTES + 1000))
    observed = observe_bucket(issuer_spec().s3 or pytest.fail("no s3"), AwsClients())
    jwks = observed.objects[JWKS_KEY]
    assert jwks is not None
    assert len(jwks.body) == MAX_OBJECT_BYTES + 1


def test_a_policy_that_is_not_json_is_terminal(moto: MotoServer) -> None:
    # moto stores any text as a bucket policy (AWS would have refused it): what if one were there.
    make_bucket(BUCKET).put_bucket_policy(Bucket=BUCKET, Policy="not json")
    with pytest.raises(AwsError) as raised:
        observe_bucket(issuer_spec().s3 or pytest.fail("no s3"), AwsClients())
    assert raised.value.kind == "terminal"
    assert f"the policy of bucket {BUCKET} is not JSON" in raised.value.message


# --- the provider -----------------------------------------------------------------------------------


def test_the_provider_of_the_issuer_among_others(moto: MotoServer) -> None:
    iam = raw_iam()
    issuer = issuer_spec().issuer_url
    host_path = issuer.removeprefix("https://")
    iam.create_open_id_connect_provider(Url="https://other.example.com/x", ClientIDList=["a"])
    iam.create_open_id_connect_provider(Url=f"{issuer}/more", ClientIDList=["a"])
    iam.create_open_id_connect_provider(
        Url=issuer,
        ClientIDList=["sts.amazonaws.com", "other"],
        ThumbprintList=["a" * 40],
        Tags=[{"Key": OWNER_TAG, "Value": OWNER}],
    )
    aws = AwsClients()
    provider = observe_provider(issuer, aws)
    assert provider is not None
    assert provider.arn == provider_arn(host_path)
    assert provider.url == host_path  # IAM (and moto) answer without the scheme
    assert provider.client_ids == ("sts.amazonaws.com", "other")
    assert provider.thumbprints == ("a" * 40,)
    assert provider.tags == {OWNER_TAG: OWNER}
    assert aws.tally.calls() == {"iam:ListOpenIDConnectProviders": 1, "iam:GetOpenIDConnectProvider": 1}


def test_a_provider_without_tags_or_lists(moto: MotoServer) -> None:
    raw_iam().create_open_id_connect_provider(Url="https://bare.example.com/c")
    provider = observe_provider("https://bare.example.com/c", AwsClients())
    assert provider is not None
    assert (provider.client_ids, provider.thumbprints, dict(provider.tags)) == ((), (), {})


def test_the_host_matches_in_any_case_the_path_exactly(moto: MotoServer) -> None:
    raw_iam().create_open_id_connect_provider(Url="https://Issuer.Example.COM/Cluster-A", ClientIDList=["a"])
    aws = AwsClients()
    found = observe_provider("https://issuer.example.com/Cluster-A", aws)
    assert found is not None
    assert found.arn == provider_arn("Issuer.Example.COM/Cluster-A")
    assert observe_provider("https://issuer.example.com/cluster-a", aws) is None
    assert observe_provider("https://issuer.example.com", aws) is None


def test_the_whole_issuer_observed(moto: MotoServer) -> None:
    spec = issuer_spec()
    make_bucket(BUCKET)
    raw_iam().create_open_id_connect_provider(Url=spec.issuer_url, ClientIDList=["sts.amazonaws.com"])
    aws = AwsClients()
    observed = observe_issuer(spec, aws, CLUSTER_KEYS)
    assert observed.bucket is not None
    assert observed.bucket.exists
    assert observed.provider is not None
    assert observed.provider.client_ids == ("sts.amazonaws.com",)
    assert aws.tally.writes() == {}
    assert raw_s3().list_buckets()["Buckets"][0]["Name"] == BUCKET  # nothing else was created


def test_other_objects_are_listed_only_in_a_bucket_we_tagged(moto: MotoServer) -> None:
    s3 = make_bucket(BUCKET)
    s3.put_object(Bucket=BUCKET, Key=JWKS_KEY, Body=b"{}")
    spec_s3 = issuer_spec().s3 or pytest.fail("no s3")
    aws = AwsClients()
    # not tagged as ours: it will never be deleted, so nothing is listed
    assert observe_bucket(spec_s3, aws).other_objects is False
    assert "s3:ListObjectsV2" not in aws.tally.calls()
    s3.put_bucket_tagging(Bucket=BUCKET, Tagging={"TagSet": [{"Key": OWNER_TAG, "Value": OWNER}]})
    assert observe_bucket(spec_s3, aws).other_objects is False  # only our keys
    s3.put_object(Bucket=BUCKET, Key="someone-else/backup.tar", Body=b"x")
    assert observe_bucket(spec_s3, aws).other_objects is True
