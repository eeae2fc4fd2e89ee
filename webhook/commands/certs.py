"""``irsa-webhook certs``: a throwaway CA and serving certificate."""

from __future__ import annotations

import argparse
import ipaddress
from typing import Any

from webhook.commands.common import Exit, fail
from webhook.server import devcerts


def register(sub: argparse._SubParsersAction[Any]) -> None:
    parser = sub.add_parser(
        "certs",
        help="generate a throwaway CA and a serving certificate (dev, kind, tests)",
        description="Write ca.crt, ca.key, tls.crt, tls.key and ca-bundle.b64 (the caBundle value) into --out. "
        "An existing CA there is reused unless --new-ca, so only the serving certificate rotates.",
    )
    parser.add_argument("--out", default="certs", help="output folder (default: certs)")
    parser.add_argument("--service-name", default=devcerts.DEFAULT_SERVICE, help="webhook Service name")
    parser.add_argument("--namespace", default=devcerts.DEFAULT_NAMESPACE, help="webhook namespace")
    parser.add_argument("--dns-name", action="append", default=[], help="extra DNS name (repeatable)")
    parser.add_argument("--ip-address", action="append", default=[], help="extra IP address (repeatable)")
    parser.add_argument("--days", type=int, default=365, help="validity in days (default 365)")
    parser.add_argument("--new-ca", action="store_true", help="make a new CA even if one exists in --out")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    try:
        ips = [str(ipaddress.ip_address(ip)) for ip in ["127.0.0.1", "::1", *args.ip_address]]
    except ValueError as exc:
        return fail("certs", str(exc))
    if args.days < 1:
        return fail("certs", "--days must be at least 1")
    names = [*devcerts.default_dns_names(args.service_name, args.namespace), *args.dns_name]
    files = devcerts.generate(args.out, names, ips, days=args.days, new_ca=args.new_ca)
    print(f"wrote {files.ca_cert}, {files.cert}, {files.key} and {files.ca_bundle} (SANs: {', '.join(names + ips)})")
    return Exit.OK
