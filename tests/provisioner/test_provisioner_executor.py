"""The executor (``webhook.provisioner.executor``) against moto's server: each kind of change applied,
then read back by the observer; one call per change, counted as a write by its action; the first
failure stops the run and says what was applied before it."""

from __future__ import annotations

import json

import pytest

from tests.support.awsstate import BUCKET, OWNER, issuer_spec, make_bucket, provider_arn, raw_iam, raw_s3
from tests.support.moto import MotoServer
from webhook.aws.session import AwsClients
from webhook.provisioner import model
from webhook.provisioner.executor import ACTIONS, ExecutionStopped, execute
from webhook.provisioner.model import (
    OWNER_METADATA,
    OWNER_TAG,
    AddClientID,
    Change,
    CreateBucket,
    CreateProvider,
    DeleteBucket,
    DeleteBucketPolicy,
    DeleteObject,
    DeleteProvider,
    ObservedBucket,
    PublicAccessBlock,
    PutBucketPolicy,
    PutObject,
    PutPublicAccessBlock,
    RemoveClientID,
    TagProvider,
    UpdateThumbprints,
)
from webhook.provisioner.observe import observe_bucket, observe_provider

ISSUER = "https://issuer.example.com/cluster-a"
ARN = provider_arn("issuer.example.com/cluster-a")
KEY = "cluster-a/keys.json"
POLICY = {
    "Version": "2012-10-17",
    "Statement": [
        {
            "Sid": "IRSAWebhook0123456789abcdef",
            "Effect": "Allow",
            "Principal": "*",
            "Action": "s3:GetObject",
            "Resource": [f"arn:aws:s3:::{BUCKET}/{KEY}"],
        }
    ],
}
RELAXED = PublicAccessBlock(block_public_policy=False, restrict_public_buckets=False)
THUMBPRINT = "9e99a48a9960b14926bb7f3b02e22da2b0ab7280"


def create_bucket(region: str = "us-east-1", tags: dict[str, str] | None = None) -> CreateBucket:
    return CreateBucket(
        "s3:CreateBucket", BUCKET, "create bucket", bucket=BUCKET, region=region, tags=tags or {OWNER_TAG: OWNER}
    )


def put_object(body: bytes = b'{"keys": []}') -> PutObject:
    return PutObject(
        "s3:PutObject",
        f"s3://{BUCKET}/{KEY}",
        "publish the JWKS",
        bucket=BUCKET,
        key=KEY,
        body=body,
        cache_control="max-age=300",
        owner=OWNER,
    )


def create_provider(
    client_ids: tuple[str, ...] = ("sts.amazonaws.com",), thumbprints: tuple[str, ...] = ()
) -> CreateProvider:
    return CreateProvider(
        "iam:CreateOpenIDConnectProvider",
        ISSUER,
        "create the provider",
        url=ISSUER,
        client_ids=client_ids,
        thumbprints=thumbprints,
        tags={OWNER_TAG: OWNER},
    )


def observed_bucket(aws: AwsClients, region: str = "us-east-1") -> ObservedBucket:
    return observe_bucket(issuer_spec(region=region).s3 or pytest.fail("no s3"), aws)


# --- S3 ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("region", ["us-east-1", "eu-west-1"])
def test_create_bucket_where_asked_with_its_tags(moto: MotoServer, region: str) -> None:
    aws = AwsClients()
    change = create_bucket(region)
    assert execute([change], aws) == [change]
    observed = observed_bucket(aws, region)
    assert (observed.exists, observed.region, observed.owner) == (True, region, OWNER)
    assert aws.tally.writes() == {"s3:CreateBucket": 1, "s3:PutBucketTagging": 1}
    assert raw_s3(region).get_bucket_location(Bucket=BUCKET).get("LocationConstraint") == (
        None if region == "us-east-1" else region
    )


def test_create_bucket_without_tags_makes_one_call(moto: MotoServer) -> None:
    aws = AwsClients()
    execute([CreateBucket("s3:CreateBucket", BUCKET, "create", bucket=BUCKET, region="us-east-1")], aws)
    assert aws.tally.writes() == {"s3:CreateBucket": 1}
    assert observed_bucket(aws).owner is None


