"""``irsa-webhook provision plan|apply|delete -f FILE...``: the provisioner without a controller.

The files are the YAML a user would ``kubectl apply`` (several documents per file, ``-`` for
stdin, a folder for every ``*.yaml``/``*.yml``/``*.json`` in it); every document of a kind the
provisioner knows is handled, in the order issuer → provider → role, and other documents are
skipped with a note (a kustomization may mix them with anything). AWS credentials come from
boto3's standard chain; the cluster (for ``keys.source: APIServer``) from ``--kubeconfig``.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml

from webhook.commands import objectfiles, provisionreport
from webhook.commands.common import Exit, fail, input_errors, one_line, say
from webhook.oidc.errors import InputError

COMMAND = "provision"
CLUSTER_NAME_ENV = "IRSA_WEBHOOK_CLUSTER_NAME"
DEFAULT_PROBE = "kube-system/default"

DESCRIPTION = """\
Provision the AWS side of IRSA from the same objects the controller reconciles (IRSAIssuer):
the OIDC discovery document and JWKS on S3 (public through a bucket policy, never ACLs) and the
IAM OIDC provider. Nothing is written without a difference: a second apply makes no write call.

  plan    print the changes; exit 0 in sync, 1 changes pending, 2 error
  apply   make them and print what was done and the resulting conditions;
          exit 0 ready, 1 applied but not ready (the conditions say why), 2 error
  delete  undo what the objects created, as their deletionPolicy says (Retain: nothing)
  convert print irsa-manager and eksctl IRSA objects as ours (provision convert -h)

AWS credentials and endpoints come from boto3's standard chain and variables (AWS_PROFILE,
AWS_DEFAULT_REGION, AWS_ENDPOINT_URL, ...; boto3 reads AWS_DEFAULT_REGION, not AWS_REGION). With
keys.source APIServer the key set is read from the cluster of --kubeconfig (its /openid/v1/jwks)
and the key signing new tokens is found from a token requested for --probe-service-account.
"""

EPILOG = """\
examples:
  irsa-webhook provision plan  -f issuer.yaml --cluster-name prod --kubeconfig ~/.kube/config
  irsa-webhook provision apply -f issuer.yaml --cluster-name prod --kubeconfig ~/.kube/config
  irsa-webhook provision delete -f issuer.yaml --cluster-name prod
