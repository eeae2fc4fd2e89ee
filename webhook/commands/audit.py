"""``irsa-webhook audit``: running and pending pods that lack the credentials the webhook would give them
now, or run with a role their ServiceAccount no longer names; ``--evict`` evicts the controlled ones.

It takes every one of ``serve``'s flags (same names, same environment variables), so that it can be
given exactly the webhook's own arguments and judge pods as the webhook would admit them; those that
only concern serving (ports, certificates, shutdown) are accepted and have no effect. Which pods the
webhook is called for is read from the cluster: the MutatingWebhookConfiguration's selectors. The
judgement itself is :mod:`webhook.audit`.
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
import os
import re
import sys
from typing import TYPE_CHECKING, Any

from webhook.audit import DEFAULT_PAGE_SIZE, report
from webhook.audit.findings import DEFAULT_MAX_EVICTIONS, RECREATING_KINDS, Scope
from webhook.audit.selection import DEFAULT_WEBHOOK_CONFIGURATION
from webhook.aws import imds
from webhook.commands import serve
from webhook.commands.common import fail, say
from webhook.core.text import printable
from webhook.options.config import ServeConfig, serve_config
from webhook.options.flags import Flag, FlagError, add_flags, resolve
from webhook.options.tables import MUTATION_FLAGS, READ_ONCE_PODIDENTITY_HELP, SERVER_FLAGS, server_flags
from webhook.sources.podidentity import IdentitiesFileError, PodIdentityFile, read_once

if TYPE_CHECKING:
    from webhook.audit.scan import Plan

COMMAND = "audit"
MAX_PAGE_SIZE = 10_000
# A namespace name: an RFC 1123 label, as kube-apiserver requires.
_KIND_RE = re.compile(r"[A-Z][A-Za-z0-9]{0,62}")
_NAMESPACE_RE = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?")
# An object name: an RFC 1123 subdomain.
_OBJECT_NAME_RE = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*")

# Every serve flag, under its own name and environment variable: the chart and the kustomize component
# hand the audit the webhook's own argument list, so no flag can be given to one and not the other.
# The help of those that mean "follow" in serve says "read".
_READ_ONCE = {
    "namespace": "the webhook's own namespace: --watch-config-map reads its ConfigMap from it",
    "watch-config-map": "as serve: also take roles from the ConfigMap pod-identity-webhook in --namespace (read once)",
    "watch-container-credentials-config": READ_ONCE_PODIDENTITY_HELP,
}
SOURCE_FLAGS = server_flags(tuple(flag.name for flag in SERVER_FLAGS), _READ_ONCE)
WEBHOOK_CONFIGURATION_ENV = "IRSA_WEBHOOK_CONFIGURATION"
FLAGS: tuple[Flag, ...] = (*SOURCE_FLAGS, *MUTATION_FLAGS)

DESCRIPTION = """\
Report every Pending or Running pod that should have AWS credentials but lacks
them (mutating it now would add the token volume, or a credential variable to
some container), and every pod whose injected AWS_ROLE_ARN differs from what
its ServiceAccount (or the ConfigMap) says now, including a ServiceAccount that
lost its role or is gone. Only pods the webhook is called for are audited: the
MutatingWebhookConfiguration (--webhook-configuration) is read from the
cluster and its namespace and object selectors evaluated against the labels of
each namespace and pod. Drift counts only containers the webhook injected, as
its admission marker (annotation irsa-webhook.io/injected) records.

Reads through the kubeconfig (else the in-cluster config): the webhook
configuration, the namespaces, the ServiceAccounts, the pods (paginated, judged
page by page), then each finding again. Nothing is written unless --evict.
Give it the webhook's own arguments: every serve flag is accepted, those that
only concern serving have no effect.
Output: a table, or -o json; a summary line on stderr."""

EPILOG = """\
exit codes:
  0  no pod found
  1  pods found (listed on stdout), evicted or not
  2  error: bad flags, an unreadable file, the API server unreachable or
     refusing a request (forbidden), or an eviction refused for another
     reason than a disruption budget (the report is still printed then)

