"""ConfigMap mode: reading kOps' pod-identity-webhook ConfigMap, the lookup order, and bad input."""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
from pathlib import Path
from typing import Any

import pytest

from tests.support.asgi import app_of, request
from tests.support.calls import count_calls
from tests.support.kubeapi import config_map
from tests.support.metrics import metric
from tests.support.server import run_to_exit
from webhook.commands import serve
from webhook.core import glob as glob_module
from webhook.core.records import Identity
from webhook.core.settings import MAX_TOKEN_EXPIRATION, MIN_TOKEN_EXPIRATION, Settings
from webhook.options.config import ServeConfig, serve_config
from webhook.options.flags import resolve
from webhook.server import devcerts
from webhook.sources.chain import IdentityChain
from webhook.sources.configmap import CONFIG_MAP_NAME, ConfigMapSource, parse_config
from webhook.sources.resolver import Resolver
from webhook.sources.store import IdentityStore

ROLE = "arn:aws:iam::123456789012:role/app"
OTHER = "arn:aws:iam::123456789012:role/other"
# Flag values that differ from every default, so "the flag's value" is visible in the results.
SETTINGS = Settings(token_audience="flag.example", token_expiration=7200, sts_regional_endpoint=False)
REGIONAL = Settings(token_audience="flag.example", token_expiration=7200, sts_regional_endpoint=True)

# What kOps writes (its podIdentityWebhookConfigMapData: a Go map of this struct, json.Marshal'ed,
# so compact with sorted keys): every entry with audience amazonaws.com, regional STS on and
# TokenExpiration 0, and namespace globs where a ServiceAccount is granted across namespaces.
KOPS_CONFIG = (
    '{"default/app":{"RoleARN":"arn:aws:iam::123456789012:role/app.default.sa.cluster.example",'
    '"Audience":"amazonaws.com","UseRegionalSTS":true,"TokenExpiration":0},'
    '"kube-system/dns-controller":{"RoleARN":"arn:aws:iam::123456789012:role/dns-controller.kube-system.sa.cluster.example",'
    '"Audience":"amazonaws.com","UseRegionalSTS":true,"TokenExpiration":0},'
    '"test-*/name":{"RoleARN":"arn:aws:iam::123456789012:role/name.test-wildcard.sa.cluster.example",'
    '"Audience":"amazonaws.com","UseRegionalSTS":true,"TokenExpiration":0}}'
)


def source_with(text: str | None, settings: Settings = SETTINGS) -> ConfigMapSource:
    source = ConfigMapSource(settings)
    source.replace(config_map("irsa-webhook", CONFIG_MAP_NAME, "1", text))
    return source


def found(source: ConfigMapSource, namespace: str, name: str) -> Identity:
    identity = source.lookup(namespace, name)
    assert identity is not None, f"{namespace}/{name} not found"
    return identity


def role_of(source: ConfigMapSource, namespace: str, name: str) -> str | None:
    identity = source.lookup(namespace, name)
    return identity.role_arn if identity is not None else None


def errors(reason: str) -> float:
    return metric("irsa_webhook_config_map_errors_total", reason=reason)


# -- kOps' format ---------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("namespace", "name", "role"),
    [
        ("default", "app", "arn:aws:iam::123456789012:role/app.default.sa.cluster.example"),
        (
            "kube-system",
            "dns-controller",
            "arn:aws:iam::123456789012:role/dns-controller.kube-system.sa.cluster.example",
        ),
        ("test-a", "name", "arn:aws:iam::123456789012:role/name.test-wildcard.sa.cluster.example"),
        ("test-", "name", "arn:aws:iam::123456789012:role/name.test-wildcard.sa.cluster.example"),
        ("test", "name", None),  # "test-*" needs the dash
        ("prod-test-a", "name", None),  # the whole namespace must match, not a part of it
        ("default", "other", None),
        ("test-a", "app", None),  # the ServiceAccount part is literal
    ],
)
def test_kops_config(namespace: str, name: str, role: str | None) -> None:
    source = source_with(KOPS_CONFIG)
    assert role_of(source, namespace, name) == role
    if role is not None:
        identity = found(source, namespace, name)
        assert identity.audience == "amazonaws.com"
        assert identity.sts_regional_endpoints is True
        assert identity.token_expiration == SETTINGS.token_expiration  # 0: the flag's value
        assert identity.warnings == ()
        assert identity.source == "configmap"
        assert (identity.namespace, identity.name) == (namespace, name)  # the pod's pair, not the key


