"""Azure OpenAI and Groq: where they differ from OpenAI on the wire."""

from __future__ import annotations

import aiohttp

from server.simulator import Behavior, Fault, FaultKind, ReasoningDialect, Simulator
from tests.unit.simulator._sim_testkit import chat, chat_request, openai_text, read_body


async def test_azure_starts_with_prompt_filter_results(session: aiohttp.ClientSession) -> None:
    async with Simulator("azure_openai", Behavior(text="Hello there.")) as sim:
        got = await chat(session, sim, "azure_openai", include_usage=True, model="my-deploy")

    assert sim.base_url == f"http://127.0.0.1:{sim.port}"
    assert got.headers["content-type"] == "text/event-stream"
    annotation, role, *content, finish, usage = got.payloads
    assert annotation["choices"] == [] and annotation["id"] == "" and annotation["model"] == ""
    assert annotation["created"] == 0 and annotation["object"] == ""
    filters = annotation["prompt_filter_results"][0]
    assert filters["prompt_index"] == 0 and "jailbreak" in filters["content_filter_results"]
    assert role["choices"][0]["content_filter_results"] == {}
    assert role["choices"][0]["delta"]["role"] == "assistant"
    assert all(
        c["choices"][0]["content_filter_results"]["hate"]["filtered"] is False for c in content
    )
    assert finish["choices"][0]["finish_reason"] == "stop"
    assert usage["choices"] == [] and usage["usage"]["prompt_tokens"] > 0
    assert list(role) == sorted(role)  # Azure serialises with sorted keys
    assert openai_text(got.payloads) == "Hello there."
    assert got.raw.endswith(b"data: [DONE]\n\n")
    assert got.headers["x-ms-deployment-name"] == "my-deploy"


async def test_azure_route_needs_api_version_and_key(session: aiohttp.ClientSession) -> None:
    async with Simulator("azure_openai", api_key="azure-key", known_models=["gpt4o"]) as sim:
        url, headers, body = chat_request(sim, "azure_openai", model="gpt4o", key="azure-key")
        async with session.post(url.split("?")[0], json=body, headers=headers) as response:
            no_version = (response.status, await response.json())
        bad_key = await chat(session, sim, "azure_openai", model="gpt4o", key="nope")
        missing = await chat(session, sim, "azure_openai", model="gpt4o")
        unknown = await chat(session, sim, "azure_openai", model="other", key="azure-key")
        bearer = {"Authorization": "Bearer azure-key"}
        async with session.post(url, json=body, headers=bearer) as response:
            entra = await read_body(response)

    assert no_version == (404, {"error": {"code": "404", "message": "Resource not found"}})
    for reply in (bad_key, missing):
        assert reply.status == 401
        assert reply.json()["error"]["code"] == "401"
        assert reply.json()["error"]["message"].startswith(
            "Access denied due to invalid subscription key"
        )
    assert unknown.status == 404 and unknown.json()["error"]["code"] == "DeploymentNotFound"
    assert entra.status == 200


async def test_azure_content_filter_fault_has_azure_shape(session: aiohttp.ClientSession) -> None:
    async with Simulator("azure_openai", Behavior(fault=Fault(FaultKind.CONTENT_FILTER))) as sim:
        got = await chat(session, sim, "azure_openai")
    error = got.json()["error"]
    assert got.status == 400
    assert error["code"] == "content_filter" and error["param"] == "prompt"
    assert error["innererror"]["code"] == "ResponsibleAIPolicyViolation"
    assert error["innererror"]["content_filter_result"]["hate"]["filtered"] is True


async def test_groq_usage_rides_in_x_groq_on_the_finish_chunk(
    session: aiohttp.ClientSession,
) -> None:
    async with Simulator("groq", Behavior(text="A joke about OpenAI.")) as sim:
        got = await chat(session, sim, "groq", include_usage=True)

    assert sim.base_url == f"http://127.0.0.1:{sim.port}/openai/v1"
    assert got.headers["content-type"] == "text/event-stream"
    first, *content, finish = got.payloads
    assert first["x_groq"]["id"] == got.headers["x-request-id"]
    assert first["x_groq"]["id"].startswith("req_")
    assert all("x_groq" not in c and "usage" not in c for c in content)
    usage = finish["x_groq"]["usage"]
    assert finish["choices"][0]["finish_reason"] == "stop"
    assert usage["total_tokens"] == usage["prompt_tokens"] + usage["completion_tokens"]
    assert {"queue_time", "prompt_time", "completion_time", "total_time"} <= set(usage)
    assert all(c["choices"] for c in got.payloads)  # no choices:[] usage chunk
    assert got.raw.endswith(b"data: [DONE]\n\n")


async def test_groq_tool_call_arrives_whole(session: aiohttp.ClientSession) -> None:
    behavior = Behavior(tool_calls=[("weather", '{"city": "Rome"}'), ("time", "{}")])
    async with Simulator("groq", behavior) as sim:
        got = await chat(session, sim, "groq")
    calls = [c["choices"][0]["delta"]["tool_calls"] for c in got.payloads[1:-1]]
    assert [len(c) for c in calls] == [1, 1]
    assert calls[0][0]["function"] == {"name": "weather", "arguments": '{"city": "Rome"}'}
    assert [c[0]["index"] for c in calls] == [0, 1]
    assert got.payloads[-1]["choices"][0]["finish_reason"] == "tool_calls"


async def test_groq_reasoning_parsed_and_raw(session: aiohttp.ClientSession) -> None:
    async with Simulator("groq", Behavior(text="Yes.", reasoning="Hmm <ok>.")) as sim:
        parsed = await chat(session, sim, "groq")
        sim.behavior = Behavior(
            text="Yes.", reasoning="Hmm.", reasoning_dialect=ReasoningDialect.THINK_TAGS
        )
        raw = await chat(session, sim, "groq")
    assert openai_text(parsed.payloads, "reasoning") == "Hmm <ok>."
    assert openai_text(raw.payloads) == "<think>\nHmm.\n</think>\n\nYes."
    assert b"<" not in raw.raw and b"\\u003cthink\\u003e" in raw.raw  # Go's JSON escaping


async def test_groq_midstream_error_is_an_error_event_then_close(
    session: aiohttp.ClientSession,
) -> None:
    behavior = Behavior(
        text="one two three four", fault=Fault(FaultKind.MIDSTREAM_ERROR_AT, chunk=2)
    )
    async with Simulator("groq", behavior) as sim:
        got = await chat(session, sim, "groq")
    events = got.events
    assert got.status == 200 and got.error is None
    assert events[-1].event == "error"
    assert events[-1].json()["error"]["code"] == "tool_use_failed"
    assert got.raw.endswith(b"\n\n") and b"[DONE]" not in got.raw
    assert all(e.event is None for e in events[:-1])
    assert openai_text([e.json() for e in events[:-1]]) == "one two"


async def test_groq_auth_error(session: aiohttp.ClientSession) -> None:
    async with Simulator("groq", api_key="gsk_right") as sim:
        got = await chat(session, sim, "groq", key="gsk_wrong")
    assert got.status == 401
    assert got.json() == {
        "error": {
            "message": "Invalid API Key",
            "type": "invalid_request_error",
            "code": "invalid_api_key",
        }
    }
