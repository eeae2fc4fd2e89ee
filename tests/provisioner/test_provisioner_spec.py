"""Reading an IRSAIssuer: the defaults, the derived issuer URL, and one clear line for every mistake."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from tests.support.cases import load_yaml
from tests.support.oidckeys import EC_KID, RSA_KID, TESTDATA
from tests.support.paths import CASES
from tests.support.provisioning import issuer_object, merge_patch, public_pem, with_test_keys
from webhook.oidc.errors import InputError
from webhook.oidc.jwks import key_id
from webhook.oidc.keys import load_public_keys
from webhook.provisioner.spec import read_issuer

S3 = {"bucket": "irsa-test", "region": "us-east-1", "prefix": "cluster-a"}


def issuer(**spec: Any) -> dict[str, Any]:
    return issuer_object(spec or {"discovery": {"s3": S3}})


def test_defaults_and_derived_url() -> None:
    spec = read_issuer(issuer(discovery={"s3": S3}), "prod")
    assert spec.name == "main"
    assert spec.generation == 1
    assert spec.owner == "prod/irsaissuer/main"
    assert spec.issuer_url == "https://irsa-test.s3.us-east-1.amazonaws.com/cluster-a"
    assert spec.s3 is not None
    assert (spec.s3.bucket, spec.s3.region, spec.s3.prefix, spec.s3.create_bucket) == (
        "irsa-test",
        "us-east-1",
        "cluster-a",
        False,
    )
    assert spec.key_source == "APIServer"
    assert spec.public_keys == ()
    assert spec.client_ids == ("sts.amazonaws.com",)
    assert spec.thumbprints == ()
    assert spec.deletion_policy == "Retain"


def test_generation_defaults_to_zero() -> None:
    obj = issuer()
    del obj["metadata"]["generation"]
    assert read_issuer(obj, "c").generation == 0


@pytest.mark.parametrize(
    ("prefix", "key", "url"),
    [
        pytest.param(None, "keys.json", "https://irsa-test.s3.us-east-1.amazonaws.com", id="none"),
        pytest.param("", "keys.json", "https://irsa-test.s3.us-east-1.amazonaws.com", id="empty"),
        pytest.param("/", "keys.json", "https://irsa-test.s3.us-east-1.amazonaws.com", id="slash"),
        pytest.param("/a/b/", "a/b/keys.json", "https://irsa-test.s3.us-east-1.amazonaws.com/a/b", id="slashes"),
        pytest.param(
            "v1.2_x~y", "v1.2_x~y/keys.json", "https://irsa-test.s3.us-east-1.amazonaws.com/v1.2_x~y", id="chars"
        ),
    ],
)
def test_prefix_normalised(prefix: str | None, key: str, url: str) -> None:
    s3 = {"bucket": "irsa-test", "region": "us-east-1"} | ({"prefix": prefix} if prefix is not None else {})
    spec = read_issuer(issuer(discovery={"s3": s3}), "c")
    assert spec.s3 is not None
    assert spec.s3.key("keys.json") == key
    assert spec.issuer_url == url


@pytest.mark.parametrize(
    ("region", "url"),
    [
        ("cn-northwest-1", "https://bkt.s3.cn-northwest-1.amazonaws.com.cn"),
        ("us-gov-west-1", "https://bkt.s3.us-gov-west-1.amazonaws.com"),
        ("eu-central-2", "https://bkt.s3.eu-central-2.amazonaws.com"),
    ],
)
def test_derived_url_per_partition(region: str, url: str) -> None:
    spec = read_issuer(issuer(discovery={"s3": {"bucket": "bkt", "region": region}}), "c")
    assert spec.issuer_url == url


def test_given_issuer_url_allows_dotted_bucket() -> None:
    spec = read_issuer(
        issuer(
            issuerURL="https://oidc.example.com/x",
            discovery={"s3": {"bucket": "oidc.example.com", "region": "eu-west-1"}},
        ),
        "c",
    )
    assert spec.issuer_url == "https://oidc.example.com/x"


def test_issuer_url_only() -> None:
    spec = read_issuer(issuer(issuerURL="https://oidc.eks.us-east-1.amazonaws.com/id/ABC"), "c")
    assert spec.s3 is None
    assert spec.issuer_url == "https://oidc.eks.us-east-1.amazonaws.com/id/ABC"


def test_public_keys_normalised_deduplicated_in_order() -> None:
    both = public_pem("ec") + public_pem("rsa")
    spec = read_issuer(issuer(discovery={"s3": S3}, keys={"publicKeys": [both, public_pem("rsa")]}), "c")
    assert [pem.splitlines()[0] for pem in spec.public_keys] == ["-----BEGIN PUBLIC KEY-----"] * 2
    # the order given, each key once: the JWKS lists them in this order
    assert [key_id(load_public_keys(pem.encode())[0].key) for pem in spec.public_keys] == [EC_KID, RSA_KID]


def test_public_key_files_read_by_the_cli() -> None:
    read: list[str] = []

    def read_file(path: str) -> str:
        read.append(path)
        return (TESTDATA / path).read_text()

    # A private key file is accepted from a file (as kube-apiserver's --service-account-key-file):
    # only its public half is kept.
    obj = issuer(discovery={"s3": S3}, keys={"source": "Static", "publicKeyFiles": ["rsa-private.pem"]})
    spec = read_issuer(obj, "c", read_file=read_file)
    assert read == ["rsa-private.pem"]
    assert len(spec.public_keys) == 1
    assert "PRIVATE" not in spec.public_keys[0]
    assert spec.public_keys[0] == public_pem("rsa")


def test_client_ids_and_thumbprints() -> None:
    spec = read_issuer(
        issuer(
            issuerURL="https://x.example",
            oidcProvider={"clientIDs": ["a", "b"], "thumbprints": ["9E99A48A9960B14926BB7F3B02E22DA2B0AB7280"]},
        ),
        "c",
    )
    assert spec.client_ids == ("a", "b")
    assert spec.thumbprints == ("9e99a48a9960b14926bb7f3b02e22da2b0ab7280",)


def test_input_not_modified() -> None:
    obj = issuer(discovery={"s3": {**S3, "prefix": "/a/"}}, keys={"publicKeys": [public_pem("ec")]})
    before = copy.deepcopy(obj)
    read_issuer(obj, "c")
    assert obj == before


BAD = load_yaml(CASES / "provisioner-spec" / "bad-objects.yaml")
# Before its name is known, a message cannot carry it.
NAMELESS = {"apiVersion", "kind", "no-name"}


def _bad_object(row: dict[str, Any]) -> dict[str, Any]:
    assert ("spec" in row) != ("object" in row), f"{row['id']}: give spec or object"
    if "spec" in row:
        return issuer_object(with_test_keys(row["spec"]))
    return merge_patch(issuer(), with_test_keys(row["object"]))  # type: ignore[no-any-return]


def test_bad_rows_are_unique() -> None:
    ids = [row["id"] for row in BAD]
    assert len(ids) == len(set(ids))
    assert len(ids) >= 40


@pytest.mark.parametrize("row", [pytest.param(row, id=row["id"]) for row in BAD])
def test_bad_object(row: dict[str, Any]) -> None:
    with pytest.raises(InputError) as caught:
        read_issuer(_bad_object(row), "c")
    message = str(caught.value)
    assert row["error"] in message
    assert "\n" not in message
    if row["id"] not in NAMELESS:
        assert message.startswith("IRSAIssuer main: "), message


def test_client_id_too_long() -> None:
    obj = issuer(issuerURL="https://x", oidcProvider={"clientIDs": ["a" * 256]})
    with pytest.raises(InputError, match="is longer than 255"):
        read_issuer(obj, "c")
    assert read_issuer(issuer(issuerURL="https://x", oidcProvider={"clientIDs": ["a" * 255]}), "c")


def test_cluster_name_required() -> None:
    with pytest.raises(InputError, match="the cluster name is empty: pass --cluster-name"):
        read_issuer(issuer(), "")


def test_not_a_mapping() -> None:
    with pytest.raises(InputError, match="an IRSAIssuer must be a mapping, not list"):
        read_issuer([], "c")  # type: ignore[arg-type]