# -- field names, as Go's encoding/json matches them -------------------------------------------------
@pytest.mark.parametrize(
    ("entry", "role"),
    [
        pytest.param({"RoleARN": ROLE}, ROLE, id="exact"),
        pytest.param({"rolearn": ROLE}, ROLE, id="lower"),
        pytest.param({"ROLEARN": ROLE}, ROLE, id="upper"),
        pytest.param({"roleArn": ROLE}, ROLE, id="camel"),
        pytest.param({"Role_ARN": ROLE}, "", id="underscore-is-another-name"),
        pytest.param({"RoleARNs": ROLE, "role": OTHER}, "", id="unknown-fields-ignored"),
        pytest.param({"RoleARN": OTHER, "rolearn": ROLE}, ROLE, id="last-of-two-spellings-wins"),
        pytest.param({"rolearn": OTHER, "RoleARN": ROLE}, ROLE, id="last-wins-either-way"),
        pytest.param({"RoleARN": ROLE, "rolearn": None}, ROLE, id="null-leaves-it-set"),
    ],
)
def test_role_field_names(entry: dict[str, Any], role: str) -> None:
    assert role_of(source_with(json.dumps({"shop/app": entry})), "shop", "app") == role


@pytest.mark.parametrize(
    ("text", "regional", "expiration"),
    [
        pytest.param('{"usereGIONALsts": true, "tokenexpiration": 3600}', True, 3600, id="any-case"),
        # Go folds the long s with s and the Kelvin sign with k, and so do we.
        pytest.param('{"U\\u017feRegionalSTS": true, "To\\u212aenExpiration": 3600}', True, 3600, id="go-folding"),
        # Python's casefold would turn the "st" ligature into "st"; Go does not, so neither do we.
        pytest.param('{"UseRegional\\ufb06s": true}', False, 7200, id="no-full-case-folding"),
    ],
)
def test_other_field_names(text: str, regional: bool, expiration: int) -> None:
    source = source_with('{"shop/app": ' + text[:-1] + f', "RoleARN": "{ROLE}"' + "}}")
    identity = found(source, "shop", "app")
    assert (identity.sts_regional_endpoints, identity.token_expiration) == (regional, expiration)


# -- defaults and bounds --------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("entry", "settings", "audience", "regional", "expiration", "warning"),
    [
        pytest.param({}, SETTINGS, "flag.example", False, 7200, None, id="all-missing"),
        pytest.param({}, REGIONAL, "flag.example", True, 7200, None, id="regional-from-flag"),
        pytest.param({"UseRegionalSTS": False}, REGIONAL, "flag.example", False, 7200, None, id="explicit-false"),
        pytest.param({"Audience": ""}, SETTINGS, "flag.example", False, 7200, None, id="empty-audience"),
        pytest.param({"Audience": None}, SETTINGS, "flag.example", False, 7200, None, id="null-audience"),
        pytest.param({"Audience": "custom"}, SETTINGS, "custom", False, 7200, None, id="audience"),
        # The annotations' bound: IAM caps an OIDC provider's client ID, hence a usable aud, at 255.
        pytest.param({"Audience": "a" * 255}, SETTINGS, "a" * 255, False, 7200, None, id="audience-at-255"),
        pytest.param(
            {"Audience": "a" * 256}, SETTINGS, "flag.example", False, 7200, "audience-too-long", id="audience-256"
        ),
        pytest.param({"TokenExpiration": 0}, SETTINGS, "flag.example", False, 7200, None, id="zero"),
        pytest.param({"TokenExpiration": 3600}, SETTINGS, "flag.example", False, 3600, None, id="in-range"),
        pytest.param(
            {"TokenExpiration": 100},
            SETTINGS,
            "flag.example",
            False,
            MIN_TOKEN_EXPIRATION,
            "token-expiration-too-low",
            id="too-low",
        ),
        pytest.param(
            {"TokenExpiration": -5},
            SETTINGS,
            "flag.example",
            False,
            MIN_TOKEN_EXPIRATION,
            "token-expiration-too-low",
            id="negative",
        ),
        pytest.param(
            {"TokenExpiration": MAX_TOKEN_EXPIRATION + 1},
            SETTINGS,
            "flag.example",
            False,
            MAX_TOKEN_EXPIRATION,
            "token-expiration-too-high",
            id="too-high",
        ),
    ],
)
def test_defaults_and_bounds(
    entry: dict[str, Any], settings: Settings, audience: str, regional: bool, expiration: int, warning: str | None
) -> None:
    identity = found(source_with(json.dumps({"shop/app": {"RoleARN": ROLE, **entry}}), settings), "shop", "app")
    assert identity.audience == audience
    assert identity.sts_regional_endpoints is regional
    assert identity.token_expiration == expiration
    assert [w.kind for w in identity.warnings] == ([warning] if warning else [])


