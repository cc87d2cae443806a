"""The floor under any grpc.aio relay: ``Converse`` relaying the upstream, and nothing else.

    python -m tests.bench.relay_floor --upstream http://127.0.0.1:PORT/v1

``make bench`` runs it as the target ``floor`` (driven like Switchboard): the best a grpc.aio
server on this host can do for the same turn, so a target it misses is out of reach of any
grpc.aio relay here, and what Switchboard adds on top of it is Switchboard's own.

Per call it does what Switchboard cannot skip: one POST (the same URL, headers and body as
Switchboard's ``OpenAIAdapter`` sends, over one shared keep-alive aiohttp session), an SSE parse
of the answer, and the same messages in the same order: ``started`` and ``route`` once the
upstream has answered with its headers (Switchboard writes them one loop pass after sending;
the simulator answers headers at once, so both land well inside its time to first token), one
``text`` per read that carried text deltas, ``usage`` (from the last chunk that had one), then
``finished``. Deltas that arrived in one read go out as one message, as Switchboard's
transport does (``server.providers.transport._decode``): at low load a read holds one delta.

What it skips: auth, validation, registry lookup, routing, hedging and its tasks, per-phase
deadline timers, metrics, logging, interceptors, and building ``started``/``route``/
``finished`` per call (they are prebuilt constants). The caller's gRPC deadline bounds each
call: grpc.aio cancels the handler when it passes, which drops the upstream connection.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import signal
import sys
from collections.abc import AsyncIterator, Callable, Coroutine, Sequence
from typing import Any

import aiohttp
import grpc
import orjson
import uvloop
from switchboard.v1 import conversations_pb2 as cpb
from switchboard.v1 import conversations_pb2_grpc as cgrpc

from tests.bench.drivers import chat_request
from tests.bench.services import FLOOR_BANNER, MODEL, UPSTREAM_KEY

_TURN_ID = "turn_floor"
_MESSAGE_ID = f"{_TURN_ID}.m1"
_ENDPOINT_ID = "floor"

_STARTED = cpb.ConverseResponse(started=cpb.TurnStarted(turn_id=_TURN_ID))
_ROUTE = cpb.ConverseResponse(route=cpb.RouteDecision(
    endpoint_id=_ENDPOINT_ID, model=MODEL, reason=cpb.ROUTE_REASON_ONLY_AVAILABLE, attempt=1))
_FINISHED = cpb.ConverseResponse(finished=cpb.TurnFinished(
    finish_reason=cpb.FINISH_REASON_STOP, complete=True, endpoint_id=_ENDPOINT_ID, model=MODEL,
    attempts=1, provider_finish_reason="stop"))


def _data(event: bytes) -> bytes | None:
    """The joined ``data:`` lines of one SSE event (``\\n`` line ends); None without any."""
    if event.startswith(b"data: ") and b"\n" not in event:  # the usual shape: one line
        return event[6:]
    lines = [line[5:].removeprefix(b" ") for line in event.split(b"\n")
             if line.startswith(b"data:")]
    return b"\n".join(lines) if lines else None


def _usage(usage: dict[str, Any] | None) -> cpb.ConverseResponse:
    usage = usage or {}
    return cpb.ConverseResponse(usage=cpb.Usage(input_tokens=usage.get("prompt_tokens") or 0,
                                                output_tokens=usage.get("completion_tokens") or 0))


class FloorRelay(cgrpc.ConversationsServicer):
    """Only ``Converse``; the request's content is ignored (the upstream request is prebuilt)."""

    def __init__(self, session: aiohttp.ClientSession, base_url: str) -> None:
        self._session = session
        http = chat_request(base_url, MODEL, UPSTREAM_KEY)
        self._url, self._headers, self._body = http.url, dict(http.headers), http.body

    async def Converse(self, request: cpb.ConverseRequest,
                       context: grpc.aio.ServicerContext[Any, Any]
                       ) -> AsyncIterator[cpb.ConverseResponse]:
        async with self._session.post(self._url, data=self._body, headers=self._headers) as resp:
            if resp.status != 200:
                await context.abort(grpc.StatusCode.UNAVAILABLE,
                                    f"the upstream answered HTTP {resp.status}")
            yield _STARTED
            yield _ROUTE
            buf = b""
            finish: str | None = None
            usage: dict[str, Any] | None = None
            done = False
            chunks = resp.content.iter_any()
            async for chunk in chunks:
                buf += chunk
                if b"\r" in buf:
                    buf = buf.replace(b"\r\n", b"\n")
                if b"\n\n" not in buf:
                    continue
                *events, buf = buf.split(b"\n\n")
                texts: list[str] = []
                for event in events:
                    data = _data(event)
                    if data is None:  # a comment (keep-alive) or a field we do not use
                        continue
                    if data == b"[DONE]":
                        done = True
                        break
                    obj = orjson.loads(data)
                    if obj.get("error"):
                        await context.abort(grpc.StatusCode.UNAVAILABLE,
                                            "the upstream reported an error mid-stream")
                    if choices := obj.get("choices"):
                        choice = choices[0]
                        if (delta := choice.get("delta")) and (text := delta.get("content")):
                            texts.append(text)
                        finish = choice.get("finish_reason") or finish
                    usage = obj.get("usage") or usage
                if texts:
                    yield cpb.ConverseResponse(text=cpb.TextDelta(
                        message_id=_MESSAGE_ID,
                        delta=texts[0] if len(texts) == 1 else "".join(texts)))
                if done:
                    break
            if finish is None:  # a truncated answer is never a success
                await context.abort(grpc.StatusCode.UNAVAILABLE,
                                    "the upstream ended the stream without a finish reason")
            yield _usage(usage)
            yield _FINISHED if finish == "stop" else cpb.ConverseResponse(
                finished=cpb.TurnFinished(
                    finish_reason=cpb.FINISH_REASON_OTHER, complete=False,
                    endpoint_id=_ENDPOINT_ID, model=MODEL, attempts=1,
                    provider_finish_reason=finish or ""))
            async for _ in chunks:  # the end of the body: the connection goes back to the pool
                pass


