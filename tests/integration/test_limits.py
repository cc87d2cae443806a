"""Issue 9: every limit is a Setting, and each one is enforced with a clear status.

max_concurrent_streams (RESOURCE_EXHAUSTED + RetryInfo), max_request_bytes (gRPC's own receive
limit), max_message_bytes and max_messages (INVALID_ARGUMENT with field violations),
max_upstream_event_bytes (an upstream's endless line cannot grow memory), turn_timeout_s (a
turn without a caller deadline still ends) and max_output_tokens (the cap reaches the
upstream request).
"""

from __future__ import annotations

import asyncio
import time
import tracemalloc
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import grpc
import pytest
from aiohttp import web
from google.rpc import error_details_pb2
from grpc_status import rpc_status
from switchboard.v1 import conversations_pb2 as cpb
from switchboard.v1 import llm_pb2 as lpb
from switchboard_client import AsyncClient
from switchboard_client.client import _converse_request

from server.app import Switchboard
from server.simulator import Behavior, Simulator
from tests.support import API_KEY, create_llm, endpoint, running, settings


@asynccontextmanager
async def serving(tmp_path: Path, **overrides: Any) -> AsyncIterator[tuple[Switchboard,
                                                                            AsyncClient]]:
    async with running(settings(tmp_path, **overrides)) as app, \
            AsyncClient(f"127.0.0.1:{app.port}", API_KEY) as client:
        yield app, client


def error_details(exc: grpc.aio.AioRpcError) -> dict[str, Any]:
    status = rpc_status.from_call(exc)
    out: dict[str, Any] = {}
    if status is None:
        return out
    for d in status.details:
        for name, cls in (("info", error_details_pb2.ErrorInfo),
                          ("retry", error_details_pb2.RetryInfo),
                          ("bad_request", error_details_pb2.BadRequest)):
            if d.Is(cls.DESCRIPTOR):
                msg = cls()
                d.Unpack(msg)
                out[name] = msg
    return out


# -- concurrent streams ----------------------------------------------------------------------


async def test_streams_beyond_the_limit_are_resource_exhausted_with_retry_info(
        tmp_path: Path) -> None:
    async with serving(tmp_path, max_concurrent_streams=2) as (app, client), \
            Simulator("openai", Behavior(text="late", ttft_s=10.0)) as slow, \
            Simulator("openai", Behavior(text="quick")) as quick:
        slow_llm = await create_llm(client, endpoint(slow),
                                    routing=lpb.RoutingPolicy(hedging=False))
        quick_llm = await create_llm(client, endpoint(quick))
        calls = [client.conversations.Converse(_converse_request("", slow_llm.id, "hi"),
                                               metadata=client._metadata) for _ in range(2)]
        for call in calls:  # both admitted: each has its started event
            first = await call.read()
            assert isinstance(first, cpb.ConverseResponse)
            assert first.WhichOneof("event") == "started"
        await slow.wait_for_requests(2)
        assert app.turns is not None and app.turns.in_flight == 2
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await client.reply("hi", llm_id=quick_llm.id)
        assert err.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        details = error_details(err.value)
        assert details["info"].reason == "TOO_MANY_STREAMS"
        assert details["retry"].retry_delay.ToNanoseconds() > 0
        assert "2 concurrent streams" in (err.value.details() or "")
        assert quick.requests == [], "a refused turn never reaches an upstream"
        # a caller that goes away frees its slot at once
        calls[0].cancel()
        await slow.wait_for_disconnect(index=0, timeout=1.0)
        reply = await client.reply("hi", llm_id=quick_llm.id)
        assert reply.complete and reply.text == "quick"
        calls[1].cancel()
        await slow.wait_for_disconnect(index=1, timeout=1.0)
        replies = await asyncio.gather(*(client.reply("hi", llm_id=quick_llm.id)
                                         for _ in range(2)))
        assert all(r.complete for r in replies)
        assert app.turns.in_flight == 0


async def test_refused_and_failed_streams_do_not_leak_slots(tmp_path: Path) -> None:
    async with serving(tmp_path, max_concurrent_streams=1) as (app, client), \
            Simulator("openai", Behavior(text="ok")) as sim:
        llm = await create_llm(client, endpoint(sim))
        for _ in range(5):  # errors before the turn starts and during it
            with pytest.raises(grpc.aio.AioRpcError):
                await client.reply("hi", llm_id="llm_nope")
            with pytest.raises(grpc.aio.AioRpcError):
                await client.reply("hi", llm_id=llm.id, timeout=0.0001)
        assert app.turns is not None
        for _ in range(200):  # the last deadline-cut turn is unwinding
            if not app.turns.in_flight:
                break
            await asyncio.sleep(0.01)
        assert app.turns.in_flight == 0
        assert (await client.reply("hi", llm_id=llm.id)).complete


