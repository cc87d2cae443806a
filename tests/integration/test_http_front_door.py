"""Issue 8: the OpenAI-compatible front door, driven by the official ``openai`` SDK against a
real Switchboard and simulated upstreams on loopback."""

from __future__ import annotations

import asyncio
import dataclasses
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import openai
import pytest
from openai.types.chat import (
    ChatCompletionFunctionToolParam,
    ChatCompletionMessageParam,
    ChatCompletionNamedToolChoiceParam,
)

from server.simulator import Behavior, Fault, FaultKind, Simulator
from tests.http_support import Door, running_door
from tests.support import API_KEY, create_llm, endpoint

TEXT = "The capital of France is Paris."
REASONING = "The user asks about France. Its capital is Paris."
WEATHER_TOOL: ChatCompletionFunctionToolParam = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Current weather for a city.",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}},
                       "required": ["city"]},
    },
}


@pytest.fixture
async def door(tmp_path: Path) -> AsyncIterator[Door]:
    async with running_door(tmp_path) as d:
        yield d


@pytest.fixture
async def reasoner() -> AsyncIterator[Simulator]:
    async with Simulator("openai", Behavior(text=TEXT, reasoning=REASONING)) as sim:
        yield sim


def extra(model: Any, name: str) -> Any:
    """A field OpenAI's types do not declare (``reasoning_content``): pydantic keeps it."""
    return (model.model_extra or {}).get(name)


async def test_streaming_sends_reasoning_apart_then_text_usage_and_done(
        door: Door, reasoner: Simulator) -> None:
    llm = await create_llm(door.grpc, endpoint(reasoner))
    raw = await door.openai.chat.completions.with_raw_response.create(
        model=llm.id, messages=[{"role": "user", "content": "Capital of France?"}],
        stream=True, stream_options={"include_usage": True})
    assert raw.headers["x-switchboard-endpoint"] == llm.endpoints[0].id
    assert raw.headers["x-switchboard-attempts"] == "1"
    assert raw.headers["x-switchboard-turn-id"].startswith("turn_")
    assert raw.headers["content-type"].startswith("text/event-stream")
    chunks = [c async for c in raw.parse()]
    assert chunks[0].choices[0].delta.role == "assistant"
    deltas = [c.choices[0].delta for c in chunks if c.choices]
    reasoning = "".join(extra(d, "reasoning_content") or "" for d in deltas)
    text = "".join(d.content or "" for d in deltas)
    assert reasoning == REASONING and text == TEXT
    first_text = next(i for i, d in enumerate(deltas) if d.content)
    assert all(not extra(d, "reasoning_content") for d in deltas[first_text:])
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == "stop"
    assert chunks[-1].choices == [] and chunks[-1].usage is not None
    assert chunks[-1].usage.completion_tokens > 0
    assert {c.id for c in chunks} == {"chatcmpl-" + raw.headers["x-switchboard-turn-id"][5:]}
    assert {c.model for c in chunks} == {"sim-model"}  # the serving endpoint's model
    assert raw.headers["x-switchboard-llm"] == llm.id


async def test_stream_is_openai_wire_format(door: Door, reasoner: Simulator) -> None:
    llm = await create_llm(door.grpc, endpoint(reasoner))
    body = {"model": llm.id, "stream": True, "messages": [{"role": "user", "content": "Hi"}]}
    async with aiohttp.ClientSession() as s, s.post(
            f"{door.base_url}/v1/chat/completions", json=body,
            headers={"Authorization": f"Bearer {API_KEY}"}) as r:
        raw = (await r.read()).decode()
    events = raw.split("\n\n")
    assert events[-2:] == ["data: [DONE]", ""]
    first = json.loads(events[0].removeprefix("data: "))
    assert first["object"] == "chat.completion.chunk"
    assert first["choices"] == [{"index": 0, "delta": {"role": "assistant", "content": ""},
                                 "logprobs": None, "finish_reason": None}]
    assert "usage" not in first  # only with stream_options.include_usage
    last = json.loads(events[-3].removeprefix("data: "))
    assert last["choices"][0]["delta"] == {} and last["choices"][0]["finish_reason"] == "stop"


