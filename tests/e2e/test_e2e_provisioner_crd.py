"""The IRSAIssuer CRD (manifests/components/provisioner/crd-irsaissuers.yaml, the chart's copy is the
same: tests/deploy/test_deploy_provisioner.py) in a real kube-apiserver: installed and Established,
it accepts the issuer examples in examples/provisioner and fills in the defaults; its schema and CEL rules
refuse what the object alone shows to be wrong, with messages that say what to do; the status
subresource and the printer columns work.

Objects go through `kubectl apply --dry-run=server --validate=strict` (decoding, defaulting, schema,
CEL, strict fields) except where a stored object is needed (status, columns).
"""

from __future__ import annotations

import copy
import json
import subprocess
from collections.abc import Iterator
from typing import Any

import pytest

from tests.deploy.render import documents
from tests.support.controlplane import ControlPlane
from tests.support.crds import admitted, dry_run
from tests.support.crds import issuer_crd as installed_crd
from tests.support.paths import REPO

pytestmark = pytest.mark.e2e

EXAMPLES = REPO / "examples" / "provisioner"


@pytest.fixture(scope="module")
def issuer_crd(control_plane: ControlPlane) -> Iterator[None]:
    """The CRD, Established; deleted again afterwards (so a Helm release can own it in another test)."""
    with installed_crd(control_plane):
        yield


def issuer(name: str = "main", **spec: Any) -> dict[str, Any]:
    return {"apiVersion": "irsa-webhook.io/v1alpha1", "kind": "IRSAIssuer", "metadata": {"name": name}, "spec": spec}


S3 = {"bucket": "example-cluster-oidc", "region": "eu-west-1", "prefix": "prod-eu-1"}
PEM = "-----BEGIN PUBLIC KEY-----\nMFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAE\n-----END PUBLIC KEY-----\n"


@pytest.mark.parametrize("path", sorted(EXAMPLES.glob("issuer-*.yaml")), ids=lambda p: p.stem)
def test_the_examples_are_accepted(control_plane: ControlPlane, issuer_crd: None, path: Any) -> None:
    (example,) = documents(path.read_text())
    stored = admitted(control_plane, example)
    # Nothing given is changed; what was left out is defaulted.
    assert stored["spec"] | example["spec"] == stored["spec"]


def test_defaults_are_filled_in(control_plane: ControlPlane, issuer_crd: None) -> None:
    """keys and oidcProvider default to {} so that their own defaults apply when they are left out."""
    stored = admitted(control_plane, issuer(discovery={"s3": S3}))["spec"]
    assert stored == {
        "discovery": {"s3": {**S3, "createBucket": False}},
        "keys": {"source": "APIServer"},
        "oidcProvider": {"clientIDs": ["sts.amazonaws.com"]},
        "deletionPolicy": "Retain",
    }
    eks = admitted(control_plane, issuer(issuerURL="https://oidc.eks.eu-west-1.amazonaws.com/id/ABC"))["spec"]
    assert eks["keys"] == {"source": "APIServer"}
    assert eks["oidcProvider"] == {"clientIDs": ["sts.amazonaws.com"]}
    assert eks["deletionPolicy"] == "Retain"
    # Given values stay as given.
    given = admitted(
        control_plane,
        issuer(
            issuerURL="https://issuer.example.com/cluster",
            discovery={"s3": {**S3, "bucket": "dotted.bucket.name", "createBucket": True}},
            keys={"source": "Static", "publicKeys": [PEM]},
            oidcProvider={
                "clientIDs": ["sts.amazonaws.com", "other"],
                "thumbprints": ["9e99a48a9960b14926bb7f3b02e22da2b0ab7280"],
            },
            deletionPolicy="Delete",
        ),
    )["spec"]
    assert given["keys"] == {"source": "Static", "publicKeys": [PEM]}
    assert given["discovery"]["s3"]["createBucket"] is True
    assert given["deletionPolicy"] == "Delete"


