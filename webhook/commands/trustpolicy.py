"""``irsa-webhook trust-policy`` (generate) and ``trust-policy check`` (evaluate and lint)."""

from __future__ import annotations

import argparse
from typing import Any

from webhook.commands import files
from webhook.commands.common import Exit, input_errors, note, to_json
from webhook.core.settings import DEFAULT_AUDIENCE
from webhook.oidc import policy
from webhook.oidc.errors import InputError
from webhook.oidc.issuer import port_note, validate_issuer
from webhook.oidc.policycheck import Decision, WebIdentityRequest, decide
from webhook.oidc.policylint import Finding, lint
from webhook.oidc.tokens import decode_unverified
from webhook.oidc.trustpolicy import (
    check_provider_matches,
    parse_service_accounts,
    provider_arn,
    trust_policy,
)

GENERATE_DESCRIPTION = """\
Print the IAM role trust policy that lets the given service accounts assume the role through
the cluster's OIDC provider (sts:AssumeRoleWithWebIdentity).

The principal is arn:<partition>:iam::<account>:oidc-provider/<issuer without https://>, and
StringEquals pins both <provider>:sub (system:serviceaccount:<namespace>:<name>) and
<provider>:aud (--audience, default sts.amazonaws.com, the webhook's default token audience).

Service accounts: --service-account NAME uses --namespace; --service-account NS:NAME names its
own namespace. Repeat --service-account for several (any of them may assume the role).
Wildcards (* and ?) are refused unless --namespace-wildcard is given; then they are allowed in the
namespace part only, the sub condition becomes StringLike, and a note says so on stderr.

`trust-policy check` (see `irsa-webhook trust-policy check --help`) evaluates a policy.
"""

GENERATE_USAGE = """\
irsa-webhook trust-policy --issuer URL (--account-id ID | --provider-arn ARN)
           [--namespace NS] --service-account [NS:]SA [--service-account ...]
           [--audience AUD] [--partition P] [--namespace-wildcard]
       irsa-webhook trust-policy check --policy FILE (--token FILE | --issuer URL ...) [-o json]"""

GENERATE_EPILOG = """\
examples:
  irsa-webhook trust-policy --issuer https://my-bucket.s3.us-east-1.amazonaws.com/cluster1 \\
      --account-id 111122223333 --namespace app --service-account api > trust.json
  irsa-webhook trust-policy --issuer https://oidc.example.com --account-id 111122223333 \\
      --service-account app:api --service-account batch:worker
"""

CHECK_DESCRIPTION = """\
Evaluate a role trust policy the way IAM does for sts:AssumeRoleWithWebIdentity, and say whether
a service account's token would be allowed, and why.

The request is either a token (--token FILE, '-' for stdin: a projected service-account token;
its claims are decoded WITHOUT verifying the signature: this checks the policy, it does not
authenticate anything) or --issuer/--namespace/--service-account [--audience].

Evaluated as IAM does: an applying Deny wins, else an applying Allow allows, else implicit deny;
Action/NotAction with wildcards; Principal Federated must be the issuer's OIDC provider;
StringEquals, StringNotEquals, StringEqualsIgnoreCase, StringLike (* and ?), StringNotLike,
...IfExists, Null, ForAnyValue:/ForAllValues:; several values of a key are ORed, several keys
ANDed; a key missing from the request fails a condition except the negated operators.

Lints: missing-aud, missing-sub, wildcard-sub, https-in-key, provider-key-mismatch,
shared-across-namespaces, multi-value-without-set-operator.

exit status: 0 allowed and no lint findings, 1 denied, 3 allowed with lint findings, 2 bad input.
"""

CHECK_EPILOG = """\
examples:
  irsa-webhook trust-policy check --policy trust.json --token ./token
  kubectl create token api -n app --audience sts.amazonaws.com | \\
      irsa-webhook trust-policy check --policy trust.json --token -
  irsa-webhook trust-policy check --policy trust.json --issuer https://oidc.example.com \\
      --namespace app --service-account api
"""


