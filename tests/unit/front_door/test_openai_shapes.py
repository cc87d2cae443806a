"""The front door's pure parts: request parsing, error mapping, chunk encoding."""

from __future__ import annotations

import json

import orjson
import pytest

from server.chat import FinishReason, ImagePart, ReasoningEffort, Role, ToolCallDelta, Usage
from server.errors import InvalidArgument, NotFound, Unauthenticated, Unavailable
from server.http.errors import error_body, error_headers
from server.http.request import parse
from server.http.response import Chunks


def body(**fields: object) -> bytes:
    base: dict[str, object] = {"model": "llm_1", "messages": [{"role": "user", "content": "hi"}]}
    base.update(fields)
    return orjson.dumps(base)


def violations(raw: bytes) -> dict[str, str]:
    with pytest.raises(InvalidArgument) as caught:
        parse(raw, max_messages=10, max_message_bytes=1000)
    return {v.field: v.description for v in caught.value.violations}


def test_a_full_request_maps_to_the_domain() -> None:
    req = parse(body(
        messages=[
            {"role": "developer", "content": "Be brief."},
            {"role": "user", "content": [
                {"type": "text", "text": "What is this?"},
                {"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA"}}]},
            {"role": "assistant", "content": None, "tool_calls": [
                {"id": "call_1", "type": "function",
                 "function": {"name": "look", "arguments": "{}"}}]},
            {"role": "tool", "tool_call_id": "call_1", "content": "a cat"},
        ],
        tools=[{"type": "function", "function": {"name": "look", "parameters": {
            "type": "object"}}}],
        tool_choice="required", temperature=0, top_p=0.5, max_tokens=10,
        max_completion_tokens=20, stop="END", seed=3, reasoning_effort="minimal",
        stream=True, stream_options={"include_usage": True}, n=1, user="u", store=False,
    ), max_messages=10, max_message_bytes=1000)
    assert req.llm_id == "llm_1" and req.stream and req.include_usage
    roles = [m.role for m in req.chat.messages]
    assert roles == [Role.SYSTEM, Role.USER, Role.ASSISTANT, Role.TOOL]
    assert req.chat.messages[1].parts[1] == ImagePart(url="data:image/png;base64,AAAA")
    assert req.chat.messages[2].tool_calls[0].name == "look"
    assert req.chat.messages[3].tool_call_id == "call_1"
    assert json.loads(req.chat.tools[0].parameters_json) == {"type": "object"}
    g = req.chat.generation
    assert (g.temperature, g.top_p, g.max_output_tokens, g.stop, g.seed) == (
        0.0, 0.5, 20, ("END",), 3)
    assert g.reasoning_effort is ReasoningEffort.LOW


def test_every_problem_is_reported_with_its_path() -> None:
    found = violations(body(
        model="", messages=[{"role": "robot"}, {"role": "tool", "content": "x"}],
        temperature=3, n=2, logprobs=True, response_format={"type": "json_object"},
        tool_choice={"type": "function", "function": {"name": "missing"}}))
    assert set(found) == {"model", "messages[0].role", "messages[1].tool_call_id",
                          "temperature", "n", "logprobs", "response_format",
                          "tool_choice.function.name"}


def test_limits_and_bad_json() -> None:
    assert "messages" in violations(body(messages=[{"role": "user", "content": "x"}] * 11))
    assert "messages[0]" in violations(body(messages=[{"role": "user", "content": "x" * 2000}]))
    with pytest.raises(InvalidArgument, match="not valid JSON"):
        parse(b"{", 10, 1000)


@pytest.mark.parametrize(("error", "status", "code"), [
    (InvalidArgument("bad", reason="INVALID_ARGUMENT"), 400, "invalid_argument"),
    (Unauthenticated("no", reason="API_KEY_INVALID"), 401, "invalid_api_key"),
    (NotFound("gone", reason="LLM_NOT_FOUND"), 404, "model_not_found"),
    (Unavailable("down", reason="UPSTREAM_UNAVAILABLE", retry_after_s=1.5), 503,
     "upstream_unavailable"),
])
def test_errors_map_to_openai_statuses(error: Exception, status: int, code: str) -> None:
    got_status, got = error_body(error, "req1")
    assert got_status == status and got["error"]["code"] == code
    assert set(got["error"]) == {"message", "type", "param", "code"}


def test_retry_hints_and_unexpected_errors() -> None:
    assert error_headers(Unavailable("x", retry_after_s=1.5)) == {
        "Retry-After": "2", "retry-after-ms": "1500"}
    status, got = error_body(RuntimeError("secret sk-123 inside"), "req9")
    assert status == 500 and "sk-123" not in got["error"]["message"]
    assert "req9" in got["error"]["message"]


def test_chunks_are_openai_chunks() -> None:
    chunks = Chunks("chatcmpl-1", 1700000000, "llm_1", include_usage=True)
    text = json.loads(chunks.text("Hi").removeprefix(b"data: "))
    assert text == {"id": "chatcmpl-1", "object": "chat.completion.chunk",
                    "created": 1700000000, "model": "llm_1", "system_fingerprint": None,
                    "choices": [{"index": 0, "delta": {"content": "Hi"}, "logprobs": None,
                                 "finish_reason": None}], "usage": None}
    first = json.loads(chunks.tool_call(ToolCallDelta(0, "call_1", "look", "")).removeprefix(
        b"data: "))
    assert first["choices"][0]["delta"]["tool_calls"] == [
        {"index": 0, "id": "call_1", "type": "function",
         "function": {"name": "look", "arguments": ""}}]
    more = json.loads(chunks.tool_call(ToolCallDelta(0, arguments_delta='{"a"')).removeprefix(
        b"data: "))
    assert more["choices"][0]["delta"]["tool_calls"] == [
        {"index": 0, "function": {"arguments": '{"a"'}}]
    finish = json.loads(chunks.finish(FinishReason.LENGTH).removeprefix(b"data: "))
    assert finish["choices"][0] == {"index": 0, "delta": {}, "logprobs": None,
                                    "finish_reason": "length"}
    usage = json.loads(chunks.usage(Usage(3, 4, 5)).removeprefix(b"data: "))
    assert usage["choices"] == [] and usage["usage"]["completion_tokens"] == 9
    assert all(c.endswith(b"\n\n") for c in (chunks.text("x"), chunks.usage(Usage())))
