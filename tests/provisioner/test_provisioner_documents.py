"""The published documents and the semantic comparison that keeps a converged issuer from writing."""

from __future__ import annotations

import hashlib
import json
from typing import Any

import pytest

from tests.support.oidckeys import EC_KID, RSA_KID
from tests.support.provisioning import cluster_keys, issuer_object, jwk_of, public_pem
from webhook.provisioner.documents import (
    CACHE_CONTROL,
    algorithms,
    body_kids,
    desired_jwks,
    discovery_body,
    jwks_body,
    jwks_diff,
    load_policy,
    merged_bucket_policy,
    policy_statement,
    same_json,
    same_jwks,
    same_policy,
    statement_id,
    without_our_statement,
)
from webhook.provisioner.documents import (
    cluster_keys as served_keys,
)
from webhook.provisioner.model import IssuerSpec
from webhook.provisioner.spec import read_issuer

S3 = {"bucket": "irsa-test", "region": "us-east-1", "prefix": "cluster-a"}


def spec_of(**spec: Any) -> IssuerSpec:
    return read_issuer(issuer_object(spec or {"discovery": {"s3": S3}}), "test")


OURS = policy_statement(spec_of(), "aws")
SID = "IRSAWebhook" + hashlib.sha256(b"irsa-test/cluster-a").hexdigest()[:16]
OTHER = {
    "Sid": "Other",
    "Effect": "Deny",
    "Principal": "*",
    "Action": "s3:DeleteObject",
    "Resource": "arn:aws:s3:::x/*",
}


def test_cache_control_is_short_and_explicit() -> None:
    assert CACHE_CONTROL == "max-age=300"


def test_discovery_body() -> None:
    document = json.loads(discovery_body(spec_of(), ["RS256", "ES256", "RS256"]))
    assert document["issuer"] == "https://irsa-test.s3.us-east-1.amazonaws.com/cluster-a"
    assert document["jwks_uri"] == "https://irsa-test.s3.us-east-1.amazonaws.com/cluster-a/keys.json"
    assert document["id_token_signing_alg_values_supported"] == ["ES256", "RS256"]


def test_jwks_body_is_stable_and_each_kid_once() -> None:
    rsa, ec = jwk_of("rsa"), jwk_of("ec")
    body = jwks_body([rsa, ec, dict(rsa)])
    assert body == jwks_body([rsa, ec])
    assert body.endswith(b"\n")
    assert [key["kid"] for key in json.loads(body)["keys"]] == [RSA_KID, EC_KID]
    assert body_kids(body) == [RSA_KID, EC_KID]


@pytest.mark.parametrize("body", [None, b"", b"not json", b"[]", b'{"keys": 3}'])
def test_body_kids_of_something_else(body: bytes | None) -> None:
    assert body_kids(body) is None


def test_desired_jwks_api_server_then_static_each_once() -> None:
    spec = spec_of(discovery={"s3": S3}, keys={"publicKeys": [public_pem("ec"), public_pem("rsa")]})
    keys = desired_jwks(spec, cluster_keys(["rsa"]).jwks)
    assert keys is not None
    assert [key["kid"] for key in keys] == [RSA_KID, EC_KID]
    assert algorithms(keys) == ["ES256", "RS256"]


def test_desired_jwks_unknown_cluster_keys_is_unknown_not_partial() -> None:
    spec = spec_of(discovery={"s3": S3}, keys={"publicKeys": [public_pem("ec")]})
    assert desired_jwks(spec, None) is None


@pytest.mark.parametrize(
    "served",
    [{}, {"keys": "x"}, {"keys": [{"kty": "RSA"}]}, {"keys": [{"kid": ""}]}, {"keys": ["x"]}],
    ids=["no-keys", "not-list", "no-kid", "empty-kid", "not-object"],
)
def test_cluster_key_set_that_cannot_be_named_is_unknown(served: dict[str, Any]) -> None:
    assert served_keys(served) is None
    assert desired_jwks(spec_of(), served) is None


def test_desired_jwks_static_ignores_the_cluster() -> None:
    spec = spec_of(discovery={"s3": S3}, keys={"source": "Static", "publicKeys": [public_pem("ec")]})
    for served in (None, cluster_keys(["rsa"]).jwks):
        keys = desired_jwks(spec, served)
        assert keys is not None
        assert [key["kid"] for key in keys] == [EC_KID]


def test_policy_statement() -> None:
    assert OURS == {
        "Sid": SID,
        "Effect": "Allow",
        "Principal": "*",
        "Action": "s3:GetObject",
        "Resource": [
            "arn:aws:s3:::irsa-test/cluster-a/.well-known/openid-configuration",
            "arn:aws:s3:::irsa-test/cluster-a/keys.json",
        ],
    }
    no_prefix = spec_of(discovery={"s3": {"bucket": "irsa-test", "region": "cn-north-1"}})
    assert no_prefix.s3 is not None
    statement = policy_statement(no_prefix, "aws-cn")
    assert statement["Resource"] == [
        "arn:aws-cn:s3:::irsa-test/.well-known/openid-configuration",
        "arn:aws-cn:s3:::irsa-test/keys.json",
    ]
    assert statement["Sid"] == statement_id(no_prefix.s3) != SID


def test_merged_policy_new() -> None:
    assert merged_bucket_policy(None, OURS) == {"Version": "2012-10-17", "Statement": [OURS]}


