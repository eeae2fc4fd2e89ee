"""The one list+watch loop, following the ConfigMap of --watch-config-map, against the scripted API."""

from __future__ import annotations

import json

from kubernetes import client

from tests.support.kubeapi import FakeCoreV1, LiveStream, Stream, config_map, gone, page, service_account
from tests.support.metrics import metric
from tests.support.waits import wait_for
from webhook.core.records import Identity
from webhook.core.settings import Settings
from webhook.kube.reflector import ListWatch
from webhook.sources.configmap import CONFIG_MAP_NAME, ConfigMapSource
from webhook.sources.configmap_watch import ConfigMapWatcher
from webhook.sources.serviceaccounts import ServiceAccountWatcher

NS = "irsa-webhook"
ROLE_A = "arn:aws:iam::111122223333:role/a"
ROLE_B = "arn:aws:iam::111122223333:role/b"


def config(**roles: str) -> str:
    """A ``config`` value mapping ``shop/<name>`` to a role (kOps' field names)."""
    return json.dumps({f"shop/{name}": {"RoleARN": role} for name, role in roles.items()})


def cm(rv: str, text: str | None) -> dict[str, object]:
    return config_map(NS, CONFIG_MAP_NAME, rv, text)


def start(api: FakeCoreV1, api_client: client.ApiClient) -> tuple[ConfigMapWatcher, ConfigMapSource]:
    source = ConfigMapSource(Settings())
    watcher = ConfigMapWatcher(api_client, NS, CONFIG_MAP_NAME, source, watch_timeout=60)
    watcher._api = api  # type: ignore[assignment]
    watcher.start()
    return watcher, source


def role(source: ConfigMapSource, name: str) -> str | None:
    found = source.lookup("shop", name)
    return found.role_arn if isinstance(found, Identity) else None


def test_one_loop_serves_both_kinds() -> None:
    """No copy of the loop: both watchers run ListWatch's own list, watch and event handling."""
    for watcher in (ServiceAccountWatcher, ConfigMapWatcher):
        assert issubclass(watcher, ListWatch)
        for method in ("_run", "_list", "_watch", "_handle", "start", "stop"):
            assert getattr(watcher, method) is getattr(ListWatch, method), (watcher.__name__, method)


def test_lists_and_watches_only_its_configmap_then_follows_it(api_client: client.ApiClient) -> None:
    api = FakeCoreV1()
    api.lists = [page([cm("5", config(app=ROLE_A))], "7")]
    stream = LiveStream()
    api.watches.put(stream)
    watcher, source = start(api, api_client)
    try:
        wait_for(lambda: source.ready and len(api.watch_rvs) == 1)
        assert role(source, "app") == ROLE_A
        # list and watch: in the webhook's namespace, that one ConfigMap by name, from the list's RV
        assert api.config_map_calls == [(NS, f"metadata.name={CONFIG_MAP_NAME}")] * 2
        assert api.watch_rvs == ["7"]
        assert api.watch_kwargs[0]["allow_watch_bookmarks"] is True

        stream.push({"type": "MODIFIED", "object": cm("8", config(app=ROLE_B, other=ROLE_A))})
        wait_for(lambda: role(source, "app") == ROLE_B)
        assert role(source, "other") == ROLE_A
        assert watcher.resource_version == "8"

        stream.push({"type": "DELETED", "object": cm("9", config(app=ROLE_B))})
        wait_for(lambda: role(source, "app") is None)  # deleting the ConfigMap removes its entries
        assert len(source) == 0

        stream.push({"type": "ADDED", "object": cm("10", config(app=ROLE_A))})
        wait_for(lambda: role(source, "app") == ROLE_A)
        stream.push({"type": "BOOKMARK", "object": {"kind": "ConfigMap", "metadata": {"resourceVersion": "15"}}})
        wait_for(lambda: watcher.resource_version == "15")
    finally:
        watcher.stop()


def test_ready_after_a_list_without_the_configmap(api_client: client.ApiClient) -> None:
    api = FakeCoreV1()
    api.lists = [page([], "3")]
    watcher, source = start(api, api_client)
    try:
        assert source.lookup("shop", "app") is None
        wait_for(lambda: source.ready)
        assert len(source) == 0
    finally:
        watcher.stop()


