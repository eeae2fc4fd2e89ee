"""The chain's precedence, literally: Pod Identity file > ServiceAccount annotations > ConfigMap."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

import pytest

from webhook.core.records import CONTAINER_CREDENTIALS, STS_WEB_IDENTITY, Identity
from webhook.sources.chain import MISS, IdentityChain
from webhook.sources.resolver import Resolver
from webhook.sources.store import IdentityStore


@dataclass
class FakeSource:
    name: str
    answers: dict[tuple[str, str], Identity] = field(default_factory=dict)
    ready: bool = True

    def lookup(self, namespace: str, service_account: str) -> Identity | None:
        return self.answers.get((namespace, service_account))


SA_ROLE = Identity("shop", "app", role_arn="arn:aws:iam::111122223333:role/from-sa", token_expiration=3600)
SA_PLAIN = Identity("shop", "app")
CM = Identity("shop", "app", role_arn="arn:aws:iam::111122223333:role/from-cm", source="configmap")
PI = Identity("shop", "app", mode=CONTAINER_CREDENTIALS, source="pod-identity")


def chain(account: Identity | None, *, pod_identity: bool = False, config_map: bool = False) -> IdentityChain:
    store = IdentityStore()
    store.replace_all([account] if account else [])
    return IdentityChain(
        Resolver(store),
        pod_identity=FakeSource("pod-identity", {("shop", "app"): PI}) if pod_identity else None,
        config_map=FakeSource("configmap", {("shop", "app"): CM}) if config_map else None,
    )


@pytest.mark.parametrize(
    ("account", "pod_identity", "config_map", "expected"),
    [
        pytest.param(SA_ROLE, False, False, SA_ROLE, id="annotations-only"),
        pytest.param(SA_ROLE, False, True, SA_ROLE, id="annotations-beat-configmap"),
        pytest.param(SA_PLAIN, False, True, CM, id="configmap-when-no-role-annotation"),
        pytest.param(SA_PLAIN, False, False, SA_PLAIN, id="no-role-anywhere"),
        pytest.param(None, False, True, CM, id="configmap-without-serviceaccount"),
        pytest.param(None, False, False, None, id="not-found"),
    ],
)
def test_precedence(account: Identity | None, pod_identity: bool, config_map: bool, expected: Identity | None) -> None:
    identities = chain(account, pod_identity=pod_identity, config_map=config_map)
    answer = identities.cached("shop", "app")
    if account is None:
        assert answer is MISS
        answer = asyncio.run(identities.resolve_slow("shop", "app"))
    assert answer == expected


def test_pod_identity_beats_annotations_but_keeps_their_settings() -> None:
    answer = chain(SA_ROLE, pod_identity=True, config_map=True).cached("shop", "app")
    assert isinstance(answer, Identity)
    assert answer.mode == CONTAINER_CREDENTIALS
    assert answer.source == "pod-identity"
    assert answer.token_expiration == 3600  # the ServiceAccount's own annotation still applies


def test_pod_identity_without_serviceaccount_is_the_sources_answer() -> None:
    identities = chain(None, pod_identity=True)
    assert asyncio.run(identities.resolve_slow("shop", "app")) == PI


def test_default_mode_is_web_identity() -> None:
    assert SA_ROLE.mode == STS_WEB_IDENTITY
    assert SA_ROLE.source == "serviceaccount"


def test_ready_waits_for_every_source() -> None:
    identities = chain(SA_ROLE)
    identities.config_map = FakeSource("configmap", ready=False)
    assert identities.checks() == {"serviceAccountCacheSynced": True, "configMapSynced": False}
    identities.config_map = FakeSource("configmap", ready=True)
    identities.pod_identity = FakeSource("pod-identity", ready=True)
    assert identities.checks() == {
        "serviceAccountCacheSynced": True,
        "configMapSynced": True,
        "containerCredentialsConfigLoaded": True,
    }
