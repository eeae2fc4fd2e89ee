"""``irsa-webhook controller``: reconcile IRSAIssuer objects continuously, in the cluster.

The engine (the AWS side) is the one ``provision`` uses; this command adds the Kubernetes side: the
watch, the queue, leader election, the probes and the metrics (:mod:`webhook.provisioner.controller`).
Only the standard library and this package's constants are imported at the top: the other commands
must not pay for the kubernetes client or boto3.
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import socket
import threading
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from webhook.commands.common import Exit, fail
from webhook.options.flags import FlagError, parse_duration
from webhook.provisioner.model import API_GROUP, API_VERSION, ISSUER_PLURAL

COMMAND = "controller"
DEFAULT_NAMESPACE = "irsa-webhook"
FIELD_MANAGER = "irsa-webhook-provisioner"
# An engine: Engine(cluster_name, api_client, probe, calls_per_second) with .reconcile and .delete.
EngineFactory = Callable[[str, Any, "tuple[str, str] | None", float], Any]

DESCRIPTION = """\
Reconcile IRSAIssuer objects (irsa-webhook.io/v1alpha1): publish the discovery document and JWKS,
keep the IAM OIDC provider in step, report conditions and Events. One replica writes at a time
(a coordination.k8s.io Lease); every object is checked again every --resync. AWS credentials come
from boto3's standard chain (IRSA in the cluster)."""


def register(sub: argparse._SubParsersAction[Any]) -> None:
    parser = sub.add_parser(
        COMMAND,
        help="reconcile IRSAIssuer objects continuously (leader-elected; /healthz, /readyz, /metrics)",
        description=DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--cluster-name", default=None, help="names this cluster in the owner tag of everything created (required)"
    )
    parser.add_argument("--kubeconfig", default="", help="kubeconfig file (default: the in-cluster configuration)")
    parser.add_argument("--kube-api", default="", metavar="URL", help="API server URL, overriding the kubeconfig's")
    parser.add_argument("--resync", default="1h", metavar="DURATION", help="check every object this often (1h)")
    parser.add_argument(
        "--keys-poll-interval",
        default="1m",
        metavar="DURATION",
        help="read kube-apiserver's keys this often and reconcile every object when they change, so a "
        "rotation is mirrored within it (1m; 0: only at --resync)",
    )
    parser.add_argument(
        "--leader-elect",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="write only while holding the Lease (default on; off only with a single replica)",
    )
    parser.add_argument(
        "--leader-election-namespace",
        default=os.environ.get("POD_NAMESPACE") or DEFAULT_NAMESPACE,
        metavar="NS",
        help="namespace of the Lease (default: $POD_NAMESPACE, else irsa-webhook)",
    )
    parser.add_argument("--leader-election-name", default="irsa-webhook-provisioner", metavar="NAME")
    parser.add_argument("--leader-elect-lease-duration", default="15s", metavar="DURATION")
    parser.add_argument("--leader-elect-renew-deadline", default="10s", metavar="DURATION")
    parser.add_argument("--leader-elect-retry-period", default="2s", metavar="DURATION")
    parser.add_argument("--health-port", type=int, default=8081, help="/healthz and /readyz (0: off)")
    parser.add_argument(
        "--metrics-port", type=int, default=9090, help="/metrics (0: off; the health port's number: served there)"
    )
    parser.add_argument("--bind-address", default="", help="address of both ports (default: every address)")
    parser.add_argument("--aws-calls-per-second", type=float, default=10.0, metavar="N")
    parser.add_argument(
        "--probe-service-account",
        default=_own_service_account(),
        metavar="NS/NAME",
        help="a token is requested for it to learn the signing key (default: $POD_NAMESPACE/$SERVICE_ACCOUNT_NAME)",
    )
    parser.add_argument("-v", "--v", dest="verbosity", type=int, default=0, help="4 and above: debug")
    parser.set_defaults(func=run)


@dataclass(frozen=True)
class Settings:
    cluster_name: str
    resync: float
    probe: tuple[str, str] | None
    lease: tuple[float, float, float]  # duration, renew deadline, retry period
    keys_poll: float = 0.0  # 0: off


def settings(args: argparse.Namespace) -> Settings:
    """The flags checked; FlagError says which one is wrong and how."""
    if not args.cluster_name:
        raise FlagError("--cluster-name is required: it names this cluster in the owner tag of what is created")
    resync = parse_duration(args.resync)
    if resync <= 0:
        raise FlagError("--resync must be positive (e.g. 1h, 30m, 90s)")
    duration = parse_duration(args.leader_elect_lease_duration)
    deadline = parse_duration(args.leader_elect_renew_deadline)
    retry = parse_duration(args.leader_elect_retry_period)
    if not 0 < retry < deadline < duration:
        raise FlagError("leader election needs 0 < --leader-elect-retry-period < renew deadline < lease duration")
    for flag, port in (("--health-port", args.health_port), ("--metrics-port", args.metrics_port)):
        if not 0 <= port <= 65535:
            raise FlagError(f"{flag} {port} is not a port (0-65535)")
    if args.aws_calls_per_second <= 0:
        raise FlagError("--aws-calls-per-second must be positive")
    probe = None
    if args.probe_service_account:
        namespace, _, name = args.probe_service_account.partition("/")
        if not namespace or not name or "/" in name:
            raise FlagError("--probe-service-account must be NAMESPACE/NAME")
        probe = (namespace, name)
    keys_poll = parse_duration(args.keys_poll_interval)
    if keys_poll < 0:
        raise FlagError("--keys-poll-interval must be 0 (off) or positive (e.g. 1m, 30s)")
    return Settings(args.cluster_name, resync, probe, (duration, deadline, retry), keys_poll)


