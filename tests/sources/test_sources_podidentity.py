"""The EKS Pod Identity source: the identities file as Go reads it, its reloads (a kubelet ``..data``
swap included), its readiness, its flags, and the metrics of the pods it serves."""

from __future__ import annotations

import base64
import json
import logging
import os
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from prometheus_client import REGISTRY

from tests.support.asgi import app_of, example_store, request
from tests.support.cases import JSON_HEADERS, load_sample
from tests.support.kubeapi import identities_file
from tests.support.metrics import metric
from tests.support.volumes import KubeletVolume
from tests.support.waits import wait_for
from webhook.core.records import CONTAINER_CREDENTIALS, Identity
from webhook.core.settings import Settings
from webhook.options.config import serve_config
from webhook.options.flags import FlagError
from webhook.options.tables import MUTATION_FLAGS, SERVER_FLAGS
from webhook.sources.chain import IdentityChain
from webhook.sources.podidentity import IdentitiesFileError, PodIdentityFile, parse_identities
from webhook.sources.resolver import Resolver

SAMPLE = load_sample()  # a pod of webhook-demo/app


def errors(reason: str) -> float:
    return metric("irsa_webhook_container_credentials_config_errors_total", reason=reason)


# --- the file, as Go's encoding/json reads it -------------------------------------------------------
@pytest.mark.parametrize(
    ("content", "expected"),
    [
        pytest.param(
            identities_file(("default", "app"), ("shop", "web")), {("default", "app"), ("shop", "web")}, id="two"
        ),
        pytest.param(identities_file(("a", "b"), ("a", "b")), {("a", "b")}, id="duplicates"),
        pytest.param(b"", set(), id="empty"),
        pytest.param(b" \n\t\r\n", set(), id="whitespace-only"),
        pytest.param(b"null", set(), id="null-document"),
        pytest.param(b"{}", set(), id="no-identities-key"),
        pytest.param(b'{"identities": null}', set(), id="null-identities"),
        pytest.param(b'{"identities": []}', set(), id="empty-list"),
        pytest.param(
            b'{"IDENTITIES": [{"NameSpace": "a", "SERVICEACCOUNT": "b"}]}', {("a", "b")}, id="field-names-any-case"
        ),
        # Go folds case with Unicode simple folding: the long s is an s.
        pytest.param(
            '{"identities": [{"namespace": "a", "\u017ferviceAccount": "b"}]}'.encode(), {("a", "b")}, id="long-s"
        ),
        pytest.param(
            b'{"identities": [{"namespace": "a", "serviceAccounts": "b"}]}', {("a", "")}, id="near-name-is-unknown"
        ),
        pytest.param(
            b'{"version": 2, "identities": [{"namespace": "a", "serviceAccount": "b", "workloadIdentity": true,'
            b' "extra": {"deep": [1, {"x": null}]}}]}',
            {("a", "b")},
            id="unknown-fields-ignored",
        ),
        pytest.param(
            b'{"identities": [{"namespace": "x", "namespace": "a", "serviceAccount": "b"}]}',
            {("a", "b")},
            id="last-duplicate-key-wins",
        ),
        pytest.param(
            b'{"identities": [{"namespace": "a", "serviceAccount": "b"}], "Identities": []}', set(), id="last-list-wins"
        ),
        pytest.param(b'{"identities": [null, {"namespace": null, "serviceAccount": "b"}]}', {("", "b")}, id="nulls"),
        # Invalid UTF-8 inside a string becomes U+FFFD, as Go decodes it.
        pytest.param(b'{"identities": [{"namespace": "a\xff", "serviceAccount": "b"}]}', {("a\ufffd", "b")}, id="utf8"),
    ],
)
def test_parse(content: bytes, expected: set[tuple[str, str]]) -> None:
    assert parse_identities(content) == expected


