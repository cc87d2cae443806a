"""Issue 3 end to end: each of the four specs over gRPC, images in each wire format, and the
Gemini thought signature round trip through a session."""

from __future__ import annotations

import base64
import json

import pytest
from switchboard.v1 import conversations_pb2 as cpb
from switchboard_client import AsyncClient

from server.simulator import Behavior, ReasoningDialect, Simulator, ToolCall, Usage
from tests.support import create_llm, endpoint

SPECS = ["openai", "azure_openai", "gemini", "groq"]
PNG = base64.b64decode(
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg==")


def reasoning_behavior(spec: str) -> Behavior:
    dialect = ReasoningDialect.REASONING if spec == "groq" else ReasoningDialect.REASONING_CONTENT
    return Behavior(text="The answer is forty-two.", reasoning="Six times seven.",
                    reasoning_dialect=dialect, usage=Usage(30, 7, 5))


@pytest.mark.parametrize("spec", SPECS)
async def test_each_spec_streams_reasoning_apart_from_text_with_usage(
        client: AsyncClient, spec: str) -> None:
    async with Simulator(spec, reasoning_behavior(spec), api_key="sk-spec-key-123") as sim:
        llm = await create_llm(client, endpoint(sim, spec=spec, key="sk-spec-key-123"))
        session = await client.create_session(llm.id, system_prompt="Answer briefly.")
        events = [e async for e in client.converse("What is 6 x 7?", session_id=session.id)]
    text = "".join(e.delta for e in events if isinstance(e, cpb.TextDelta))
    reasoning = "".join(e.delta for e in events if isinstance(e, cpb.ReasoningDelta))
    assert text == "The answer is forty-two."
    assert reasoning == "Six times seven."
    kinds = [type(e).__name__ for e in events]
    assert kinds.index("ReasoningDelta") < kinds.index("TextDelta")
    usage = next(e for e in events if isinstance(e, cpb.Usage))
    assert (usage.input_tokens, usage.output_tokens, usage.reasoning_tokens) == (30, 7, 5)
    finished = events[-1]
    assert isinstance(finished, cpb.TurnFinished) and finished.complete


def image_message() -> cpb.Message:
    return cpb.Message(role=cpb.ROLE_USER, parts=[
        cpb.ContentPart(text="What is in these images?"),
        cpb.ContentPart(image=cpb.Image(data=PNG, mime_type="image/png")),
        cpb.ContentPart(image=cpb.Image(url="https://example.com/cat.jpg",
                                        mime_type="image/jpeg")),
    ])


@pytest.mark.parametrize("spec", SPECS)
async def test_images_reach_each_provider_in_its_own_format(client: AsyncClient,
                                                            spec: str) -> None:
    async with Simulator(spec, Behavior(text="A pixel and a cat.")) as sim:
        llm = await create_llm(client, endpoint(sim, spec=spec))
        reply = await client.reply([image_message()], llm_id=llm.id)
        assert reply.complete
        body = sim.requests[-1].body
    data_url = "data:image/png;base64," + base64.b64encode(PNG).decode()
    if spec == "gemini":
        parts = body["contents"][-1]["parts"]
        assert {"inlineData": {"mimeType": "image/png",
                               "data": base64.b64encode(PNG).decode()}} in parts
        assert {"fileData": {"mimeType": "image/jpeg",
                             "fileUri": "https://example.com/cat.jpg"}} in parts
    else:
        content = body["messages"][-1]["content"]
        urls = [p["image_url"]["url"] for p in content if p["type"] == "image_url"]
        assert urls == [data_url, "https://example.com/cat.jpg"]


async def test_gemini_thought_signature_round_trips_through_a_session(
        client: AsyncClient) -> None:
    call = Behavior(tool_calls=[ToolCall("get_weather", '{"city": "Paris"}')])
    async with Simulator("gemini", call) as sim:
        llm = await create_llm(client, endpoint(sim, spec="gemini"))
        session = await client.create_session(llm.id)
        tool = cpb.Tool(name="get_weather", description="Weather for a city")
        tool.parameters.update({"type": "object", "properties": {"city": {"type": "string"}}})
        first = await client.reply("Weather in Paris?", session_id=session.id, tools=[tool])
        assert first.finished is not None
        assert first.finished.finish_reason == cpb.FINISH_REASON_TOOL_CALLS
        made = first.tool_calls[0]
        assert made.name == "get_weather" and json.loads(made.arguments_json) == {"city": "Paris"}
        assert made.thought_signature, "Gemini's thoughtSignature reaches the caller"
        sim.behavior = Behavior(text="It is sunny in Paris.")
        result = cpb.Message(role=cpb.ROLE_TOOL, tool_call_id=made.id, name="get_weather",
                             parts=[cpb.ContentPart(text='{"sky": "sunny"}')])
        second = await client.reply([result], session_id=session.id, tools=[tool])
        assert second.text == "It is sunny in Paris."
        contents = sim.requests[-1].body["contents"]
    model_turn = next(c for c in contents if c["role"] == "model")
    call_part = next(p for p in model_turn["parts"] if "functionCall" in p)
    assert call_part["thoughtSignature"] == made.thought_signature
    assert call_part["functionCall"]["name"] == "get_weather"
    response_part = next(p for c in contents for p in c["parts"] if "functionResponse" in p)
    assert response_part["functionResponse"]["response"] == {"sky": "sunny"}
