"""``network.dns``, ``network.connect`` and ``network.tls``: one phase each, its own deadline.

These run on raw sockets (``getaddrinfo``, ``open_connection``), not through aiohttp, so a
failure names the exact phase: a name that does not resolve, a port that refuses, a
certificate that does not verify. The TLS context is Python's default, as aiohttp's is, so a
certificate that passes here also passes for the requests that follow.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import ipaddress
import socket
import ssl
from dataclasses import dataclass
from urllib.parse import urlsplit

from aiohttp.abc import AbstractResolver

from server.netguard import BlockedAddressError
from server.validation.catalog import CONNECT, DNS, TLS, CheckVerdict, failed, passed, skipped

Address = tuple[str, int]
MAX_ADDRESSES = 3  # connect attempts over the resolved addresses


@dataclass(frozen=True, slots=True)
class Target:
    scheme: str
    host: str
    port: int

    @classmethod
    def of(cls, base_url: str) -> Target:
        parts = urlsplit(base_url)
        scheme = (parts.scheme or "http").lower()
        port = parts.port or (443 if scheme == "https" else 80)
        return cls(scheme, parts.hostname or "", port)

    @property
    def is_ip(self) -> bool:
        try:
            ipaddress.ip_address(self.host)
        except ValueError:
            return False
        return True


async def _lookup(host: str, port: int, resolver: AbstractResolver | None) -> list[str]:
    if resolver is not None:  # the server's guarded resolver: the network policy applies
        return [r["host"] for r in await resolver.resolve(host, port, socket.AF_UNSPEC)]
    loop = asyncio.get_running_loop()
    infos = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return [str(info[4][0]) for info in infos]


async def resolve(target: Target, timeout_s: float, resolver: AbstractResolver | None = None
                  ) -> tuple[CheckVerdict, list[Address]]:
    """``network.dns`` and the addresses to connect to (empty when it failed).

    ``resolver``: the server passes its ``GuardedResolver``, so a name that passed the check
    at registration and now resolves to a blocked address (DNS rebinding) is refused here,
    before any connection, exactly as a turn's connection would be."""
    if target.is_ip:
        return passed(DNS, f"{target.host} is an IP address; nothing to resolve"), [
            (target.host, target.port)
        ]
    try:
        async with asyncio.timeout(timeout_s):
            hosts = await _lookup(target.host, target.port, resolver)
    except BlockedAddressError as exc:
        return failed(DNS, exc.public_message(),
                      "this server's network policy refuses that address: register a host "
                      "that resolves to public addresses only, or ask the operator to "
                      "allow-list it"), []
    except TimeoutError:
        return failed(
            DNS,
            f"looking up {target.host} took longer than {timeout_s:g}s",
            "the DNS server did not answer in time: check the host name in base_url and the "
            "DNS configuration where Switchboard runs",
        ), []
    except (socket.gaierror, UnicodeError) as exc:
        return failed(DNS, f"{target.host} does not resolve ({_gai_reason(exc)})", _dns_hint(
            target.host)), []
    addresses: list[Address] = []
    for host in hosts:
        address = (host, target.port)
        if address not in addresses:
            addresses.append(address)
    if not addresses:
        return failed(DNS, f"{target.host} resolves to no address", _dns_hint(target.host)), []
    more = f" (+{len(addresses) - 1} more)" if len(addresses) > 1 else ""
    return passed(DNS, f"{target.host} resolves to {addresses[0][0]}{more}"), addresses


def _gai_reason(exc: BaseException) -> str:
    if isinstance(exc, socket.gaierror) and exc.errno == socket.EAI_AGAIN:
        return "temporary failure in name resolution"
    if isinstance(exc, socket.gaierror) and exc.strerror:
        return exc.strerror
    return type(exc).__name__


def _dns_hint(host: str) -> str:
    return (
        f"host name does not resolve: check the spelling of {host!r} in base_url; a name that "
        "resolves only inside another network (a VPN, a Kubernetes cluster, /etc/hosts on "
        "another machine) cannot be reached from where Switchboard runs"
    )


async def connect(target: Target, addresses: list[Address], timeout_s: float) -> CheckVerdict:
    """``network.connect``: a TCP connection to the first address that accepts one."""
    problems: list[str] = []
    for host, port in addresses[:MAX_ADDRESSES]:
        loop = asyncio.get_running_loop()
        started = loop.time()
        try:
            async with asyncio.timeout(timeout_s):
                _, writer = await asyncio.open_connection(host, port)
        except TimeoutError:
            problems.append(f"no answer from {host}:{port} within {timeout_s:g}s")
            continue
        except OSError as exc:
            problems.append(f"{host}:{port}: {_os_reason(exc)}")
            continue
        await _close(writer)
        return passed(CONNECT, f"connected to {host}:{port} in {_ms(loop.time() - started)}")
    return failed(CONNECT, "; ".join(problems), _connect_hint(target, problems))