def register(sub: argparse._SubParsersAction[Any]) -> None:
    parser = sub.add_parser(
        "trust-policy",
        help="generate an IAM role trust policy for service accounts ('trust-policy check' evaluates one)",
        usage=GENERATE_USAGE,
        description=GENERATE_DESCRIPTION,
        epilog=GENERATE_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    # Not argparse-required: these must stay optional so that `trust-policy check ...` parses;
    # run_generate reports a missing one in the same one-line form as every other input error.
    parser.add_argument("--issuer", metavar="URL", help="the service-account issuer URL (required)")
    parser.add_argument(
        "--account-id",
        metavar="ID",
        help="AWS account of the OIDC provider (required without --provider-arn)",
    )
    parser.add_argument("--partition", default="aws", help="AWS partition (default aws; aws-cn, aws-us-gov, ...)")
    parser.add_argument(
        "--provider-arn", metavar="ARN", help="the OIDC provider ARN, instead of --account-id/--partition"
    )
    parser.add_argument("--namespace", metavar="NS", help="namespace of --service-account values written without NS:")
    parser.add_argument(
        "--service-account",
        action="append",
        default=[],
        metavar="[NS:]SA",
        help="service account (repeatable)",
    )
    parser.add_argument(
        "--audience",
        action="append",
        default=[],
        metavar="AUD",
        help=f"token audience (default {DEFAULT_AUDIENCE})",
    )
    parser.add_argument(
        "--namespace-wildcard",
        action="store_true",
        help="allow * and ? in namespaces (uses StringLike on sub)",
    )
    parser.set_defaults(func=run_generate)

    commands = parser.add_subparsers(dest="trust_policy_command", metavar="check")
    check = commands.add_parser(
        "check",
        # Without prog, argparse builds it from the parent's custom usage text.
        prog="irsa-webhook trust-policy check",
        help="evaluate and lint a trust policy for a token or service account",
        description=CHECK_DESCRIPTION,
        epilog=CHECK_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    check.add_argument("--policy", required=True, metavar="FILE", help="the trust policy JSON file")
    check.add_argument("--token", metavar="FILE", help="a service-account token (JWT) file, '-' for stdin")
    check.add_argument("--issuer", metavar="URL", help="the issuer (with --namespace and --service-account)")
    check.add_argument("--namespace", metavar="NS", help="the service account's namespace")
    check.add_argument("--service-account", metavar="[NS:]SA", help="the service account's name")
    check.add_argument(
        "--audience",
        action="append",
        default=[],
        metavar="AUD",
        help=f"token audience (default {DEFAULT_AUDIENCE})",
    )
    check.add_argument("-o", "--output", choices=("text", "json"), default="text", help="output format")
    check.set_defaults(func=run_check)


@input_errors("trust-policy")
def run_generate(args: argparse.Namespace) -> int:
    if not args.issuer:
        raise InputError("trust-policy: --issuer is required")
    issuer = validate_issuer(args.issuer)
    if args.provider_arn:
        check_provider_matches(args.provider_arn, issuer)
        principal = args.provider_arn
    elif args.account_id:
        principal = provider_arn(issuer, args.account_id, args.partition)
    else:
        raise InputError("trust-policy: --account-id (or --provider-arn) is required")
    refs = parse_service_accounts(args.service_account, args.namespace, args.namespace_wildcard)
    document = trust_policy(issuer, principal, refs, args.audience or [DEFAULT_AUDIENCE])
    if (message := port_note(issuer)) is not None:
        note(message)
    wildcards = [ref.subject for ref in refs if ref.has_wildcard]
    if wildcards:
        note(f"note: namespace wildcard: the sub condition uses StringLike and matches {', '.join(wildcards)}")
    elif args.namespace_wildcard:
        note("note: --namespace-wildcard given but no namespace has * or ?; the policy uses StringEquals")
    print(to_json(document), end="")
    return Exit.OK


def _request(args: argparse.Namespace) -> tuple[WebIdentityRequest, bool]:
    """The request to evaluate and whether it came from a token."""
    direct = (args.issuer, args.namespace, args.service_account)
    if args.token is not None:
        if any(value is not None for value in direct) or args.audience:
            raise InputError("use either --token or --issuer/--namespace/--service-account/--audience, not both")
        claims = decode_unverified(files.read_text(args.token, "token file"))
        return WebIdentityRequest(claims.issuer, claims.subject, claims.audiences), True
    if args.issuer is None or args.service_account is None:
        raise InputError("trust-policy check needs --token FILE, or --issuer, --namespace and --service-account")
    issuer = validate_issuer(args.issuer)
    ref = parse_service_accounts([args.service_account], args.namespace)[0]
    audiences = tuple(dict.fromkeys(args.audience or [DEFAULT_AUDIENCE]))
    return WebIdentityRequest(issuer, ref.subject, audiences), False


def exit_code(decision: Decision, findings: list[Finding]) -> int:
    if not decision.allowed:
        return Exit.NO
    return Exit.FINDINGS if findings else Exit.OK


@input_errors("trust-policy")
def run_check(args: argparse.Namespace) -> int:
    request, from_token = _request(args)
    statements = policy.loads(files.read_text(args.policy, "policy file"), source=args.policy)
    decision = decide(statements, request)
    findings = lint(statements, request.audiences)
    code = exit_code(decision, findings)
    if args.output == "json":
        print(to_json(_as_json(request, from_token, decision, findings, code)), end="")
    else:
        print(_as_text(request, from_token, decision, findings), end="")
    return code


def _as_text(request: WebIdentityRequest, from_token: bool, decision: Decision, findings: list[Finding]) -> str:
    lines = [f"{'ALLOWED' if decision.allowed else 'DENIED'}: {decision.reason}"]
    lines.append(
        f"request: sts:AssumeRoleWithWebIdentity via provider {request.provider!r}, "
        f"sub {request.subject!r}, aud {list(request.audiences)!r}"
    )
    if from_token:
        lines.append("         (claims read from the token WITHOUT verifying its signature)")
    for result in decision.results:
        verdict = "applies" if result.applies else "does not apply"
        lines.append(f"{result.statement.label} [{result.statement.effect}]: {verdict}: {result.reason}")
    lines.extend(f"lint: {finding.describe()}" for finding in findings)
    return "\n".join(lines) + "\n"


def _as_json(
    request: WebIdentityRequest, from_token: bool, decision: Decision, findings: list[Finding], code: int
) -> dict[str, Any]:
    return {
        "allowed": decision.allowed,
        "reason": decision.reason,
        "exit_code": code,
        "request": {
            "action": "sts:AssumeRoleWithWebIdentity",
            "issuer": request.issuer,
            "provider": request.provider,
            "sub": request.subject,
            "aud": list(request.audiences),
            "from_token": from_token,
            "signature_verified": False,
        },
        "statements": [
            {
                "index": result.statement.index,
                "sid": result.statement.sid,
                "effect": result.statement.effect,
                "applies": result.applies,
                "reason": result.reason,
            }
            for result in decision.results
        ],
        "lints": [{"code": f.code, "statement": f.statement, "message": f.message} for f in findings],
    }