@pytest.mark.parametrize(
    "literal",
    ["3600.0", "3600.5", "1e3", "9" * 30, "9" * 5000, "-9223372036854775809"],
)
def test_a_number_that_is_not_an_int64_gives_the_flag_value_and_a_warning(literal: str) -> None:
    source = source_with('{"shop/app": {"RoleARN": "' + ROLE + '", "TokenExpiration": ' + literal + "}}")
    identity = found(source, "shop", "app")
    assert identity.token_expiration == SETTINGS.token_expiration
    assert [w.kind for w in identity.warnings] == ["invalid-token-expiration"]
    assert all(len(w.message) < 120 for w in identity.warnings)


def test_a_role_that_is_not_an_arn_is_used_with_a_warning() -> None:
    identity = found(source_with('{"shop/app": {"RoleARN": "s3-reader"}}'), "shop", "app")
    assert identity.role_arn == "s3-reader"
    assert [w.kind for w in identity.warnings] == ["invalid-role-arn"]
    assert "shop/app" in identity.warnings[0].message


@pytest.mark.parametrize(
    ("length", "kept"),
    [
        pytest.param(2048, True, id="at-2048"),
        pytest.param(2049, False, id="2049"),
        pytest.param(900_000, False, id="900k"),
    ],
)
def test_a_role_over_iams_2048_characters_is_dropped_with_a_warning(length: int, kept: bool) -> None:
    """A ConfigMap holds up to 1 MiB, and every replica keeps what its entries map to."""
    role = ROLE + "/" + "p" * (length - len(ROLE) - 1)
    identity = found(source_with(json.dumps({"shop/app": {"RoleARN": role}})), "shop", "app")
    assert identity.role_arn == (role if kept else "")
    kinds = [w.kind for w in identity.warnings]
    assert kinds == (["invalid-role-arn"] if kept else ["role-arn-too-long"])  # a path's last part is the name
    assert all(len(w.message) < 120 for w in identity.warnings)


def test_an_entry_without_a_role_answers_with_no_role() -> None:
    """As upstream: an entry answers its lookup even without a role, so it can exclude one account."""
    source = source_with(json.dumps({"shop/app": {}, "*/app": {"RoleARN": ROLE}}))
    assert role_of(source, "shop", "app") == ""
    assert role_of(source, "other", "app") == ROLE


@pytest.mark.parametrize(
    ("role", "partition", "expected"),
    [
        pytest.param("app", "aws", ROLE, id="role-name"),
        pytest.param("team/app", "aws-cn", "arn:aws-cn:iam::123456789012:role/team/app", id="role-path"),
        pytest.param(OTHER, "aws-cn", OTHER, id="already-an-arn"),
    ],
)
def test_compose_role_arn_applies_to_entries(role: str, partition: str, expected: str) -> None:
    settings = Settings(role_arn_account="123456789012", role_arn_partition=partition)
    identity = found(source_with(json.dumps({"shop/app": {"RoleARN": role}}), settings), "shop", "app")
    assert identity.role_arn == expected
    assert identity.warnings == ()  # checked after composing


def test_without_compose_role_arn_a_role_name_stays_as_it_is() -> None:
    identity = found(source_with('{"shop/app": {"RoleARN": "app"}}'), "shop", "app")
    assert identity.role_arn == "app"