@pytest.mark.parametrize(
    ("content", "message"),
    [
        pytest.param(b'{"identities": [', "not valid JSON", id="truncated"),
        pytest.param(b'{"identities": []} x', "not valid JSON", id="trailing-garbage"),
        pytest.param(b"\xef\xbb\xbf{}", "not valid JSON", id="byte-order-mark"),
        pytest.param(b'{"identities": [], "n": NaN}', "not valid JSON", id="nan"),
        pytest.param(b"[]", "got a array", id="top-level-array"),
        pytest.param(b'"identities"', "got a string", id="top-level-string"),
        pytest.param(b'{"identities": {"namespace": "a"}}', "identities must be a list, got a object", id="map"),
        pytest.param(b'{"identities": ["default/app"]}', "identities[0] must be an object", id="entry-string"),
        pytest.param(
            b'{"identities": [{"namespace": "a", "serviceAccount": 7}]}',
            "identities[0].serviceAccount must be a string, got a number",
            id="wrong-type",
        ),
        pytest.param(b"[" * 5000 + b"]" * 5000, "not valid JSON", id="deep-nesting"),
    ],
)
def test_malformed(content: bytes, message: str) -> None:
    with pytest.raises(IdentitiesFileError, match=re.escape(message)):
        parse_identities(content)


# --- the source ---------------------------------------------------------------------------------------
def test_lookup_gives_container_credentials_with_the_flags_defaults(tmp_path: Path) -> None:
    path = tmp_path / "identities.json"
    path.write_bytes(identities_file(("shop", "app")))
    settings = Settings(sts_regional_endpoint=True, token_expiration=7200)
    source = PodIdentityFile(path, settings)
    assert not source.ready
    assert source.lookup("shop", "app") is None

    assert source.reload() is True
    assert source.ready
    assert source.lookup("shop", "app") == Identity(
        "shop",
        "app",
        audience="pods.eks.amazonaws.com",
        sts_regional_endpoints=True,
        token_expiration=7200,
        mode=CONTAINER_CREDENTIALS,
        source="pod-identity",
    )
    # Exact matches only.
    assert source.lookup("shop", "App") is None
    assert source.lookup("shop2", "app") is None
    assert source.lookup("app", "shop") is None
    assert REGISTRY.get_sample_value("irsa_webhook_container_credentials_identities") == 1


def test_missing_file_means_no_identities_then_its_content(tmp_path: Path) -> None:
    path = tmp_path / "identities.json"
    source = PodIdentityFile(path, Settings())
    assert source.reload() is True  # the first read of a missing file serves the empty set
    assert source.ready
    assert source.identities == frozenset()
    assert source.reload() is False

    path.write_bytes(identities_file(("a", "b")))
    assert source.reload() is True
    assert source.identities == {("a", "b")}

    path.unlink()
    assert source.reload() is True
    assert source.identities == frozenset()


def test_empty_file_clears_the_set(tmp_path: Path) -> None:
    path = tmp_path / "identities.json"
    path.write_bytes(identities_file(("a", "b")))
    source = PodIdentityFile(path, Settings())
    source.reload()
    path.write_bytes(b"")
    assert source.reload() is True
    assert source.identities == frozenset()


