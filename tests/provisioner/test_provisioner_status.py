"""The IRSAIssuer status: published keys and since when, the signing key, conditions that say what to do, Events."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from tests.support.oidckeys import EC_KID, RSA_KID
from tests.support.provisioning import (
    CLUSTER,
    cluster_keys,
    converged,
    empty_state,
    issuer_object,
    merge_patch,
    observed_from,
)
from webhook.provisioner.model import ClusterKeys, IssuerSpec, Plan, Reachability
from webhook.provisioner.planner import plan_issuer
from webhook.provisioner.spec import read_issuer
from webhook.provisioner.status import events_for, invalid_status, issuer_status, rfc3339

T0 = datetime(2025, 1, 1, 12, 0, 0, tzinfo=UTC)
S3_SPEC = {
    "discovery": {"s3": {"bucket": "irsa-test", "region": "us-east-1", "prefix": "cluster-a", "createBucket": True}}
}
EKS_URL = "https://oidc.eks.eu-west-1.amazonaws.com/id/EXAMPLE"
ARN = "arn:aws:iam::111122223333:oidc-provider/irsa-test.s3.us-east-1.amazonaws.com/cluster-a"
REACHED = Reachability(ok=True, message="both documents fetched anonymously", kids=(RSA_KID,))


def spec_of(raw: dict[str, Any] | None = None, generation: int = 3) -> IssuerSpec:
    return read_issuer(issuer_object(raw or S3_SPEC, generation=generation), CLUSTER)


def status_of(
    spec: IssuerSpec,
    state: dict[str, Any],
    cluster: ClusterKeys,
    *,
    now: datetime = T0,
    previous: dict[str, Any] | None = None,
    reach: Reachability | None = REACHED,
    error: str | None = None,
    plan: Plan | None = None,
) -> dict[str, Any]:
    observed = observed_from(state, cluster)
    plan = plan_issuer(spec, observed) if plan is None else plan
    return issuer_status(spec, observed, plan, reach=reach, previous=previous, now=now, error=error)


def conditions(status: dict[str, Any]) -> dict[str, tuple[str, str, str]]:
    return {c["type"]: (c["status"], c["reason"], c["message"]) for c in status["conditions"]}


def test_converged_issuer_is_ready() -> None:
    spec, cluster = spec_of(), cluster_keys(["rsa"], "rsa")
    earlier = issuer_status(
        spec, observed_from(converged(spec, cluster), cluster), Plan(()), reach=REACHED, previous=None, now=T0
    )
    status = status_of(spec, converged(spec, cluster), cluster, now=T0 + timedelta(hours=1), previous=earlier)
    assert status["observedGeneration"] == 3
    assert status["issuerURL"] == "https://irsa-test.s3.us-east-1.amazonaws.com/cluster-a"
    assert status["providerARN"] == ARN
    assert status["publishedKeys"] == [{"kid": RSA_KID, "since": "2025-01-01T12:00:00Z"}]
    assert status["signingKey"] == {"kid": RSA_KID, "published": True, "since": "2025-01-01T12:00:00Z"}
    found = conditions(status)
    assert [c["type"] for c in status["conditions"]] == [
        "Published",
        "ProviderReady",
        "KeysInSync",
        "SigningKeyPublished",
        "Reachable",
        "Ready",
    ]
    assert {kind: value[:2] for kind, value in found.items()} == {
        "Published": ("True", "Published"),
        "ProviderReady": ("True", "ProviderReady"),
        "KeysInSync": ("True", "InSync"),
        "SigningKeyPublished": ("True", "SigningKeyPublished"),
        "Reachable": ("True", "Reachable"),
        "Ready": ("True", "Ready"),
    }
    assert "since 2025-01-01T12:00:00Z" in found["SigningKeyPublished"][2]
    assert all(c["observedGeneration"] == 3 for c in status["conditions"])
    # nothing changed status: every lastTransitionTime is the earlier one, and no Event
    assert {c["lastTransitionTime"] for c in status["conditions"]} == {"2025-01-01T12:00:00Z"}
    assert events_for(earlier, status) == []


def test_rotation_as_the_conditions_show_it() -> None:
    spec = spec_of()
    # before: one key, signing with it, published for a day
    one = cluster_keys(["rsa"], "rsa")
    state = converged(spec, one)
    status = status_of(spec, state, one, now=T0 - timedelta(days=1))

    # step 1: the new key is added to kube-apiserver; published at T0
    both = cluster_keys(["rsa", "ec"], "rsa")
    pending = status_of(spec, state, both, now=T0, previous=status)
    assert conditions(pending)["KeysInSync"][:2] == ("False", "OutOfSync")
    assert f"not published: {EC_KID}" in conditions(pending)["KeysInSync"][2]
    assert conditions(pending)["Published"][:2] == ("False", "ChangesPending")
    state = converged(spec, both)
    status = status_of(spec, state, both, now=T0, previous=pending)
    assert status["publishedKeys"] == [
        {"kid": RSA_KID, "since": "2024-12-31T12:00:00Z"},
        {"kid": EC_KID, "since": "2025-01-01T12:00:00Z"},
    ]
    assert conditions(status)["KeysInSync"][0] == "True"
    assert conditions(status)["SigningKeyPublished"][:2] == ("True", "SigningKeyPublished")

    # step 2 too early: the signer switched 100 s after the new key was published
    switched = cluster_keys(["rsa", "ec"], "ec")
    early = status_of(spec, state, switched, now=T0 + timedelta(seconds=100), previous=status)
    verdict = conditions(early)["SigningKeyPublished"]
    assert verdict[:2] == ("True", "PublishedRecently")
    assert "published 100s ago" in verdict[2]
    assert "200s more" in verdict[2]
    # ... and once STS caches have expired
    later = status_of(spec, state, switched, now=T0 + timedelta(seconds=400), previous=early)
    assert conditions(later)["SigningKeyPublished"][:2] == ("True", "SigningKeyPublished")
    assert later["signingKey"] == {"kid": EC_KID, "published": True, "since": "2025-01-01T12:00:00Z"}

    # step 3: the old key is removed; it leaves publishedKeys once keys.json drops it
    new_only = cluster_keys(["ec"], "ec")
    state = converged(spec, new_only)
    done = status_of(spec, state, new_only, now=T0 + timedelta(days=1), previous=later)
    assert done["publishedKeys"] == [{"kid": EC_KID, "since": "2025-01-01T12:00:00Z"}]
    assert conditions(done)["Ready"][0] == "True"


def test_signing_key_not_published_warns_with_the_rotation_order() -> None:
    spec = spec_of()
    state = converged(spec, cluster_keys(["rsa"], "rsa"))
    wrong = cluster_keys(["rsa"], "ec")  # the signer was switched to a key no one published
    previous = status_of(spec, state, cluster_keys(["rsa"], "rsa"))
    status = status_of(spec, state, wrong, now=T0 + timedelta(minutes=1), previous=previous)
    state_, reason, message = conditions(status)["SigningKeyPublished"]
    assert (state_, reason) == ("False", "SigningKeyNotPublished")
    assert f"signs new tokens with key {EC_KID}, which is not published: STS rejects every token" in message
    order = [
        "add the new public key to --service-account-key-file",
        "wait until it is published and STS caches have expired (published for more than 300s)",
        "then switch --service-account-signing-key-file",
        "remove the old key only later",
    ]
    assert all(step in message for step in order)
    assert [message.index(step) for step in order] == sorted(message.index(step) for step in order)
    assert status["signingKey"] == {"kid": EC_KID, "published": False}
    assert conditions(status)["Ready"][:2] == ("False", "SigningKeyNotPublished")
    events = events_for(previous, status)
    assert [(e.type, e.reason) for e in events] == [
        ("Warning", "SigningKeyNotPublished"),
        ("Warning", "SigningKeyNotPublished"),  # Ready became False for that reason
    ]
    assert events[0].message.startswith("SigningKeyPublished is False: ")
    moved = {c["type"]: c["lastTransitionTime"] for c in status["conditions"]}
    assert moved["SigningKeyPublished"] == moved["Ready"] == "2025-01-01T12:01:00Z"
    assert moved["Published"] == "2025-01-01T12:00:00Z"


def test_pending_changes_and_the_last_error() -> None:
    spec, cluster = spec_of(), cluster_keys(["rsa"], "rsa")
    state = merge_patch(converged(spec, cluster), {"bucket": {"policy": None}, "provider": {"clientIDs": ["x"]}})
    status = status_of(
        spec, state, cluster, error="AccessDenied on s3:PutBucketPolicy: grant it to the provisioner's role"
    )
    found = conditions(status)
    assert found["Published"][:2] == ("False", "ChangesPending")
    assert found["Published"][2].startswith("1 change(s) pending, first: create the bucket policy")
    assert found["Published"][2].endswith(
        "; last error: AccessDenied on s3:PutBucketPolicy: grant it to the provisioner's role"
    )
    assert found["ProviderReady"][:2] == ("False", "ChangesPending")
    assert "2 change(s) pending, first: add client ID sts.amazonaws.com" in found["ProviderReady"][2]
    assert found["Ready"] == (
        "False",
        "ReconcileError",
        "AccessDenied on s3:PutBucketPolicy: grant it to the provisioner's role",
    )
    no_error = status_of(spec, state, cluster)
    assert "they are made at the next reconcile" in conditions(no_error)["Published"][2]
    assert conditions(no_error)["Ready"][:2] == ("False", "ChangesPending")


def test_blocked() -> None:
    spec = spec_of({"discovery": {"s3": {"bucket": "irsa-test", "region": "us-east-1"}}})
    cluster = cluster_keys(["rsa"], "rsa")
    state = merge_patch(empty_state(spec), {"bucket": {"exists": False}})
    status = status_of(spec, state, cluster, reach=None)
    found = conditions(status)
    assert found["Published"][:2] == ("False", "Blocked")
    assert "createBucket: true" in found["Published"][2]
    assert found["ProviderReady"][:2] == ("False", "Blocked")
    assert found["Ready"][:2] == ("False", "Blocked")
    assert status["publishedKeys"] == []
    assert "providerARN" not in status


@pytest.mark.parametrize(
    ("client_ids", "expected"),
    [(["sts.amazonaws.com"], "True"), (["other"], "False")],
    ids=["lists-every-client-id", "lacks-one"],
)
def test_foreign_provider(client_ids: list[str], expected: str) -> None:
    spec, cluster = spec_of(), cluster_keys(["rsa"], "rsa")
    foreign = {"provider": {"tags": {"irsa-webhook.io/owner": None}, "clientIDs": client_ids}}
    state = merge_patch(converged(spec, cluster), foreign)
    state_, reason, message = conditions(status_of(spec, state, cluster))["ProviderReady"]
    assert (state_, reason) == (expected, "ProviderNotOurs")
    assert ARN in message
    if expected == "False":
        assert "lacks client ID sts.amazonaws.com: add it" in message


def test_cluster_keys_unknown() -> None:
    spec = spec_of()
    state = converged(spec, cluster_keys(["rsa"], "rsa"))
    unknown = cluster_keys(None, None, error="403 Forbidden on /openid/v1/jwks")
    found = conditions(status_of(spec, state, unknown))
    assert found["KeysInSync"][:2] == ("Unknown", "ClusterKeysUnknown")
    assert "(403 Forbidden on /openid/v1/jwks): allow the provisioner to GET /openid/v1/jwks" in found["KeysInSync"][2]
    assert found["SigningKeyPublished"][:2] == ("Unknown", "SigningKeyUnknown")
    assert "create serviceaccounts/token" in found["SigningKeyPublished"][2]
    assert found["Published"][0] == "True", "what is published stays published"
    assert found["Ready"][:2] == ("Unknown", "ClusterKeysUnknown")


def test_no_keys_at_all() -> None:
    spec, empty = spec_of(), cluster_keys([], None)
    state = converged(spec, empty)
    found = conditions(status_of(spec, state, empty, reach=None))
    assert found["KeysInSync"][:2] == ("False", "NoKeys")
    assert found["Published"][:2] == ("False", "NotPublished")
    assert "the key set to publish is empty" in found["Published"][2]


@pytest.mark.parametrize(
    ("reach", "expected"),
    [
        (None, ("Unknown", "NotChecked")),
        (Reachability(ok=False, message="GET .../keys.json: 403 AccessDenied"), ("False", "Unreachable")),
    ],
    ids=["not-checked", "unreachable"],
)
def test_reachability(reach: Reachability | None, expected: tuple[str, str]) -> None:
    spec, cluster = spec_of(), cluster_keys(["rsa"], "rsa")
    found = conditions(status_of(spec, converged(spec, cluster), cluster, reach=reach))
    assert found["Reachable"][:2] == expected
    assert found["Ready"][:2] == expected, "Ready follows Reachable"


def test_published_elsewhere() -> None:
    spec, cluster = spec_of({"issuerURL": EKS_URL}), cluster_keys(["rsa", "ec"], "ec")
    state = converged(spec, cluster)
    status = status_of(spec, state, cluster, reach=Reachability(ok=True, message="ok", kids=(RSA_KID, EC_KID)))
    found = conditions(status)
    assert found["Published"][:2] == ("True", "PublishedElsewhere")
    assert found["KeysInSync"][0] == "True"
    assert [k["kid"] for k in status["publishedKeys"]] == [RSA_KID, EC_KID]
    assert status["signingKey"]["published"] is True
    unfetched = status_of(spec, state, cluster, reach=None, previous=status, now=T0 + timedelta(hours=1))
    assert unfetched["publishedKeys"] == status["publishedKeys"], "unknown now: what was known is kept"
    assert conditions(unfetched)["KeysInSync"][:2] == ("Unknown", "NotChecked")
    behind = status_of(spec, state, cluster, reach=Reachability(ok=True, message="ok", kids=(RSA_KID,)))
    verdict = conditions(behind)["KeysInSync"]
    assert verdict[:2] == ("False", "OutOfSync")
    assert "update the JWKS served at the issuer URL" in verdict[2]
    assert conditions(behind)["SigningKeyPublished"][:2] == ("False", "SigningKeyNotPublished")


def test_events_only_on_transitions() -> None:
    spec, cluster = spec_of(), cluster_keys(["rsa"], "rsa")
    state = converged(spec, cluster)
    first = status_of(spec, state, cluster, reach=None)
    # from nothing: every condition that is not Unknown is a transition
    assert [(e.type, e.reason) for e in events_for(None, first)] == [
        ("Normal", "Published"),
        ("Normal", "ProviderReady"),
        ("Normal", "InSync"),
        ("Normal", "PublishedRecently"),
    ]
    again = status_of(spec, state, cluster, reach=None, previous=first, now=T0 + timedelta(minutes=1))
    assert events_for(first, again) == []
    # SigningKeyPublished changes reason (PublishedRecently -> SigningKeyPublished), not status: no Event
    reached = status_of(spec, state, cluster, previous=again, now=T0 + timedelta(hours=1))
    assert conditions(reached)["SigningKeyPublished"][1] == "SigningKeyPublished"
    ready = "the issuer is published, its keys are in sync and its OIDC provider is ready"
    assert [(e.type, e.reason, e.message) for e in events_for(again, reached)] == [
        ("Normal", "Reachable", "Reachable is True: both documents fetched anonymously"),
        ("Normal", "Ready", f"Ready is True: {ready}"),
    ]


def test_previous_status_garbage_is_ignored() -> None:
    spec, cluster = spec_of(), cluster_keys(["rsa"], "rsa")
    previous = {"publishedKeys": [{"kid": RSA_KID, "since": "yesterday"}, "x"], "conditions": ["x", {"type": "Ready"}]}
    status = status_of(spec, converged(spec, cluster), cluster, previous=previous)
    assert status["publishedKeys"] == [{"kid": RSA_KID, "since": "2025-01-01T12:00:00Z"}]


def test_a_reconcile_that_could_not_observe_keeps_what_was_known_and_says_why() -> None:
    spec, cluster = spec_of(), cluster_keys(["rsa"], "rsa")
    ready = status_of(spec, converged(spec, cluster), cluster)
    later = T0 + timedelta(minutes=5)
    obj = issuer_object(S3_SPEC, generation=4)
    status = invalid_status(obj, "AccessDenied on s3:GetBucketPolicy", ready, later, reason="AccessDenied")
    assert status["observedGeneration"] == 4
    assert status["publishedKeys"] == ready["publishedKeys"]
    assert conditions(status)["Ready"] == ("False", "AccessDenied", "AccessDenied on s3:GetBucketPolicy")
    ready_condition = next(c for c in status["conditions"] if c["type"] == "Ready")
    assert ready_condition["lastTransitionTime"] == rfc3339(later)
    # the other conditions are as they were: nothing was observed to change them
    assert [c for c in status["conditions"] if c["type"] != "Ready"] == [
        c for c in ready["conditions"] if c["type"] != "Ready"
    ]
    again = invalid_status(obj, "still denied", status, later + timedelta(minutes=1), reason="AccessDenied")
    assert next(c for c in again["conditions"] if c["type"] == "Ready")["lastTransitionTime"] == rfc3339(later)


def test_an_invalid_object_on_first_sight_has_only_ready() -> None:
    status = invalid_status(issuer_object({}, generation=1), "spec: give issuerURL or discovery.s3", None, T0)
    assert status["observedGeneration"] == 1
    assert conditions(status) == {"Ready": ("False", "InvalidSpec", "spec: give issuerURL or discovery.s3")}