def _os_reason(exc: OSError) -> str:
    if isinstance(exc, ConnectionRefusedError):
        return "connection refused"
    if isinstance(exc, ConnectionResetError | BrokenPipeError):
        return "the server closed the connection"
    if exc.errno in (errno.EHOSTUNREACH, errno.ENETUNREACH):
        return "no route to the host"
    return exc.strerror or type(exc).__name__


def _connect_hint(target: Target, problems: list[str]) -> str:
    text = " ".join(problems)
    if "refused" in text:
        return (
            f"nothing accepts connections on port {target.port}: check the port in base_url "
            "and that the server is running and listening on an address Switchboard can reach "
            "(a server bound to 127.0.0.1 inside a container or another host is not reachable)"
        )
    if "no route" in text:
        return "the host is unreachable from Switchboard's network: check the address"
    return (
        f"{target.host}:{target.port} does not answer: a firewall or security group may drop "
        "the traffic, or the host is down; check the port in base_url"
    )


async def handshake(target: Target, addresses: list[Address], timeout_s: float) -> CheckVerdict:
    """``network.tls``: a verified TLS handshake with SNI; SKIPPED for http:// URLs."""
    if target.scheme != "https":
        return skipped(TLS, "base_url uses http://, so there is no TLS to check; the key "
                       "travels unencrypted, which is only safe on a private network")
    host, port = addresses[0]
    context = ssl.create_default_context()
    loop = asyncio.get_running_loop()
    started = loop.time()
    try:
        async with asyncio.timeout(timeout_s):
            _, writer = await asyncio.open_connection(
                host, port, ssl=context, server_hostname=target.host,
                ssl_handshake_timeout=timeout_s,
            )
    except TimeoutError:
        return failed(TLS, f"no TLS handshake with {target.host}:{port} within {timeout_s:g}s",
                      "the port accepts connections but does not complete a TLS handshake: "
                      "check that it serves HTTPS, or use http:// if it does not")
    except ssl.SSLCertVerificationError as exc:
        reason = exc.verify_message or exc.reason or "the certificate does not verify"
        return failed(TLS, f"certificate rejected: {reason}", _certificate_hint(reason, target))
    except ssl.SSLError as exc:
        reason = exc.reason or str(exc)
        if reason in ("WRONG_VERSION_NUMBER", "RECORD_LAYER_FAILURE", "PACKET_LENGTH_TOO_LONG",
                      "HTTP_REQUEST"):
            return failed(TLS, f"{target.host}:{port} does not speak TLS ({reason})",
                          "the port serves plain HTTP: use http:// in base_url, or the port "
                          "where the server speaks HTTPS")
        return failed(TLS, f"TLS handshake failed: {reason}",
                      "the server's TLS setup is not compatible with a standard client: check "
                      "its certificate chain and supported TLS versions (1.2 or newer)")
    except OSError as exc:
        return failed(TLS, f"the connection failed during the TLS handshake: {_os_reason(exc)}",
                      "the server closed the connection instead of completing a TLS handshake: "
                      "check that the port serves HTTPS")
    version = writer.get_extra_info("ssl_object")
    await _close(writer)
    tls = version.version() if isinstance(version, ssl.SSLObject) else "TLS"
    return passed(TLS, f"{tls} handshake with a valid certificate for {target.host} in "
                  f"{_ms(loop.time() - started)}")


def _certificate_hint(reason: str, target: Target) -> str:
    lowered = reason.lower()
    if "expired" in lowered:
        return "the server's certificate has expired: renew it"
    if "hostname mismatch" in lowered or "not valid for" in lowered:
        return (f"the certificate is not issued for {target.host!r}: use the host name the "
                "certificate names in base_url, or fix the certificate")
    return (
        "the certificate is not signed by a public certificate authority (self-signed, or the "
        "chain is incomplete): install a certificate from a public CA such as Let's Encrypt "
        "and serve the full chain; Switchboard verifies certificates and cannot skip that"
    )


async def _close(writer: asyncio.StreamWriter) -> None:
    writer.close()
    with contextlib.suppress(OSError, ssl.SSLError, TimeoutError):
        async with asyncio.timeout(1.0):
            await writer.wait_closed()


def _ms(seconds: float) -> str:
    return f"{seconds * 1000:.0f} ms"
