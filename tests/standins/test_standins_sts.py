"""The verifying STS refuses what AWS STS refuses, and only then hands out moto's credentials."""

from __future__ import annotations

import json
import time
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError

from tests.support.ports import free_port
from tests.support.standins import ManualIssuer, MotoServer, PublicS3, SigningKey, VerifyingSTS, admin_client
from tests.support.standins.issuer import service_account_subject

SUBJECT = service_account_subject("default", "app")


def assume(sts: VerifyingSTS, role_arn: str, token: str, **extra: Any) -> dict[str, Any]:
    answer: dict[str, Any] = admin_client(sts.url, "sts").assume_role_with_web_identity(
        RoleArn=role_arn, RoleSessionName="standin-test", WebIdentityToken=token, **extra
    )
    return answer


def refused(sts: VerifyingSTS, role_arn: str, token: str, **extra: Any) -> tuple[str, str]:
    """The error code and message boto3 raises for a refused call."""
    with pytest.raises(ClientError) as caught:
        assume(sts, role_arn, token, **extra)
    error = caught.value.response["Error"]
    assert sts.decisions[-1].allowed is False
    return error["Code"], error["Message"]


@pytest.fixture
def role(issuer: ManualIssuer) -> str:
    return issuer.create_role("app", "default", "app")


def test_a_correct_token_gets_credentials_with_the_fields_aws_adds(
    sts: VerifyingSTS, issuer: ManualIssuer, signer: SigningKey, role: str
) -> None:
    answer = assume(sts, role, signer.token(issuer.issuer_url, SUBJECT))
    assert answer["Credentials"]["AccessKeyId"]
    assert answer["AssumedRoleUser"]["Arn"] == "arn:aws:sts::123456789012:assumed-role/app/standin-test"
    assert answer["SubjectFromWebIdentityToken"] == SUBJECT
    assert answer["Audience"] == "sts.amazonaws.com"
    assert answer["Provider"] == issuer.provider_arn
    decision = sts.decisions[-1]
    assert (decision.allowed, decision.subject, decision.kid, decision.role_arn) == (True, SUBJECT, signer.kid, role)


def test_the_credentials_are_moto_s_own_so_get_caller_identity_knows_them(
    sts: VerifyingSTS, issuer: ManualIssuer, signer: SigningKey, role: str
) -> None:
    credentials = assume(sts, role, signer.token(issuer.issuer_url, SUBJECT))["Credentials"]
    identity = (
        boto3.session.Session()
        .client(
            "sts",
            endpoint_url=sts.url,
            region_name="us-east-1",
            aws_access_key_id=credentials["AccessKeyId"],
            aws_secret_access_key=credentials["SecretAccessKey"],
            aws_session_token=credentials["SessionToken"],
        )
        .get_caller_identity()
    )
    assert identity["Arn"] == "arn:aws:sts::123456789012:assumed-role/app/standin-test"


def test_moto_alone_accepts_a_garbage_token_for_a_role_that_does_not_exist(moto: MotoServer) -> None:
    """Why the stand-in exists: without it the chain proves nothing."""
    answer = admin_client(moto.url, "sts").assume_role_with_web_identity(
        RoleArn="arn:aws:iam::123456789012:role/nobody", RoleSessionName="standin-test", WebIdentityToken="garbage"
    )
    assert answer["Credentials"]["AccessKeyId"]


def test_a_garbage_token_is_refused(sts: VerifyingSTS, issuer: ManualIssuer, role: str) -> None:
    assert refused(sts, role, "garbage")[0] == "InvalidIdentityToken"
    assert "not a JWT" in sts.decisions[-1].reason


def test_an_unknown_role_is_refused(sts: VerifyingSTS, issuer: ManualIssuer, signer: SigningKey) -> None:
    code, message = refused(sts, "arn:aws:iam::123456789012:role/nobody", signer.token(issuer.issuer_url, SUBJECT))
    assert (code, message) == ("AccessDenied", "Not authorized to perform sts:AssumeRoleWithWebIdentity")


def test_a_role_arn_with_another_path_is_refused(
    sts: VerifyingSTS, issuer: ManualIssuer, signer: SigningKey, role: str
) -> None:
    code, _ = refused(sts, "arn:aws:iam::123456789012:role/team/app", signer.token(issuer.issuer_url, SUBJECT))
    assert code == "AccessDenied"
    assert "there is arn:aws:iam::123456789012:role/app" in sts.decisions[-1].reason


def test_a_token_from_an_unpublished_key_is_refused(
    sts: VerifyingSTS, issuer: ManualIssuer, other_key: SigningKey, role: str
) -> None:
    code, message = refused(sts, role, other_key.token(issuer.issuer_url, SUBJECT))
    assert code == "InvalidIdentityToken"
    assert message.startswith("Couldn't retrieve verification key")
    assert f"kid {other_key.kid!r} is not in the issuer's JWKS" in sts.decisions[-1].reason


