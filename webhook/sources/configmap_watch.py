"""``--watch-config-map``: a list+watch of the one ``pod-identity-webhook`` ConfigMap, handed whole to
its sink (:class:`~webhook.sources.configmap.ConfigMapSource`) on every change."""

from __future__ import annotations

from typing import Any, Protocol

from kubernetes import client

from webhook.kube.objects import object_key
from webhook.kube.reflector import ListWatch
from webhook.observe import metrics


class ConfigMapSink(Protocol):
    """Where :class:`ConfigMapWatcher` delivers the one ConfigMap it follows."""

    def replace(self, config_map: dict[str, Any] | None) -> None:
        """The ConfigMap as the cluster now has it; None: it does not exist (any more)."""
        ...


class ConfigMapWatcher(ListWatch[dict[str, Any]]):
    """List+watch of one ConfigMap by name (a ``metadata.name`` field selector) in one namespace.

    The sink gets the whole object on every change and None when it is deleted or absent from a
    list; what the object means (and what to keep when it is broken) is the sink's business.
    """

    kind = "configmap"
    thread_name = "cm-watch"

    def __init__(
        self,
        api_client: client.ApiClient,
        namespace: str,
        name: str,
        sink: ConfigMapSink,
        *,
        watch_timeout: float = 300.0,
    ) -> None:
        unparseable = metrics.CONFIG_MAP_ERROR_REASONS["unparseable"]
        super().__init__(
            lambda **kwargs: self._api.list_namespaced_config_map(
                self.namespace, field_selector=f"metadata.name={self.name}", **kwargs
            ),
            watch_timeout=watch_timeout,
            restarts=metrics.CONFIG_MAP_WATCH_RESTART_REASONS,
            parse_errors={"list": unparseable, "watch": unparseable},
        )
        self._api = client.CoreV1Api(api_client)
        self.namespace = namespace
        self.name = name
        self._sink = sink

    def _read(self, obj: dict[str, Any]) -> dict[str, Any]:
        if object_key(obj) != (self.namespace, self.name):
            raise ValueError(f"not configmap {self.namespace}/{self.name}")
        return obj

    def _replace(self, items: list[dict[str, Any]], resource_version: str) -> None:
        self._sink.replace(items[-1] if items else None)

    def _apply(self, kind: str, obj: Any, resource_version: str) -> None:
        if kind == "DELETED":
            self._sink.replace(None)
            return
        config_map = self._parse(obj, "watch")
        if config_map is not None:  # unreadable: the sink keeps what it has
            self._sink.replace(config_map)
