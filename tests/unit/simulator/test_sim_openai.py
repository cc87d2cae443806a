"""The OpenAI wire format, read back with plain aiohttp."""

from __future__ import annotations

import json

import aiohttp
import pytest

from server.simulator import DEFAULT_TEXT, Behavior, ReasoningDialect, Simulator, Usage
from tests.unit.simulator._sim_testkit import chat, openai_text


async def test_text_stream_framing_matches_openai(session: aiohttp.ClientSession) -> None:
    async with Simulator("openai", Behavior(text="The capital is Paris.")) as sim:
        got = await chat(session, sim, "openai", include_usage=True)

    assert sim.base_url == f"http://127.0.0.1:{sim.port}/v1"
    assert got.status == 200
    assert got.headers["content-type"] == "text/event-stream; charset=utf-8"
    assert got.headers["x-request-id"].startswith("req_")
    assert b"\r" not in got.raw and got.raw.endswith(b"data: [DONE]\n\n")
    assert all(e.startswith(b"data: ") for e in got.raw.split(b"\n\n") if e)
    chunks = got.payloads
    first, *middle, finish, usage = chunks
    assert first["choices"][0]["delta"] == {"role": "assistant", "content": "", "refusal": None}
    assert all("role" not in c["choices"][0]["delta"] for c in middle)
    assert [c["choices"][0]["delta"]["content"] for c in middle] == [
        "The",
        " capital",
        " is",
        " Paris.",
    ]
    assert {c["object"] for c in chunks} == {"chat.completion.chunk"}
    assert len({c["id"] for c in chunks}) == 1 and first["id"].startswith("chatcmpl-")
    assert finish["choices"] == [
        {"index": 0, "delta": {}, "logprobs": None, "finish_reason": "stop"}
    ]
    assert all(c["usage"] is None for c in chunks[:-1])
    assert usage["choices"] == []
    assert usage["usage"]["total_tokens"] == (
        usage["usage"]["prompt_tokens"] + usage["usage"]["completion_tokens"]
    )


async def test_usage_chunk_only_when_requested(session: aiohttp.ClientSession) -> None:
    async with Simulator("openai") as sim:
        got = await chat(session, sim, "openai", include_usage=False)
    assert all("usage" not in c for c in got.payloads)
    assert got.payloads[-1]["choices"][0]["finish_reason"] == "stop"
    assert openai_text(got.payloads) == DEFAULT_TEXT


async def test_tool_calls_stream_as_fragments(session: aiohttp.ClientSession) -> None:
    calls = [("get_weather", '{"location": "Boston"}'), ("get_time", '{"tz": "Europe/Paris"}')]
    async with Simulator("openai", Behavior(tool_calls=calls)) as sim:
        got = await chat(session, sim, "openai")

    chunks = got.payloads
    assert chunks[0]["choices"][0]["delta"] == {
        "role": "assistant",
        "content": None,
        "refusal": None,
    }
    fragments = [c["choices"][0]["delta"]["tool_calls"][0] for c in chunks[1:-1]]
    headers = [f for f in fragments if "id" in f]
    assert [h["index"] for h in headers] == [0, 1]
    assert headers[0]["function"] == {"name": "get_weather", "arguments": ""}
    assert headers[0]["type"] == "function" and headers[0]["id"].startswith("call_")
    for index, (_, arguments) in enumerate(calls):
        pieces = [f["function"]["arguments"] for f in fragments if f["index"] == index]
        assert "".join(pieces) == arguments
        assert len(pieces) > 3  # cut mid-token, not one piece
    later = [f for f in fragments if "id" not in f]
    assert all(set(f) == {"index", "function"} for f in later)
    assert chunks[-1]["choices"][0]["finish_reason"] == "tool_calls"


@pytest.mark.parametrize(
    ("dialect", "key"),
    [
        (ReasoningDialect.REASONING_CONTENT, "reasoning_content"),
        (ReasoningDialect.REASONING, "reasoning"),
    ],
)
async def test_reasoning_comes_before_text(
    session: aiohttp.ClientSession, dialect: ReasoningDialect, key: str
) -> None:
    behavior = Behavior(text="Four.", reasoning="Two plus two is four.", reasoning_dialect=dialect)
    async with Simulator("openai", behavior) as sim:
        got = await chat(session, sim, "openai")

    deltas = [c["choices"][0]["delta"] for c in got.payloads[1:-1]]
    kinds = ["r" if d.get(key) else "t" for d in deltas]
    assert kinds == sorted(kinds)  # all reasoning, then all text
    assert openai_text(got.payloads, key) == "Two plus two is four."
    assert openai_text(got.payloads) == "Four."


