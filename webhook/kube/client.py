"""Kubernetes API access shared by every application: one way to build the client, no hidden retries,
and a rate limit for calls made on a request's behalf."""

from __future__ import annotations

import copy
import threading
import time
from typing import Any

from kubernetes import client
from kubernetes import config as kube_config


def api_client(kubeconfig: str = "", kube_api: str = "") -> client.ApiClient:
    """An ApiClient from ``kubeconfig`` (else the in-cluster config), pointed at ``kube_api`` if given,
    without retries (``--kubeconfig``, ``--kube-api``)."""

    configuration = client.Configuration()
    if kubeconfig:
        kube_config.load_kube_config(  # type: ignore[no-untyped-call]
            config_file=kubeconfig, client_configuration=configuration
        )
    else:
        kube_config.load_incluster_config(client_configuration=configuration)  # type: ignore[no-untyped-call]
    if kube_api:
        # The loaders' token-refresh hook copies the kubeconfig's (or in-cluster) server back into
        # the configuration before requests, so the override is re-applied after every refresh;
        # the hook replaces itself when it runs, so ours takes the new one and stays in front.
        loader_hook: list[Any] = [configuration.refresh_api_key_hook]

        def refresh_keeping_host(refreshed: Any) -> None:
            if loader_hook[0] is not None:
                loader_hook[0](refreshed)
                if refreshed.refresh_api_key_hook is not refresh_keeping_host:
                    loader_hook[0] = refreshed.refresh_api_key_hook
                    refreshed.refresh_api_key_hook = refresh_keeping_host
            refreshed.host = kube_api

        configuration.host = kube_api
        configuration.refresh_api_key_hook = refresh_keeping_host  # type: ignore[assignment]
    # No urllib3 retries: each would restart the timeout (a "1 s" live GET took up to 4 s), and the
    # watch loop retries by itself, with backoff.
    configuration.retries = False
    return client.ApiClient(configuration)


def without_retries(api_client: client.ApiClient) -> client.ApiClient:
    """``api_client``, or a copy of it that never retries a request.

    urllib3 retries 3 times by default, each try with a fresh timeout: a "1 s" GET could take 4 s.
    """
    if api_client.configuration.retries is False:
        return api_client
    configuration = copy.deepcopy(api_client.configuration)
    configuration.retries = False
    return client.ApiClient(configuration)


class RateLimiter:
    """Token bucket: at most ``rate`` live GETs per second with bursts of ``burst``.

    A storm of pods for a missing ServiceAccount must not become a storm of API calls.
    """

    def __init__(self, rate: float = 10.0, burst: int = 20) -> None:
        self._rate = rate
        self._burst = float(burst)
        self._tokens = float(burst)
        self._last = time.monotonic()
        self._lock = threading.Lock()

    def allow(self) -> bool:
        with self._lock:
            now = time.monotonic()
            self._tokens = min(self._burst, self._tokens + (now - self._last) * self._rate)
            self._last = now
            if self._tokens >= 1:
                self._tokens -= 1
                return True
            return False
