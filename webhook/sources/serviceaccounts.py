"""ServiceAccounts from the cluster: a cluster-wide list+watch into the in-memory store, and the live
GET of one account on a cache miss.

For ServiceAccounts, an object that cannot be parsed is counted in
``irsa_webhook_service_account_parse_errors_total``; if it replaced a cached version (MODIFIED), the
cached entry is dropped rather than kept: the change may have revoked the role, and a revoked role
must not stay in use; pods of that account are then admitted as for a missing one.
"""

from __future__ import annotations

import dataclasses
import logging
from typing import Any

import orjson
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from webhook.core.annotations import parse_service_account
from webhook.core.records import Identity
from webhook.core.settings import Settings
from webhook.kube.client import RateLimiter, without_retries
from webhook.kube.objects import describe, object_key, read_or_skip, resource_version_of
from webhook.kube.reflector import ListWatch
from webhook.observe import metrics
from webhook.sources.store import IdentityStore

log = logging.getLogger("irsa_webhook.watch")

LIVE_GET_TIMEOUT = 1.0  # one overall deadline per live GET, no client retries on top


def parse_object(obj: Any, settings: Settings, source: str) -> Identity | None:
    """The Identity of one raw ServiceAccount, or None (logged and counted) if it cannot be parsed.

    ``source`` (list, watch, live) labels the metric. Never raises: one bad object must not fail a
    list, replay a watch event forever, or turn an admission into a 500.
    """
    return read_or_skip(
        "serviceaccount", obj, source, lambda o: _service_account(o, settings), metrics.PARSE_ERRORS_BY_SOURCE[source]
    )


def _service_account(obj: dict[str, Any], settings: Settings) -> Identity:
    identity = parse_service_account(obj, settings)
    return dataclasses.replace(identity, resource_version=resource_version_of(obj))


class ServiceAccountWatcher(ListWatch[Identity]):
    """Cluster-wide list+watch of ServiceAccounts into an :class:`~webhook.sources.store.IdentityStore`."""

    kind = "serviceaccount"
    thread_name = "sa-watch"

    def __init__(
        self,
        api_client: client.ApiClient,
        store: IdentityStore,
        settings: Settings,
        *,
        watch_timeout: float = 300.0,
    ) -> None:
        super().__init__(
            # late-bound: tests swap ``_api`` for a fake after construction
            lambda **kwargs: self._api.list_service_account_for_all_namespaces(**kwargs),  # noqa: PLW0108
            watch_timeout=watch_timeout,
            restarts=metrics.WATCH_RESTART_REASONS,
            parse_errors=metrics.PARSE_ERRORS_BY_SOURCE,
        )
        self._api = client.CoreV1Api(api_client)
        self._store = store
        self._settings = settings

    def _read(self, obj: dict[str, Any]) -> Identity:
        return _service_account(obj, self._settings)

    def _replace(self, items: list[Identity], resource_version: str) -> None:
        self._store.replace_all(items, resource_version)
        log.info("serviceaccount cache synced: %d accounts", len(items))

    def _apply(self, kind: str, obj: Any, resource_version: str) -> None:
        if kind == "DELETED":
            key = object_key(obj)
            if key is not None:
                self._store.delete(key[0], key[1], resource_version)
            else:
                self._parse(obj, "watch")  # logs and counts it
            return
        identity = self._parse(obj, "watch")
        if identity is not None:
            self._store.upsert(identity)
            return
        key = object_key(obj)
        if key is not None:  # never keep serving a version the cluster has replaced
            self._store.delete(key[0], key[1], resource_version)

    def _advance(self, resource_version: str) -> None:
        self._store.advance(resource_version)


class LiveLookup:
    """GET one ServiceAccount from the API server when the cache has not seen it yet.

    Blocking: the resolver calls it from its own small pool of threads. One try, one overall 1 s
    timeout. The answer goes through :meth:`IdentityStore.offer`, so it never overwrites a newer
    version the watch delivered meanwhile, nor brings back one deleted since.
    """

    def __init__(self, api_client: client.ApiClient, store: IdentityStore, settings: Settings) -> None:
        self._client = without_retries(api_client)
        self._own_client = self._client is not api_client
        self._api = client.CoreV1Api(self._client)
        self._store = store
        self._settings = settings
        self._limiter = RateLimiter()

    def __call__(self, namespace: str, name: str) -> Identity | bool | None:
        """The identity, None if there is none to use (not found, or deleted since), False if we could not ask."""
        if not self._limiter.allow():
            metrics.LIVE_LOOKUPS.labels("rate_limited").inc()
            return False
        try:
            raw: Any = self._api.read_namespaced_service_account(
                name, namespace, _preload_content=False, _request_timeout=LIVE_GET_TIMEOUT
            )
            obj = orjson.loads(raw.data)  # the body is read here, still under the same timeout
        except ApiException as exc:
            if exc.status == 404:
                metrics.LIVE_LOOKUPS.labels("not_found").inc()
                return None
            metrics.LIVE_LOOKUPS.labels("error").inc()
            log.warning("live GET of serviceaccount %s/%s failed: %s", namespace, name, describe(exc))
            return False
        except Exception as exc:
            metrics.LIVE_LOOKUPS.labels("error").inc()
            log.warning("live GET of serviceaccount %s/%s failed: %s", namespace, name, describe(exc))
            return False
        identity = parse_object(obj, self._settings, "live")
        if identity is None:
            # It exists but cannot be used; the watch cannot parse it either, so waiting would not help.
            metrics.LIVE_LOOKUPS.labels("error").inc()
            return None
        metrics.LIVE_LOOKUPS.labels("found").inc()
        return self._store.offer(identity)

    def close(self) -> None:
        """Close the connections of the client made by :func:`without_retries`, if one was."""
        if self._own_client:
            self._client.close()  # type: ignore[no-untyped-call]