# Each refused spec, and a part of kube-apiserver's answer that says why.
REFUSED = [
    pytest.param({"keys": {"source": "APIServer"}}, "set issuerURL", id="neither-issuer-url-nor-s3"),
    pytest.param({"discovery": {}}, "set issuerURL", id="discovery-without-s3"),
    pytest.param({"issuerURL": "http://issuer.example.com"}, "should match '^https://", id="http-issuer"),
    pytest.param({"issuerURL": "https://issuer.example.com/a?b=c"}, "should match", id="issuer-with-query"),
    pytest.param({"issuerURL": "https://issuer.example.com/a#b"}, "should match", id="issuer-with-fragment"),
    pytest.param({"issuerURL": "https://issuer.example.com/a/"}, "must not end with a slash", id="trailing-slash"),
    pytest.param({"issuerURL": "https://" + "a" * 250}, "Too long", id="issuer-url-longer-than-iam-allows"),
    pytest.param(
        {"issuerURL": "https://i.example.com", "deletionPolicy": "Destroy"},
        'supported values: "Retain", "Delete"',
        id="bad-deletion-policy",
    ),
    pytest.param(
        {"issuerURL": "https://i.example.com", "keys": {"source": "Files"}},
        'supported values: "APIServer", "Static"',
        id="bad-key-source",
    ),
    pytest.param(
        {"issuerURL": "https://i.example.com", "keys": {"source": "Static"}},
        "keys.source Static publishes only the keys given",
        id="static-without-keys",
    ),
    pytest.param(
        {"issuerURL": "https://i.example.com", "keys": {"publicKeys": ["not a key"]}},
        "is a PEM text",
        id="public-key-not-pem",
    ),
    pytest.param(
        {"discovery": {"s3": {**S3, "bucket": "dotted.bucket"}}},
        "a bucket name with dots breaks the TLS certificate",
        id="dotted-bucket-derived-url",
    ),
    pytest.param({"discovery": {"s3": {**S3, "bucket": "Upper"}}}, "bucket in body should match", id="bad-bucket"),
    pytest.param({"discovery": {"s3": {"bucket": "b12"}}}, "region: Required value", id="s3-without-region"),
    pytest.param({"discovery": {"s3": {**S3, "region": "Ireland"}}}, "region in body should match", id="bad-region"),
    pytest.param(
        {"discovery": {"s3": {**S3, "prefix": "/a"}}}, "prefix in body should match", id="prefix-leading-slash"
    ),
    pytest.param(
        {"discovery": {"s3": {**S3, "prefix": "a/"}}}, "prefix in body should match", id="prefix-trailing-slash"
    ),
    pytest.param({"discovery": {"s3": {**S3, "prefix": "a/../b"}}}, "prefix in body should match", id="prefix-dot-dot"),
    pytest.param(
        {"discovery": {"s3": {**S3, "prefix": "a b"}}}, "prefix in body should match", id="prefix-needs-escaping"
    ),
    pytest.param(
        {"issuerURL": "https://i.example.com", "oidcProvider": {"clientIDs": []}},
        "should have at least 1 items",
        id="no-client-id",
    ),
    pytest.param(
        {"issuerURL": "https://i.example.com", "oidcProvider": {"clientIDs": ["a", "a"]}},
        "Duplicate value",
        id="duplicate-client-id",
    ),
    pytest.param(
        {"issuerURL": "https://i.example.com", "oidcProvider": {"thumbprints": ["abc"]}},
        "thumbprints[0] in body should match",
        id="bad-thumbprint",
    ),
    pytest.param(
        {"issuerURL": "https://i.example.com", "oidcProvider": {"thumbprints": ["a" * 40] * 6}},
        "must have at most 5 items",
        id="more-thumbprints-than-iam-allows",
    ),
    pytest.param({"issuerURL": "https://i.example.com", "issuer": "x"}, 'unknown field "spec.issuer"', id="typo"),
]


@pytest.mark.parametrize(("spec", "reason"), REFUSED)
def test_refused(control_plane: ControlPlane, issuer_crd: None, spec: dict[str, Any], reason: str) -> None:
    result = dry_run(control_plane, issuer(**spec))
    assert result.returncode != 0, result.stdout
    assert reason in result.stderr, result.stderr


def test_spec_is_required(control_plane: ControlPlane, issuer_crd: None) -> None:
    obj = issuer()
    del obj["spec"]
    result = dry_run(control_plane, obj)
    assert result.returncode != 0
    assert "spec: Required value" in result.stderr, result.stderr


