"""``irsa-webhook provision convert -f FILE...``: other tools' IRSA objects printed as ours.

Reads the files as ``provision plan`` does (several documents per file, ``-``, folders, List objects),
converts every irsa-manager ``IRSA``/``IRSASetup`` and eksctl ``ClusterConfig`` in them
(:mod:`webhook.provisioner.convert`), and prints the result as YAML on stdout, to be reviewed, planned
and applied. Nothing is read from or written to AWS or the cluster.

Whatever does not carry over is a warning on stderr naming the source object and field; the exit
code says whether there was any (0 none, 1 some, 2 bad input or nothing to convert). The output is
all or nothing: a source object that cannot be read stops the run before anything is printed.
"""

from __future__ import annotations

import argparse
from collections.abc import Iterable
from typing import Any

import yaml

from webhook.commands.common import Exit, input_errors, say
from webhook.commands.objectfiles import Document, read_documents
from webhook.commands.provision import COMMAND
from webhook.oidc.errors import InputError
from webhook.oidc.issuer import validate_issuer
from webhook.provisioner.convert import Converter, Options, converter_for, irsamanager
from webhook.provisioner.convert.common import CONVERTED_FROM_ANNOTATION
from webhook.provisioner.model import ISSUER_KIND, JSON
from webhook.provisioner.rolespec import read_role
from webhook.provisioner.spec import read_issuer

DESCRIPTION = """\
Print irsa-manager IRSA and IRSASetup objects, and the iam.serviceAccounts of an eksctl ClusterConfig,
as irsa-webhook objects: IRSAIssuer from IRSASetup; IRSARole for a role of one namespace,
ClusterIRSARole for one that binds several. Every role says adoption: Always (the role exists and is
not tagged ours), every object deletionPolicy: Retain unless --deletion-policy says otherwise.

Review the output, then `provision plan` it: the plan shows the existing roles being adopted.
docs/migrate.md says in which order to retire the other tool so that it deletes nothing.

exit: 0 all converted, 1 converted with warnings (on stderr: what did not carry over), 2 bad input
"""

EPILOG = """\
examples:
  kubectl get irsasetups,irsas -A -o yaml | irsa-webhook provision convert -f - > irsa-webhook.yaml
  irsa-webhook provision convert -f cluster.yaml --issuer-url https://oidc.eks.eu-west-1.amazonaws.com/id/ABC
"""

# End-of-line comments on the lines a reviewer must understand before applying.
ADOPTION_COMMENT = "the role exists, made by another tool, not tagged ours: Always takes it (never another owner's)"
KEEP_ROLE = "deleting this object keeps the role another tool made; Delete once it should go with this object"
KEEP_ISSUER = "deleting this object keeps what another tool published and registered for this issuer"
DELETE = "deleting this object deletes what it took over from the other tool (--deletion-policy Delete)"
HEADER = "# Converted by `irsa-webhook provision convert`: review it before applying (docs/migrate.md).\n"


def register(verbs: argparse._SubParsersAction[Any]) -> None:
    parser = verbs.add_parser(
        "convert",
        help="print irsa-manager and eksctl IRSA objects as irsa-webhook objects",
        description=DESCRIPTION,
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "-f",
        "--filename",
        action="append",
        required=True,
        metavar="FILE",
        help="a YAML/JSON file, a folder, or - for stdin (repeatable)",
    )
    issuer = parser.add_mutually_exclusive_group()
    issuer.add_argument(
        "--issuer",
        metavar="NAME",
        help="the IRSAIssuer the roles trust (default: the one IRSASetup in the files, converted)",
    )
    issuer.add_argument(
        "--issuer-url",
        metavar="URL",
        help="an existing issuer the roles trust directly, e.g. the EKS cluster's OIDC issuer URL",
    )
    parser.add_argument(
        "--deletion-policy",
        choices=("Retain", "Delete"),
        default="Retain",
        help="of every converted object (default Retain: deleting it never deletes what the other tool made)",
    )
    parser.set_defaults(func=input_errors(COMMAND)(run))