--evict evicts a found pod only when its replacement would be created and come
back with other credentials: its ServiceAccount exists, --strict would admit
it, the webhook is surely called for it, and the credentials the webhook would
give it now differ from the pod's. And only when its controller (the
ownerReferences entry with controller: true) recreates it as it was: a
ReplicaSet, StatefulSet or DaemonSet, plus the kinds of --evict-owner-kind. It uses the Eviction API, so
PodDisruptionBudgets are honoured, and the controller recreates each pod
through the webhook. Bare pods, Jobs (an eviction counts against backoffLimit)
and workflow pods (Argo, Tekton: nothing recreates them) are never evicted.
An eviction a budget refuses is reported, not retried: the next audit tries
again."""


def register(sub: argparse._SubParsersAction[Any]) -> None:
    parser = sub.add_parser(
        "audit",
        help="report pods lacking credentials or running with a changed role (exit 1); --evict them",
        description=DESCRIPTION,
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    group = parser.add_argument_group("audit")
    group.add_argument(
        "-o", "--output", choices=("table", "json"), default="table", help="output format (default table)"
    )
    group.add_argument(
        "--pods-namespace",
        action="append",
        default=[],
        metavar="NS",
        help="audit only this namespace (repeatable; default: every namespace)",
    )
    group.add_argument(
        "--exclude-namespace",
        action="append",
        default=[],
        metavar="NS",
        help="do not audit this namespace (repeatable), e.g. kube-system with the fail-closed component",
    )
    group.add_argument(
        "--webhook-configuration",
        default=os.environ.get(WEBHOOK_CONFIGURATION_ENV) or DEFAULT_WEBHOOK_CONFIGURATION,
        metavar="NAME",
        help="the webhook's MutatingWebhookConfiguration, whose selectors say which pods it is called for "
        f"(default {DEFAULT_WEBHOOK_CONFIGURATION}; env {WEBHOOK_CONFIGURATION_ENV})",
    )
    group.add_argument(
        "--page-size",
        type=int,
        default=DEFAULT_PAGE_SIZE,
        metavar="N",
        help=f"objects per list request (default {DEFAULT_PAGE_SIZE}): bounds the memory of one page",
    )
    group.add_argument(
        "--evict",
        action="store_true",
        help="evict the found pods that a ReplicaSet, StatefulSet or DaemonSet recreates (Eviction API); "
        "without it nothing is written",
    )
    group.add_argument(
        "--evict-owner-kind",
        action="append",
        default=[],
        metavar="KIND",
        help="with --evict: also evict pods whose controller is of this kind (repeatable; ReplicaSet, "
        "StatefulSet and DaemonSet always are; a Job, a workflow or a bare pod never is by default)",
    )
    group.add_argument(
        "--max-evictions",
        type=int,
        default=DEFAULT_MAX_EVICTIONS,
        metavar="N",
        help=f"with --evict: at most N Eviction requests per run (default {DEFAULT_MAX_EVICTIONS}); the "
        "rest are reported as not evicted, and the next run goes on",
    )
    group.add_argument(
        "--dry-run",
        action="store_true",
        help="with --evict: send the evictions as server-side dry runs (checked, nothing deleted)",
    )
    add_flags(parser, SOURCE_FLAGS, "serve's flags (give the webhook's own; serving-only ones have no effect)")
    add_flags(parser, MUTATION_FLAGS, "mutation (serve's flags: give the webhook's values)")
    parser.set_defaults(func=run, flags=FLAGS)


def _config(args: argparse.Namespace) -> ServeConfig:
    """serve's configuration for these flags (every other serve flag at its default). FlagError."""
    values = {flag.dest: flag.default for flag in serve.FLAGS}
    values.update(resolve(args, FLAGS))
    return serve_config(values)


def _namespaces(values: list[str], flag: str) -> tuple[str, ...]:
    for value in values:
        if len(value) > 63 or not _NAMESPACE_RE.fullmatch(value):
            raise FlagError(f"{flag} must be a namespace name (a-z, 0-9, '-'), got {value!r}")
    return tuple(dict.fromkeys(values))