async def test_reasoning_as_think_tags(session: aiohttp.ClientSession) -> None:
    behavior = Behavior(
        text="Four.", reasoning="2+2=4", reasoning_dialect=ReasoningDialect.THINK_TAGS
    )
    async with Simulator("openai", behavior) as sim:
        got = await chat(session, sim, "openai")
    assert openai_text(got.payloads) == "<think>\n2+2=4\n</think>\n\nFour."


async def test_echo_answers_the_last_user_message(session: aiohttp.ClientSession) -> None:
    async with Simulator("openai", Behavior(echo=True)) as sim:
        first = await chat(session, sim, "openai", prompt="request one")
        second = await chat(session, sim, "openai", prompt="request two")
    assert openai_text(first.payloads) == "request one"
    assert openai_text(second.payloads) == "request two"
    assert [r.answer_text for r in sim.requests] == ["request one", "request two"]


async def test_chunks_setting_controls_the_split(session: aiohttp.ClientSession) -> None:
    async with Simulator("openai", Behavior(text="abcdefghij", chunks=5)) as sim:
        got = await chat(session, sim, "openai")
    pieces = [c["choices"][0]["delta"]["content"] for c in got.payloads[1:-1]]
    assert pieces == ["ab", "cd", "ef", "gh", "ij"]


async def test_non_streaming_request_gets_a_completion(session: aiohttp.ClientSession) -> None:
    usage = Usage(input_tokens=10, output_tokens=5, reasoning_tokens=3)
    async with Simulator("openai", Behavior(text="Hi.", usage=usage)) as sim:
        got = await chat(session, sim, "openai", stream=False)
    body = got.json()
    assert got.headers["content-type"] == "application/json"
    assert body["object"] == "chat.completion"
    assert body["choices"][0]["message"]["content"] == "Hi."
    assert body["usage"]["completion_tokens"] == 8
    assert body["usage"]["completion_tokens_details"]["reasoning_tokens"] == 3


async def test_models_list_and_unknown_model(session: aiohttp.ClientSession) -> None:
    async with Simulator("openai", known_models=["gpt-4o-mini"]) as sim:
        async with session.get(sim.base_url + "/models") as response:
            models = await response.json()
        got = await chat(session, sim, "openai", model="gpt-5-nope")
    assert [m["id"] for m in models["data"]] == ["gpt-4o-mini"]
    assert got.status == 404
    error = json.loads(got.raw)["error"]
    assert error["code"] == "model_not_found" and error["type"] == "invalid_request_error"
    assert "gpt-5-nope" in error["message"]


async def test_wrong_and_missing_key(session: aiohttp.ClientSession) -> None:
    async with Simulator("openai", api_key="sk-right-0123456789") as sim:
        wrong = await chat(session, sim, "openai", key="sk-wrong-0123456789")
        missing = await chat(session, sim, "openai")
        right = await chat(session, sim, "openai", key="sk-right-0123456789")
    assert wrong.status == 401
    assert wrong.raw.startswith(b'{\n    "error": {\n')  # OpenAI's 4-space pretty print
    assert wrong.json()["error"]["code"] == "invalid_api_key"
    assert "sk-wrong-0123456789" not in wrong.raw.decode()  # the key is masked
    assert missing.status == 401 and missing.json()["error"]["code"] is None
    assert right.status == 200
    assert [r.status for r in sim.requests] == [401, 401, 200]


async def test_bad_body_and_unknown_path(session: aiohttp.ClientSession) -> None:
    async with Simulator("openai") as sim:
        async with session.post(sim.base_url + "/chat/completions", json={"model": "m"}) as r:
            missing = (r.status, await r.json())
        async with session.post(sim.base_url + "/chat/complete", json={}) as r:
            unknown = (r.status, await r.json())
    assert missing[0] == 400 and missing[1]["error"]["param"] == "messages"
    assert unknown == (
        404,
        {
            "error": {
                "message": "Invalid URL (POST /v1/chat/complete)",
                "type": "invalid_request_error",
                "param": None,
                "code": None,
            }
        },
    )
