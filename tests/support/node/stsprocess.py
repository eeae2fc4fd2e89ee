"""The verifying STS as a process of its own: ``python -m tests.support.node.stsprocess``.

A local cluster left running for its user (``python -m tests.cluster up``) outlives the process that
started it, so its STS cannot be a thread of that process as in the tests. This runs
:class:`~tests.support.standins.VerifyingSTS` until SIGTERM and writes the URL it listens on to
``--url-file`` once it accepts connections (the port is the kernel's choice).
"""

from __future__ import annotations

import argparse
import signal
import threading
from collections.abc import Sequence
from pathlib import Path

from ..standins import VerifyingSTS
from ..standins.verifying_sts import Decision


class LoggingSTS(VerifyingSTS):
    """Each decision on its own line of the log as it is made: why a pod was refused is read there."""

    def _record(self, decision: Decision) -> None:
        super()._record(decision)
        print(decision, flush=True)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.support.node.stsprocess")
    parser.add_argument("--moto", required=True, help="moto's URL: IAM is read there, requests passed on")
    parser.add_argument("--ca-file", type=Path, required=True, help="the CA the issuer's HTTPS is verified with")
    parser.add_argument("--host", required=True, help="the address to listen on (the node's bridge)")
    parser.add_argument("--url-file", type=Path, required=True)
    args = parser.parse_args(argv)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    with LoggingSTS(args.moto, ca_file=args.ca_file, host=args.host) as sts:
        # Written whole then renamed: a reader never sees half a URL.
        tmp = args.url_file.with_suffix(".tmp")
        tmp.write_text(sts.url + "\n")
        tmp.replace(args.url_file)
        print(f"verifying STS on {sts.url}, IAM from {args.moto}", flush=True)
        stop.wait()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