def test_malformed_file_keeps_the_previous_set_logged_and_counted_once(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "identities.json"
    path.write_bytes(identities_file(("a", "b")))
    source = PodIdentityFile(path, Settings())
    source.reload()
    before = errors("malformed")

    path.write_bytes(b'{"identities": [{"namespace": "a", "serviceAccount": "c"}')  # half written
    with caplog.at_level(logging.WARNING, logger="irsa_webhook.pod_identity"):
        for _ in range(3):  # three polls of the same bad content
            assert source.reload() is False
    assert source.identities == {("a", "b")}
    assert errors("malformed") == before + 1
    lines = [r.getMessage() for r in caplog.records]
    assert len(lines) == 1, lines
    assert "keeping the previous identities" in lines[0]
    assert "not valid JSON" in lines[0]

    path.write_bytes(b"[]")  # another problem: a line and a count of its own
    assert source.reload() is False
    assert errors("malformed") == before + 2

    path.write_bytes(identities_file(("a", "c")))
    assert source.reload() is True
    assert source.identities == {("a", "c")}


def test_malformed_first_read_is_ready_with_no_identities(tmp_path: Path) -> None:
    """A broken file must not keep a new replica out of service (and block every pod with failurePolicy
    Fail): it serves no Pod Identity, and says so."""
    path = tmp_path / "identities.json"
    path.write_bytes(b"{")
    before = errors("malformed")
    source = PodIdentityFile(path, Settings())
    source.reload()
    assert source.ready
    assert source.identities == frozenset()
    assert errors("malformed") == before + 1


def test_unreadable_path_keeps_the_previous_set(tmp_path: Path) -> None:
    path = tmp_path / "identities.json"
    path.write_bytes(identities_file(("a", "b")))
    source = PodIdentityFile(path, Settings())
    source.reload()
    before = errors("unreadable")
    path.unlink()
    path.mkdir()  # reading a directory fails: neither missing nor content
    assert source.reload() is False
    assert source.reload() is False
    assert source.identities == {("a", "b")}
    assert errors("unreadable") == before + 1


KEY = "identities.json"  # its key in the ConfigMap, the file name in the volume


@pytest.fixture
def polling(tmp_path: Path) -> Iterator[tuple[KubeletVolume, PodIdentityFile]]:
    volume = KubeletVolume(tmp_path / "config", {KEY: identities_file(("shop", "app"))})
    source = PodIdentityFile(volume.folder / KEY, Settings(), interval=0.02).start()
    try:
        yield volume, source
    finally:
        source.stop()


def test_reloads_on_a_kubelet_data_swap(polling: tuple[KubeletVolume, PodIdentityFile]) -> None:
    volume, source = polling
    wait_for(lambda: source.ready and source.lookup("shop", "app") is not None, what="the first read")
    link = os.lstat(volume.folder / KEY)

    volume.write({KEY: identities_file(("shop", "app"), ("shop", "later"))})
    wait_for(lambda: source.lookup("shop", "later") is not None, what="the swapped content")
    # The file's own path never changed: only ..data was replaced. Polling it for events or for its
    # symlink's mtime would never see this update.
    after = os.lstat(volume.folder / KEY)
    assert (after.st_ino, after.st_mtime_ns) == (link.st_ino, link.st_mtime_ns)

    volume.write({KEY: identities_file(("shop", "later"))})  # removals too
    wait_for(lambda: source.lookup("shop", "app") is None, what="the removal")
    assert source.identities == {("shop", "later")}


def test_a_malformed_swap_keeps_serving_then_recovers(polling: tuple[KubeletVolume, PodIdentityFile]) -> None:
    volume, source = polling
    wait_for(lambda: source.lookup("shop", "app") is not None, what="the first read")
    before = errors("malformed")
    volume.write({KEY: b"identities: [shop/app]"})  # YAML, not JSON
    wait_for(lambda: errors("malformed") == before + 1, what="the error to be counted")
    assert source.lookup("shop", "app") is not None
    volume.write({KEY: identities_file(("shop", "fixed"))})
    wait_for(lambda: source.lookup("shop", "fixed") is not None, what="the fixed content")
    assert source.lookup("shop", "app") is None


def test_stop_ends_the_poller(tmp_path: Path) -> None:
    source = PodIdentityFile(tmp_path / "missing.json", Settings(), interval=0.01).start()
    wait_for(lambda: source.ready, what="the first read")
    source.stop()
    assert source._thread is not None
    assert not source._thread.is_alive()


# --- readiness and the admission path ----------------------------------------------------------------
def _app(source: PodIdentityFile | None) -> Any:
    return app_of(IdentityChain(Resolver(example_store()), pod_identity=source))


def test_readyz_waits_for_the_first_read(tmp_path: Path) -> None:
    source = PodIdentityFile(tmp_path / "identities.json", Settings())
    app = _app(source)
    response = request(app, "GET", "/readyz")
    assert response.status_code == 503
    assert response.json()["checks"]["containerCredentialsConfigLoaded"] is False
    source.reload()
    response = request(app, "GET", "/readyz")
    assert response.status_code == 200
    assert response.json()["checks"]["containerCredentialsConfigLoaded"] is True
    # Without the flag there is no such check.
    assert "containerCredentialsConfigLoaded" not in request(_app(None), "GET", "/readyz").json()["checks"]


def mutations(mode: str) -> float:
    return metric("irsa_webhook_mutations_total", mode=mode)


def test_pod_identity_admission_is_counted_by_mode(tmp_path: Path) -> None:
    source = PodIdentityFile(tmp_path / "identities.json", Settings())
    source.replace([("webhook-demo", "app")])
    irsa, cc = mutations("irsa"), mutations("container_credentials")

    response = request(_app(source), "POST", "/mutate", content=json.dumps(SAMPLE), headers=JSON_HEADERS)

    patch = json.loads(base64.b64decode(response.json()["response"]["patch"]))
    # The sample pod has labels: the key is added to them, "/" escaped in the JSON pointer.
    label = {"op": "add", "path": "/metadata/labels/eks.amazonaws.com~1pod-identity", "value": "enabled"}
    assert label in patch
    assert "AWS_ROLE_ARN" not in json.dumps(patch)  # the SA's role-arn annotation is not used
    assert mutations("container_credentials") == cc + 1
    assert mutations("irsa") == irsa

    request(_app(None), "POST", "/mutate", content=json.dumps(SAMPLE), headers=JSON_HEADERS)
    assert mutations("irsa") == irsa + 1
    assert mutations("container_credentials") == cc + 1


# --- flags --------------------------------------------------------------------------------------------
def _values(**changes: Any) -> dict[str, Any]:
    values = {flag.dest: flag.default for flag in (*SERVER_FLAGS, *MUTATION_FLAGS)}
    values.update(changes)
    return values


def test_flags_defaults_are_upstreams() -> None:
    config = serve_config(_values())
    assert config.container_credentials_config == ""
    s = config.settings
    assert s.container_credentials_audience == "pods.eks.amazonaws.com"
    assert s.container_credentials_mount_path == "/var/run/secrets/pods.eks.amazonaws.com/serviceaccount"
    assert s.container_credentials_volume_name == "eks-pod-identity-token"
    assert s.container_credentials_token_path == "eks-pod-identity-token"
    assert s.container_credentials_full_uri == "http://169.254.170.23/v1/credentials"
    assert s.cc_token_file == "/var/run/secrets/pods.eks.amazonaws.com/serviceaccount/eks-pod-identity-token"
    assert s.cc_windows_token_file == r"C:\var\run\secrets\pods.eks.amazonaws.com\serviceaccount\eks-pod-identity-token"


def test_flags_set_the_settings() -> None:
    config = serve_config(
        _values(
            watch_container_credentials_config="/etc/pod-identity/identities.json",
            container_credentials_audience="agent",
            container_credentials_token_mount_path="/run/agent/",
            container_credentials_token_volume_name="agent-token",
            container_credentials_token_path="sub/token",
            container_credentials_full_uri="http://127.0.0.1:2703/v1/credentials",
        )
    )
    assert config.container_credentials_config == "/etc/pod-identity/identities.json"
    s = config.settings
    assert (s.container_credentials_audience, s.container_credentials_volume_name) == ("agent", "agent-token")
    assert s.container_credentials_full_uri == "http://127.0.0.1:2703/v1/credentials"
    assert s.cc_token_file == "/run/agent/sub/token"
    assert s.cc_normalised_mount_path == "/run/agent"


@pytest.mark.parametrize(
    ("name", "value", "message"),
    [
        ("container_credentials_token_mount_path", "var/run", "must be absolute"),
        ("container_credentials_token_volume_name", "Pod_Identity", "must be a DNS label"),
        ("container_credentials_token_volume_name", "x" * 64, "must be a DNS label"),
        ("container_credentials_token_path", "/abs/token", "relative path"),
        ("container_credentials_token_path", "../token", "without '..'"),
        ("container_credentials_token_path", "", "relative path"),
    ],
)
def test_flags_kube_apiserver_would_reject_are_refused(name: str, value: str, message: str) -> None:
    flag = "--" + name.replace("_", "-")
    with pytest.raises(FlagError, match=message) as raised:
        serve_config(_values(**{name: value}))
    assert str(raised.value).startswith(flag)