def test_merged_policy_keeps_others_and_replaces_ours_in_place() -> None:
    stale = {**OURS, "Resource": "arn:aws:s3:::irsa-test/*"}
    existing = {"Version": "2012-10-17", "Id": "keep-me", "Statement": [OTHER, stale, {**stale}]}
    merged = merged_bucket_policy(existing, OURS)
    assert merged == {"Version": "2012-10-17", "Id": "keep-me", "Statement": [OTHER, OURS]}
    assert existing["Statement"] == [OTHER, stale, stale], "the input was modified"


def test_merged_policy_single_statement_object() -> None:
    merged = merged_bucket_policy({"Version": "2012-10-17", "Statement": OTHER}, OURS)
    assert merged["Statement"] == [OTHER, OURS]


def test_without_our_statement() -> None:
    assert without_our_statement({"Version": "2012-10-17", "Statement": [OURS]}, SID) is None
    assert without_our_statement(None, SID) is None
    rest = without_our_statement({"Version": "2012-10-17", "Statement": [OTHER, OURS]}, SID)
    assert rest == {"Version": "2012-10-17", "Statement": [OTHER]}
    encoded = {**OURS, "Sid": SID.replace("W", "%57")}
    assert without_our_statement({"Statement": [encoded, OTHER]}, SID) == {"Statement": [OTHER]}


SAME = [
    pytest.param({"a": "x:y"}, {"a": "x%3Ay"}, id="url-encoded"),
    pytest.param({"a%3Ab": 1}, {"a:b": 1}, id="url-encoded-key"),
    pytest.param({"a": 1, "b": 2}, {"b": 2, "a": 1}, id="key-order"),
    pytest.param({"a": "x"}, {"a": ["x"]}, id="string-vs-one-element-list"),
    pytest.param({"a": ["x", "y"]}, {"a": ["y", "x"]}, id="list-order"),
    pytest.param({"a": ["x", "x"]}, {"a": "x"}, id="repeats"),
    pytest.param({"a": [{"b": "1", "c": ["2", "3"]}]}, {"a": {"c": ["3", "2"], "b": ["1"]}}, id="nested"),
]
DIFFERENT = [
    pytest.param({"a": "x"}, {"a": "y"}, id="value"),
    pytest.param({"a": ["x", "y"]}, {"a": "x"}, id="list-vs-string"),
    pytest.param({"a": True}, {"a": 1}, id="bool-vs-number"),
    pytest.param({"a": "1"}, {"a": 1}, id="string-vs-number"),
    pytest.param({"a": None}, {}, id="null-vs-absent"),
    pytest.param({"a": []}, {"a": ""}, id="empty-list-vs-empty-string"),
    pytest.param({"Version": "2012-10-17"}, {"Version": "2008-10-17"}, id="version"),
    pytest.param({"Id": "a"}, {}, id="id"),
]


@pytest.mark.parametrize(("a", "b"), SAME)
def test_same_json(a: Any, b: Any) -> None:
    assert same_json(a, b)
    assert same_json(b, a)


@pytest.mark.parametrize(("a", "b"), DIFFERENT)
def test_different_json(a: Any, b: Any) -> None:
    assert not same_json(a, b)
    assert not same_json(b, a)


def test_same_policy_as_iam_returns_it() -> None:
    ours = merged_bucket_policy(None, OURS)
    from_iam = load_policy(
        "%7B%22Statement%22%3A%5B%7B%22Resource%22%3A%5B%22arn%3Aaws%3As3%3A%3A%3Airsa-test%2Fcluster-a%2Fkeys.json"
        "%22%2C%22arn%3Aaws%3As3%3A%3A%3Airsa-test%2Fcluster-a%2F.well-known%2Fopenid-configuration%22%5D%2C"
        "%22Action%22%3A%5B%22s3%3AGetObject%22%5D%2C%22Principal%22%3A%22*%22%2C%22Effect%22%3A%22Allow%22%2C"
        f"%22Sid%22%3A%22{SID}%22%7D%5D%2C%22Version%22%3A%222012-10-17%22%7D"
    )
    assert same_policy(ours, from_iam)
    assert same_policy(ours, load_policy(json.dumps(ours)))
    assert not same_policy(ours, None)
    assert same_policy(None, None)
    assert not same_policy(ours, merged_bucket_policy(ours, {**OURS, "Effect": "Deny"}))


def test_load_policy_refuses_non_objects() -> None:
    with pytest.raises(ValueError, match="a policy document is a JSON object"):
        load_policy("[]")


def test_same_jwks_is_a_set_of_keys() -> None:
    rsa, ec = jwk_of("rsa"), jwk_of("ec")
    reordered = {name: rsa[name] for name in reversed(list(rsa))}
    assert same_jwks({"keys": [rsa, ec]}, [ec, reordered])
    assert same_jwks({"keys": [rsa, rsa]}, [rsa])
    assert not same_jwks([rsa], [rsa, ec])
    assert not same_jwks([rsa], [{**rsa, "e": "AQAC"}])
    assert not same_jwks([rsa], None)


def test_jwks_diff() -> None:
    rsa, ec = jwk_of("rsa"), jwk_of("ec")
    assert jwks_diff([rsa], [rsa, ec]) == f"+ kid {EC_KID}"
    assert jwks_diff([rsa, ec], [ec]) == f"- kid {RSA_KID}"
    assert jwks_diff([rsa], [{**rsa, "e": "AQAC"}]) == f"~ kid {RSA_KID} (key material changed)"
    assert jwks_diff([rsa], [rsa]) == ""
