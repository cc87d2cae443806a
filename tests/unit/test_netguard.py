"""SSRF guard: registration-time URL checks and the connection-time aiohttp resolver."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator, Iterable

import aiohttp
import pytest
from aiohttp import web
from aiohttp.abc import AbstractResolver, ResolveResult

from server.errors import InvalidArgument, Unavailable
from server.netguard import GuardedResolver, NetPolicy, Resolve, check_base_url

STRICT = NetPolicy()
FIELD = "endpoints[0].base_url"


def fake_dns(table: dict[str, list[str]]) -> Resolve:
    async def resolve(host: str, port: int) -> Iterable[str]:
        if host not in table:
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
        return table[host]

    return resolve


async def refused(url: str, policy: NetPolicy = STRICT, **kw: object) -> InvalidArgument:
    with pytest.raises(InvalidArgument) as info:
        await check_base_url(url, policy, field=FIELD, **kw)  # type: ignore[arg-type]
    exc = info.value
    assert exc.code == "INVALID_ARGUMENT"
    assert exc.reason == "UPSTREAM_URL_REFUSED"
    assert [v.field for v in exc.violations] == [FIELD]
    assert exc.message.startswith(f"{FIELD}: ")
    return exc


@pytest.mark.parametrize(
    ("host", "kind"),
    [
        ("127.0.0.1", "loopback"),
        ("127.8.9.10", "loopback"),
        ("10.0.0.1", "private"),
        ("172.16.5.4", "private"),
        ("192.168.1.1", "private"),
        ("100.64.1.1", "carrier-grade NAT"),
        ("169.254.169.254", "cloud metadata"),
        ("169.254.10.1", "link-local"),
        ("100.100.100.200", "cloud metadata"),
        ("0.0.0.0", "unspecified"),
        ("224.0.0.1", "multicast"),
        ("240.0.0.1", "reserved"),
        ("255.255.255.255", "reserved"),
        ("[::1]", "loopback"),
        ("[::]", "unspecified"),
        ("[fe80::1]", "link-local"),
        ("[fc00::1]", "private"),
        ("[fd00:ec2::254]", "cloud metadata"),
        ("[::ffff:10.0.0.1]", "private"),
        ("[::ffff:127.0.0.1]", "loopback"),
        ("[::ffff:169.254.169.254]", "cloud metadata"),
        ("[2002:7f00:1::]", "loopback"),  # 6to4 wrapping 127.0.0.1
        ("[64:ff9b::a00:1]", "private"),  # NAT64 wrapping 10.0.0.1
        ("[2001::1]", "private"),  # Teredo
        ("[2001:db8::1]", "private"),  # documentation
        ("192.0.2.1", "private"),  # documentation (TEST-NET-1)
        ("198.18.0.1", "private"),  # benchmarking
        ("[ff02::1]", "multicast"),
    ],
)
async def test_literal_non_public_addresses_are_refused(host: str, kind: str) -> None:
    exc = await refused(f"https://{host}:8443/v1")
    assert kind in exc.message
    assert "allow-list" in exc.message


@pytest.mark.parametrize(
    "host",
    [
        "93.184.216.34",
        "1.1.1.1",
        "[2606:4700:4700::1111]",
        "[::ffff:8.8.8.8]",
        "[64:ff9b::808:808]",  # NAT64 (DNS64 networks) of a public address
        "[2002:808:808::1]",  # 6to4 of a public address
    ],
)
async def test_literal_public_addresses_pass(host: str) -> None:
    await check_base_url(f"https://{host}/v1", STRICT, field=FIELD)


async def test_name_resolving_to_private_address_is_refused_without_revealing_it() -> None:
    dns = fake_dns({"internal.example.com": ["192.168.1.5"]})
    exc = await refused("https://internal.example.com/v1", resolve=dns)
    assert "'internal.example.com' resolves to a private address" in exc.message
    assert "192.168.1.5" not in exc.message


async def test_any_blocked_address_among_several_refuses() -> None:
    dns = fake_dns({"mixed.example.com": ["93.184.216.34", "2606:4700::1", "::1"]})
    exc = await refused("https://mixed.example.com/", resolve=dns)
    assert "loopback" in exc.message


async def test_public_name_passes() -> None:
    dns = fake_dns({"api.openai.com": ["104.18.6.192", "2606:4700::6812:6c0"]})
    await check_base_url("https://api.openai.com/v1", STRICT, dns, field=FIELD)
    await check_base_url(
        "https://API.OpenAI.com./v1", STRICT, fake_dns({"api.openai.com.": ["1.1.1.1"]})
    )


async def test_default_resolver_without_network() -> None:
    # Numeric and /etc/hosts names resolve locally; aiohttp's own lookups go the same way.
    assert "loopback" in (await refused("https://localhost:9/")).message
    assert "loopback" in (await refused("https://2130706433/")).message  # 127.0.0.1 as an int


async def test_allow_lists_admit_internal_upstreams() -> None:
    dns = fake_dns({"llm.corp": ["10.1.2.3"], "sim.local": ["127.0.0.1"]})
    by_cidr = NetPolicy.parse(allow_cidrs=["10.0.0.0/8", "127.0.0.0/8", "::1/128"])
    await check_base_url("https://llm.corp/v1", by_cidr, dns)
    await check_base_url("https://10.9.9.9/v1", by_cidr)
    await check_base_url("https://[::1]/v1", by_cidr)
    await check_base_url("https://[::ffff:127.0.0.1]/v1", by_cidr)  # mapped form of an allowed v4
    await refused("https://192.168.0.1/", by_cidr)  # other private ranges still refused
    by_host = NetPolicy.parse(allow_hosts=["SIM.local", "[::1]"])
    await check_base_url("https://sim.local/v1", by_host, dns)
    await check_base_url("https://[::1]:8080/v1", by_host)
    await refused("https://llm.corp/v1", by_host, resolve=dns)


async def test_https_required_unless_allowed() -> None:
    dns = fake_dns({"api.example.com": ["93.184.216.34"]})
    exc = await refused("http://api.example.com/v1", resolve=dns)
    assert "must use https://" in exc.message
    await check_base_url("http://api.example.com/v1", NetPolicy(allow_http=True), dns)


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("", "must not be empty"),
        ("ftp://api.example.com/", "must be an https:// URL"),
        ("file:///etc/passwd", "must be an https:// URL"),
        ("api.example.com/v1", "must be an https:// URL"),
        ("https:///v1", "must include a host"),
        ("https://user:pw@api.example.com/", "must not contain credentials"),
        ("https://user@api.example.com/", "must not contain credentials"),
        ("https://api.example.com/v1?key=AIzaSyD-9tSrke72PouQMnMX", "query string"),
        ("https://api.example.com/v1?api-key=abc", "query string"),
        ("https://api.example.com/ v1", "whitespace"),
        ("https://evil.example\\@127.0.0.1/", "'\\'"),
        ("https://api.example.com:99999/", "not a valid URL"),
    ],
)
async def test_malformed_urls(url: str, message: str) -> None:
    dns = fake_dns({"api.example.com": ["93.184.216.34"]})
    exc = await refused(url, resolve=dns)
    assert message in exc.message or pytest.fail(exc.message)
    assert "AIzaSyD" not in exc.message and "pw@" not in exc.message


async def test_unresolvable_and_flaky_dns() -> None:
    exc = await refused("https://nope.invalid/", resolve=fake_dns({}))
    assert "does not resolve" in exc.message

    async def flaky(host: str, port: int) -> Iterable[str]:
        raise socket.gaierror(socket.EAI_AGAIN, "Temporary failure in name resolution")

    with pytest.raises(Unavailable, match="try again"):
        await check_base_url("https://api.example.com/", STRICT, flaky)

    never = asyncio.Event()

    async def hangs(host: str, port: int) -> Iterable[str]:
        await never.wait()
        return []

    with pytest.raises(Unavailable, match=r"longer than 0\.05s"):
        await check_base_url("https://api.example.com/", STRICT, hangs, timeout_s=0.05)


def test_policy_parse_rejects_bad_cidr() -> None:
    with pytest.raises(ValueError, match=r"'10\.0\.0\.0/33' is not an IP network"):
        NetPolicy.parse(allow_cidrs=["10.0.0.0/33"])


# Connection time: a host that passed registration and now resolves to loopback (rebinding).


class StaticResolver(AbstractResolver):
    """What an attacker's DNS says at connection time."""

    def __init__(self, table: dict[str, str]) -> None:
        self.table = table

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        address = self.table[host]
        return [
            ResolveResult(
                hostname=host, host=address, port=port, family=socket.AF_INET, proto=0, flags=0
            )
        ]

    async def close(self) -> None:
        pass