async def test_non_streaming_returns_one_completion_with_reasoning(
        door: Door, reasoner: Simulator) -> None:
    llm = await create_llm(door.grpc, endpoint(reasoner))
    raw = await door.openai.chat.completions.with_raw_response.create(
        model=llm.id, messages=[{"role": "system", "content": "Be brief."},
                                {"role": "user", "content": "Capital of France?"}],
        temperature=0.2, top_p=0.9, max_completion_tokens=64, stop=["\n\n"], seed=7,
        reasoning_effort="low")
    completion = raw.parse()
    assert completion.object == "chat.completion" and completion.model == "sim-model"
    message = completion.choices[0].message
    assert message.content == TEXT
    assert extra(message, "reasoning_content") == REASONING
    assert completion.choices[0].finish_reason == "stop"
    assert completion.usage is not None and completion.usage.prompt_tokens > 0
    assert raw.headers["x-switchboard-endpoint"] == llm.endpoints[0].id
    assert raw.headers["x-switchboard-attempts"] == "1"
    sent = reasoner.requests[-1].body
    assert sent["messages"][0] == {"role": "system", "content": "Be brief."}
    assert sent["temperature"] == 0.2 and sent["top_p"] == 0.9 and sent["seed"] == 7
    assert sent["stop"] == ["\n\n"] and sent["reasoning_effort"] == "low"
    assert 64 in (sent.get("max_tokens"), sent.get("max_completion_tokens"))


async def test_tool_calls_stream_by_index_and_round_trip(door: Door) -> None:
    call = ("get_weather", '{"city": "Paris"}')
    async with Simulator("openai", Behavior(tool_calls=[call])) as sim:
        llm = await create_llm(door.grpc, endpoint(sim))
        question: ChatCompletionMessageParam = {"role": "user", "content": [
            {"type": "text", "text": "Weather where this photo was taken?"},
            {"type": "image_url", "image_url": {"url": "https://example.com/paris.jpg"}}]}
        stream = await door.openai.chat.completions.create(
            model=llm.id, messages=[question], tools=[WEATHER_TOOL], tool_choice="auto",
            stream=True)
        calls: dict[int, dict[str, str]] = {}
        finish = None
        async for chunk in stream:
            for tc in chunk.choices[0].delta.tool_calls or ():
                entry = calls.setdefault(tc.index, {"id": "", "name": "", "arguments": ""})
                entry["id"] += tc.id or ""
                if tc.function is not None:
                    entry["name"] += tc.function.name or ""
                    entry["arguments"] += tc.function.arguments or ""
            finish = chunk.choices[0].finish_reason or finish
        assert finish == "tool_calls" and list(calls) == [0]
        assert calls[0]["name"] == "get_weather" and calls[0]["id"]
        assert json.loads(calls[0]["arguments"]) == {"city": "Paris"}
        sent = sim.requests[-1].body
        assert sent["tools"][0]["function"]["name"] == "get_weather"
        assert sent["messages"][0]["content"][1] == {
            "type": "image_url", "image_url": {"url": "https://example.com/paris.jpg"}}

        sim.behavior = Behavior(text="It is sunny in Paris.")
        completion = await door.openai.chat.completions.create(model=llm.id, messages=[
            question,
            {"role": "assistant", "content": None, "tool_calls": [
                {"id": calls[0]["id"], "type": "function",
                 "function": {"name": "get_weather", "arguments": calls[0]["arguments"]}}]},
            {"role": "tool", "tool_call_id": calls[0]["id"], "content": "sunny, 24 C"},
        ], tools=[WEATHER_TOOL])
        assert completion.choices[0].message.content == "It is sunny in Paris."
        sent = sim.requests[-1].body
        assert sent["messages"][1]["tool_calls"][0]["id"] == calls[0]["id"]
        assert sent["messages"][2] == {"role": "tool", "tool_call_id": calls[0]["id"],
                                       "content": "sunny, 24 C"}


async def test_non_streaming_tool_call(door: Door) -> None:
    async with Simulator("openai", Behavior(tool_calls=[("get_weather", '{"city":"Oslo"}')])
                         ) as sim:
        llm = await create_llm(door.grpc, endpoint(sim))
        choice: ChatCompletionNamedToolChoiceParam = {
            "type": "function", "function": {"name": "get_weather"}}
        completion = await door.openai.chat.completions.create(
            model=llm.id, messages=[{"role": "user", "content": "Weather in Oslo?"}],
            tools=[WEATHER_TOOL], tool_choice=choice)
        answer = completion.choices[0]
        assert answer.finish_reason == "tool_calls" and answer.message.content is None
        assert answer.message.tool_calls is not None
        call = answer.message.tool_calls[0]
        assert call.type == "function"
        fn = call.function
        assert fn.name == "get_weather" and json.loads(fn.arguments) == {"city": "Oslo"}
        assert sim.requests[-1].body["tool_choice"] == {
            "type": "function", "function": {"name": "get_weather"}}


