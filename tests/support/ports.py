"""Free ports on loopback."""

from __future__ import annotations

import socket

_handed_out: set[int] = set()


def _bind_any() -> int:
    """A port the OS just offered: free on IPv4 and IPv6 alike where the host has IPv6 (a server
    listening dual-stack, the default of ``serve``, needs both), else on 127.0.0.1."""
    try:
        with socket.socket(socket.AF_INET6) as s:
            s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
            s.bind(("::", 0))
            return int(s.getsockname()[1])
    except OSError:  # no IPv6 on this host
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            return int(s.getsockname()[1])


def free_port() -> int:
    """A TCP port that was free a moment ago and that this process has not handed out before (the OS
    may offer a just-closed port again; two servers of one test must not get it)."""
    for _ in range(100):
        port = _bind_any()
        if port not in _handed_out:
            _handed_out.add(port)
            return port
    raise RuntimeError("no fresh free port after 100 tries")


def closed_port_url() -> str:
    """An http:// URL on 127.0.0.1 where nothing listens (the port was free a moment ago)."""
    return f"http://127.0.0.1:{free_port()}"


def has_ipv6_loopback() -> bool:
    try:
        with socket.socket(socket.AF_INET6) as s:
            s.bind(("::1", 0))
    except OSError:
        return False
    return True
