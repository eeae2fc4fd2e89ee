"""``irsa-webhook mutate``: what the webhook would do to a pod, offline, with no cluster."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

import orjson
import yaml

from webhook.admission import pod_request
from webhook.cache import IdentityStore, load_manifests
from webhook.config import MUTATION_FLAGS, mutation_settings
from webhook.decision import decide
from webhook.flags import FlagError, add_flags, resolve


def register(sub: argparse._SubParsersAction[Any]) -> None:
    parser = sub.add_parser(
        "mutate",
        help="print the mutated pod (or the JSON Patch) for a pod and its ServiceAccount, offline",
        description="Apply the webhook's mutation to a pod manifest using ServiceAccount manifests, with no "
        "cluster. Prints the mutated pod (or with --patch the JSON Patch) on stdout and each admission "
        "warning on stderr as a line starting with 'warning: '. Exit 0 on success, 1 when --strict denies "
        "the pod, 2 on unreadable input.",
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
    parser.add_argument("--patch", action="store_true", help="print the JSON Patch instead of the mutated pod")
    parser.add_argument("-o", "--output", choices=("yaml", "json"), default="yaml", help="output format (default yaml)")
    add_flags(parser, MUTATION_FLAGS, "mutation")
    parser.set_defaults(func=run, flags=MUTATION_FLAGS)


def _load_pod(path: str) -> dict[str, Any]:
    text = sys.stdin.read() if path == "-" else Path(path).read_text(encoding="utf-8")
    docs = [d for d in yaml.safe_load_all(text) if d is not None]
    if len(docs) != 1 or not isinstance(docs[0], dict):
        raise ValueError(f"{path}: expected exactly one Pod object, found {len(docs)} document(s)")
    pod = docs[0]
    if pod.get("kind", "Pod") != "Pod":
        raise ValueError(f"{path}: expected kind Pod, found {pod.get('kind')!r}")
    return pod


def run(args: argparse.Namespace) -> int:
    notes: list[str] = []
    try:
        settings = mutation_settings(resolve(args, MUTATION_FLAGS), notes)
        pod = _load_pod(args.pod)
        meta: dict[str, Any] = pod["metadata"] if isinstance(pod.get("metadata"), dict) else {}
        namespace = str(meta.get("namespace") or args.namespace or "default")
        store = IdentityStore()
        store.replace_all(load_manifests(args.service_account, settings, default_namespace=namespace))
    except (FlagError, OSError, ValueError, yaml.YAMLError) as exc:
        print(f"irsa-webhook mutate: {_one_line(exc)}", file=sys.stderr)
        return 2
    for note in notes:  # a flag corrected as upstream corrects it (--token-expiration below 600)
        print(f"irsa-webhook mutate: {note}", file=sys.stderr)
    # Offline, the request is built as kube-apiserver would send it, so the service account and pod
    # name are resolved exactly as the server resolves them.
    request = pod_request({"uid": "offline", "namespace": namespace, "object": pod, "dryRun": True})
    if isinstance(request, str):  # not reached: _load_pod only returns a dict
        print(f"irsa-webhook mutate: {request}", file=sys.stderr)
        return 2
    result = decide(request, store.get(namespace, request.service_account), settings)
    for warning in result.warnings:
        print(f"warning: {warning.message}", file=sys.stderr)
    if not result.allowed:
        print(f"denied: {result.message}", file=sys.stderr)
        return 1
    out: Any = result.patch if args.patch else result.pod
    if args.output == "json":
        sys.stdout.write(orjson.dumps(out, option=orjson.OPT_INDENT_2).decode() + "\n")
    else:
        sys.stdout.write(yaml.safe_dump(out, sort_keys=False, default_flow_style=False))
    return 0


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split())
