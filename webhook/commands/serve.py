"""``irsa-webhook serve``: the admission webhook server."""

from __future__ import annotations

import argparse
import logging
import sys
from typing import Any

import yaml

from webhook import logs
from webhook.cache import IdentityStore, Resolver, load_manifests
from webhook.config import MUTATION_FLAGS, SERVER_FLAGS, ServeConfig, serve_config
from webhook.flags import FlagError, add_flags, resolve
from webhook.handler import MutateEndpoint
from webhook.server import Lifecycle, ListenError, build_app, run_event_loop, serve
from webhook.tlsconfig import ServingTLS, TLSConfigError

log = logging.getLogger("irsa_webhook")

FLAGS = (*SERVER_FLAGS, *MUTATION_FLAGS)


def register(sub: argparse._SubParsersAction[Any]) -> None:
    parser = sub.add_parser(
        "serve",
        help="run the admission webhook (HTTPS /mutate, /healthz, /readyz; /metrics)",
        description="Serve the IRSA mutating admission webhook. Flag names and syntax follow the AWS "
        "EKS pod identity webhook, so its Deployment args work unchanged.",
    )
    add_flags(parser, SERVER_FLAGS, "server")
    add_flags(parser, MUTATION_FLAGS, "mutation")
    parser.set_defaults(func=run, flags=FLAGS)


def run(args: argparse.Namespace) -> int:
    try:
        config = serve_config(resolve(args, FLAGS))
        tls = ServingTLS(config.tls_cert, config.tls_key, config.tls_min_version, config.tls_cipher_suites)
    except (FlagError, TLSConfigError) as exc:
        print(f"irsa-webhook serve: {exc}", file=sys.stderr)
        return 2
    logs.setup(config.verbosity)
    for note in config.notes:
        log.warning(note)
    tls.log_notes()  # a raised --tls-min-version, dropped --tls-cipher-suites
    store = IdentityStore()
    watcher = None
    if config.service_accounts:
        try:
            store.replace_all(load_manifests(config.service_accounts.split(","), config.settings))
        except (OSError, yaml.YAMLError) as exc:
            print(f"irsa-webhook serve: cannot read --service-accounts: {exc}", file=sys.stderr)
            return 2
        resolver = Resolver(store, None, config.lookup_grace)
        log.info("serving from ServiceAccount manifests", extra={"fields": {"accounts": len(store)}})
    else:
        try:
            resolver, watcher = _cluster_resolver(config, store)
        except Exception as exc:
            print(f"irsa-webhook serve: cannot configure cluster access: {exc}", file=sys.stderr)
            return 2
    endpoint = MutateEndpoint(resolver, config.settings, config.max_request_bytes)
    lifecycle = Lifecycle()
    app = build_app(endpoint, store, tls, lifecycle)
    log.info(
        "starting",
        extra={
            "fields": {
                "port": config.port,
                "metrics_port": config.metrics_port,
                "annotation_prefix": config.settings.annotation_prefix,
                "namespace": config.namespace or None,
                "service_name": config.service_name or None,
            }
        },
    )
    try:
        run_event_loop(
            serve(
                app,
                tls,
                host=config.bind_address,
                port=config.port,
                metrics_port=config.metrics_port,
                shutdown_timeout=config.shutdown_timeout,
                shutdown_delay=config.shutdown_delay,
                lifecycle=lifecycle,
                store=store,
            )
        )
    except ListenError as exc:
        print(f"irsa-webhook serve: {exc}", file=sys.stderr)
        return 1
    finally:
        if watcher is not None:
            watcher.stop()
    return 0


def _cluster_resolver(config: ServeConfig, store: IdentityStore) -> tuple[Resolver, Any]:
    from kubernetes import client
    from kubernetes import config as kube_config

    from webhook.watch import LiveLookup, ServiceAccountWatcher

    configuration = client.Configuration()
    if config.kubeconfig:
        kube_config.load_kube_config(  # type: ignore[no-untyped-call]
            config_file=config.kubeconfig, client_configuration=configuration
        )
    else:
        kube_config.load_incluster_config(client_configuration=configuration)  # type: ignore[no-untyped-call]
    if config.kube_api:
        # The loaders' token-refresh hook copies the kubeconfig's (or in-cluster) server back into
        # the configuration before requests, so the override is re-applied after every refresh;
        # the hook replaces itself when it runs, so ours takes the new one and stays in front.
        kube_api = config.kube_api
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
    api_client = client.ApiClient(configuration)
    watcher = ServiceAccountWatcher(api_client, store, config.settings, watch_timeout=config.resync_period)
    watcher.start()
    live = LiveLookup(api_client, store, config.settings) if config.live_lookup else None
    return Resolver(store, live, config.lookup_grace), watcher