async def test_models_lists_the_callers_llms(door: Door, reasoner: Simulator) -> None:
    a = await create_llm(door.grpc, endpoint(reasoner), name="first")
    b = await create_llm(door.grpc, endpoint(reasoner), name="second")
    models = [m async for m in door.openai.models.list()]
    assert {m.id for m in models} == {a.id, b.id}
    assert all(m.object == "model" and m.created > 0 for m in models)
    one = await door.openai.models.retrieve(a.id)
    assert one.id == a.id and extra(one, "display_name") == "first"


async def test_a_bad_key_is_401(door: Door, reasoner: Simulator) -> None:
    llm = await create_llm(door.grpc, endpoint(reasoner))
    bad = openai.AsyncOpenAI(api_key="sk-not-a-switchboard-key",
                             base_url=f"{door.base_url}/v1", max_retries=0)
    with pytest.raises(openai.AuthenticationError) as caught:
        await bad.chat.completions.create(model=llm.id, messages=[{"role": "user",
                                                                   "content": "hi"}])
    await bad.close()
    assert caught.value.status_code == 401
    assert caught.value.code == "invalid_api_key"
    assert "sk-not" not in caught.value.message
    assert caught.value.response.headers["x-request-id"]
    assert reasoner.requests == []


async def test_an_unknown_model_is_404(door: Door) -> None:
    with pytest.raises(openai.NotFoundError) as caught:
        await door.openai.chat.completions.create(
            model="llm_does_not_exist", messages=[{"role": "user", "content": "hi"}],
            stream=True)
    assert caught.value.code == "model_not_found" and caught.value.param == "model"


async def test_unsupported_fields_are_400_with_the_param(door: Door, reasoner: Simulator
                                                         ) -> None:
    llm = await create_llm(door.grpc, endpoint(reasoner))
    with pytest.raises(openai.BadRequestError) as caught:
        await door.openai.chat.completions.create(
            model=llm.id, messages=[{"role": "user", "content": "hi"}], n=2)
    assert caught.value.param == "n"
    assert reasoner.requests == []


async def test_failover_before_output_shows_in_the_headers(door: Door) -> None:
    async with Simulator("openai", Behavior(fault=Fault(FaultKind.UNAVAILABLE))) as down, \
            Simulator("openai", Behavior(text=TEXT)) as up:
        for stream in (False, True):  # a new LLM each time: fresh endpoints, same order
            llm = await create_llm(door.grpc, endpoint(down, priority=0),
                                   endpoint(up, priority=1))
            raw = await door.openai.chat.completions.with_raw_response.create(
                model=llm.id, messages=[{"role": "user", "content": "hi"}], stream=stream)
            assert raw.headers["x-switchboard-endpoint"] == llm.endpoints[1].id
            assert raw.headers["x-switchboard-attempts"] == "2"
            parsed: Any = raw.parse()
            if stream:
                text = "".join([c.choices[0].delta.content or "" async for c in parsed
                                if c.choices])
            else:
                text = parsed.choices[0].message.content
            assert text == TEXT


async def test_model_names_the_fallback_that_served_and_usage_is_its_own(door: Door) -> None:
    """Issue 19: ``model`` was the LLM id in every response, so an OpenAI SDK caller could not
    see that a fallback served the turn (a third-party failover suite scores that a fail)."""
    async with Simulator("openai", Behavior(fault=Fault(FaultKind.UNAVAILABLE))) as down, \
            Simulator("openai", Behavior(text=TEXT)) as up:
        llm = await create_llm(door.grpc, endpoint(down, model="primary-model", priority=0),
                               endpoint(up, model="fallback-model", priority=1))
        raw = await door.openai.chat.completions.with_raw_response.create(
            model=llm.id, messages=[{"role": "user", "content": "hi"}])
        completion = raw.parse()
        assert completion.model == "fallback-model"
        assert raw.headers["x-switchboard-llm"] == llm.id
        assert completion.usage is not None
        assert completion.usage.completion_tokens == (len(TEXT) + 3) // 4  # the fallback's
        stream = await door.openai.chat.completions.create(
            model=llm.id, messages=[{"role": "user", "content": "hi"}], stream=True,
            stream_options={"include_usage": True})
        chunks = [c async for c in stream]
        assert {c.model for c in chunks} == {"fallback-model"}


async def test_everything_down_before_output_is_a_real_503(door: Door) -> None:
    async with Simulator("openai", Behavior(fault=Fault(FaultKind.UNAVAILABLE))) as down:
        llm = await create_llm(door.grpc, endpoint(down))
        with pytest.raises(openai.InternalServerError) as caught:
            await door.openai.chat.completions.create(
                model=llm.id, messages=[{"role": "user", "content": "hi"}], stream=True)
        assert caught.value.status_code == 503
        assert caught.value.code == "upstream_unavailable"
        assert int(caught.value.response.headers["retry-after"]) >= 1