def run(
    args: argparse.Namespace, engine_factory: EngineFactory | None = None, stop: threading.Event | None = None
) -> int:
    """Run until SIGTERM or SIGINT (or until ``stop`` is set, when given: then no signal is handled)."""
    try:
        config = settings(args)
    except FlagError as exc:
        return fail(COMMAND, str(exc))
    from webhook.kube.client import api_client
    from webhook.kube.customobjects import ClusterObjects, CustomResource
    from webhook.kube.lease import LeaderElector, LeaseConfig
    from webhook.observe import logs
    from webhook.provisioner.controller import Controller
    from webhook.server.listen import ListenError

    logs.setup(args.verbosity)
    try:
        api = api_client(args.kubeconfig, args.kube_api)
    except Exception as exc:
        return fail(COMMAND, f"cannot load the Kubernetes configuration: {exc}")
    try:
        engine = (engine_factory or _engine)(config.cluster_name, api, config.probe, args.aws_calls_per_second)
    except ImportError as exc:
        return fail(COMMAND, f"the provisioner needs boto3: install irsa-webhook[provisioner] ({exc})")
    except Exception as exc:  # e.g. no AWS region or credentials configured
        return fail(COMMAND, f"cannot set up the AWS side: {exc}")
    identity = f"{os.environ.get('POD_NAME') or socket.gethostname()}_{uuid.uuid4().hex[:8]}"
    elector = None
    if args.leader_elect:
        duration, deadline, retry = config.lease
        lease = LeaseConfig(
            args.leader_election_namespace, args.leader_election_name, identity, duration, deadline, retry
        )
        elector = LeaderElector(api, lease)
    objects = ClusterObjects(api, CustomResource(API_GROUP, API_VERSION, ISSUER_PLURAL), FIELD_MANAGER)
    controller = Controller(
        api,
        objects,
        engine.reconcile,
        engine.delete,
        identity=identity,
        resync=config.resync,
        is_leader=elector.is_leader if elector is not None else lambda: True,
    )

    def ready() -> tuple[bool, str]:
        if not controller.synced():
            return False, f"the first list of {ISSUER_PLURAL} has not completed"
        if elector is not None and not elector.running:
            return False, "leader election is not running"
        return True, ""

    try:
        servers = _serve(args, ready)
    except ListenError as exc:
        return fail(COMMAND, str(exc), Exit.NO)
    if stop is None:
        stop = threading.Event()
        for signum in (signal.SIGTERM, signal.SIGINT):
            signal.signal(signum, lambda *_: stop.set())
    controller.start()
    keywatch = None
    if config.keys_poll > 0:
        from webhook.kube.issuerkeys import read_cluster_keys
        from webhook.provisioner.keywatch import KeyWatch

        probe = config.probe
        keywatch = KeyWatch(lambda: read_cluster_keys(api, probe), controller.reconcile_all, config.keys_poll)
        keywatch.start()
    if elector is not None:
        elector.start(controller.started_leading, controller.stopped_leading)
    fields = {
        "cluster": config.cluster_name,
        "identity": identity,
        "resync_seconds": config.resync,
        "lease": f"{args.leader_election_namespace}/{args.leader_election_name}" if elector else None,
        "probe": "/".join(config.probe) if config.probe else None,
    }
    logging.getLogger("irsa_webhook.provisioner").info("controller running", extra={"fields": fields})
    stop.wait()
    # The worker first, so nothing is written after the Lease is released for a successor.
    if keywatch is not None:
        keywatch.stop()
    controller.stop()
    if elector is not None:
        elector.stop()
    for server in servers:
        server.shutdown()
        server.server_close()
    return Exit.OK


def _serve(args: argparse.Namespace, ready: Callable[[], tuple[bool, str]]) -> list[Any]:
    from webhook.provisioner.probes import ProbeServer, check_route, metrics_route
    from webhook.server.listen import bind_address, listen

    address = bind_address(args.bind_address)
    ports: dict[int, dict[str, Any]] = {}
    if args.health_port:
        routes = ports.setdefault(args.health_port, {})
        routes["/healthz"] = check_route(lambda: (True, ""))
        routes["/readyz"] = check_route(ready)
    if args.metrics_port:
        ports.setdefault(args.metrics_port, {})["/metrics"] = metrics_route
    servers: list[Any] = []
    try:
        for port, routes in ports.items():
            servers.append(ProbeServer(listen(address, port), routes).start())
    except BaseException:
        for server in servers:  # a later port was taken: the earlier ones must not stay open
            server.shutdown()
            server.server_close()
        raise
    return servers


def _engine(cluster_name: str, api: Any, probe: tuple[str, str] | None, calls_per_second: float) -> Any:
    from webhook.aws.session import Boto3Missing
    from webhook.provisioner import assemble
    from webhook.provisioner.metrics import register

    try:
        built = assemble.engine(cluster_name, api, probe, calls_per_second)
    except Boto3Missing as exc:
        raise ImportError(str(exc)) from exc
    register(built.aws.tally)  # irsa_webhook_provisioner_aws_{writes,calls}_total on /metrics
    return built


def _own_service_account() -> str:
    namespace, name = os.environ.get("POD_NAMESPACE", ""), os.environ.get("SERVICE_ACCOUNT_NAME", "")
    return f"{namespace}/{name}" if namespace and name else ""
