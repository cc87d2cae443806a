"""Why the server cannot listen where it was told to, in words that say what to change."""

from __future__ import annotations

import os
import socket

from server.config import ConfigError


def bind_error(host: str, port: int) -> str | None:
    """Why ``host:port`` cannot be bound (asked of the OS, as grpc binds: SO_REUSEADDR), or
    None. Checked before grpc binds, which would log its own multi-line error first."""
    if port == 0:
        return None
    try:
        infos = socket.getaddrinfo(host.strip("[]") or None, port, type=socket.SOCK_STREAM,
                                   flags=socket.AI_PASSIVE)
    except OSError as exc:
        return f"cannot resolve {host!r}: {exc.strerror or exc}"
    for family, kind, proto, _, sockaddr in infos:
        with socket.socket(family, kind, proto) as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                probe.bind(sockaddr)
            except OSError as exc:
                return os_reason(exc)
    return None


def os_reason(exc: OSError) -> str:
    """The OS's own words for an error ("address already in use"), without asyncio's prefix."""
    return (os.strerror(exc.errno) if exc.errno else str(exc)).lower()


def cannot_listen(address: str, setting: str, why: str, any_port: str = "0") -> ConfigError:
    """``any_port``: the value of ``setting`` that asks for any free port (``auto`` where 0
    means "off")."""
    return ConfigError(f"cannot listen on {address}: {why}; stop what is using it, or set "
                       f"{setting} to a free port ({any_port}: any free port)")