# -- the lookup order -----------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("keys", "namespace", "winner"),
    [
        pytest.param(["*/app", "team-*/app", "team-a/app"], "team-a", "team-a/app", id="exact-first"),
        pytest.param(["*/app", "team-*/app"], "team-a", "team-*/app", id="glob-before-star"),
        pytest.param(["*/app", "team-*/app"], "other", "*/app", id="star-last"),
        pytest.param(["t*/app", "team-*/app"], "team-a", "team-*/app", id="more-literal-characters-first"),
        pytest.param(["team-*/app", "t*/app"], "team-a", "team-*/app", id="specificity-not-order"),
        pytest.param(["*am-a/app", "team*/app"], "team-a", "*am-a/app", id="tie-first-key-wins"),
        pytest.param(["team*/app", "*am-a/app"], "team-a", "team*/app", id="tie-first-key-wins-reversed"),
        pytest.param(["team-?/app"], "team-a", "team-?/app", id="question-mark-one-character"),
        pytest.param(["team-?/app"], "team-ab", None, id="question-mark-not-two"),
        pytest.param(["team-?/app"], "team-", None, id="question-mark-not-zero"),
        pytest.param(["te.m-*/app"], "team-a", None, id="regex-characters-are-literal"),
        pytest.param(["te[a]m-*/app"], "team-a", None, id="brackets-are-literal"),
        pytest.param(["**/app", "*/app"], "x", "**/app", id="double-star-is-a-glob"),
        pytest.param(["team-*/other"], "team-a", None, id="name-must-match"),
    ],
)
def test_lookup_order(keys: list[str], namespace: str, winner: str | None) -> None:
    roles = {key: f"arn:aws:iam::123456789012:role/r{i}" for i, key in enumerate(keys)}
    source = source_with(json.dumps({key: {"RoleARN": role} for key, role in roles.items()}))
    assert role_of(source, namespace, "app") == (roles[winner] if winner else None)


def test_a_many_star_glob_costs_bounded_work_for_a_tenant_chosen_namespace(monkeypatch: pytest.MonkeyPatch) -> None:
    """A key with eight ``*`` once took 20 s for one lookup (a backtracking regex on the event loop)."""
    fits = count_calls(monkeypatch, glob_module, "_fits")
    source = source_with(json.dumps({"a*a*a*a*a*a*a*a*b/app": {"RoleARN": ROLE}}))
    namespace = "a" * 63  # the longest name a namespace may have, all of it chosen by the tenant
    assert role_of(source, namespace, "app") is None
    assert 0 < fits.calls <= len(namespace) * 8 + 2


# -- bad input: skipped, logged by key, counted; the rest is used --------------------------------------
@pytest.mark.parametrize(
    ("key", "entry", "reason"),
    [
        pytest.param("no-slash", {"RoleARN": ROLE}, "bad_key", id="key-without-slash"),
        pytest.param("a/b/c", {"RoleARN": ROLE}, "bad_key", id="key-with-two-slashes"),
        pytest.param("/app", {"RoleARN": ROLE}, "bad_key", id="empty-namespace"),
        pytest.param("shop/", {"RoleARN": ROLE}, "bad_key", id="empty-name"),
        pytest.param("shop/ap*", {"RoleARN": ROLE}, "bad_key", id="wildcard-in-name"),
        pytest.param("shop/bad", None, "invalid_entry", id="null-entry"),
        pytest.param("shop/bad", ROLE, "invalid_entry", id="string-entry"),
        pytest.param("shop/bad", [ROLE], "invalid_entry", id="array-entry"),
        pytest.param("shop/bad", {"RoleARN": 12}, "invalid_entry", id="number-role"),
        pytest.param("shop/bad", {"RoleARN": ROLE, "Audience": True}, "invalid_entry", id="bool-audience"),
        pytest.param("shop/bad", {"RoleARN": ROLE, "UseRegionalSTS": "true"}, "invalid_entry", id="string-sts"),
        pytest.param("shop/bad", {"RoleARN": ROLE, "UseRegionalSTS": 1}, "invalid_entry", id="number-sts"),
        pytest.param("shop/bad", {"RoleARN": ROLE, "TokenExpiration": "3600"}, "invalid_entry", id="string-exp"),
        pytest.param("shop/bad", {"RoleARN": ROLE, "tokenexpiration": {}}, "invalid_entry", id="object-exp"),
    ],
)
def test_a_bad_entry_is_skipped_logged_and_counted(
    key: str, entry: Any, reason: str, caplog: pytest.LogCaptureFixture
) -> None:
    before = errors(reason)
    text = json.dumps({"shop/first": {"RoleARN": ROLE}, key: entry, "shop/last": {"RoleARN": OTHER}})
    with caplog.at_level(logging.WARNING, logger="irsa_webhook.configmap"):
        source = source_with(text)
    assert errors(reason) - before == 1
    assert role_of(source, "shop", "first") == ROLE
    assert role_of(source, "shop", "last") == OTHER
    assert source.lookup("shop", "bad") is None
    assert len(source) == 2
    assert any(repr(key) in r.getMessage() and r.levelno == logging.WARNING for r in caplog.records)