def test_a_token_signed_by_another_key_under_a_published_kid_is_refused(
    sts: VerifyingSTS, issuer: ManualIssuer, signer: SigningKey, other_key: SigningKey, role: str
) -> None:
    forged = other_key.token(issuer.issuer_url, SUBJECT, kid=signer.kid)
    assert refused(sts, role, forged)[0] == "InvalidIdentityToken"
    assert sts.decisions[-1].reason.startswith("signature")


def test_a_token_for_another_audience_is_refused(
    sts: VerifyingSTS, issuer: ManualIssuer, signer: SigningKey, role: str
) -> None:
    code, message = refused(sts, role, signer.token(issuer.issuer_url, SUBJECT, audience="vault"))
    assert (code, message) == ("InvalidIdentityToken", "Incorrect token audience")


def test_azp_is_the_audience_when_present(
    sts: VerifyingSTS, issuer: ManualIssuer, signer: SigningKey, role: str
) -> None:
    token = signer.token(issuer.issuer_url, SUBJECT, audience="sts.amazonaws.com", azp="someone-else")
    assert refused(sts, role, token) == ("InvalidIdentityToken", "Incorrect token audience")


def test_an_expired_token_is_refused(sts: VerifyingSTS, issuer: ManualIssuer, signer: SigningKey, role: str) -> None:
    token = signer.token(issuer.issuer_url, SUBJECT, lifetime=600, issued_at=time.time() - 3600)
    code, message = refused(sts, role, token)
    assert code == "ExpiredTokenException"
    assert message.startswith("Token expired: current date/time")


def test_a_token_expires_on_the_stand_in_s_clock(
    sts: VerifyingSTS, issuer: ManualIssuer, signer: SigningKey, role: str
) -> None:
    token = signer.token(issuer.issuer_url, SUBJECT, lifetime=600)
    assume(sts, role, token)
    sts.advance(601)
    assert refused(sts, role, token)[0] == "ExpiredTokenException"


def test_a_token_issued_in_the_future_is_refused(
    sts: VerifyingSTS, issuer: ManualIssuer, signer: SigningKey, role: str
) -> None:
    token = signer.token(issuer.issuer_url, SUBJECT, issued_at=time.time() + 3600)
    assert refused(sts, role, token)[0] == "InvalidIdentityToken"


def test_a_trust_policy_for_another_service_account_refuses(
    sts: VerifyingSTS, issuer: ManualIssuer, signer: SigningKey
) -> None:
    role = issuer.create_role("other", "default", "other")
    code, _ = refused(sts, role, signer.token(issuer.issuer_url, SUBJECT))
    assert code == "AccessDenied"
    assert "no statement allows it" in sts.decisions[-1].reason


def test_a_trust_policy_for_another_provider_refuses(
    sts: VerifyingSTS, issuer: ManualIssuer, signer: SigningKey
) -> None:
    policy = issuer.trust_policy("default", "app")
    policy["Statement"][0]["Principal"]["Federated"] = issuer.provider_arn + "-other"
    role = issuer.create_role("app", "default", "app", policy=policy)
    assert refused(sts, role, signer.token(issuer.issuer_url, SUBJECT))[0] == "AccessDenied"


def test_a_wildcard_subject_allows_and_a_deny_statement_wins(
    sts: VerifyingSTS, issuer: ManualIssuer, signer: SigningKey
) -> None:
    policy = issuer.trust_policy("default", "app")
    allow = policy["Statement"][0]
    allow["Condition"] = {"StringLike": {f"{issuer.host_path}:sub": "system:serviceaccount:default:*"}}
    role = issuer.create_role("team", "default", "app", policy=policy)
    assume(sts, role, signer.token(issuer.issuer_url, SUBJECT))

    deny = {**allow, "Effect": "Deny", "Condition": {"StringEquals": {f"{issuer.host_path}:sub": SUBJECT}}}
    policy["Statement"].append(deny)
    issuer.iam.update_assume_role_policy(RoleName="team", PolicyDocument=json.dumps(policy))
    assert refused(sts, role, signer.token(issuer.issuer_url, SUBJECT))[0] == "AccessDenied"
    assert "explicitly denied" in sts.decisions[-1].reason


def test_a_missing_provider_is_refused(
    moto: MotoServer, front: PublicS3, sts: VerifyingSTS, signer: SigningKey
) -> None:
    issuer = ManualIssuer(moto.url, front)
    issuer.create_bucket()
    issuer.publish([signer])
    issuer.make_public()
    role = issuer.create_role("app", "default", "app")
    code, message = refused(sts, role, signer.token(issuer.issuer_url, SUBJECT))
    assert (code, message) == (
        "InvalidIdentityToken",
        f"No OpenIDConnect provider found in your account for {issuer.issuer_url}",
    )


def test_a_bucket_that_is_not_public_gives_no_verification_key(
    moto: MotoServer, front: PublicS3, sts: VerifyingSTS, signer: SigningKey
) -> None:
    issuer = ManualIssuer(moto.url, front)
    issuer.create_bucket()
    issuer.publish([signer])
    issuer.create_provider()
    role = issuer.create_role("app", "default", "app")
    code, message = refused(sts, role, signer.token(issuer.issuer_url, SUBJECT))
    assert code == "InvalidIdentityToken"
    assert message.startswith("Couldn't retrieve verification key")
    assert sts.decisions[-1].reason.endswith("openid-configuration: HTTP 403")


