"""The SSRF guard over gRPC: at registration and again at every upstream connection.

What is promised: without an allow-list, a base URL naming (or resolving to) loopback, private,
link-local or cloud-metadata addresses is refused at CreateLlm with INVALID_ARGUMENT and a
field violation on the endpoint's base_url; plain http needs the server's permission; the
operator's allow-list admits such upstreams; a host that passed registration and later
resolves to a blocked address (DNS rebinding) is refused when connecting, before any byte is
sent; upstream redirects are never followed.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import grpc
import pytest
from aiohttp import web
from switchboard.v1 import llm_pb2 as lpb
from switchboard_client import AsyncClient

from server.app import Switchboard
from server.simulator import Behavior, Simulator
from tests.security_support import FakeDns, status_of
from tests.support import API_KEY, create_llm, running, settings

FIELD = "llm.endpoints[0].base_url"
BLOCKED = [
    ("http://127.0.0.1:9/v1", "loopback"),
    ("http://10.0.0.1/v1", "private"),
    ("http://169.254.169.254/latest", "cloud metadata"),
    ("http://[::1]:9/v1", "loopback"),
    ("http://localhost:9/v1", "resolves to a loopback address"),
]


def llm_at(url: str) -> lpb.Llm:
    return lpb.Llm(display_name="x", endpoints=[lpb.Endpoint(
        api_spec=lpb.API_SPEC_OPENAI, base_url=url, model="m", api_key="sk-x")])


@pytest.fixture
async def strict_client(tmp_path: Path) -> AsyncIterator[AsyncClient]:
    """http allowed (for the test), but no allow-listed networks."""
    s = settings(tmp_path, allow_http_upstreams=True, upstream_allow_cidrs=())
    async with running(s) as app, AsyncClient(f"127.0.0.1:{app.port}", API_KEY) as client:
        yield client


@pytest.mark.parametrize(("url", "why"), BLOCKED, ids=[u for u, _ in BLOCKED])
async def test_internal_addresses_are_refused_at_registration(
        strict_client: AsyncClient, url: str, why: str) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await strict_client.create_llm(llm_at(url), skip_validation=True)
    st = status_of(err.value)
    assert st.code == grpc.StatusCode.INVALID_ARGUMENT
    assert st.info.reason == "UPSTREAM_URL_REFUSED"
    assert why in st.violations[FIELD]
    assert "public internet hosts" in st.violations[FIELD]
    assert "allow-list" in st.violations[FIELD]  # says how an operator admits it
    assert [x async for x in strict_client.list_llms()] == []


async def test_https_is_required_unless_the_server_allows_http(tmp_path: Path) -> None:
    async with running(settings(tmp_path, allow_http_upstreams=False)) as app, \
            AsyncClient(f"127.0.0.1:{app.port}", API_KEY) as client:
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await client.create_llm(llm_at("http://api.example.com/v1"), skip_validation=True)
    st = status_of(err.value)
    assert st.code == grpc.StatusCode.INVALID_ARGUMENT
    assert "must use https://" in st.violations[FIELD]


async def test_the_allow_list_admits_internal_upstreams(tmp_path: Path) -> None:
    s = settings(tmp_path, allow_http_upstreams=True,
                 upstream_allow_cidrs=("127.0.0.0/8", "::1/128", "10.0.0.0/8",
                                       "169.254.169.254/32"))
    async with running(s) as app, AsyncClient(f"127.0.0.1:{app.port}", API_KEY) as client:
        for url, _ in BLOCKED:
            created = await client.create_llm(llm_at(url), skip_validation=True)
            assert created.llm.endpoints[0].base_url == url.rstrip("/")
    s = settings(tmp_path / "hosts", allow_http_upstreams=True, upstream_allow_cidrs=(),
                 upstream_allow_hosts=("localhost",))
    (tmp_path / "hosts").mkdir()
    async with running(s) as app, AsyncClient(f"127.0.0.1:{app.port}", API_KEY) as client:
        await client.create_llm(llm_at("http://localhost:9/v1"), skip_validation=True)
        with pytest.raises(grpc.aio.AioRpcError):  # the host list admits that name only
            await client.create_llm(llm_at("http://127.0.0.1:9/v1"), skip_validation=True)


async def test_rebinding_host_is_refused_at_connection_time(tmp_path: Path) -> None:
    """The name is public at registration; by the time of the turn it resolves to loopback,
    where a (simulated) internal service listens. Nothing is sent to it."""
    async with Simulator("openai", Behavior(text="internal data")) as internal:
        dns = FakeDns({"llm.example.com": "93.184.216.34"})  # public (never connected to)
        s = settings(tmp_path, allow_http_upstreams=True, upstream_allow_cidrs=(),
                     max_attempts=2)
        app = Switchboard(s, upstream_resolver=dns)
        await app.start()
        try:
            async with AsyncClient(f"127.0.0.1:{app.port}", API_KEY) as client:
                url = f"http://llm.example.com:{internal.port}/v1"
                llm = await create_llm(client, lpb.Endpoint(
                    api_spec=lpb.API_SPEC_OPENAI, base_url=url, model="m", api_key="sk-x"))
                assert dns.lookups == ["llm.example.com"]  # checked at registration
                dns.table["llm.example.com"] = "127.0.0.1"  # DNS rebinding
                with pytest.raises(grpc.aio.AioRpcError) as err:
                    await client.reply("hi", llm_id=llm.id)
        finally:
            await app.stop(grace_s=1.0)
    st = status_of(err.value)
    assert st.code == grpc.StatusCode.UNAVAILABLE
    assert "refusing to connect to 'llm.example.com': it now resolves to a loopback " \
           "address (possible DNS rebinding)" in st.message
    assert "127.0.0.1" not in st.message  # the address it resolved to is not revealed
    assert dns.lookups.count("llm.example.com") >= 2  # checked again when connecting
    assert internal.requests == []


async def test_rebinding_host_is_refused_when_validating(tmp_path: Path) -> None:
    """Validation connects only where a turn could. A name that was public at registration
    and now resolves to loopback fails the DNS check, and nothing reaches the internal service
    (whose answer the validation feedback would otherwise quote back to the caller)."""
    async with Simulator("openai", Behavior(text="internal data")) as internal:
        # `localhost`: without the guard, the system resolver would take it to the service.
        dns = FakeDns({"localhost": "93.184.216.34"})
        s = settings(tmp_path, allow_http_upstreams=True, upstream_allow_cidrs=())
        app = Switchboard(s, upstream_resolver=dns)
        await app.start()
        try:
            async with AsyncClient(f"127.0.0.1:{app.port}", API_KEY) as client:
                llm = await create_llm(client, lpb.Endpoint(
                    api_spec=lpb.API_SPEC_OPENAI, base_url=f"http://localhost:{internal.port}/v1",
                    model="m", api_key="sk-x"))
                dns.table["localhost"] = "127.0.0.1"  # DNS rebinding
                events = [e async for e in client.validate_llm(llm.id)]
        finally:
            await app.stop(grace_s=1.0)
    report = events[-1].report
    assert not report.passed
    checks = {c.check: c for c in report.endpoints[0].checks}
    dns_check = checks["network.dns"]
    assert "possible DNS rebinding" in dns_check.observed
    assert "127.0.0.1" not in str(report)  # the internal address is not revealed
    assert internal.requests == []


async def test_upstream_redirects_are_not_followed(tmp_path: Path) -> None:
    hits: list[str] = []

    async def redirect(request: web.Request) -> web.Response:
        raise web.HTTPTemporaryRedirect(f"http://127.0.0.1:{request.url.port}/internal")

    async def internal(request: web.Request) -> web.Response:
        hits.append(request.path)
        return web.Response(text="internal data")

    upstream = web.Application()
    upstream.router.add_post("/v1/chat/completions", redirect)
    upstream.router.add_route("*", "/internal", internal)
    runner = web.AppRunner(upstream)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    try:
        base = f"http://127.0.0.1:{runner.addresses[0][1]}/v1"
        async with running(settings(tmp_path, max_attempts=1)) as app, \
                AsyncClient(f"127.0.0.1:{app.port}", API_KEY) as client:
            llm = await create_llm(client, lpb.Endpoint(
                api_spec=lpb.API_SPEC_OPENAI, base_url=base, model="m", api_key="sk-x"))
            with pytest.raises(grpc.aio.AioRpcError) as err:
                await client.reply("hi", llm_id=llm.id)
    finally:
        await runner.cleanup()
    assert err.value.code() == grpc.StatusCode.UNAVAILABLE
    assert "307" in (err.value.details() or "")
    assert hits == []
