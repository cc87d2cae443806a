"""Issue 8: Prometheus ``/metrics`` and OpenTelemetry spans after real traffic."""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator
from pathlib import Path

import grpc
import pytest
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode

from server.simulator import Behavior, Fault, FaultKind, Simulator
from tests.http_support import Door, running_door, scrape, value
from tests.support import create_llm, endpoint

TEXT = "one two three four five six seven eight"


@pytest.fixture
async def door(tmp_path: Path) -> AsyncIterator[Door]:
    async with running_door(tmp_path) as d:
        yield d


@pytest.fixture
async def down_and_up() -> AsyncIterator[tuple[Simulator, Simulator]]:
    async with Simulator("openai", Behavior(fault=Fault(FaultKind.UNAVAILABLE))) as down, \
            Simulator("openai", Behavior(text=TEXT, reasoning="thinking it over")) as up:
        yield down, up


async def test_turns_failovers_and_endpoint_latency_series(
        door: Door, down_and_up: tuple[Simulator, Simulator]) -> None:
    down, up = down_and_up
    llm = await create_llm(door.grpc, endpoint(down, priority=0, label="down"),
                           endpoint(up, priority=1, label="up"))
    a, b = (e.id for e in llm.endpoints)
    reply = await door.grpc.reply("hi", llm_id=llm.id)  # a 503s, b answers
    assert reply.complete and reply.endpoint_id == b
    await door.openai.chat.completions.create(model=llm.id, messages=[
        {"role": "user", "content": "hi"}])

    m = await scrape(door.metrics_url)
    model = {"switchboard_llm_id": llm.id, "switchboard_llm": "test-llm"}
    assert value(m, "switchboard_turns_total", edge="grpc", outcome="ok", **model) == 1
    assert value(m, "switchboard_turns_total", edge="http", outcome="ok", **model) == 1
    assert value(m, "switchboard_failovers_total", endpoint=a, phase="before_first_token",
                 **model) >= 1
    assert value(m, "switchboard_attempts_total", endpoint=a, outcome="server_error",
                 gen_ai_provider_name="openai", endpoint_label="down",
                 gen_ai_request_model="sim-model", **model) >= 1
    assert value(m, "switchboard_attempts_total", endpoint=b, outcome="ok", **model) == 2
    assert value(m, "gen_ai_server_time_to_first_token_seconds_count", endpoint=b, **model) == 2
    assert value(m, "gen_ai_server_time_to_first_token_seconds_count", endpoint=a, **model) == 0
    assert value(m, "gen_ai_server_time_per_output_token_seconds_count", endpoint=b,
                 **model) == 2
    assert value(m, "gen_ai_client_token_usage_count", endpoint=b, gen_ai_token_type="output",
                 **model) == 2
    assert value(m, "gen_ai_client_token_usage_sum", endpoint=b, gen_ai_token_type="output",
                 **model) > 0
    assert value(m, "switchboard_turn_time_to_first_token_seconds_count", edge="http",
                 **model) == 1
    assert value(m, "gen_ai_server_request_duration_seconds_count", edge="grpc", error_type="",
                 **model) == 1
    assert value(m, "switchboard_failovers_total", endpoint_label="down",
                 gen_ai_request_model="sim-model", phase="before_first_token", **model) >= 1
    assert value(m, "gen_ai_server_time_to_first_token_seconds_count", endpoint_label="up",
                 gen_ai_request_model="sim-model", **model) == 2
    assert not [name for name, _ in m if name.endswith("_created")]
    for endpoint_id, label in ((a, "down"), (b, "up")):
        assert value(m, "switchboard_circuit_state", endpoint=endpoint_id, state="closed",
                     endpoint_label=label, gen_ai_request_model="sim-model", **model) == 1
        assert value(m, "switchboard_circuit_state", endpoint=endpoint_id, state="open") == 0
    assert ("switchboard_probes_sent_total", frozenset()) in m
    assert value(m, "switchboard_turns_in_flight") == 0
    assert value(m, "http_server_request_duration_seconds_count", http_route="/v1/chat/completions",
                 http_request_method="POST", http_response_status_code="200") == 1


async def test_failed_turns_count_by_outcome_and_grpc_calls_by_code(door: Door) -> None:
    async with Simulator("openai", Behavior(fault=Fault(FaultKind.UNAVAILABLE))) as down:
        llm = await create_llm(door.grpc, endpoint(down))
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await door.grpc.reply("hi", llm_id=llm.id)
        assert caught.value.code() is grpc.StatusCode.UNAVAILABLE
        with pytest.raises(grpc.aio.AioRpcError):
            await door.grpc.reply("hi", llm_id="llm_unknown")
    m = await scrape(door.metrics_url)
    assert value(m, "switchboard_turns_total", switchboard_llm_id=llm.id, edge="grpc",
                 outcome="unavailable") == 1
    calls = "rpc_server_call_duration_seconds_count"
    converse = "switchboard.v1.Conversations/Converse"
    assert value(m, calls, rpc_system_name="grpc", rpc_method=converse,
                 rpc_response_status_code="UNAVAILABLE") == 1
    assert value(m, calls, rpc_method=converse, rpc_response_status_code="NOT_FOUND") == 1
    assert value(m, calls, rpc_method="switchboard.v1.LlmRegistry/CreateLlm",
                 rpc_response_status_code="OK") == 1
    assert value(m, "switchboard_grpc_server_streams_in_flight", rpc_method=converse) == 0