@pytest.mark.parametrize(
    "text",
    [
        pytest.param("{", id="truncated"),
        pytest.param("", id="empty"),
        pytest.param("[]", id="array"),
        pytest.param("null", id="null"),
        pytest.param('"shop/app"', id="string"),
        pytest.param('{"shop/app": {"RoleARN": "x", "TokenExpiration": NaN}}', id="nan-is-not-json"),
        pytest.param("{'shop/app': {}}", id="single-quotes"),
        pytest.param("[" * 100_000 + "]" * 100_000, id="deep-nesting"),
    ],
)
def test_invalid_json_keeps_the_last_good_map(text: str, caplog: pytest.LogCaptureFixture) -> None:
    source = source_with(json.dumps({"shop/app": {"RoleARN": ROLE}}))
    before = errors("invalid_json")
    with caplog.at_level(logging.WARNING, logger="irsa_webhook.configmap"):
        source.replace(config_map("irsa-webhook", CONFIG_MAP_NAME, "2", text))
    assert errors("invalid_json") - before == 1
    assert role_of(source, "shop", "app") == ROLE
    assert any("keeping the previous 1 entries" in r.getMessage() for r in caplog.records)


def test_invalid_json_before_any_good_map_means_no_entries() -> None:
    source = source_with("{")
    assert source.ready
    assert source.lookup("shop", "app") is None


def test_a_repeated_key_keeps_its_last_value() -> None:
    source = source_with('{"shop/app": {"RoleARN": "' + OTHER + '"}, "shop/app": {"RoleARN": "' + ROLE + '"}}')
    assert role_of(source, "shop", "app") == ROLE


# -- the ConfigMap's life ---------------------------------------------------------------------------
def test_ready_after_the_first_answer_whether_or_not_it_exists() -> None:
    source = ConfigMapSource(SETTINGS)
    assert not source.ready
    source.replace(None)
    assert source.ready
    assert source.lookup("shop", "app") is None


def test_deleting_or_emptying_the_configmap_removes_its_entries() -> None:
    source = source_with(json.dumps({"shop/app": {"RoleARN": ROLE}}))
    assert metric("irsa_webhook_config_map_entries") == 1
    source.replace(None)
    assert source.lookup("shop", "app") is None
    assert metric("irsa_webhook_config_map_entries") == 0
    source.replace(config_map("irsa-webhook", CONFIG_MAP_NAME, "3", json.dumps({"shop/app": {"RoleARN": ROLE}})))
    assert role_of(source, "shop", "app") == ROLE
    source.replace(config_map("irsa-webhook", CONFIG_MAP_NAME, "4", None, other="x"))  # no `config` key
    assert source.lookup("shop", "app") is None


def test_a_configmap_that_is_not_one_keeps_the_last_good_map() -> None:
    source = source_with(json.dumps({"shop/app": {"RoleARN": ROLE}}))
    before = errors("unparseable")
    source.replace({"metadata": {"name": CONFIG_MAP_NAME}, "data": {"config": ["not", "a", "string"]}})
    assert role_of(source, "shop", "app") == ROLE
    assert errors("unparseable") - before == 1


