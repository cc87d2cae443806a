"""SSRF guard for customer-supplied upstream base URLs.

A customer names the URL we send their prompts (and their key) to, so without a guard they could
point us at our own network: loopback, private ranges, the cloud metadata service. Two checks:

- ``check_base_url`` when an endpoint is created or updated: scheme (https unless the policy
  allows http), a host, no credentials in the URL, and every address the host resolves to must
  be public. Violations raise ``InvalidArgument`` with a ``FieldViolation`` on the caller's
  field path.
- ``GuardedResolver`` for the upstream aiohttp connector, so the same check runs on every
  connection, after DNS may have changed (DNS rebinding): a name that was public at
  registration and resolves to 127.0.0.1 later is refused with ``BlockedAddressError``, which
  aiohttp raises as ``ClientConnectorDNSError``.

aiohttp does not call the resolver for a literal IP host, so the connection-time check covers
host names only; literal IPs are checked at registration, and upstream requests should use
``allow_redirects=False`` (no LLM API redirects) so that a redirect cannot name a new IP.
``UpstreamClient`` does both: its connector uses ``GuardedResolver`` with the server's policy.

Operators admit internal upstreams (a local model server, the test simulators) through the
policy's allow-lists: a host name on ``allow_hosts`` skips the address checks; an address in
``allow_cidrs`` is accepted whatever its kind.
"""

from __future__ import annotations

import asyncio
import errno
import ipaddress
import socket
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass

import yarl
from aiohttp.abc import AbstractResolver, ResolveResult
from aiohttp.resolver import ThreadedResolver

from server.errors import FieldViolation, InvalidArgument, Unavailable
from server.vault.redact import is_sensitive_name, scrub

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
Resolve = Callable[[str, int], Awaitable[Iterable[str]]]
"""An async resolver: (host, port) -> IP address strings."""

_METADATA = frozenset(
    ipaddress.ip_address(a)
    for a in (
        "169.254.169.254",
        "169.254.170.2",
        "100.100.100.200",
        "168.63.129.16",
        "fd00:ec2::254",
    )
)
_CGNAT = ipaddress.ip_network("100.64.0.0/10")
_NAT64 = ipaddress.ip_network("64:ff9b::/96")
_ALLOW_HINT = (
    "an operator can admit it by adding the host or its network to the upstream allow-list"
)


@dataclass(frozen=True, slots=True)
class NetPolicy:
    """Where upstream connections may go. The default allows public https hosts only."""

    allow_http: bool = False
    allow_hosts: frozenset[str] = frozenset()
    allow_cidrs: tuple[IPNetwork, ...] = ()

    @classmethod
    def parse(
        cls,
        *,
        allow_http: bool = False,
        allow_hosts: Iterable[str] = (),
        allow_cidrs: Iterable[str] = (),
    ) -> NetPolicy:
        """From configuration strings; ``ValueError`` names a bad CIDR."""
        nets: list[IPNetwork] = []
        for text in allow_cidrs:
            try:
                nets.append(ipaddress.ip_network(text.strip(), strict=False))
            except ValueError:
                raise ValueError(
                    f"{text!r} is not an IP network; use CIDR notation such as 10.0.0.0/8"
                ) from None
        hosts = frozenset(_normalize_host(h) for h in allow_hosts if h.strip())
        return cls(allow_http, hosts, tuple(nets))

    def host_allowed(self, host: str) -> bool:
        return _normalize_host(host) in self.allow_hosts

    def blocked_reason(self, address: IPAddress) -> str | None:
        """Why ``address`` is refused (``"a loopback address"``), or None if it is allowed."""
        candidates = [address, *_embedded_ipv4(address)]
        for net in self.allow_cidrs:
            if any(c.version == net.version and c in net for c in candidates):
                return None
        # A wrapper (mapped, 6to4, NAT64) is judged by the IPv4 address it leads to.
        for candidate in candidates[1:] or candidates:
            reason = _classify(candidate)
            if reason:
                return reason
        return None


def _normalize_host(host: str) -> str:
    host = host.strip().lower().rstrip(".")
    return host[1:-1] if host.startswith("[") and host.endswith("]") else host


def _embedded_ipv4(address: IPAddress) -> list[ipaddress.IPv4Address]:
    """IPv4 addresses an IPv6 address leads to (mapped, 6to4, NAT64)."""
    if not isinstance(address, ipaddress.IPv6Address):
        return []
    found = [a for a in (address.ipv4_mapped, address.sixtofour) if a is not None]
    if address in _NAT64:
        found.append(ipaddress.IPv4Address(int(address) & 0xFFFFFFFF))
    return found


def _classify(address: IPAddress) -> str | None:
    if address in _METADATA:
        return "a cloud metadata address"
    if address.is_unspecified:
        return "an unspecified address"
    if address.is_loopback:
        return "a loopback address"
    if address.is_link_local:
        return "a link-local address"
    if address.is_multicast:
        return "a multicast address"
    if isinstance(address, ipaddress.IPv4Address) and address in _CGNAT:
        return "a carrier-grade NAT address"
    if address.is_reserved:
        return "a reserved (non-public) address"
    if address.is_private:
        return "a private address"
    if not address.is_global:
        return "a reserved (non-public) address"
    return None


def parse_ip(host: str) -> IPAddress | None:
    """The address of a literal IP host (``::1``, ``[::1]``, ``fe80::1%eth0``), else None."""
    text = _normalize_host(host).split("%", 1)[0]
    try:
        return ipaddress.ip_address(text)
    except ValueError:
        return None


async def _getaddrinfo(host: str, port: int) -> list[str]:
    infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return [str(info[4][0]) for info in infos]


