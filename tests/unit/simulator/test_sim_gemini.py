"""Gemini's native stream: CRLF events, no [DONE], cumulative usage, whole function calls."""

from __future__ import annotations

import json

import aiohttp

from server.simulator import Behavior, Fault, FaultKind, Simulator, Usage
from tests.unit.simulator._sim_testkit import chat, gemini_text


async def test_text_stream_framing_matches_gemini(session: aiohttp.ClientSession) -> None:
    usage = Usage(input_tokens=15, output_tokens=8)
    behavior = Behavior(text="The capital of France is Paris.", chunks=3, usage=usage)
    async with Simulator("gemini", behavior) as sim:
        got = await chat(session, sim, "gemini", model="gemini-2.5-flash")

    assert sim.base_url == f"http://127.0.0.1:{sim.port}/v1beta"
    assert got.headers["content-type"] == "text/event-stream"
    assert got.headers["content-disposition"] == "attachment"
    frames = got.raw.split(b"\r\n\r\n")
    assert frames[-1] == b"" and all(f.startswith(b"data: {") for f in frames[:-1])
    assert b"\n\n" not in got.raw and b"[DONE]" not in got.raw
    assert b'{"candidates": [{"content": {"parts": [{"text": ' in got.raw  # Google's spacing
    events = got.payloads
    assert len(events) == 3
    counts = [e["usageMetadata"].get("candidatesTokenCount", 0) for e in events]
    assert counts == sorted(counts) and counts[-1] == 8  # cumulative, on every event
    assert all(e["usageMetadata"]["promptTokenCount"] == 15 for e in events)
    assert [("finishReason" in e["candidates"][0]) for e in events] == [False, False, True]
    assert events[-1]["candidates"][0]["finishReason"] == "STOP"
    assert {e["modelVersion"] for e in events} == {"gemini-2.5-flash"}
    assert len({e["responseId"] for e in events}) == 1
    assert gemini_text(events) == "The capital of France is Paris."


async def test_thoughts_come_first_as_thought_parts(session: aiohttp.ClientSession) -> None:
    behavior = Behavior(text="Look both ways.", reasoning="**Safety**\n\nThink first.")
    async with Simulator("gemini", behavior) as sim:
        got = await chat(session, sim, "gemini")
    parts = [e["candidates"][0]["content"]["parts"][0] for e in got.payloads]
    flags = [bool(p.get("thought")) for p in parts]
    assert flags == sorted(flags, reverse=True) and flags[0]
    assert gemini_text(got.payloads, thought=True) == "**Safety**\n\nThink first."
    assert gemini_text(got.payloads) == "Look both ways."
    first_answer = parts[flags.index(False)]
    assert "thoughtSignature" in first_answer
    assert got.payloads[-1]["usageMetadata"]["thoughtsTokenCount"] > 0


async def test_function_calls_arrive_whole_with_one_signature(
    session: aiohttp.ClientSession,
) -> None:
    calls = [("get_weather", '{"location": "Boston"}'), ("get_weather", '{"location": "Delhi"}')]
    async with Simulator("gemini", Behavior(tool_calls=calls)) as sim:
        got = await chat(session, sim, "gemini")

    events = got.payloads
    parts = [e["candidates"][0]["content"]["parts"][0] for e in events[:-1]]
    assert [p["functionCall"]["args"] for p in parts] == [
        {"location": "Boston"},
        {"location": "Delhi"},
    ]
    assert all(p["functionCall"]["id"] for p in parts)
    assert "thoughtSignature" in parts[0] and "thoughtSignature" not in parts[1]
    last = events[-1]["candidates"][0]
    assert last["finishReason"] == "STOP" and last["content"]["parts"] == [{"text": ""}]


async def test_without_alt_sse_the_stream_is_a_json_array(session: aiohttp.ClientSession) -> None:
    async with Simulator("gemini", Behavior(text="one two")) as sim:
        got = await chat(session, sim, "gemini", alt_sse=False)
    assert got.headers["content-type"] == "application/json; charset=UTF-8"
    assert got.raw.startswith(b"[{\n") and got.raw.endswith(b"\n]") and b"\n,\r\n" in got.raw
    assert gemini_text(json.loads(got.raw)) == "one two"


async def test_generate_content_is_one_json_object(session: aiohttp.ClientSession) -> None:
    async with Simulator("gemini", Behavior(text="Hello! How are you?")) as sim:
        got = await chat(session, sim, "gemini", stream=False)
    body = got.json()
    assert body["candidates"][0]["content"]["parts"] == [{"text": "Hello! How are you?"}]
    assert body["candidates"][0]["finishReason"] == "STOP"


async def test_api_key_errors(session: aiohttp.ClientSession) -> None:
    async with Simulator("gemini", api_key="AIza-right", known_models=["gemini-2.5-flash"]) as sim:
        wrong = await chat(session, sim, "gemini", key="AIza-wrong", model="gemini-2.5-flash")
        missing = await chat(session, sim, "gemini", model="gemini-2.5-flash")
        unknown = await chat(session, sim, "gemini", key="AIza-right", model="gemini-1.5-flash")
        query = (
            sim.base_url + "/models/gemini-2.5-flash:streamGenerateContent?alt=sse&key=AIza-right"
        )
        body = {"contents": [{"role": "user", "parts": [{"text": "hi"}]}]}
        async with session.post(query, json=body) as response:
            by_query = response.status

    assert wrong.status == 400
    assert wrong.headers["content-type"] == "text/event-stream"  # as recorded: branch on status
    error = wrong.json()["error"]
    assert error["status"] == "INVALID_ARGUMENT"
    assert error["details"][0]["@type"] == "type.googleapis.com/google.rpc.ErrorInfo"
    assert error["details"][0]["reason"] == "API_KEY_INVALID"
    assert missing.status == 403 and missing.json()["error"]["status"] == "PERMISSION_DENIED"
    assert unknown.status == 404 and unknown.json()["error"]["status"] == "NOT_FOUND"
    assert "models/gemini-1.5-flash is not found" in unknown.json()["error"]["message"]
    assert by_query == 200


async def test_midstream_error_as_event_or_raw_tail(session: aiohttp.ClientSession) -> None:
    fault = Fault(FaultKind.MIDSTREAM_ERROR_AT, chunk=1)
    async with Simulator("gemini", Behavior(text="one two three", fault=fault)) as sim:
        as_event = await chat(session, sim, "gemini")
        sim.set_fault(Fault(FaultKind.MIDSTREAM_ERROR_AT, chunk=1, raw_tail=True))
        as_tail = await chat(session, sim, "gemini")

    assert as_event.payloads[-1]["error"]["status"] == "UNAVAILABLE"
    assert gemini_text(as_event.payloads[:-1]) == "one"
    assert as_event.raw.endswith(b"\r\n\r\n")
    _, _, tail = as_tail.raw.rpartition(b"\r\n\r\n")
    assert json.loads(tail)["error"]["code"] == 503  # no data: prefix, no blank line
    assert not tail.startswith(b"data:") and not tail.endswith(b"\n\n")
    assert gemini_text(as_tail.payloads) == "one"


async def test_content_filter_is_a_blocked_prompt(session: aiohttp.ClientSession) -> None:
    async with Simulator("gemini", Behavior(fault=Fault(FaultKind.CONTENT_FILTER))) as sim:
        got = await chat(session, sim, "gemini")
    (event,) = got.payloads
    assert got.status == 200
    assert "candidates" not in event and event["promptFeedback"]["blockReason"] == "SAFETY"
