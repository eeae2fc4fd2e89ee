"""Conformance with the upstream webhook: every case of its test corpus, outcomes compared.

The corpus (``../shared/conformance/upstream-testdata`` next to the repository, or
``$IRSA_CONFORMANCE_DIR``) is read in place, never copied. For each IRSA case the expected patch is
applied to the pod to get upstream's result, our mutation gives ours, and the two must be equal
after the normalisation the corpus README lists (see ``upstream.py``). The README's documented
divergences are asserted as divergences.

EKS Pod Identity cases (``containercredentials/``) go through the real identity chain: the Pod
Identity source lists ``default/default`` (parsed from a file's JSON) and composes with the
ServiceAccount the case describes. Their token lifetime is jittered with the real random source, and
compared as "in [79200, 86400]" where upstream's fixed random source gives 79200.
"""

from __future__ import annotations

import os
from typing import Any

import pytest

from tests.support.cases import check_mutation, decide_with
from webhook.core.annotations import parse_service_account
from webhook.core.records import CONTAINER_CREDENTIALS, Identity
from webhook.core.settings import MIN_TOKEN_EXPIRATION
from webhook.sources.chain import IdentityChain
from webhook.sources.podidentity import PodIdentityFile, parse_identities
from webhook.sources.resolver import Resolver
from webhook.sources.store import IdentityStore

from . import upstream

CORPUS = upstream.corpus_dir()
if not CORPUS.is_dir():
    pytest.skip(
        f"upstream conformance corpus not found at {CORPUS} (set IRSA_CONFORMANCE_DIR to run it)",
        allow_module_level=True,
    )

CASES = upstream.load_cases(CORPUS)
# The done criterion: all 18 IRSA cases and all 6 Pod Identity cases of the upstream corpus run.
EXPECTED_IRSA_CASES = 18
EXPECTED_POD_IDENTITY_CASES = 6
# Documented divergences (the corpus README; README "Differences from the upstream webhook"): {case: why}.
VOLUME_DIVERGENCES = {
    "rawPodHasVolumeMount": "a non-projected aws-iam-token volume: upstream injects env for a token that will "
    "never be mounted (issue 315); we leave the pod unmutated and warn",
}
# [ours] Each of these pods sets AWS_REGION alone. Upstream adds no region variable to it; we add
# AWS_DEFAULT_REGION with the same value, the only name boto3 reads (without it boto3 has no region
# and every regional client raises NoRegionError). Ours is upstream's pod plus that one entry.
REGION_PARTNER = "AWS_REGION alone: we add AWS_DEFAULT_REGION with the same value (boto3 reads no other)"
REGION_DIVERGENCES = {
    "rawPodHasSTS": REGION_PARTNER,
    "rawPodHasTokenExpiration": REGION_PARTNER,
    "rawPodMinTokenExpiration": REGION_PARTNER,
    "rawPodRegionPresent": REGION_PARTNER,
}
DIVERGENCES = {**VOLUME_DIVERGENCES, **REGION_DIVERGENCES}


def _identity(case: upstream.UpstreamCase, account: dict[str, Any], config: Any) -> Identity | None:
    """What the identity chain answers in the case's world (its ServiceAccount, its Pod Identity file)."""
    source = PodIdentityFile("/nonexistent/identities.json", config)
    source.replace(parse_identities(upstream.identities_file(case)))
    chain = IdentityChain(Resolver(IdentityStore()), pod_identity=source)
    return chain.compose(upstream.NAMESPACE, upstream.SERVICE_ACCOUNT, parse_service_account(account, config))


def _mutate(case: upstream.UpstreamCase) -> tuple[Any, dict[str, Any]]:
    config = upstream.settings(case)
    account = upstream.service_account(case)
    identity = _identity(case, account, config)
    assert identity is not None
    assert (identity.mode == CONTAINER_CREDENTIALS) is case.pod_identity
    result = check_mutation(case.pod, decide_with(identity, config, upstream.NAMESPACE))
    return result, account


