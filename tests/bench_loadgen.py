"""Python load generator for ``tests/bench.py``, used when ``wrk`` is not on PATH.

Not a test (pytest does not collect ``bench_*`` files) and nothing happens on import. Run as a
subprocess so it can be pinned to its own core:

    python -m tests.bench_loadgen --port P --cafile ca.crt --concurrency 16 --duration 10 BODY.json...

One TLS keep-alive connection per concurrency slot, each sending raw HTTP/1.1 requests back to back
(``asyncio.open_connection(ssl=...)``, no HTTP client library: it leaves more CPU to the server).
The bodies are sent in rotation. Prints one JSON object on stdout: requests, duration, errors and
latency percentiles in microseconds, the same fields the wrk script reports.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import ssl
import sys
import time
from pathlib import Path
from typing import Any


def build_requests(bodies: list[bytes], host: str, port: int, path: str) -> list[bytes]:
    return [
        (
            f"POST {path} HTTP/1.1\r\nHost: {host}:{port}\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\n\r\n"
        ).encode()
        + body
        for body in bodies
    ]


def percentile(sorted_values: list[float], pct: float) -> float:
    """Nearest-rank percentile of an already sorted list (0 for an empty one)."""
    if not sorted_values:
        return 0.0
    rank = max(1, min(len(sorted_values), round(pct / 100 * len(sorted_values) + 0.5)))
    return sorted_values[rank - 1]


async def _connection(
    host: str,
    port: int,
    ctx: ssl.SSLContext,
    requests: list[bytes],
    offset: int,
    start_at: float,
    stop_at: float,
    latencies: list[float],
    errors: dict[str, int],
) -> None:
    try:
        reader, writer = await asyncio.open_connection(host, port, ssl=ctx, server_hostname=host)
    except OSError:
        errors["connect"] += 1
        return
    perf = time.perf_counter
    index = offset
    count = len(requests)
    try:
        while True:
            begin = perf()
            if begin >= stop_at:
                break
            writer.write(requests[index % count])
            index += 1
            head = await reader.readuntil(b"\r\n\r\n")
            length = 0
            for line in head.split(b"\r\n")[1:]:
                if line[:15].lower() == b"content-length:":
                    length = int(line[15:])
                    break
            if length:
                await reader.readexactly(length)
            end = perf()
            if head[9:12] != b"200":
                errors["status"] += 1
            if begin >= start_at:  # requests started during warm-up are not counted
                latencies.append(end - begin)
    except (OSError, asyncio.IncompleteReadError, ValueError):
        errors["read"] += 1
    finally:
        writer.close()
        with contextlib.suppress(OSError, TimeoutError, ssl.SSLError):
            await asyncio.wait_for(writer.wait_closed(), timeout=2)


async def run(args: argparse.Namespace) -> dict[str, Any]:
    ctx = ssl.create_default_context(cafile=args.cafile)
    bodies = [Path(p).read_bytes() for p in args.bodies]
    requests = build_requests(bodies, args.host, args.port, args.path)
    latencies: list[float] = []
    errors = {"connect": 0, "read": 0, "write": 0, "status": 0, "timeout": 0}
    now = time.perf_counter()
    start_at = now + args.warmup
    stop_at = start_at + args.duration
    tasks = [
        _connection(args.host, args.port, ctx, requests, i, start_at, stop_at, latencies, errors)
        for i in range(args.concurrency)
    ]
    try:
        await asyncio.wait_for(asyncio.gather(*tasks), timeout=args.warmup + args.duration + 30)
    except TimeoutError:
        errors["timeout"] += 1
    elapsed = max(time.perf_counter(), stop_at) - start_at
    latencies.sort()
    return {
        "requests": len(latencies),
        "duration_us": int(elapsed * 1e6),
        "p50_us": percentile(latencies, 50) * 1e6,
        "p99_us": percentile(latencies, 99) * 1e6,
        "mean_us": (sum(latencies) / len(latencies) * 1e6) if latencies else 0.0,
        "max_us": (latencies[-1] * 1e6) if latencies else 0.0,
        "errors": errors,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("bodies", nargs="+", help="request bodies (JSON files), sent in rotation")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--path", default="/mutate")
    parser.add_argument("--cafile", required=True, help="CA that signed the server's certificate")
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--duration", type=float, default=10.0, help="measured seconds")
    parser.add_argument("--warmup", type=float, default=0.0, help="unmeasured seconds first")
    args = parser.parse_args(argv)
    try:
        import uvloop  # the server's own loop; it also makes the client cheaper
    except ImportError:  # pragma: no cover - plain asyncio works, the client is just slower
        result = asyncio.run(run(args))
    else:
        with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
            result = runner.run(run(args))
    json.dump(result, sys.stdout)
    sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