def run(args: argparse.Namespace) -> int:
    sources: list[tuple[Document, Converter]] = []
    for document in read_documents(args.filename):
        converter = converter_for(document.obj)
        if converter is None:
            say(COMMAND, f"skipping {document.source}: {document.obj.get('kind')!s} is not an object to convert")
        else:
            sources.append((document, converter))
    if not sources:
        raise InputError("no irsa-manager IRSA or IRSASetup, nor eksctl ClusterConfig, in the given files")
    options = _options(args, [document for document, _ in sources])
    objects: list[JSON] = []
    warnings: list[str] = []
    for document, converter in sources:
        try:
            converted, notes = converter(document.obj, options)
        except InputError as exc:
            raise InputError(f"{document.source}: {exc}") from exc
        objects += converted
        warnings += notes
    if not objects:
        raise InputError("nothing to convert: every source object was left out" + _joined(warnings))
    _check(objects)
    warnings += _shared_roles(objects)
    for warning in warnings:
        say(COMMAND, f"warning: {warning}")
    print(render(objects), end="")
    return Exit.NO if warnings else Exit.OK


def _joined(warnings: list[str]) -> str:
    return ": " + "; ".join(warnings) if warnings else ""


def _options(args: argparse.Namespace, documents: list[Document]) -> Options:
    issuer_url = validate_issuer(args.issuer_url, "--issuer-url") if args.issuer_url else None
    issuer_ref = args.issuer
    if issuer_ref is None and issuer_url is None:
        setups = [d.obj for d in documents if d.obj.get("kind") == irsamanager.SETUP_KIND]
        names = [str((s.get("metadata") or {}).get("name")) for s in setups]
        if len(setups) == 1:
            issuer_ref = names[0]  # the IRSAIssuer it becomes keeps its name
        elif len(setups) > 1 and any(d.obj.get("kind") == irsamanager.IRSA_KIND for d in documents):
            raise InputError(f"the files hold several IRSASetups ({', '.join(names)}): pass --issuer NAME to choose")
    return Options(issuer_ref=issuer_ref, issuer_url=issuer_url, deletion_policy=args.deletion_policy)


def _source(obj: JSON) -> str:
    return str(obj["metadata"]["annotations"][CONVERTED_FROM_ANNOTATION])


def _check(objects: list[JSON]) -> None:
    """Two sources that become the same object, or a converted issuer our reader refuses: bad input."""
    seen: dict[tuple[str, str, str], str] = {}
    for obj in objects:
        metadata = obj["metadata"]
        key = (obj["kind"], metadata.get("namespace", ""), metadata["name"])
        if key in seen:
            where = f"{key[1]}/{key[2]}" if key[1] else key[2]
            raise InputError(f"{seen[key]} and {_source(obj)} both become {key[0]} {where}: rename one of them first")
        seen[key] = _source(obj)
        # Every converted object must be one our readers accept: the cluster name only feeds the owner tag.
        reader = read_issuer if obj["kind"] == ISSUER_KIND else read_role
        try:
            reader(obj, "convert")
        except InputError as exc:
            raise InputError(f"the {obj['kind']} converted from {_source(obj)} is not valid: {exc}") from exc


def _shared_roles(objects: Iterable[JSON]) -> list[str]:
    """A warning per IAM role named by several converted roles: only one object can own a role."""
    owners: dict[str, list[str]] = {}
    for obj in objects:
        name = obj["spec"].get("roleName") if obj["kind"] != ISSUER_KIND else None
        if name:
            owners.setdefault(name, []).append(_source(obj))
    return [
        f"IAM role {name} is the role of {' and '.join(sources)}: only the first applied owns it, the others "
        "report that it is not theirs; merge them into one object"
        for name, sources in owners.items()
        if len(sources) > 1
    ]


def render(objects: list[JSON]) -> str:
    """The objects as YAML documents (issuers first), the adoption and deletion lines commented."""
    ordered = sorted(objects, key=lambda obj: obj["kind"] != ISSUER_KIND)
    documents = [_commented(obj, yaml.safe_dump(obj, sort_keys=False, width=1 << 16)) for obj in ordered]
    return HEADER + "---\n".join(documents)


def _commented(obj: JSON, text: str) -> str:
    # spec's own keys are the only ones at two spaces of indentation named so (policy documents nest deeper).
    keep = KEEP_ISSUER if obj["kind"] == ISSUER_KIND else KEEP_ROLE
    comments = {
        "  adoption: Always": ADOPTION_COMMENT,
        "  deletionPolicy: Retain": keep,
        "  deletionPolicy: Delete": DELETE,
    }
    lines = [f"{line}  # {comments[line]}" if line in comments else line for line in text.splitlines()]
    return "\n".join(lines) + "\n"