@pytest.fixture
async def loopback_server() -> AsyncIterator[int]:
    async def hello(request: web.Request) -> web.Response:
        return web.Response(text="internal secrets")

    app = web.Application()
    app.router.add_get("/", hello)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    try:
        yield port
    finally:
        await runner.cleanup()


async def fetch(url: str, resolver: AbstractResolver) -> str:
    timeout = aiohttp.ClientTimeout(total=5, connect=2)
    connector = aiohttp.TCPConnector(resolver=resolver)
    async with (
        aiohttp.ClientSession(connector=connector, timeout=timeout) as session,
        session.get(url, allow_redirects=False) as resp,
    ):
        return await resp.text()


async def test_rebinding_host_is_refused_at_connection_time(loopback_server: int) -> None:
    url = f"http://rebind.example.com:{loopback_server}/"
    policy = NetPolicy(allow_http=True)
    # At registration the name was public...
    await check_base_url(url, policy, fake_dns({"rebind.example.com": ["93.184.216.34"]}))
    # ...then DNS changed to loopback.
    attacker = StaticResolver({"rebind.example.com": "127.0.0.1"})
    with pytest.raises(aiohttp.ClientConnectorError) as info:
        await fetch(url, GuardedResolver(policy, attacker))
    assert "rebind.example.com" in str(info.value)
    assert "127.0.0.1, a loopback address (possible DNS rebinding)" in str(info.value)


async def test_allow_listed_targets_are_served(loopback_server: int) -> None:
    url = f"http://rebind.example.com:{loopback_server}/"
    attacker = StaticResolver({"rebind.example.com": "127.0.0.1"})
    by_cidr = NetPolicy.parse(allow_http=True, allow_cidrs=["127.0.0.0/8"])
    assert await fetch(url, GuardedResolver(by_cidr, attacker)) == "internal secrets"
    by_host = NetPolicy.parse(allow_http=True, allow_hosts=["rebind.example.com"])
    assert await fetch(url, GuardedResolver(by_host, attacker)) == "internal secrets"


async def test_default_inner_resolver_refuses_localhost(loopback_server: int) -> None:
    with pytest.raises(aiohttp.ClientConnectorError, match="loopback"):
        await fetch(f"http://localhost:{loopback_server}/", GuardedResolver(STRICT))
    allowed = NetPolicy.parse(allow_cidrs=["127.0.0.0/8", "::1/128"])
    assert (
        await fetch(f"http://localhost:{loopback_server}/", GuardedResolver(allowed))
        == "internal secrets"
    )