# -- request size and message count ----------------------------------------------------------


async def test_request_and_message_size_limits_are_distinct_and_clear(tmp_path: Path) -> None:
    async with serving(tmp_path, max_request_bytes=64 * 1024,
                       max_message_bytes=16 * 1024) as (_, client), \
            Simulator("openai", Behavior(text="ok")) as sim:
        llm = await create_llm(client, endpoint(sim))
        # over max_message_bytes but within the request limit: a field violation
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await client.reply("x" * (20 * 1024), llm_id=llm.id)
        assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        violations = error_details(err.value)["bad_request"].field_violations
        assert [v.field for v in violations] == ["messages[0]"]
        assert "16384" in violations[0].description or "16 KiB" in violations[0].description
        # over max_request_bytes: gRPC refuses the message before any handler runs, with
        # RESOURCE_EXHAUSTED naming both sizes ("Received message larger than max (N vs. M)")
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await client.reply("x" * (100 * 1024), llm_id=llm.id)
        assert err.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        message = err.value.details() or ""
        assert "larger than max" in message and "65536" in message, message
        assert sim.requests == []
        assert (await client.reply("y" * (15 * 1024), llm_id=llm.id)).complete


async def test_message_count_limit(tmp_path: Path) -> None:
    async with serving(tmp_path, max_messages=3) as (_, client), \
            Simulator("openai", Behavior(text="ok")) as sim:
        llm = await create_llm(client, endpoint(sim))
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await client.reply(["a", "b", "c", "d"], llm_id=llm.id)
        assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert "4 messages is over the limit of 3" in (err.value.details() or "")
        assert [v.field for v in error_details(err.value)["bad_request"].field_violations] \
            == ["messages"]
        assert sim.requests == []
        assert (await client.reply(["a", "b", "c"], llm_id=llm.id)).complete


# -- upstream event size ---------------------------------------------------------------------


@dataclass
class Flood:
    """An upstream that answers 200 text/event-stream and then sends ``total`` bytes of one
    never-ending event: one line without a newline, or lines without a blank line."""

    total: int
    shape: str
    status: int = 200
    sent: int = 0
    disconnected: bool = False
    done: asyncio.Event = field(default_factory=asyncio.Event)

    async def handle(self, request: web.Request) -> web.StreamResponse:
        await request.read()
        content_type = "text/event-stream" if self.status == 200 else "application/json"
        response = web.StreamResponse(status=self.status,
                                      headers={"content-type": content_type})
        await response.prepare(request)
        piece = b"data: " + b"x" * 65530 + b"\n" if self.shape == "lines" else b"x" * 65536
        try:
            if self.shape == "line":
                await response.write(b"data: ")
            while self.sent < self.total:
                await response.write(piece)
                self.sent += len(piece)
            await response.write_eof()
        except (ConnectionError, asyncio.CancelledError):
            self.disconnected = True
            raise
        finally:
            self.done.set()
        return response


@asynccontextmanager
async def flood_server(flood: Flood) -> AsyncIterator[str]:
    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", flood.handle)
    runner = web.AppRunner(app, handler_cancellation=True, shutdown_timeout=0.5)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    try:
        yield f"http://127.0.0.1:{runner.addresses[0][1]}/v1"
    finally:
        await runner.cleanup()


@pytest.mark.parametrize(("shape", "status"), [("line", 200), ("lines", 200), ("line", 500)],
                         ids=["one-100MB-line", "100MB-without-event-boundary",
                              "100MB-error-body"])
async def test_a_100mb_upstream_event_does_not_grow_memory(tmp_path: Path, shape: str,
                                                           status: int) -> None:
    limit = 1024 * 1024
    flood = Flood(total=100 * 1024 * 1024, shape=shape, status=status)
    async with serving(tmp_path, max_upstream_event_bytes=limit) as (_, client), \
            flood_server(flood) as base_url, Simulator("openai") as placeholder:
        ep = endpoint(placeholder)
        ep.base_url = base_url
        llm = await create_llm(client, ep, routing=lpb.RoutingPolicy(hedging=False))
        tracemalloc.start()
        try:
            before = tracemalloc.get_traced_memory()[0]
            tracemalloc.reset_peak()
            with pytest.raises(grpc.aio.AioRpcError) as err:
                await client.reply("hi", llm_id=llm.id, timeout=20.0)
            await asyncio.wait_for(flood.done.wait(), 5.0)
            peak = tracemalloc.get_traced_memory()[1] - before
        finally:
            tracemalloc.stop()
        assert err.value.code() == grpc.StatusCode.UNAVAILABLE
        if status == 200:
            assert "larger than 1024 KiB" in (err.value.details() or "")
        assert flood.disconnected, "the gateway hangs up instead of reading 100 MB"
        assert flood.sent < 32 * 1024 * 1024, f"{flood.sent} bytes were read"
        assert peak < 16 * 1024 * 1024, f"traced peak {peak / 2**20:.1f} MiB for a 1 MiB limit"