def test_public_access_block_and_policy(moto: MotoServer) -> None:
    make_bucket(BUCKET)
    aws = AwsClients()
    execute(
        [
            PutPublicAccessBlock("s3:PutPublicAccessBlock", BUCKET, "relax", bucket=BUCKET, block=RELAXED),
            PutBucketPolicy("s3:PutBucketPolicy", BUCKET, "grant", bucket=BUCKET, policy=POLICY),
        ],
        aws,
    )
    observed = observed_bucket(aws)
    assert observed.public_access_block == RELAXED
    assert observed.policy == POLICY
    assert aws.tally.writes() == {"s3:PutPublicAccessBlock": 1, "s3:PutBucketPolicy": 1}
    execute([DeleteBucketPolicy("s3:DeleteBucketPolicy", BUCKET, "remove", bucket=BUCKET)], aws)
    assert observed_bucket(aws).policy is None


def test_put_object_with_type_cache_and_owner(moto: MotoServer) -> None:
    make_bucket(BUCKET)
    aws = AwsClients()
    execute([put_object()], aws)
    written = observed_bucket(aws).objects[KEY]
    assert written is not None
    assert (written.body, written.content_type, written.cache_control, written.owner) == (
        b'{"keys": []}',
        "application/json",
        "max-age=300",
        OWNER,
    )
    head = raw_s3().head_object(Bucket=BUCKET, Key=KEY)
    assert head["Metadata"] == {OWNER_METADATA: OWNER}
    assert aws.tally.writes() == {"s3:PutObject": 1}


def test_delete_object_then_bucket(moto: MotoServer) -> None:
    make_bucket(BUCKET)
    aws = AwsClients()
    execute([put_object()], aws)
    execute(
        [
            DeleteObject("s3:DeleteObject", f"s3://{BUCKET}/{KEY}", "unpublish", bucket=BUCKET, key=KEY),
            DeleteBucket("s3:DeleteBucket", BUCKET, "delete the bucket", bucket=BUCKET),
        ],
        aws,
    )
    assert not observed_bucket(aws).exists
    assert aws.tally.writes() == {"s3:PutObject": 1, "s3:DeleteObject": 1, "s3:DeleteBucket": 1}


def test_a_bucket_in_another_region_is_written_through_its_own_region(moto: MotoServer) -> None:
    aws = AwsClients()
    execute([create_bucket("eu-west-1"), put_object()], aws)
    assert aws.s3_for(BUCKET).meta.region_name == "eu-west-1"
    assert raw_s3("eu-west-1").get_object(Bucket=BUCKET, Key=KEY)["Body"].read() == b'{"keys": []}'


# --- IAM --------------------------------------------------------------------------------------------


def test_create_provider_with_client_ids_and_no_thumbprint(moto: MotoServer) -> None:
    aws = AwsClients()
    execute([create_provider()], aws)
    provider = observe_provider(ISSUER, aws)
    assert provider is not None
    assert (provider.arn, provider.client_ids, provider.thumbprints, dict(provider.tags)) == (
        ARN,
        ("sts.amazonaws.com",),
        (),
        {OWNER_TAG: OWNER},
    )
    assert aws.tally.writes() == {"iam:CreateOpenIDConnectProvider": 1}


def test_create_provider_with_thumbprints_and_no_client_id(moto: MotoServer) -> None:
    aws = AwsClients()
    execute([create_provider(client_ids=(), thumbprints=(THUMBPRINT,))], aws)
    provider = observe_provider(ISSUER, aws)
    assert provider is not None
    assert (provider.client_ids, provider.thumbprints) == ((), (THUMBPRINT,))


def test_client_ids_added_and_removed(moto: MotoServer) -> None:
    aws = AwsClients()
    execute(
        [
            create_provider(client_ids=("sts.amazonaws.com", "old")),
            AddClientID("iam:AddClientIDToOpenIDConnectProvider", ARN, "add", provider_arn=ARN, client_id="new"),
            RemoveClientID(
                "iam:RemoveClientIDFromOpenIDConnectProvider", ARN, "remove", provider_arn=ARN, client_id="old"
            ),
        ],
        aws,
    )
    provider = observe_provider(ISSUER, aws)
    assert provider is not None
    assert provider.client_ids == ("sts.amazonaws.com", "new")
    assert aws.tally.writes() == {
        "iam:CreateOpenIDConnectProvider": 1,
        "iam:AddClientIDToOpenIDConnectProvider": 1,
        "iam:RemoveClientIDFromOpenIDConnectProvider": 1,
    }