def stop_on_signal() -> asyncio.Event:
    """An event set by SIGTERM or SIGINT (how the bench stops its processes)."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    return stop


def upstream_session() -> aiohttp.ClientSession:
    """One shared keep-alive session to the upstream, as Switchboard keeps one."""
    return aiohttp.ClientSession(
        connector=aiohttp.TCPConnector(limit=0, keepalive_timeout=60),
        timeout=aiohttp.ClientTimeout(total=None, sock_connect=10))


def serving(banner: str) -> None:
    gc.collect()
    gc.freeze()  # as server.main does: startup's objects stay out of the collector
    print(banner, flush=True)


def floor_main(prog: str, doc: str | None, serve: Callable[[str], Coroutine[Any, Any, None]],
               argv: Sequence[str] | None) -> int:
    """A floor's command line: ``--upstream BASE_URL``, then ``serve`` on uvloop."""
    p = argparse.ArgumentParser(prog=f"python -m {prog}", description=doc,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--upstream", required=True, metavar="BASE_URL",
                   help="the simulator's OpenAI base URL (its /chat/completions is called)")
    args = p.parse_args(argv)
    uvloop.run(serve(args.upstream))
    return 0


async def serve(base_url: str) -> None:
    stop = stop_on_signal()
    async with upstream_session() as session:
        server = grpc.aio.server(options=[("grpc.so_reuseport", 0)])
        relay = FloorRelay(session, base_url)  # type: ignore[abstract]  # only Converse
        cgrpc.add_ConversationsServicer_to_server(relay, server)
        port = server.add_insecure_port("127.0.0.1:0")
        await server.start()
        serving(f"{FLOOR_BANNER} 127.0.0.1:{port}")
        await stop.wait()
        await server.stop(2)


def main(argv: Sequence[str] | None = None) -> int:
    return floor_main("tests.bench.relay_floor", __doc__, serve, argv)


if __name__ == "__main__":
    sys.exit(main())