async def test_a_stream_broken_after_output_ends_with_an_error_not_a_restart(door: Door
                                                                             ) -> None:
    words = " ".join(f"w{i}" for i in range(20))
    base = Behavior(text=words, chunks=20)
    async with Simulator("openai", dataclasses.replace(
            base, fault=Fault(FaultKind.CUT_AFTER, chunk=5))) as a, \
            Simulator("openai", base) as b:
        llm = await create_llm(door.grpc, endpoint(a, priority=0), endpoint(b, priority=1))
        received = ""
        stream = await door.openai.chat.completions.create(
            model=llm.id, messages=[{"role": "user", "content": "hi"}], stream=True)
        with pytest.raises(openai.APIError) as caught:
            async for chunk in stream:
                received += chunk.choices[0].delta.content or ""
        assert received and words.startswith(received) and received != words
        assert isinstance(caught.value.body, dict)
        assert caught.value.body["code"] == "upstream_stream_broken"
        # Issue 19: the error says why it was not restarted (b was there all along).
        assert "cannot take back text" in caught.value.message, caught.value.message
        assert "no other endpoint is left" not in caught.value.message
        assert b.requests == []  # a streamed answer is never restarted elsewhere

        completion = await door.openai.chat.completions.create(
            model=llm.id, messages=[{"role": "user", "content": "hi"}])
        assert completion.choices[0].message.content == words  # buffered: restarted on b


async def test_hedge_winner_is_the_endpoint_in_the_headers(door: Door) -> None:
    base = Behavior(text=TEXT, chunks=2)
    async with Simulator("openai", dataclasses.replace(base, ttft_s=0.02)) as a, \
            Simulator("openai", dataclasses.replace(base, ttft_s=0.06)) as b:
        llm = await create_llm(door.grpc, endpoint(a), endpoint(b))
        for _ in range(12):  # latency samples, so that the hedge delay is short
            await door.openai.chat.completions.create(
                model=llm.id, messages=[{"role": "user", "content": "hi"}])
        a.behavior = dataclasses.replace(base, ttft_s=5.0)
        raw = await door.openai.chat.completions.with_raw_response.create(
            model=llm.id, messages=[{"role": "user", "content": "hi"}], stream=True)
        assert raw.headers["x-switchboard-endpoint"] == llm.endpoints[1].id
        assert raw.headers["x-switchboard-attempts"] == "2"
        text = "".join([c.choices[0].delta.content or "" async for c in raw.parse()
                        if c.choices])
        assert text == TEXT


async def test_http_errors_use_openais_shape(tmp_path: Path) -> None:
    async with running_door(tmp_path, max_request_bytes=4096) as door, \
            aiohttp.ClientSession(headers={"Authorization": f"Bearer {API_KEY}"}) as s:
        async with s.get(f"{door.base_url}/v1/nope") as r:
            assert r.status == 404 and r.headers["x-request-id"]
            assert (await r.json())["error"]["code"] == "not_found"
        async with s.post(f"{door.base_url}/v1/chat/completions", data=b"{" * 5000) as r:
            assert r.status == 413
            assert (await r.json())["error"]["code"] == "request_too_large"
        async with s.post(f"{door.base_url}/v1/chat/completions", data=b"{oops") as r:
            assert r.status == 400
            assert (await r.json())["error"]["code"] == "invalid_json"
        async with s.post(f"{door.base_url}/v1/chat/completions", json={
                "model": "x", "messages": [{"role": "robot", "content": "hi"}]}) as r:
            error = (await r.json())["error"]
            assert r.status == 400 and error["param"] == "messages[0].role"
            assert error["type"] == "invalid_request_error"


async def test_drain_finishes_open_streams_and_refuses_new_requests(tmp_path: Path) -> None:
    words = " ".join(f"w{i}" for i in range(10))
    async with running_door(tmp_path) as door, \
            Simulator("openai", Behavior(text=words, chunks=10, chunk_gap_s=0.05)) as sim:
        llm = await create_llm(door.grpc, endpoint(sim))
        stream = await door.openai.chat.completions.create(
            model=llm.id, messages=[{"role": "user", "content": "hi"}], stream=True)
        first = await anext(aiter(stream))
        stopping = asyncio.create_task(door.app.stop(grace_s=5.0))  # runs before the next
        with pytest.raises((openai.APIConnectionError, openai.InternalServerError)):
            await door.openai.chat.completions.create(
                model=llm.id, messages=[{"role": "user", "content": "hi"}])
        rest = [c async for c in stream]
        text = "".join(c.choices[0].delta.content or "" for c in [first, *rest] if c.choices)
        assert text == words
        await stopping
