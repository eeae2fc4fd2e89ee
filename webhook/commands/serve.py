"""``irsa-webhook serve``: the admission webhook server."""

from __future__ import annotations

import argparse
import dataclasses
import logging
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import yaml

from webhook import __version__
from webhook.admission.endpoint import MutateEndpoint
from webhook.aws import imds
from webhook.commands.common import Exit, fail
from webhook.core import arn
from webhook.core.goparse import parse_go_bool
from webhook.observe import logs
from webhook.options.config import ServeConfig, serve_config
from webhook.options.flags import FlagError, add_flags, resolve
from webhook.options.tables import MUTATION_FLAGS, SERVER_FLAGS
from webhook.server.app import Lifecycle, build_app
from webhook.server.listen import ListenError
from webhook.server.run import run_event_loop, serve
from webhook.server.tls import ServingTLS, TLSConfigError
from webhook.sources.chain import IdentityChain
from webhook.sources.configmap import ConfigMapSource
from webhook.sources.manifests import load_manifests
from webhook.sources.podidentity import PodIdentityFile
from webhook.sources.resolver import Resolver
from webhook.sources.store import IdentityStore

if TYPE_CHECKING:  # the keeper needs the kubernetes client, which every other command must not import
    from webhook.pki.keeper import Keeper

log = logging.getLogger("irsa_webhook")

FLAGS = (*SERVER_FLAGS, *MUTATION_FLAGS)
NO_CONFIG_MAP_NAMESPACE = (
    "--watch-config-map reads the ConfigMap pod-identity-webhook from --namespace, which is not set "
    "(upstream's default was eks: give --namespace=eks to keep reading it there)"
)


def register(sub: argparse._SubParsersAction[Any]) -> None:
    parser = sub.add_parser(
        "serve",
        help="run the admission webhook (HTTPS /mutate, /healthz, /readyz; /metrics)",
        description="Serve the IRSA mutating admission webhook. Flag names and syntax follow the AWS "
        "EKS pod identity webhook, so its Deployment args work unchanged.",
    )
    add_flags(parser, SERVER_FLAGS, "server")
    add_flags(parser, MUTATION_FLAGS, "mutation")
    # Upstream's --version: print the version and exit. No environment variable (a deployment may well
    # set IRSA_WEBHOOK_VERSION for other reasons), so not a Flag.
    parser.add_argument(
        "--version", dest="print_version", nargs="?", const="true", default=None, metavar="BOOL", help=argparse.SUPPRESS
    )
    parser.set_defaults(func=run, flags=FLAGS)


def run(args: argparse.Namespace) -> int:  # noqa: PLR0911 - one exit per way startup can end
    if getattr(args, "print_version", None) is not None and parse_go_bool(args.print_version):
        print(f"irsa-webhook {__version__}")
        return Exit.OK
    try:
        config = serve_config(resolve(args, FLAGS))
        # Self-managed: the files are written by the keeper, once logging is set up (below).
        tls = None if config.self_managed_tls else _serving_tls(config)
    except (FlagError, TLSConfigError) as exc:
        return fail("serve", str(exc))
    instance = None
    if config.compose_from_imds:  # before any identity is parsed: they are composed as they are read
        try:
            config, instance = compose_from_imds(config)
        except imds.IMDSError as exc:
            message = f"--compose-role-arn needs this instance's account: {exc} (off EC2, give --aws-account-id)"
            return fail("serve", message, Exit.NO)
    logs.setup(config.verbosity)
    for note in config.notes:
        log.warning(note)
    if config.settings.role_arn_account:
        log.info(
            "composing role ARNs from role names",
            extra={
                "fields": {
                    "account": config.settings.role_arn_account,
                    "partition": config.settings.role_arn_partition,
                    "from": "instance metadata" if instance else "--aws-account-id",
                    "region": instance.region if instance else None,
                }
            },
        )
    keeper = None
    if tls is None:
        try:
            keeper = _self_managed_keeper(config)
            tls = _serving_tls(config)
        except TLSConfigError as exc:
            return fail("serve", str(exc))
        except Exception as exc:
            return fail("serve", f"cannot set up self-managed certificates: {exc}")
    tls.log_notes()  # a raised --tls-min-version, dropped --tls-cipher-suites
    store = IdentityStore()
    watcher = None
    config_map: ConfigMapSource | None = None
    config_map_watcher = None
    if config.service_accounts:
        try:
            store.replace_all(load_manifests(config.service_accounts.split(","), config.settings))
        except (OSError, yaml.YAMLError) as exc:
            return fail("serve", f"cannot read --service-accounts: {exc}")
        resolver = Resolver(store, None, config.lookup_grace)
        log.info("serving from ServiceAccount manifests", extra={"fields": {"accounts": len(store)}})
        if config.watch_config_map:
            log.warning("--watch-config-map needs a cluster: ignored with --service-accounts")
    else:
        if config.watch_config_map and not config.namespace:
            return fail("serve", str(NO_CONFIG_MAP_NAMESPACE))
        try:
            from webhook.kube.client import api_client as make_api_client  # lazily: `certs`, `mutate` need none

            api_client = make_api_client(config.kubeconfig, config.kube_api)
            resolver, watcher = _cluster_resolver(config, store, api_client)
            if config.watch_config_map:
                config_map, config_map_watcher = _config_map_source(config, api_client)
        except Exception as exc:
            return fail("serve", f"cannot configure cluster access: {exc}")
    pod_identity = _pod_identity_source(config)
    identities = IdentityChain(resolver, pod_identity=pod_identity, config_map=config_map)
    endpoint = MutateEndpoint(identities, config.settings, config.max_request_bytes)
    lifecycle = Lifecycle()
    app = build_app(endpoint, tls, lifecycle, _self_managed_checks(keeper, tls))
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
    if keeper is not None:
        keeper.start()
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
                debug_cache=store.snapshot if config.debugging_handlers else None,
            )
        )
    except ListenError as exc:
        return fail("serve", str(exc), Exit.NO)
    finally:
        if keeper is not None:
            keeper.stop()
        if watcher is not None:
            watcher.stop()
        if config_map_watcher is not None:
            config_map_watcher.stop()
        if pod_identity is not None:
            pod_identity.stop()
        resolver.close()  # the live-GET threads
    return Exit.OK


