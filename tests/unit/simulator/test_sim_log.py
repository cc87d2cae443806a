"""The request log: what arrived, when bytes went out, and when clients left."""

from __future__ import annotations

import asyncio
import time

import aiohttp
import pytest

from server.simulator import Behavior, Fault, FaultKind, Simulator
from tests.unit.simulator._sim_testkit import chat, chat_request, openai_text, parse_sse

LONG = " ".join(f"w{i}" for i in range(200))


async def _read_until_events(response: aiohttp.ClientResponse, count: int) -> None:
    raw = b""
    async for piece in response.content.iter_any():
        raw += piece
        if len(parse_sse(raw)) >= count:
            return
    raise AssertionError("stream ended early")


async def test_records_the_request_and_response_timeline(session: aiohttp.ClientSession) -> None:
    async with Simulator("azure_openai", Behavior(ttft_s=0.05, chunk_gap_s=0.01)) as sim:
        got = await chat(session, sim, "azure_openai", key="k-123", prompt="hello log")
        ended = await sim.wait_for_end(0)

    assert got.status == 200 and ended is sim.requests[0]
    record = sim.requests[0]
    assert (
        record.method == "POST" and record.path == "/openai/deployments/test-model/chat/completions"
    )
    assert record.query == {"api-version": "2024-10-21"}
    assert record.headers["API-KEY"] == "k-123"  # as received, looked up case-insensitively
    assert record.body["messages"][0]["content"] == "hello log"
    assert record.status == 200 and record.fault is None and not record.disconnected
    assert record.first_byte_at is not None and record.first_chunk_at is not None
    assert record.completed_at is not None
    assert (
        record.received_at <= record.first_byte_at <= record.first_chunk_at <= record.completed_at
    )
    assert record.first_chunk_at - record.received_at >= 0.05  # ttft, after the headers
    assert record.chunks_sent == len(record.answer_text.split())


async def test_client_closing_mid_stream_is_seen_mid_stream(
    session: aiohttp.ClientSession,
) -> None:
    async with Simulator("openai", Behavior(text=LONG, chunk_gap_s=0.02)) as sim:
        url, headers, body = chat_request(sim, "openai")
        response = await session.post(url, json=body, headers=headers)
        await _read_until_events(response, 3)
        response.close()
        closed_at = time.monotonic()
        record = await sim.wait_for_disconnect(timeout=2)

    # Seen while the answer still had seconds to go (not when writing its end), by an event,
    # not a wall-clock bound: the stream would have run 200 chunks 20 ms apart.
    assert record.disconnected_at is not None and record.disconnected_at >= closed_at
    assert record.completed_at is None and 0 < record.chunks_sent < 200


@pytest.mark.parametrize(
    "behavior",
    [
        Behavior(fault=Fault(FaultKind.HANG)),
        Behavior(text=LONG, fault=Fault(FaultKind.STALL_AFTER, chunk=1, seconds=60)),
        Behavior(ttft_s=60),
        Behavior(ttft_s=60, headers_after_ttft=True),
    ],
    ids=["hang", "stall", "ttft", "ttft-before-headers"],
)
async def test_disconnect_while_the_simulator_waits(
    session: aiohttp.ClientSession, behavior: Behavior
) -> None:
    async with Simulator("openai", behavior) as sim:
        url, headers, body = chat_request(sim, "openai")
        client = asyncio.create_task(session.post(url, json=body, headers=headers))
        await sim.wait_for_requests(1)
        client.cancel()
        with pytest.raises(asyncio.CancelledError):
            await client
        cancelled_at = time.monotonic()
        record = await sim.wait_for_disconnect(0, timeout=2)  # it would wait 60 s otherwise

    assert record.disconnected_at is not None and record.disconnected_at >= cancelled_at
    assert record.completed_at is None


async def test_closing_the_simulator_is_not_a_client_disconnect(
    session: aiohttp.ClientSession,
) -> None:
    sim = Simulator("openai", Behavior(fault=Fault(FaultKind.HANG)))
    await sim.start()
    url, headers, body = chat_request(sim, "openai")
    client = asyncio.create_task(session.post(url, json=body, headers=headers))
    await sim.wait_for_requests(1)
    started = time.monotonic()
    await sim.close()
    assert time.monotonic() - started < 1.0
    with pytest.raises(aiohttp.ClientError):
        await client
    assert sim.requests[0].disconnected_at is None


async def test_waiting_for_what_never_happens_times_out() -> None:
    async with Simulator("openai") as sim:
        with pytest.raises(TimeoutError, match="1 request"):
            await sim.wait_for_requests(1, timeout=0.05)
        with pytest.raises(TimeoutError, match="disconnect"):
            await sim.wait_for_disconnect(timeout=0.05)


async def test_behavior_can_be_replaced_between_requests(session: aiohttp.ClientSession) -> None:
    async with Simulator("openai", Behavior(text="first")) as sim:
        first = await chat(session, sim, "openai")
        sim.behavior = Behavior(text="second")
        second = await chat(session, sim, "openai")
    assert (openai_text(first.payloads), openai_text(second.payloads)) == ("first", "second")


async def test_concurrent_streams_each_get_their_own_answer(
    session: aiohttp.ClientSession,
) -> None:
    async with Simulator("openai", Behavior(echo=True, chunks=10, chunk_gap_s=0.001)) as sim:
        prompts = [f"request number {i} please" for i in range(50)]
        results = await asyncio.gather(*(chat(session, sim, "openai", prompt=p) for p in prompts))
    assert [openai_text(r.payloads) for r in results] == prompts
    assert len(sim.requests) == 50 and all(r.completed_at is not None for r in sim.requests)
