"""``irsa-webhook mutate``: what the webhook would do to a pod, offline, with no cluster."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

import orjson
import yaml

from webhook.commands.common import Exit, fail, say
from webhook.core.decide import decide
from webhook.core.pod import read_pod
from webhook.core.settings import Settings
from webhook.core.text import printable
from webhook.options.config import compose_settings, mutation_settings
from webhook.options.flags import Flag, FlagError, add_flags, resolve
from webhook.options.tables import (
    COMPOSE_FLAG_NAMES,
    MUTATION_FLAGS,
    POD_IDENTITY_FLAG_NAMES,
    READ_ONCE_PODIDENTITY_HELP,
    server_flags,
)
from webhook.sources import Source
from webhook.sources.chain import compose
from webhook.sources.configmap import ConfigMapSource
from webhook.sources.manifests import load_manifests
from webhook.sources.podidentity import IdentitiesFileError, read_once

# serve's identity-source flags that make sense without a cluster: what a pod would get in those modes.
SOURCE_FLAGS = server_flags(
    (*POD_IDENTITY_FLAG_NAMES, *COMPOSE_FLAG_NAMES),
    {
        "watch-container-credentials-config": READ_ONCE_PODIDENTITY_HELP,
        "compose-role-arn": "as serve: a role-arn without 'arn:' becomes arn:<partition>:iam::<account>:role/<it>; "
        "offline there is no instance metadata, so --aws-account-id is required with it",
    },
)
FLAGS: tuple[Flag, ...] = (*SOURCE_FLAGS, *MUTATION_FLAGS)


def register(sub: argparse._SubParsersAction[Any]) -> None:
    parser = sub.add_parser(
        "mutate",
        help="print the mutated pod (or the JSON Patch) for a pod and its ServiceAccount, offline",
        description="Apply the webhook's mutation to a pod manifest using ServiceAccount manifests, with no "
        "cluster. Prints the mutated pod (or with --patch the JSON Patch) on stdout and each admission "
        "warning on stderr as a line starting with 'warning: '. The identity comes from the same chain as "
        "serve's: the EKS Pod Identity file (--watch-container-credentials-config), the ServiceAccount's "
        "annotations, then the ConfigMap (--config-map). Exit 0 on success, 1 when --strict denies the "
        "pod, 2 on unreadable input.",
    )
    parser.add_argument("--pod", required=True, metavar="FILE", help="the pod manifest (YAML or JSON; - for stdin)")
    parser.add_argument(
        "--service-account",
        action="append",
        default=[],
        metavar="FILE",
        help="ServiceAccount manifests (repeatable; a file may hold several YAML documents)",
    )
    parser.add_argument(
        "--namespace", default=None, help="namespace of a pod without metadata.namespace (default: default)"
    )
    parser.add_argument(
        "--config-map",
        metavar="FILE",
        default=None,
        help="the ConfigMap pod-identity-webhook (kOps' role mapping, key 'config') as a manifest: "
        "what serve --watch-config-map reads from the cluster",
    )
    parser.add_argument("--patch", action="store_true", help="print the JSON Patch instead of the mutated pod")
    parser.add_argument("-o", "--output", choices=("yaml", "json"), default="yaml", help="output format (default yaml)")
    add_flags(parser, MUTATION_FLAGS, "mutation")
    add_flags(parser, SOURCE_FLAGS, "identity sources (serve's flags)")
    parser.set_defaults(func=run, flags=FLAGS)


def _load_pod(path: str) -> dict[str, Any]:
    text = sys.stdin.read() if path == "-" else Path(path).read_text(encoding="utf-8")
    docs = [d for d in yaml.safe_load_all(text) if d is not None]
    if len(docs) != 1 or not isinstance(docs[0], dict):
        raise ValueError(f"{path}: expected exactly one Pod object, found {len(docs)} document(s)")
    pod = docs[0]
    if pod.get("kind", "Pod") != "Pod":
        raise ValueError(f"{path}: expected kind Pod, found {pod.get('kind')!r}")
    return pod


def _load_config_map(path: str) -> dict[str, Any]:
    docs = [d for d in yaml.safe_load_all(Path(path).read_text(encoding="utf-8")) if d is not None]
    if len(docs) != 1 or not isinstance(docs[0], dict) or docs[0].get("kind", "ConfigMap") != "ConfigMap":
        raise ValueError(f"{path}: expected exactly one ConfigMap object")
    return docs[0]


def _sources(args: argparse.Namespace, values: dict[str, Any], settings: Settings) -> dict[str, Source | None]:
    """The optional sources of ``serve``'s chain, from files, each read once: the Pod Identity file and
    the ConfigMap (the keyword arguments of :func:`~webhook.sources.chain.compose`)."""
    sources: dict[str, Source | None] = {"pod_identity": None, "config_map": None}
    if values["watch_container_credentials_config"]:
        path = values["watch_container_credentials_config"]
        try:
            sources["pod_identity"] = read_once(path, settings)
        except IdentitiesFileError as exc:
            raise ValueError(f"--watch-container-credentials-config {path}: {exc}") from None
    if args.config_map is not None:
        config_map = ConfigMapSource(settings)
        config_map.replace(_load_config_map(args.config_map))
        sources["config_map"] = config_map
    return sources


def run(args: argparse.Namespace) -> int:
    notes: list[str] = []
    try:
        values = resolve(args, FLAGS)
        settings = mutation_settings(values, notes)
        settings, needs_imds = compose_settings(values, settings, notes)
        if needs_imds:
            raise FlagError("--compose-role-arn offline needs --aws-account-id (there is no instance metadata)")
        pod = _load_pod(args.pod)
        meta: dict[str, Any] = pod["metadata"] if isinstance(pod.get("metadata"), dict) else {}
        namespace = str(meta.get("namespace") or args.namespace or "default")
        accounts = {
            (identity.namespace, identity.name): identity
            for identity in load_manifests(args.service_account, settings, default_namespace=namespace)
        }
        sources = _sources(args, values, settings)
    except (FlagError, OSError, ValueError, yaml.YAMLError) as exc:
        return fail("mutate", str(exc))
    for note in notes:  # a flag corrected as upstream corrects it (--token-expiration below 600)
        say("mutate", note)
    # The pod is read by the same code as at admission, so its service account is resolved the same way.
    view = read_pod(pod, settings, namespace)
    if isinstance(view, str):  # a field of the wrong type (metadata.name a list, ...)
        return fail("mutate", view)
    account = accounts.get((namespace, view.service_account))
    result = decide(view, compose(namespace, view.service_account, account, **sources), settings)
    for warning in result.warnings:
        print(f"warning: {printable(warning.message)}", file=sys.stderr)
    if not result.allowed:
        print(f"denied: {printable(result.message or '')}", file=sys.stderr)
        return Exit.NO
    out: Any = result.patch if args.patch else result.pod
    if args.output == "json":
        sys.stdout.write(orjson.dumps(out, option=orjson.OPT_INDENT_2).decode() + "\n")
    else:
        sys.stdout.write(yaml.safe_dump(out, sort_keys=False, default_flow_style=False))
    return Exit.OK