CONDITION = {
    "type": "Ready",
    "status": "True",
    "reason": "Converged",
    "message": "published, provider ready, keys in sync, signing key published, reachable",
    "lastTransitionTime": "2025-01-01T00:00:00Z",
    "observedGeneration": 1,
}


@pytest.fixture
def stored_issuer(control_plane: ControlPlane, issuer_crd: None) -> Iterator[str]:
    name = "columns"
    control_plane.kubectl("apply", "-f", "-", input=json.dumps(issuer(name, discovery={"s3": S3})))
    try:
        yield name
    finally:
        control_plane.kubectl("delete", "--ignore-not-found", f"irsaissuer/{name}")


def patch_status(control_plane: ControlPlane, name: str, status: dict[str, Any]) -> subprocess.CompletedProcess[str]:
    body = json.dumps({"status": status})
    return control_plane.kubectl(
        "patch", f"irsaissuer/{name}", "--subresource=status", "--type=merge", "-p", body, check=False
    )


def test_status_subresource_and_columns(control_plane: ControlPlane, stored_issuer: str) -> None:
    """The controller's status, as the brief shapes it, is accepted through the subresource (and only
    there: status sent with the object is dropped); `kubectl get` shows Issuer, Ready and Age."""
    url = "https://example-cluster-oidc.s3.eu-west-1.amazonaws.com/prod-eu-1"
    status = {
        "observedGeneration": 1,
        "issuerURL": url,
        "providerARN": "arn:aws:iam::123456789012:oidc-provider/" + url.removeprefix("https://"),
        "publishedKeys": [{"kid": "k1", "since": "2025-01-01T00:00:00Z"}],
        "signingKey": {"kid": "k1", "published": True, "since": "2025-01-01T00:00:00Z"},
        "conditions": [CONDITION, {**CONDITION, "type": "Published", "reason": "InSync"}],
    }
    result = patch_status(control_plane, stored_issuer, status)
    assert result.returncode == 0, result.stderr
    table = control_plane.kubectl("get", "irsaissuer", stored_issuer).stdout.splitlines()
    assert table[0].split() == ["NAME", "ISSUER", "READY", "AGE"]
    assert table[1].split()[:3] == [stored_issuer, url, "True"]
    wide = control_plane.kubectl("get", "irsaissuer", stored_issuer, "-o", "wide").stdout.splitlines()
    assert wide[0].split() == ["NAME", "ISSUER", "READY", "REASON", "AGE"]
    assert wide[1].split()[3] == "Converged"
    # Users write the spec, the controller the status: status sent with the object is ignored.
    obj = json.loads(control_plane.kubectl("get", "irsaissuer", stored_issuer, "-o", "json").stdout)
    changed = copy.deepcopy(obj)
    changed["status"]["issuerURL"] = "https://elsewhere.example.com"
    control_plane.kubectl("replace", "-f", "-", input=json.dumps(changed))
    after = json.loads(control_plane.kubectl("get", "irsaissuer", stored_issuer, "-o", "json").stdout)
    assert after["status"]["issuerURL"] == url


@pytest.mark.parametrize(
    ("status", "reason"),
    [
        pytest.param(
            {"conditions": [{**CONDITION, "status": "Maybe"}]},
            'supported values: "True", "False", "Unknown"',
            id="condition-status",
        ),
        pytest.param(
            {"conditions": [{k: v for k, v in CONDITION.items() if k != "reason"}]},
            "reason: Required value",
            id="condition-without-reason",
        ),
        pytest.param({"conditions": [CONDITION, CONDITION]}, "Duplicate value", id="condition-twice"),
        pytest.param(
            {"publishedKeys": [{"since": "2025-01-01T00:00:00Z"}]}, "kid: Required value", id="key-without-kid"
        ),
        pytest.param({"observedGeneration": -1}, "should be greater than or equal to 0", id="negative-generation"),
    ],
)
def test_status_is_checked_too(
    control_plane: ControlPlane, stored_issuer: str, status: dict[str, Any], reason: str
) -> None:
    result = patch_status(control_plane, stored_issuer, status)
    assert result.returncode != 0
    assert reason in result.stderr, result.stderr
