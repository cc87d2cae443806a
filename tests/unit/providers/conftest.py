"""A loopback aiohttp server that replays canned upstream responses byte for byte."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from aiohttp import web

from server.providers.transport import UpstreamClient
from server.timeouts import Timeouts
from tests.unit.providers._provider_testkit import ReplayServer


@pytest.fixture
async def replay_server() -> AsyncIterator[ReplayServer]:
    server = ReplayServer()
    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", server.handle)
    runner = web.AppRunner(app, handler_cancellation=True, shutdown_timeout=0.5)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    server.url = f"http://127.0.0.1:{port}"
    try:
        yield server
    finally:
        await runner.cleanup()


@pytest.fixture
def timeouts() -> Timeouts:
    return Timeouts(connect_s=2.0, first_token_s=5.0, between_chunks_s=5.0, total_s=20.0)


@pytest.fixture
async def client(timeouts: Timeouts) -> AsyncIterator[UpstreamClient]:
    async with UpstreamClient(timeouts=timeouts) as c:
        yield c