def _runnable(case: upstream.UpstreamCase) -> None:
    if case.skipped:
        pytest.skip('upstream marks this case testing.eks.amazonaws.com/skip: "true"')


def test_corpus_has_every_case() -> None:
    irsa = [c.name for c in CASES if not c.pod_identity and not c.skipped]
    pod_identity = [c.name for c in CASES if c.pod_identity and not c.skipped]
    if os.environ.get("IRSA_CONFORMANCE_DIR"):
        assert irsa, f"no IRSA case in {CORPUS}"
    else:
        assert len(irsa) == EXPECTED_IRSA_CASES, irsa
        assert len(pod_identity) == EXPECTED_POD_IDENTITY_CASES, pod_identity
    assert DIVERGENCES.keys() <= set(irsa), "a documented divergence names no IRSA case"


def _ours_and_theirs(case: upstream.UpstreamCase) -> tuple[dict[str, Any], dict[str, Any]]:
    """Our mutated pod and upstream's, both normalised and with the differences of form settled."""
    result, account = _mutate(case)
    assert result.allowed
    theirs = upstream.normalise_upstream(case.upstream_pod(), case.pod)
    # Our one addition: the admission marker, one more "add" operation; upstream's patch otherwise.
    ours = upstream.strip_testing_annotations(upstream.without_marker(result.pod))
    marker_ops = [op for op in result.patch if op["path"].startswith("/metadata/annotations")]
    assert [op["op"] for op in marker_ops] == ["add"]
    if upstream.below_minimum_expiration(account):
        # The upstream fake applies no minimum to a ServiceAccount's lifetime; we raise it to 600,
        # the least kube-apiserver accepts.
        assert "token-expiration-too-low" in [w.kind for w in result.warnings]
        upstream.raise_token_lifetime(theirs, MIN_TOKEN_EXPIRATION)
    if case.pod_identity:
        upstream.settle_jitter(ours, theirs)
    return upstream.volumes_in_name_order(ours), upstream.volumes_in_name_order(theirs)


@pytest.mark.parametrize("case", [pytest.param(c, id=c.name) for c in CASES if c.name not in DIVERGENCES])
def test_same_outcome_as_upstream(case: upstream.UpstreamCase) -> None:
    _runnable(case)
    ours, theirs = _ours_and_theirs(case)
    # Everything else, env and mount order included, must be equal.
    assert ours == theirs


@pytest.mark.parametrize("name", sorted(REGION_DIVERGENCES))
def test_region_partner_divergence(name: str) -> None:
    case = next(c for c in CASES if c.name == name)
    _runnable(case)
    ours, theirs = _ours_and_theirs(case)
    partners = upstream.remove_region_partners(ours, theirs)
    # Upstream left AWS_REGION alone in at least one container, and there ours has its partner.
    assert partners, "upstream now adds AWS_DEFAULT_REGION itself: this is no longer a divergence"
    for container, region, partner in partners:
        assert partner == {**region, "name": "AWS_DEFAULT_REGION"}, container
    # Everything else, env and mount order included, must be equal.
    assert ours == theirs


@pytest.mark.parametrize("name", sorted(VOLUME_DIVERGENCES))
def test_documented_divergence(name: str) -> None:
    case = next(c for c in CASES if c.name == name)
    _runnable(case)
    result, _ = _mutate(case)
    theirs = upstream.normalise_upstream(case.upstream_pod(), case.pod)
    assert theirs != upstream.strip_testing_annotations(case.pod), "upstream no longer mutates this pod"
    assert any("AWS_ROLE_ARN" in names for names in upstream.env_names(theirs))
    # Ours: admitted, unmutated, and the conflict named.
    assert result.allowed
    assert result.patch == []
    assert result.pod == case.pod
    assert [w.kind for w in result.warnings] == ["volume-conflict"]