def _serving_tls(config: ServeConfig) -> ServingTLS:
    return ServingTLS(config.tls_cert, config.tls_key, config.tls_min_version, config.tls_cipher_suites)


def _self_managed_keeper(config: ServeConfig) -> Keeper:
    """--self-managed-tls-secret: the keeper, prepared (its files are there to load); not started."""
    from webhook.kube.certobjects import CertObjects
    from webhook.kube.client import api_client as make_api_client
    from webhook.pki.keeper import Keeper
    from webhook.pki.state import Policy

    managed = config.self_managed_tls
    assert managed is not None
    objects = CertObjects(
        make_api_client(config.kubeconfig, config.kube_api),
        managed.namespace,
        managed.secret,
        managed.webhook_configuration,
    )
    policy = Policy(managed.hosts, managed.lifetime, managed.renew_before)
    keeper = Keeper(objects, policy, config.tls_cert, config.tls_key, check_interval=managed.check_interval)
    log.info(
        "self-managed certificates",
        extra={
            "fields": {
                "secret": keeper.where,
                "webhook_configuration": managed.webhook_configuration,
                "hosts": ",".join(managed.hosts),
            }
        },
    )
    keeper.prepare()
    return keeper


def _self_managed_checks(keeper: Keeper | None, tls: ServingTLS) -> dict[str, Callable[[], bool]]:
    """/readyz: not ready while the placeholder (no pair from the Secret yet) is what is served."""
    if keeper is None:
        return {}
    return {"selfManagedCertificate": lambda: tls.served.serial != keeper.placeholder_serial}


def _cluster_resolver(config: ServeConfig, store: IdentityStore, api_client: Any = None) -> tuple[Resolver, Any]:
    from webhook.kube.client import api_client as make_api_client
    from webhook.sources.serviceaccounts import LiveLookup, ServiceAccountWatcher

    api_client = api_client or make_api_client(config.kubeconfig, config.kube_api)
    watcher = ServiceAccountWatcher(api_client, store, config.settings, watch_timeout=config.resync_period)
    watcher.start()
    live = LiveLookup(api_client, store, config.settings) if config.live_lookup else None
    return Resolver(store, live, config.lookup_grace), watcher


def _config_map_source(config: ServeConfig, api_client: Any) -> tuple[ConfigMapSource, Any]:
    """--watch-config-map: the ConfigMap source, kept current by a watch of its own (started)."""
    from webhook.sources.configmap import CONFIG_MAP_NAME
    from webhook.sources.configmap_watch import ConfigMapWatcher

    source = ConfigMapSource(config.settings)  # --compose-role-arn applies to its entries too (settings)
    watcher = ConfigMapWatcher(
        api_client, config.namespace, CONFIG_MAP_NAME, source, watch_timeout=config.resync_period
    )
    watcher.start()
    log.info("watching configmap %s/%s for roles", config.namespace, CONFIG_MAP_NAME)
    return source, watcher


def _pod_identity_source(config: ServeConfig) -> PodIdentityFile | None:
    """--watch-container-credentials-config: the EKS Pod Identity source, polling its file (started)."""
    if not config.container_credentials_config:
        return None
    source = PodIdentityFile(config.container_credentials_config, config.settings).start()
    log.info("watching %s for EKS Pod Identity ServiceAccounts", config.container_credentials_config)
    return source


def compose_from_imds(config: ServeConfig) -> tuple[ServeConfig, imds.InstanceIdentity]:
    """--compose-role-arn without --aws-account-id: the account, and the partition of the region, from
    this EC2 instance's identity document (an explicit --aws-partition still wins). IMDSError if none."""
    instance = imds.instance_identity()
    partition = config.aws_partition or arn.partition_for_region(instance.region)
    settings = dataclasses.replace(config.settings, role_arn_account=instance.account_id, role_arn_partition=partition)
    return dataclasses.replace(config, settings=settings, compose_from_imds=False), instance