def test_broken_updates_keep_the_last_good_map_and_the_watch_goes_on(api_client: client.ApiClient) -> None:
    api = FakeCoreV1()
    api.lists = [page([cm("5", config(app=ROLE_A))], "5")]
    api.watches.put(
        Stream(
            [
                {"type": "MODIFIED", "object": cm("6", "{not json")},
                {"type": "MODIFIED", "object": ["not", "an", "object"]},
                {"type": "MODIFIED", "object": {"kind": "ConfigMap", "metadata": {"resourceVersion": "8"}}},
                {"type": "MODIFIED", "object": cm("9", json.dumps({"no-slash": {}, "shop/new": {"RoleARN": ROLE_B}}))},
            ],
            hold=True,
        )
    )
    invalid_json = metric("irsa_webhook_config_map_errors_total", reason="invalid_json")
    unparseable = metric("irsa_webhook_config_map_errors_total", reason="unparseable")
    bad_key = metric("irsa_webhook_config_map_errors_total", reason="bad_key")
    watcher, source = start(api, api_client)
    try:
        wait_for(lambda: role(source, "new") == ROLE_B)
        assert role(source, "app") is None  # the last good map is the new one, without shop/app
        assert api.watch_rvs == ["5"]  # one watch went on past every broken event
        assert api.list_calls == 1
        assert watcher.resource_version == "9"
    finally:
        watcher.stop()
    assert metric("irsa_webhook_config_map_errors_total", reason="invalid_json") - invalid_json == 1
    assert metric("irsa_webhook_config_map_errors_total", reason="unparseable") - unparseable == 2
    assert metric("irsa_webhook_config_map_errors_total", reason="bad_key") - bad_key == 1


def test_invalid_json_between_two_good_versions(api_client: client.ApiClient) -> None:
    api = FakeCoreV1()
    api.lists = [page([cm("5", config(app=ROLE_A))], "5")]
    stream = LiveStream()
    api.watches.put(stream)
    watcher, source = start(api, api_client)
    try:
        wait_for(lambda: source.ready and len(api.watch_rvs) == 1)
        before = metric("irsa_webhook_config_map_errors_total", reason="invalid_json")
        stream.push({"type": "MODIFIED", "object": cm("6", '{"shop/app": {"RoleARN": ')})
        wait_for(lambda: metric("irsa_webhook_config_map_errors_total", reason="invalid_json") > before)
        assert role(source, "app") == ROLE_A
        stream.push({"type": "MODIFIED", "object": cm("7", config(app=ROLE_B))})
        wait_for(lambda: role(source, "app") == ROLE_B)
    finally:
        watcher.stop()


def test_410_relists_and_a_configmap_deleted_meanwhile_is_gone(api_client: client.ApiClient) -> None:
    api = FakeCoreV1()
    api.lists = [page([cm("5", config(app=ROLE_A))], "5"), page([], "30")]
    api.watches.put(gone())
    before = metric("irsa_webhook_config_map_watch_restarts_total", reason="gone")
    sa_before = metric("irsa_webhook_service_account_watch_restarts_total", reason="gone")
    watcher, source = start(api, api_client)
    try:
        wait_for(lambda: api.list_calls == 2 and len(api.watch_rvs) >= 2)
        assert api.watch_rvs[:2] == ["5", "30"]
        assert role(source, "app") is None
        assert source.ready
    finally:
        watcher.stop()
    assert metric("irsa_webhook_config_map_watch_restarts_total", reason="gone") - before == 1
    # the ConfigMap's loop counts in its own series, not the ServiceAccounts'
    assert metric("irsa_webhook_service_account_watch_restarts_total", reason="gone") == sa_before


def test_a_list_of_another_object_is_not_taken_for_the_configmap(api_client: client.ApiClient) -> None:
    api = FakeCoreV1()
    api.lists = [page([service_account("shop", "app", rv="3")], "4")]
    watcher, source = start(api, api_client)
    try:
        wait_for(lambda: source.ready)
        assert len(source) == 0
    finally:
        watcher.stop()