def test_parse_config_reports_every_problem_at_once() -> None:
    mapping, problems, entries = parse_config(
        json.dumps({"a": {}, "b/c/d": {}, "ns/x": 1, "ns/ok": {"RoleARN": ROLE}}), SETTINGS
    )
    assert mapping is not None
    assert [p.reason for p in problems] == ["bad_key", "bad_key", "invalid_entry"]
    assert [e.key for e in entries] == ["ns/ok"]


# -- in the chain, and /readyz ---------------------------------------------------------------------
def test_in_the_chain_annotations_win_and_the_configmap_fills_in() -> None:
    store = IdentityStore()
    annotated = Identity("shop", "annotated", role_arn=OTHER)
    store.replace_all([annotated, Identity("shop", "plain")])
    source = source_with(json.dumps({"shop/annotated": {"RoleARN": ROLE}, "shop/*": {}, "*/plain": {"RoleARN": ROLE}}))
    chain = IdentityChain(Resolver(store), config_map=source)
    assert chain.cached("shop", "annotated") == annotated
    plain = chain.cached("shop", "plain")
    assert isinstance(plain, Identity)
    assert (plain.role_arn, plain.source) == (ROLE, "configmap")
    # a ServiceAccount the cache does not know: after the slow path the ConfigMap still answers
    missing = asyncio.run(chain.resolve_slow("other", "plain"))
    assert missing is not None
    assert missing.role_arn == ROLE


def readyz(chain: IdentityChain, store: IdentityStore) -> tuple[int, dict[str, Any]]:
    response = request(app_of(chain, SETTINGS), "GET", "/readyz")
    return response.status_code, response.json()["checks"]


def test_readyz_waits_for_the_configmap_only_in_configmap_mode() -> None:
    store = IdentityStore()
    store.replace_all([])
    assert readyz(IdentityChain(Resolver(store)), store) == (
        200,
        {"serviceAccountCacheSynced": True, "certificateLoaded": True, "notShuttingDown": True},
    )
    source = ConfigMapSource(SETTINGS)
    status, checks = readyz(IdentityChain(Resolver(store), config_map=source), store)
    assert (status, checks["configMapSynced"]) == (503, False)
    source.replace(None)
    status, checks = readyz(IdentityChain(Resolver(store), config_map=source), store)
    assert (status, checks["configMapSynced"]) == (200, True)


# -- the flag ---------------------------------------------------------------------------------------
def serve_config_of(argv: list[str], environ: dict[str, str]) -> ServeConfig:
    parser = argparse.ArgumentParser()
    serve.register(parser.add_subparsers())
    args = parser.parse_args(["serve", *argv])
    return serve_config(resolve(args, args.flags, environ))


@pytest.mark.parametrize(
    ("argv", "environ", "on"),
    [
        pytest.param([], {}, False, id="off-by-default"),
        pytest.param(["--watch-config-map", "--namespace=irsa"], {}, True, id="flag"),
        pytest.param(["--watch-config-map=false", "--namespace=irsa"], {}, False, id="go-bool"),
        pytest.param(
            [], {"IRSA_WEBHOOK_WATCH_CONFIG_MAP": "true", "IRSA_WEBHOOK_NAMESPACE": "irsa"}, True, id="environment"
        ),
    ],
)
def test_watch_config_map_flag(argv: list[str], environ: dict[str, str], on: bool) -> None:
    assert serve_config_of(argv, environ).watch_config_map is on


def test_watch_config_map_without_a_namespace_is_one_line_and_exit_2(tmp_path: Path) -> None:
    certs = devcerts.generate(tmp_path / "certs")
    kubeconfig = tmp_path / "kubeconfig"  # never read: the flags are refused before any cluster access
    argv = ["--watch-config-map", f"--kubeconfig={kubeconfig}", f"--tls-cert={certs.cert}", f"--tls-key={certs.key}"]
    result = run_to_exit(
        ["serve", *argv], env={k: v for k, v in os.environ.items() if not k.startswith("IRSA_WEBHOOK_")}, timeout=60
    )
    assert result.returncode == 2, result.stderr
    assert result.stderr.strip() == f"irsa-webhook serve: {serve.NO_CONFIG_MAP_NAMESPACE}"
