"""``irsa-webhook controller``: reconcile IRSAIssuer, IRSARole and ClusterIRSARole objects
continuously, in the cluster.

The engines (the AWS side) are the ones ``provision`` uses; this command adds the Kubernetes side: a
controller per kind (its watch, its queue, its worker), one Lease for all of them, the probes and the
metrics (:mod:`webhook.provisioner.manager`). Only the standard library and this package's constants
are imported at the top: the other commands must not pay for the kubernetes client or boto3.
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
import os
import signal
import socket
import threading
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from webhook.commands.common import Exit, fail
from webhook.commands.controllerflags import KINDS, add_role_flags, role_settings
from webhook.options.flags import FlagError, parse_duration
from webhook.provisioner.model import ISSUER_KIND
from webhook.provisioner.rolemodel import Guardrails

COMMAND = "controller"
DEFAULT_NAMESPACE = "irsa-webhook"
FIELD_MANAGER = "irsa-webhook-provisioner"
# The issuer engine: Engine(cluster_name, api_client, probe, calls_per_second) with .reconcile and
# .delete; it holds the AWS clients (and their rate limit) the role engines share.
EngineFactory = Callable[[str, Any, "tuple[str, str] | None", float], Any]

DESCRIPTION = """\
Reconcile IRSAIssuer, IRSARole and ClusterIRSARole objects (irsa-webhook.io/v1alpha1): publish an
issuer's discovery document and JWKS and keep its IAM OIDC provider in step; keep each role, its
trust policy and policies, and annotate its ServiceAccounts; report conditions and Events. One
replica writes at a time (one coordination.k8s.io Lease for every kind); every object is checked
again every --resync. A kind whose CRD is not installed is logged once and waited for: the others
run, and /readyz does not wait for it. The guardrails bind namespaced IRSARoles (the tenants' kind):
a violating object gets a terminal condition and no AWS call. AWS credentials come from boto3's
standard chain (IRSA in the cluster)."""


@dataclass(frozen=True)
class RoleWiring:
    """What a role engine is built from (one per role kind run)."""

    kind: str  # IRSARole or ClusterIRSARole
    cluster_name: str
    api: Any  # the kubernetes ApiClient: ServiceAccounts are read and written through it
    issuer_engine: Any  # its AWS clients are shared: one rate limit (and one tally) for every kind
    issuers: Callable[[str], Any]  # an IRSAIssuer by name, with its status, as the controller holds it
    annotation_key: str  # <--annotation-prefix>/role-arn
    guardrails: Guardrails


RoleEngineFactory = Callable[[RoleWiring], Any]


def register(sub: argparse._SubParsersAction[Any]) -> None:
    parser = sub.add_parser(
        COMMAND,
        help="reconcile IRSAIssuer, IRSARole and ClusterIRSARole objects continuously (leader-elected; "
        "/healthz, /readyz, /metrics)",
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
        help="read kube-apiserver's keys this often and reconcile every issuer when they change, so a "
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
    parser.add_argument("--aws-calls-per-second", type=float, default=10.0, metavar="N", help="for every kind together")
    parser.add_argument(
        "--probe-service-account",
        default=_own_service_account(),
        metavar="NS/NAME",
        help="a token is requested for it to learn the signing key (default: $POD_NAMESPACE/$SERVICE_ACCOUNT_NAME)",
    )
    parser.add_argument("-v", "--v", dest="verbosity", type=int, default=0, help="4 and above: debug")
    add_role_flags(parser)
    parser.set_defaults(func=run)


@dataclass(frozen=True)
class Settings:
    cluster_name: str
    resync: float
    probe: tuple[str, str] | None
    lease: tuple[float, float, float]  # duration, renew deadline, retry period
    keys_poll: float = 0.0  # 0: off
    kinds: tuple[str, ...] = KINDS
    annotation_key: str = "eks.amazonaws.com/role-arn"
    guardrails: Guardrails = field(default_factory=Guardrails)


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
    kinds, annotation_key, guardrails = role_settings(args)
    return Settings(
        args.cluster_name,
        resync,
        probe,
        (duration, deadline, retry),
        keys_poll,
        kinds=kinds,
        annotation_key=annotation_key,
        guardrails=guardrails,
    )


def run(
    args: argparse.Namespace,
    engine_factory: EngineFactory | None = None,
    stop: threading.Event | None = None,
    role_engine_factory: RoleEngineFactory | None = None,
) -> int:
    """Run until SIGTERM or SIGINT (or until ``stop`` is set, when given: then no signal is handled)."""
    try:
        config = settings(args)
    except FlagError as exc:
        return fail(COMMAND, str(exc))
    from webhook.kube.client import api_client
    from webhook.kube.lease import LeaderElector, LeaseConfig
    from webhook.observe import logs
    from webhook.provisioner.manager import Manager
    from webhook.server.listen import ListenError

    logs.setup(args.verbosity)
    try:
        api = api_client(args.kubeconfig, args.kube_api)
    except Exception as exc:
        return fail(COMMAND, f"cannot load the Kubernetes configuration: {exc}")
    identity = f"{os.environ.get('POD_NAME') or socket.gethostname()}_{uuid.uuid4().hex[:8]}"
    elector = None
    if args.leader_elect:
        duration, deadline, retry = config.lease
        lease = LeaseConfig(
            args.leader_election_namespace, args.leader_election_name, identity, duration, deadline, retry
        )
        elector = LeaderElector(api, lease)
    manager = Manager(
        api,
        FIELD_MANAGER,
        identity=identity,
        resync=config.resync,
        is_leader=elector.is_leader if elector is not None else lambda: True,
    )
    try:
        # The issuer engine holds the AWS side every kind shares: built whatever --kinds says.
        issuer_engine = (engine_factory or _engine)(config.cluster_name, api, config.probe, args.aws_calls_per_second)
        if ISSUER_KIND in config.kinds:
            manager.run(ISSUER_KIND, issuer_engine)
        for kind in config.kinds:
            if kind != ISSUER_KIND:
                wiring = RoleWiring(
                    kind,
                    config.cluster_name,
                    api,
                    issuer_engine,
                    manager.issuer,
                    config.annotation_key,
                    config.guardrails,
                )
                manager.run(kind, (role_engine_factory or _role_engine)(wiring))
    except ImportError as exc:
        return fail(COMMAND, f"the provisioner needs boto3: install irsa-webhook[provisioner] ({exc})")
    except Exception as exc:  # e.g. no AWS region or credentials configured
        return fail(COMMAND, f"cannot set up the AWS side: {exc}")

    def ready() -> tuple[bool, str]:
        synced, why = manager.ready()
        if not synced:
            return False, why
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
    manager.start()
    keywatch = None
    if config.keys_poll > 0 and ISSUER_KIND in config.kinds:
        from webhook.kube.issuerkeys import read_cluster_keys
        from webhook.provisioner.keywatch import KeyWatch

        probe = config.probe
        keywatch = KeyWatch(lambda: read_cluster_keys(api, probe), manager.reconcile_issuers, config.keys_poll)
        keywatch.start()
    if elector is not None:
        elector.start(manager.started_leading, manager.stopped_leading)
    fields = {
        "cluster": config.cluster_name,
        "identity": identity,
        "kinds": list(config.kinds),
        "resync_seconds": config.resync,
        "lease": f"{args.leader_election_namespace}/{args.leader_election_name}" if elector else None,
        "probe": "/".join(config.probe) if config.probe else None,
        "annotation": config.annotation_key,
        "guardrails": dataclasses.asdict(config.guardrails),
    }
    logging.getLogger("irsa_webhook.provisioner").info("controller running", extra={"fields": fields})
    stop.wait()
    # The workers first, so nothing is written after the Lease is released for a successor.
    if keywatch is not None:
        keywatch.stop()
    manager.stop()
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


def _role_engine(wiring: RoleWiring) -> Any:
    from webhook.provisioner.roleengine import RoleEngine

    return RoleEngine(
        cluster_name=wiring.cluster_name,
        aws=wiring.issuer_engine.aws,
        kube=wiring.api,
        issuers=wiring.issuers,
        annotation_key=wiring.annotation_key,
        guardrails=wiring.guardrails,
    )


def _own_service_account() -> str:
    namespace, name = os.environ.get("POD_NAMESPACE", ""), os.environ.get("SERVICE_ACCOUNT_NAME", "")
    return f"{namespace}/{name}" if namespace and name else ""