"""


def register(sub: argparse._SubParsersAction[Any]) -> None:
    parser = sub.add_parser(
        COMMAND,
        help="plan, apply or delete the AWS side of IRSA from IRSAIssuer objects",
        description=DESCRIPTION,
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    verbs = parser.add_subparsers(dest="verb", metavar="VERB")
    for verb, help_text in (
        ("plan", "print the changes (exit 0 in sync, 1 pending, 2 error)"),
        ("apply", "make the changes"),
        ("delete", "undo what the objects created, as their deletionPolicy says"),
    ):
        p = verbs.add_parser(
            verb,
            help=help_text,
            description=DESCRIPTION,
            epilog=EPILOG,
            formatter_class=argparse.RawDescriptionHelpFormatter,
        )
        p.add_argument(
            "-f",
            "--filename",
            action="append",
            required=True,
            metavar="FILE",
            help="a YAML/JSON file, a folder, or - for stdin (repeatable)",
        )
        p.add_argument(
            "--cluster-name",
            default=os.environ.get(CLUSTER_NAME_ENV, ""),
            help=f"the cluster's name in the owner tags; must match the controller's (env {CLUSTER_NAME_ENV})",
        )
        p.add_argument(
            "--kubeconfig",
            default=os.environ.get("KUBECONFIG", ""),
            help="the cluster to read the keys from (keys.source APIServer); default $KUBECONFIG",
        )
        p.add_argument(
            "--probe-service-account",
            default=DEFAULT_PROBE,
            metavar="NS/NAME",
            help=f"a ServiceAccount to request a token for, to find the signing key (default {DEFAULT_PROBE})",
        )
        p.add_argument("--aws-calls-per-second", type=float, default=10.0, help="bound on AWS calls (default 10)")
        p.add_argument(
            "--annotation-prefix",
            default="eks.amazonaws.com",
            help="the webhook's --annotation-prefix: roles annotate ServiceAccounts with <prefix>/role-arn",
        )
        p.add_argument("-o", "--output", choices=("text", "json"), default="text")
        p.set_defaults(func=input_errors(COMMAND)(_handler(verb)))
    kind = verbs.add_parser(
        "kind-config",
        help="print a kind cluster configuration whose kube-apiserver uses the object's issuer",
        description="Print a kind Cluster configuration whose kube-apiserver signs and verifies with the keys of "
        "--keys-dir (sa-signer.key and sa-signer.pub, as `irsa-webhook keys generate` writes them) and uses the "
        "issuer URL of the IRSAIssuer in -f: the one string that must match everywhere is taken from the object.",
    )
    kind.add_argument("-f", "--filename", action="append", required=True, metavar="FILE")
    kind.add_argument("--keys-dir", required=True, help="host folder with sa-signer.key and sa-signer.pub")
    kind.set_defaults(func=input_errors(COMMAND)(_kind_config))
    # Imported here: the convert verb reads the files with this module's read_documents.
    from webhook.commands import provisionconvert

    provisionconvert.register(verbs)
    parser.set_defaults(func=lambda args: _usage(parser))


def _kind_config(args: argparse.Namespace) -> int:
    from webhook.provisioner.kindconfig import kind_config
    from webhook.provisioner.model import ISSUER_KIND
    from webhook.provisioner.spec import read_issuer

    issuers = [d for d in objectfiles.read_documents(args.filename) if d.obj.get("kind") == ISSUER_KIND]
    if len(issuers) != 1:
        raise InputError(f"kind-config needs exactly one IRSAIssuer in the files, found {len(issuers)}")
    keys_dir = Path(args.keys_dir).resolve()  # kind needs an absolute host path
    for name in ("sa-signer.key", "sa-signer.pub"):
        if not (keys_dir / name).is_file():
            raise InputError(
                f"{keys_dir / name} does not exist: run `irsa-webhook keys generate --out {args.keys_dir}`"
            )
    spec = read_issuer(issuers[0].obj, "kind", read_file=objectfiles.file_reader(issuers[0].base))
    config = kind_config(spec.issuer_url, str(keys_dir))
    config["kubeadmConfigPatches"] = [yaml.safe_dump(p, sort_keys=False) for p in config["kubeadmConfigPatches"]]
    print(yaml.safe_dump(config, sort_keys=False), end="")
    return Exit.OK


def _usage(parser: argparse.ArgumentParser) -> int:
    parser.print_help(sys.stderr)
    return Exit.USAGE


def _handler(verb: str) -> Callable[[argparse.Namespace], int]:
    def handle(args: argparse.Namespace) -> int:
        return run(verb, args)

    return handle


# --- running -----------------------------------------------------------------------------------


# The order objects are made in (deletion: the reverse): a role needs its issuer's provider.
KIND_ORDER = ("IRSAIssuer", "ClusterIRSARole", "IRSARole")


def run(verb: str, args: argparse.Namespace) -> int:
    from webhook.provisioner.model import API_GROUP

    if not args.cluster_name:
        raise InputError(f"--cluster-name is required (or {CLUSTER_NAME_ENV}): it names this cluster in the owner tags")
    documents = objectfiles.read_documents(args.filename)
    ours = [d for d in documents if str(d.obj.get("apiVersion", "")).startswith(f"{API_GROUP}/")]
    for skipped in (d for d in documents if d not in ours):
        say(COMMAND, f"skipping {skipped.source}: {skipped.obj.get('kind')!s} is not a provisioner object")
    unknown = [d for d in ours if d.obj.get("kind") not in KIND_ORDER]
    if unknown:
        raise InputError(
            f"{unknown[0].source}: unknown kind {unknown[0].obj.get('kind')!r} "
            f"(expected one of {', '.join(KIND_ORDER)})"
        )
    if not ours:
        raise InputError(f"no {', '.join(KIND_ORDER)} object in the given files")
    ours.sort(key=lambda d: KIND_ORDER.index(str(d.obj["kind"])), reverse=verb == "delete")
    api = _api(args)
    engine = _engine(args, api)
    issued: dict[str, dict[str, Any]] = {}  # the issuers of this run, with the status this run gave them
    roles = None
    reports = []
    code: int = Exit.OK
    for document in ours:
        kind = document.obj["kind"]
        if kind == "IRSAIssuer":
            run_engine = dataclasses.replace(engine, read_file=objectfiles.file_reader(document.base))
            if verb == "delete":
                result = run_engine.run_deletion(document.obj, apply=True)
            else:
                result = run_engine.run(document.obj, apply=verb == "apply")
                name = str((document.obj.get("metadata") or {}).get("name", ""))
                issued[name] = {**document.obj, "status": result.outcome.status or {}}
        else:
            if roles is None:
                roles = _role_engine(args, engine, api, issued)
            result = (
                roles.run_deletion(document.obj, apply=True)
                if verb == "delete"
                else roles.run(document.obj, apply=verb == "apply")
            )
        reports.append(provisionreport.report(verb, kind, result))
        code = max(code, _exit_code(verb, result))
    if args.output == "json":
        print(json.dumps(reports, indent=2))
    else:
        for report in reports:
            provisionreport.print_text(verb, report)
    return code


def _api(args: argparse.Namespace) -> Any:
    from webhook.kube.client import api_client

    try:
        return api_client(kubeconfig=args.kubeconfig) if args.kubeconfig else None
    except Exception as exc:  # the kubernetes loader raises several types for one "unusable file"
        raise InputError(f"cannot load the kubeconfig {args.kubeconfig}: {one_line(exc)}") from exc


def _role_engine(args: argparse.Namespace, engine: Any, api: Any, issued: dict[str, dict[str, Any]]) -> Any:
    """The roles' engine: the same AWS clients (one rate limit), the issuers of this run first, then
    the cluster's IRSAIssuer objects (a role applied on its own, for an issuer the controller keeps)."""
    from webhook.kube import rawapi
    from webhook.provisioner.roleengine import RoleEngine

    if api is None:
        raise InputError("IRSARole and ClusterIRSARole need --kubeconfig: their ServiceAccounts are in the cluster")

    def issuer(name: str) -> dict[str, Any] | None:
        if name in issued:
            return issued[name]
        try:
            found: dict[str, Any] = rawapi.call(api, "GET", f"/apis/irsa-webhook.io/v1alpha1/irsaissuers/{name}")
        except Exception:  # not found, no CRD, no access: the role says it waits for its issuer
            return None
        return found

    return RoleEngine(
        cluster_name=args.cluster_name,
        aws=engine.aws,
        kube=api,
        issuers=issuer,
        annotation_key=f"{args.annotation_prefix}/role-arn",
    )


def _engine(args: argparse.Namespace, api: Any) -> Any:
    from webhook.aws.session import Boto3Missing
    from webhook.provisioner import assemble

    try:
        return assemble.engine(args.cluster_name, api, _probe(args.probe_service_account), args.aws_calls_per_second)
    except Boto3Missing as exc:
        raise InputError(str(exc)) from exc


def _probe(value: str) -> tuple[str, str]:
    namespace, sep, name = value.partition("/")
    if not sep or not namespace or not name:
        raise InputError(f"--probe-service-account {value!r} must be NAMESPACE/NAME")
    return namespace, name


def _exit_code(verb: str, result: Any) -> int:
    """2 when the object could not be handled (invalid, AWS refused, blocked); else as the verb says."""
    outcome, plan = result.outcome, result.plan
    if plan is None or plan.blocked is not None or (verb == "delete" and not outcome.done):
        return Exit.USAGE
    if verb == "plan":
        return Exit.OK if plan.in_sync else Exit.NO
    if verb == "apply":
        return Exit.OK if outcome.retry == "none" else Exit.NO
    return Exit.OK


__all__ = ["fail", "register", "run"]
