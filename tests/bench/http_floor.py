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

import argparse
import asyncio
import gc
import signal
import sys
from collections.abc import Sequence

import aiohttp
import uvloop
from aiohttp import web

from tests.bench.drivers import chat_request
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
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    async with aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=0, keepalive_timeout=60),
            timeout=aiohttp.ClientTimeout(total=None, sock_connect=10)) as session:
        runner = web.AppRunner(relay(session, base_url), access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        port = runner.addresses[0][1]
        gc.collect()
        gc.freeze()  # as server.main does: startup's objects stay out of the collector
        print(f"{HTTP_FLOOR_BANNER} http://127.0.0.1:{port}/v1", flush=True)
        await stop.wait()
        await runner.cleanup()


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m tests.bench.http_floor", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--upstream", required=True, metavar="BASE_URL",
                   help="the simulator's OpenAI base URL (its /chat/completions is called)")
    args = p.parse_args(argv)
    uvloop.run(serve(args.upstream))
    return 0


if __name__ == "__main__":
    sys.exit(main())