async def test_circuit_opens_in_the_gauge(door: Door) -> None:
    async with Simulator("openai", Behavior(fault=Fault(FaultKind.UNAVAILABLE))) as down:
        llm = await create_llm(door.grpc, endpoint(down))
        for _ in range(6):
            with pytest.raises(grpc.aio.AioRpcError):
                await door.grpc.reply("hi", llm_id=llm.id)
    m = await scrape(door.metrics_url)
    assert value(m, "switchboard_circuit_state", endpoint=llm.endpoints[0].id,
                 state="open") == 1


async def test_hedges_are_counted(door: Door) -> None:
    base = Behavior(text=TEXT, chunks=2)
    async with Simulator("openai", dataclasses.replace(base, ttft_s=0.02)) as a, \
            Simulator("openai", dataclasses.replace(base, ttft_s=0.06)) as b:
        llm = await create_llm(door.grpc, endpoint(a), endpoint(b))
        for _ in range(12):
            await door.grpc.reply("hi", llm_id=llm.id)
        a.behavior = dataclasses.replace(base, ttft_s=5.0)
        reply = await door.grpc.reply("hi", llm_id=llm.id)
        assert reply.endpoint_id == llm.endpoints[1].id
    m = await scrape(door.metrics_url)
    assert value(m, "switchboard_hedges_total", switchboard_llm_id=llm.id,
                 endpoint=llm.endpoints[1].id) == 1
    assert value(m, "switchboard_attempts_total", endpoint=llm.endpoints[0].id,
                 outcome="cancelled") >= 1


async def test_a_turn_is_a_span_with_one_child_span_per_attempt(
        tmp_path: Path, down_and_up: tuple[Simulator, Simulator]) -> None:
    down, up = down_and_up
    exporter = InMemorySpanExporter()
    async with running_door(tmp_path, switchboard={"span_exporter": exporter}) as door:
        llm = await create_llm(door.grpc, endpoint(down, priority=0), endpoint(up, priority=1))
        raw = await door.openai.chat.completions.with_raw_response.create(
            model=llm.id, messages=[{"role": "user", "content": "hi"}])
        turn_id = raw.headers["x-switchboard-turn-id"]
    spans = exporter.get_finished_spans()
    turns = [s for s in spans if s.name == f"chat {llm.id}"]
    assert len(turns) == 1
    turn = turns[0]
    assert turn.attributes is not None
    assert turn.attributes["gen_ai.operation.name"] == "chat"
    assert turn.attributes["gen_ai.request.model"] == llm.id
    assert turn.attributes["switchboard.turn.id"] == turn_id
    assert turn.attributes["switchboard.outcome"] == "ok"
    assert turn.status.status_code is not StatusCode.ERROR
    children = sorted((s for s in spans if s.parent is not None
                       and s.parent.span_id == turn.context.span_id),
                      key=lambda s: s.start_time or 0)
    assert len(children) >= 2
    assert all(c.kind is SpanKind.CLIENT and c.context.trace_id == turn.context.trace_id
               for c in children)
    failed, served = children[0], children[-1]
    assert failed.attributes is not None and served.attributes is not None
    assert failed.attributes["switchboard.endpoint.id"] == llm.endpoints[0].id
    assert failed.attributes["error.type"] == "server_error"
    assert failed.status.status_code is StatusCode.ERROR
    assert served.attributes["switchboard.endpoint.id"] == llm.endpoints[1].id
    assert served.attributes["gen_ai.request.model"] == "sim-model"
    assert served.attributes["gen_ai.provider.name"] == "openai"
    assert served.attributes["server.address"] == "127.0.0.1"
    assert served.attributes["switchboard.route.reason"] == "failover"
    assert served.attributes["gen_ai.usage.output_tokens"] > 0  # type: ignore[operator]
    assert served.attributes["gen_ai.response.finish_reasons"] == ("stop",)
    assert "gen_ai.response.time_to_first_chunk" in served.attributes


async def test_a_caller_leaving_mid_stream_frees_the_attempt(door: Door) -> None:
    words = " ".join(f"w{i}" for i in range(50))
    async with Simulator("openai", Behavior(text=words, chunks=50, chunk_gap_s=0.05)) as sim:
        llm = await create_llm(door.grpc, endpoint(sim))
        endpoint_id = llm.endpoints[0].id
        stream = await door.openai.chat.completions.create(
            model=llm.id, messages=[{"role": "user", "content": "hi"}], stream=True)
        await anext(aiter(stream))
        await stream.close()  # the caller goes away after the first chunk
        await sim.wait_for_disconnect(timeout=5.0)  # the upstream request was closed too
        assert door.app.router is not None
        assert door.app.router.snapshot(endpoint_id).in_flight == 0
    m = await scrape(door.metrics_url)
    assert value(m, "switchboard_attempts_total", endpoint=endpoint_id,
                 outcome="cancelled") == 1
    for _ in range(50):  # the turn is counted when its handler has unwound
        if value(m, "switchboard_turns_total", outcome="cancelled") == 1:
            break
        m = await scrape(door.metrics_url)
    assert value(m, "switchboard_turns_total", switchboard_llm_id=llm.id, edge="http",
                 outcome="cancelled") == 1