def _plan(args: argparse.Namespace, config: ServeConfig) -> Plan:
    from webhook.audit.scan import Plan

    if not 1 <= args.page_size <= MAX_PAGE_SIZE:
        raise FlagError(f"--page-size must be between 1 and {MAX_PAGE_SIZE}, got {args.page_size}")
    if args.dry_run and not args.evict:
        raise FlagError("--dry-run only applies to --evict (without it nothing is written anyway)")
    if args.max_evictions < 1:
        raise FlagError(
            f"--max-evictions must be at least 1, got {args.max_evictions} (without --evict nothing is evicted)"
        )
    if args.evict_owner_kind and not args.evict:
        raise FlagError("--evict-owner-kind only applies to --evict")
    for kind in args.evict_owner_kind:
        if not _KIND_RE.fullmatch(kind):
            raise FlagError(
                f"--evict-owner-kind must be a Kubernetes kind (CamelCase, as in ownerReferences), got {kind!r}"
            )
    if config.watch_config_map and not config.namespace:
        raise FlagError(serve.NO_CONFIG_MAP_NAMESPACE)
    if not _OBJECT_NAME_RE.fullmatch(args.webhook_configuration) or len(args.webhook_configuration) > 253:
        raise FlagError(f"--webhook-configuration must be an object name, got {args.webhook_configuration!r}")
    scope = Scope(excluded_namespaces=frozenset(_namespaces(args.exclude_namespace, "--exclude-namespace")))
    return Plan(
        settings=config.settings,
        scope=scope,
        webhook_configuration=args.webhook_configuration,
        namespaces=_namespaces(args.pods_namespace, "--pods-namespace"),
        page_size=args.page_size,
        config_map_namespace=config.namespace if config.watch_config_map else "",
        evict=args.evict,
        dry_run=args.dry_run,
        recreating_kinds=RECREATING_KINDS | frozenset(args.evict_owner_kind),
        max_evictions=args.max_evictions,
    )


def _pod_identity(config: ServeConfig) -> PodIdentityFile | None:
    """--watch-container-credentials-config, read once (OSError or IdentitiesFileError)."""
    if not config.container_credentials_config:
        return None
    return read_once(config.container_credentials_config, config.settings)


class _PrintableFormatter(logging.Formatter):
    """The sources' lines quote what tenants wrote (keys, names): their control characters escaped."""

    def format(self, record: logging.LogRecord) -> str:
        return printable(super().format(record))


def run(args: argparse.Namespace) -> int:
    # The identity sources log what they skip (a bad ConfigMap key, an unparseable ServiceAccount):
    # one plain line each on stderr, while the report goes to stdout.
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(_PrintableFormatter(f"irsa-webhook {COMMAND}: warning: %(message)s"))
    handler.setLevel(logging.WARNING)
    logger = logging.getLogger("irsa_webhook")
    logger.addHandler(handler)
    try:
        return _run(args)
    finally:
        logger.removeHandler(handler)


def _run(args: argparse.Namespace) -> int:  # noqa: PLR0911 - one exit per way the audit can end
    # Here, not at import: every other command of the CLI would pay for the kubernetes client.
    from webhook.audit.scan import AuditError, Auditor
    from webhook.kube.client import api_client as make_api_client

    try:
        config = _config(args)
        plan = _plan(args, config)
    except FlagError as exc:
        return fail(COMMAND, str(exc))
    for note in config.notes:
        say(COMMAND, note)
    if config.compose_from_imds:
        try:
            config, _instance = serve.compose_from_imds(config)
        except imds.IMDSError as exc:
            return fail(
                COMMAND, f"--compose-role-arn needs this instance's account: {exc} (off EC2, give --aws-account-id)"
            )
        plan = dataclasses.replace(plan, settings=config.settings)
    try:
        pod_identity = _pod_identity(config)
    except OSError as exc:
        path = config.container_credentials_config
        return fail(COMMAND, f"cannot read --watch-container-credentials-config {path}: {exc.strerror or exc}")
    except IdentitiesFileError as exc:
        return fail(COMMAND, f"--watch-container-credentials-config {config.container_credentials_config}: {exc}")
    try:
        api_client = make_api_client(config.kubeconfig, config.kube_api)
    except Exception as exc:  # the kubeconfig loaders raise many kinds for a missing or broken file
        return fail(COMMAND, f"cannot configure cluster access: {' '.join(str(exc).split())}")
    try:
        result = Auditor(api_client, plan, pod_identity=pod_identity).run()
    except AuditError as exc:
        return fail(COMMAND, str(exc))
    finally:
        api_client.close()  # type: ignore[no-untyped-call]
    if args.output == "json":
        sys.stdout.write(report.document(result))
    else:
        sys.stdout.write(report.table(result.findings))
    say(COMMAND, report.summary_line(result))
    return result.exit_code  # 0, 1 or 2, as the Exit table says (webhook.commands.common)
