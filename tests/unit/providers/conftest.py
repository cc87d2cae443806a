"""A loopback aiohttp server that replays canned upstream responses byte for byte."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field

import pytest
from _provider_testkit import Reply
from aiohttp import web

from server.providers.transport import Timeouts, UpstreamClient

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@dataclass
class Recorded:
    method: str
    path_qs: str
    headers: dict[str, str]
    body: bytes


@dataclass
class ReplayServer:
    """Serves ``reply`` (or runs ``handler``) for any POST; records every request."""

    url: str = ""
    reply: Reply = field(default_factory=lambda: Reply(200, {}, b""))
    handler: Handler | None = None
    chunk_size: int = 0  # 0: write the body in one piece
    requests: list[Recorded] = field(default_factory=list)
    peers: list[object] = field(default_factory=list)
    disconnected: asyncio.Event = field(default_factory=asyncio.Event)

    async def handle(self, request: web.Request) -> web.StreamResponse:
        self.requests.append(
            Recorded(request.method, request.path_qs, dict(request.headers), await request.read())
        )
        self.peers.append(request.transport.get_extra_info("peername") if request.transport else None)
        try:
            if self.handler is not None:
                return await self.handler(request)
            return await self._replay(request)
        except asyncio.CancelledError:  # aiohttp cancels the handler when the client leaves
            self.disconnected.set()
            raise

    async def _replay(self, request: web.Request) -> web.StreamResponse:
        resp = web.StreamResponse(status=self.reply.status, headers=self.reply.headers)
        await resp.prepare(request)
        body = self.reply.body
        step = self.chunk_size or max(len(body), 1)
        for i in range(0, len(body), step):
            await resp.write(body[i : i + step])
        await resp.write_eof()
        return resp


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