def test_a_discovery_document_naming_another_issuer_is_refused(
    sts: VerifyingSTS, issuer: ManualIssuer, signer: SigningKey, role: str
) -> None:
    issuer.publish([signer], issuer=issuer.issuer_url + "/")
    assert refused(sts, role, signer.token(issuer.issuer_url, SUBJECT))[0] == "InvalidIdentityToken"
    assert "is not the token's iss" in sts.decisions[-1].reason


def test_an_unreachable_issuer_is_an_idp_communication_error(
    moto: MotoServer, sts: VerifyingSTS, signer: SigningKey
) -> None:
    url = f"https://127.0.0.1:{free_port()}/nowhere"
    admin_client(moto.url, "iam").create_open_id_connect_provider(Url=url, ClientIDList=["sts.amazonaws.com"])
    role = "arn:aws:iam::123456789012:role/app"
    assert refused(sts, role, signer.token(url, SUBJECT))[0] == "IDPCommunicationError"


def test_an_issuer_whose_certificate_is_not_trusted_is_an_idp_communication_error(
    moto: MotoServer, issuer: ManualIssuer, signer: SigningKey, role: str
) -> None:
    with VerifyingSTS(moto.url) as untrusting:  # the system's CAs only
        assert refused(untrusting, role, signer.token(issuer.issuer_url, SUBJECT))[0] == "IDPCommunicationError"
        assert "CERTIFICATE_VERIFY_FAILED" in untrusting.decisions[-1].reason


def test_an_ec_key_verifies(moto: MotoServer, front: PublicS3, sts: VerifyingSTS) -> None:
    key = SigningKey.generate("ec")
    issuer = ManualIssuer(moto.url, front).setup([key])
    role = issuer.create_role("app", "default", "app")
    assert assume(sts, role, key.token(issuer.issuer_url, SUBJECT))["Provider"] == issuer.provider_arn


def test_a_session_longer_than_the_role_allows_is_refused(
    sts: VerifyingSTS, issuer: ManualIssuer, signer: SigningKey, role: str
) -> None:
    token = signer.token(issuer.issuer_url, SUBJECT)
    assert refused(sts, role, token, DurationSeconds=7200)[0] == "ValidationError"


# --- the JWKS cache ------------------------------------------------------------------------------


@pytest.fixture
def caching_sts(moto: MotoServer, front: PublicS3) -> Any:
    with VerifyingSTS(moto.url, ca_file=front.ca_file, jwks_ttl=600) as running:
        yield running


def test_without_a_cache_every_call_fetches_the_documents(
    sts: VerifyingSTS, issuer: ManualIssuer, signer: SigningKey, role: str
) -> None:
    assume(sts, role, signer.token(issuer.issuer_url, SUBJECT))
    assume(sts, role, signer.token(issuer.issuer_url, SUBJECT))
    assert len(sts.fetches) == 4


def test_a_cached_key_set_is_used_until_it_expires(
    caching_sts: VerifyingSTS, issuer: ManualIssuer, signer: SigningKey, role: str
) -> None:
    assume(caching_sts, role, signer.token(issuer.issuer_url, SUBJECT))
    assume(caching_sts, role, signer.token(issuer.issuer_url, SUBJECT))
    assert len(caching_sts.fetches) == 2
    caching_sts.advance(601)
    assume(caching_sts, role, signer.token(issuer.issuer_url, SUBJECT))
    assert len(caching_sts.fetches) == 4


def test_switching_the_signer_before_caches_saw_the_new_key_fails(
    caching_sts: VerifyingSTS, issuer: ManualIssuer, signer: SigningKey, other_key: SigningKey, role: str
) -> None:
    assume(caching_sts, role, signer.token(issuer.issuer_url, SUBJECT))  # STS has cached the old set
    issuer.publish_keys([signer, other_key])  # published, but a moment ago
    assert refused(caching_sts, role, other_key.token(issuer.issuer_url, SUBJECT))[0] == "InvalidIdentityToken"


def test_the_documented_order_passes_publish_wait_out_the_cache_then_switch(
    caching_sts: VerifyingSTS, issuer: ManualIssuer, signer: SigningKey, other_key: SigningKey, role: str
) -> None:
    assume(caching_sts, role, signer.token(issuer.issuer_url, SUBJECT))
    issuer.publish_keys([signer, other_key])
    caching_sts.advance(601)  # longer than any cache of the old set
    assume(caching_sts, role, other_key.token(issuer.issuer_url, SUBJECT))  # the new signer
    assume(caching_sts, role, signer.token(issuer.issuer_url, SUBJECT))  # tokens already out still verify


def test_other_actions_pass_through_unchanged(moto: MotoServer, sts: VerifyingSTS) -> None:
    identity = admin_client(sts.url, "sts").get_caller_identity()
    assert identity["Account"] == "123456789012"
    assert sts.decisions == []
