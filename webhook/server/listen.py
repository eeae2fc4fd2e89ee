"""Listening sockets for both ports: dual-stack by default (one IPv6 socket with ``IPV6_V6ONLY`` off also
takes IPv4 connections, as Go's ``:443`` does); ``0.0.0.0`` or a specific address narrows it."""

from __future__ import annotations

import errno
import logging
import socket
from dataclasses import dataclass
from typing import Any

log = logging.getLogger("irsa_webhook.server")


class ListenError(OSError):
    """A port cannot be listened on; the message is one line naming the address."""


@dataclass(frozen=True, slots=True)
class BindAddress:
    """Where both ports listen: a family, an address, and whether an IPv6 socket also takes IPv4."""

    family: socket.AddressFamily
    sockaddr: tuple[Any, ...]  # as getaddrinfo gives it (an IPv6 one carries flowinfo and scope id)
    dual_stack: bool = False

    def at(self, port: int) -> tuple[Any, ...]:
        return (self.sockaddr[0], port, *self.sockaddr[2:])

    def show(self, port: int) -> str:
        host = self.sockaddr[0]
        text = f"[{host}]:{port}" if self.family == socket.AF_INET6 else f"{host}:{port}"
        return text + (" (IPv4 and IPv6)" if self.dual_stack else "")


def bind_address(host: str) -> BindAddress:
    """What ``--bind-address`` means: unset or ``::`` dual-stack (IPv4 only on a host without IPv6),
    ``0.0.0.0`` IPv4 only, anything else that one address (a host name: its first address)."""
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    if host in ("", "::"):
        if _ipv6_works():
            return BindAddress(socket.AF_INET6, ("::", 0, 0, 0), dual_stack=True)
        log.warning("this host has no IPv6: listening on IPv4 only (0.0.0.0)")
        return BindAddress(socket.AF_INET, ("0.0.0.0", 0))  # noqa: S104 - a pod serves on its IPs
    try:
        family, _, _, _, sockaddr = socket.getaddrinfo(host, 0, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)[0]
    except (socket.gaierror, UnicodeError) as exc:
        raise ListenError(f"--bind-address {host!r} is not an address of this host: {exc}") from None
    return BindAddress(family, sockaddr)


def _ipv6_works() -> bool:
    """Whether a dual-stack socket can be made: no on a kernel without IPv6 (``ipv6.disable=1``)."""
    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_STREAM) as probe:
            probe.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
            probe.bind(("::", 0))
    except OSError:
        return False
    return True


def listen(address: BindAddress, port: int) -> socket.socket:
    """A bound, listening TCP socket for ``address`` and ``port``; ListenError with the reason."""
    sock = socket.socket(address.family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if address.family == socket.AF_INET6:
            # Set either way: the system default (net.ipv6.bindv6only) differs between hosts.
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0 if address.dual_stack else 1)
        sock.bind(address.at(port))
        sock.listen(socket.SOMAXCONN)
    except OSError as exc:
        sock.close()
        reason = exc.strerror or str(exc)
        if exc.errno == errno.EADDRNOTAVAIL:
            reason += " (not an address of this host)"
        raise ListenError(f"cannot listen on {address.show(port)}: {reason}") from None
    sock.setblocking(False)
    return sock