# -- turn duration ---------------------------------------------------------------------------


async def test_turn_timeout_bounds_a_turn_without_a_caller_deadline(tmp_path: Path) -> None:
    endless = Behavior(text=" ".join(f"w{i}" for i in range(400)), chunks=400, chunk_gap_s=0.05)
    async with serving(tmp_path, turn_timeout_s=1.0) as (app, client), \
            Simulator("openai", endless) as sim:
        llm = await create_llm(client, endpoint(sim))
        started = time.monotonic()
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await client.reply("talk", llm_id=llm.id)  # no deadline from the caller
        elapsed = time.monotonic() - started
        assert err.value.code() in (grpc.StatusCode.DEADLINE_EXCEEDED,
                                    grpc.StatusCode.UNAVAILABLE)
        assert "turn_timeout_s of 1s" in (err.value.details() or "")
        assert error_details(err.value)["info"].reason == "TURN_TIMEOUT"
        # not before the limit; that it was this timer, not a slow host, the reason says
        assert elapsed >= 1.0, f"the turn took {elapsed:.2f}s with turn_timeout_s=1"
        for i in range(len(sim.requests)):
            record = await sim.wait_for_end(index=i, timeout=5.0)
            assert record.disconnected and record.chunks_sent < 400  # the 20 s stream was cut
        assert app.turns is not None
        await asyncio.wait_for(app.turns.idle(), 5.0)


# -- output tokens ---------------------------------------------------------------------------


def _cap_of(spec: str) -> Callable[[dict[str, Any]], Any]:
    if spec == "gemini":
        return lambda body: body.get("generationConfig", {}).get("maxOutputTokens")
    return lambda body: body.get("max_completion_tokens", body.get("max_tokens"))


@pytest.mark.parametrize("spec", ["openai", "azure_openai", "gemini", "groq"])
async def test_max_output_tokens_caps_the_upstream_request(tmp_path: Path, spec: str) -> None:
    cap_of = _cap_of(spec)
    async with serving(tmp_path, max_output_tokens=64) as (_, client), \
            Simulator(spec, Behavior(text="ok")) as sim:
        llm = await create_llm(client, endpoint(sim, spec))
        await client.reply("no cap asked", llm_id=llm.id)
        await client.reply("asks for more", llm_id=llm.id,
                           generation=lpb.GenerationConfig(max_output_tokens=1000))
        await client.reply("asks for less", llm_id=llm.id,
                           generation=lpb.GenerationConfig(max_output_tokens=10))
        session = await client.create_session(llm.id)
        await client.reply("in a session", session_id=session.id)
        assert [cap_of(r.body) for r in sim.requests] == [64, 64, 10, 64]


async def test_without_a_server_cap_the_callers_value_passes_through(tmp_path: Path) -> None:
    async with serving(tmp_path) as (_, client), Simulator("openai", Behavior(text="ok")) as sim:
        llm = await create_llm(client, endpoint(sim))
        await client.reply("free", llm_id=llm.id)
        await client.reply("big", llm_id=llm.id,
                           generation=lpb.GenerationConfig(max_output_tokens=100_000))
        caps = [_cap_of("openai")(r.body) for r in sim.requests]
        assert caps == [None, 100_000]


def test_every_limit_is_a_setting_with_bounds() -> None:
    from server.config import ConfigError, load

    names = ("max_concurrent_streams", "max_request_bytes", "max_message_bytes",
             "max_messages", "max_upstream_event_bytes", "max_output_tokens", "turn_timeout_s",
             "first_token_timeout_s", "between_chunks_timeout_s", "connect_timeout_s",
             "grace_period_s")
    env = {f"SWITCHBOARD_{n.upper()}": "7" for n in names}
    env["SWITCHBOARD_MAX_MESSAGE_BYTES"] = "64"
    env["SWITCHBOARD_MAX_REQUEST_BYTES"] = "2048"
    env["SWITCHBOARD_MAX_UPSTREAM_EVENT_BYTES"] = "4096"
    loaded = load(env)
    assert [getattr(loaded, n) for n in names] == [
        7, 2048, 64, 7, 4096, 7, 7.0, 7.0, 7.0, 7.0, 7.0]
    with pytest.raises(ConfigError, match="max_concurrent_streams"):
        load({"SWITCHBOARD_MAX_CONCURRENT_STREAMS": "0"})