def test_thumbprints_tags_and_deletion(moto: MotoServer) -> None:
    raw_iam().create_open_id_connect_provider(Url=ISSUER, ClientIDList=["sts.amazonaws.com"])
    aws = AwsClients()
    execute(
        [
            UpdateThumbprints(
                "iam:UpdateOpenIDConnectProviderThumbprint", ARN, "pin", provider_arn=ARN, thumbprints=(THUMBPRINT,)
            ),
            TagProvider("iam:TagOpenIDConnectProvider", ARN, "adopt", provider_arn=ARN, tags={OWNER_TAG: OWNER}),
        ],
        aws,
    )
    provider = observe_provider(ISSUER, aws)
    assert provider is not None
    assert (provider.thumbprints, dict(provider.tags)) == ((THUMBPRINT,), {OWNER_TAG: OWNER})
    execute([DeleteProvider("iam:DeleteOpenIDConnectProvider", ARN, "delete", provider_arn=ARN)], aws)
    assert observe_provider(ISSUER, aws) is None
    assert aws.tally.writes() == {
        "iam:UpdateOpenIDConnectProviderThumbprint": 1,
        "iam:TagOpenIDConnectProvider": 1,
        "iam:DeleteOpenIDConnectProvider": 1,
    }


# --- the run as a whole -----------------------------------------------------------------------------


def test_a_whole_issuer_in_one_run_one_call_per_change(moto: MotoServer) -> None:
    aws = AwsClients()
    changes: list[Change] = [
        create_bucket(),
        PutPublicAccessBlock("s3:PutPublicAccessBlock", BUCKET, "relax", bucket=BUCKET, block=RELAXED),
        PutBucketPolicy("s3:PutBucketPolicy", BUCKET, "grant", bucket=BUCKET, policy=POLICY),
        put_object(),
        create_provider(),
    ]
    assert execute(changes, aws) == changes
    # The bucket's tags come in a second call; every other change is exactly one.
    assert aws.tally.total_writes() == len(changes) + 1
    assert set(aws.tally.writes()) == {change.action for change in changes} | {"s3:PutBucketTagging"}
    assert json.loads(raw_s3().get_bucket_policy(Bucket=BUCKET)["Policy"]) == POLICY


def test_nothing_to_do_makes_no_call(moto: MotoServer) -> None:
    aws = AwsClients()
    assert execute([], aws) == []
    assert aws.tally.calls() == {}


def test_the_first_failure_stops_the_run_and_tells_what_was_applied(moto: MotoServer) -> None:
    make_bucket(BUCKET)
    aws = AwsClients()
    first = put_object()
    failing = PutBucketPolicy("s3:PutBucketPolicy", "no-such-bucket", "grant", bucket="no-such-bucket", policy=POLICY)
    never = create_provider()
    with pytest.raises(ExecutionStopped) as raised:
        execute([first, failing, never], aws)
    stopped = raised.value
    assert (stopped.kind, stopped.code, stopped.action) == ("terminal", "NoSuchBucket", "s3:PutBucketPolicy")
    assert stopped.change is failing
    assert stopped.applied == (first,)
    assert "s3:PutBucketPolicy for no-such-bucket" in stopped.message
    assert observe_provider(ISSUER, aws) is None  # the change after the failure was not attempted
    assert "iam:CreateOpenIDConnectProvider" not in aws.tally.calls()


def test_an_unknown_kind_of_change_is_a_bug_not_an_aws_error(moto: MotoServer) -> None:
    with pytest.raises(TypeError, match="no AWS call for a change of type Change"):
        execute([Change("s3:Nothing", "x", "nothing")], AwsClients())


def test_every_kind_of_change_has_its_call() -> None:
    # The action a planner should put in a change, for every kind the executor knows.
    assert set(ACTIONS) == {
        cls for cls in vars(model).values() if isinstance(cls, type) and issubclass(cls, Change) and cls is not Change
    }


def test_client_id_changes_are_idempotent_as_iam_documents(moto: MotoServer) -> None:
    # A run cut short and repeated (the controller's retry) may add a client ID that is there or
    # remove one that is gone: IAM answers both with success and no change.
    aws = AwsClients()
    execute([create_provider(client_ids=("sts.amazonaws.com",))], aws)
    execute(
        [
            AddClientID(
                "iam:AddClientIDToOpenIDConnectProvider", ARN, "add", provider_arn=ARN, client_id="sts.amazonaws.com"
            ),
            RemoveClientID(
                "iam:RemoveClientIDFromOpenIDConnectProvider", ARN, "remove", provider_arn=ARN, client_id="gone"
            ),
        ],
        aws,
    )
    provider = observe_provider(ISSUER, aws)
    assert provider is not None
    assert provider.client_ids == ("sts.amazonaws.com",)