def _invalid(field_path: str, description: str) -> InvalidArgument:
    return InvalidArgument(
        f"{field_path}: {description}",
        reason="UPSTREAM_URL_REFUSED",
        violations=[FieldViolation(field_path, description)],
    )


def _check_syntax(url: str, policy: NetPolicy, field_path: str) -> tuple[str, int]:
    if not url:
        raise _invalid(field_path, "must not be empty; give the upstream's https:// base URL")
    if any(c.isspace() or ord(c) < 0x20 or c == "\\" for c in url):
        raise _invalid(field_path, "must not contain whitespace, control characters or '\\'")
    try:
        parsed = yarl.URL(url)
    except ValueError as exc:
        raise _invalid(field_path, f"is not a valid URL ({scrub(str(exc))})") from None
    scheme = parsed.scheme.lower()
    if scheme not in ("http", "https"):
        raise _invalid(field_path, "must be an https:// URL")
    if scheme == "http" and not policy.allow_http:
        raise _invalid(
            field_path,
            "must use https://; plain http is only allowed when the server enables it "
            "(for local development)",
        )
    if not parsed.raw_host:
        raise _invalid(field_path, "must include a host, as in https://api.example.com/v1")
    if parsed.raw_user is not None or parsed.raw_password is not None:
        raise _invalid(
            field_path,
            "must not contain credentials (user:password@); put the key in the api_key field",
        )
    if any(is_sensitive_name(name) or name.lower() == "key" for name in parsed.query):
        raise _invalid(
            field_path,
            "must not carry a key or token in its query string; put the key in the api_key field",
        )
    port = parsed.port or (443 if scheme == "https" else 80)
    return parsed.raw_host, port


async def check_base_url(
    url: str,
    policy: NetPolicy,
    resolve: Resolve | None = None,
    *,
    field: str = "base_url",
    timeout_s: float = 5.0,
) -> None:
    """Refuses (``InvalidArgument`` on ``field``) a URL that could reach a non-public address.

    ``resolve`` defaults to the event loop's ``getaddrinfo``. A host that does not resolve is
    refused; a DNS failure that may be transient (or slower than ``timeout_s``) raises
    ``Unavailable``. Messages name the kind of address, not the address a name resolved to,
    so the check cannot be used to map internal DNS.
    """
    host, port = _check_syntax(url, policy, field)
    if policy.host_allowed(host):
        return
    literal = parse_ip(host)
    if literal is not None:
        reason = policy.blocked_reason(literal)
        if reason:
            raise _invalid(
                field,
                f"{literal} is {reason}; upstreams must be public internet hosts ({_ALLOW_HINT})",
            )
        return
    try:
        async with asyncio.timeout(timeout_s):
            addresses = list(await (resolve or _getaddrinfo)(host, port))
    except socket.gaierror as exc:
        if exc.errno in (socket.EAI_NONAME, getattr(socket, "EAI_NODATA", socket.EAI_NONAME)):
            raise _invalid(field, f"host {host!r} does not resolve; check the URL") from None
        raise Unavailable(
            f"{field}: could not resolve host {host!r} right now ({exc.strerror}); try again",
            retry_after_s=1.0,
        ) from None
    except TimeoutError:
        raise Unavailable(
            f"{field}: resolving host {host!r} took longer than {timeout_s:g}s; try again",
            retry_after_s=1.0,
        ) from None
    if not addresses:
        raise _invalid(field, f"host {host!r} does not resolve to any address; check the URL")
    for text in addresses:
        address = parse_ip(text)
        reason = "an unparseable address" if address is None else policy.blocked_reason(address)
        if reason:
            raise _invalid(
                field,
                f"host {host!r} resolves to {reason}; upstreams must be public internet hosts "
                f"({_ALLOW_HINT})",
            )


def resolve_with(resolver: AbstractResolver) -> Resolve:
    """``check_base_url``'s ``resolve`` from an aiohttp resolver (so both checks share DNS)."""

    async def resolve(host: str, port: int) -> list[str]:
        return [r["host"] for r in await resolver.resolve(host, port, socket.AF_UNSPEC)]

    return resolve


class BlockedAddressError(OSError):
    """A connection-time refusal; aiohttp wraps it in ``ClientConnectorDNSError``."""

    def __init__(self, host: str, address: str, reason: str) -> None:
        super().__init__(
            errno.EACCES,
            f"refusing to connect to {host!r}: it now resolves to {address}, {reason} "
            "(possible DNS rebinding); the upstream network policy allows public addresses only",
        )
        self.host = host
        self.address = address
        self.reason = reason

    def public_message(self) -> str:
        """The refusal without the address, for callers (they must not map internal DNS)."""
        return (
            f"refusing to connect to {self.host!r}: it now resolves to {self.reason} (possible "
            f"DNS rebinding); upstreams must be public internet hosts ({_ALLOW_HINT})"
        )


class GuardedResolver(AbstractResolver):
    """An aiohttp resolver that refuses hosts resolving to addresses the policy blocks.

    Use as ``aiohttp.TCPConnector(resolver=GuardedResolver(policy))``. ``inner`` defaults to
    aiohttp's ``ThreadedResolver`` (created on first use, inside the running loop).
    """

    def __init__(self, policy: NetPolicy, inner: AbstractResolver | None = None) -> None:
        self._policy = policy
        self._inner = inner

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        if self._inner is None:
            self._inner = ThreadedResolver()
        results = await self._inner.resolve(host, port, family)
        if self._policy.host_allowed(host):
            return results
        for result in results:
            address = parse_ip(result["host"])
            reason = (
                "an unparseable address"
                if address is None
                else self._policy.blocked_reason(address)
            )
            if reason:
                raise BlockedAddressError(host, result["host"], reason)
        return results

    async def close(self) -> None:
        if self._inner is not None:
            await self._inner.close()
