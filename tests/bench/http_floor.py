"""The floor under any aiohttp relay: ``POST /v1/chat/completions`` passed through, no more.

    python -m tests.bench.http_floor --upstream http://127.0.0.1:PORT/v1

``make bench`` runs it as the target ``http-floor`` (driven like the OpenAI front door): the
best a Python HTTP relay on this host can do for the same turn, so a front-door target it
misses is out of reach of any such relay here (one more process on the path: two more
loopback hops, each a wake-up of a sleeping process), and what the front door adds on top of it
is Switchboard's own.

Per call: one POST to the upstream (the same URL, headers and body as Switchboard's
``OpenAIAdapter`` sends, over one shared keep-alive aiohttp session), then each read of the
answer is written to the caller as it came, bytes unchanged. It skips everything else: auth,
parsing the caller's body, routing, the SSE parse, deadlines, metrics, logging.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence

import aiohttp
from aiohttp import web

from tests.bench.drivers import chat_request
from tests.bench.relay_floor import floor_main, serving, stop_on_signal, upstream_session
from tests.bench.services import HTTP_FLOOR_BANNER, MODEL, UPSTREAM_KEY


def relay(session: aiohttp.ClientSession, base_url: str) -> web.Application:
    http = chat_request(base_url, MODEL, UPSTREAM_KEY)
    url, headers, body = http.url, dict(http.headers), http.body

    async def completions(request: web.Request) -> web.StreamResponse:
        await request.read()  # the caller's body is not used: the upstream request is prebuilt
        async with session.post(url, data=body, headers=headers) as upstream:
            response = web.StreamResponse(status=upstream.status, headers={
                "Content-Type": upstream.headers.get("Content-Type", "text/event-stream")})
            await response.prepare(request)
            async for chunk in upstream.content.iter_any():
                await response.write(chunk)
            await response.write_eof()
            return response

    app = web.Application()
    app.router.add_post("/v1/chat/completions", completions)
    return app


async def serve(base_url: str) -> None:
    stop = stop_on_signal()
    async with upstream_session() as session:
        runner = web.AppRunner(relay(session, base_url), access_log=None)
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", 0).start()
        serving(f"{HTTP_FLOOR_BANNER} http://127.0.0.1:{runner.addresses[0][1]}/v1")
        await stop.wait()
        await runner.cleanup()


def main(argv: Sequence[str] | None = None) -> int:
    return floor_main("tests.bench.http_floor", __doc__, serve, argv)


if __name__ == "__main__":
    sys.exit(main())
