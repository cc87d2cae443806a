"""The stream audit against recorded provider traffic and hand-made deviations."""

from __future__ import annotations

import pytest

from server.providers.base import ErrorKind
from server.registry.llm import ApiSpec
from tests.unit.validation._validation_testkit import audit, stream_body

OPENAI, GEMINI, GROQ, AZURE = ApiSpec.OPENAI, ApiSpec.GEMINI, ApiSpec.GROQ, ApiSpec.AZURE_OPENAI

CLEAN = [
    ("openai/stream-text-with-usage.sse", OPENAI),
    ("openai/stream-tool-call.sse", OPENAI),
    ("openai/stream-parallel-tool-calls.sse", OPENAI),
    ("openai/stream-refusal.sse", OPENAI),
    ("openai/stream-extra-trailing-chunk.sse", OPENAI),
    ("azure/stream-text-prompt-filter.sse", AZURE),
    ("deepseek/stream-reasoning-content.sse", OPENAI),
    ("groq/stream-text.sse", GROQ),
    ("groq/stream-reasoning-parsed.sse", GROQ),
    ("groq/stream-reasoning-raw-think-tags.sse", GROQ),
    ("groq/stream-tool-call.jsonl", GROQ),
    ("other-compatible/zai-stream-reasoning-content.sse", OPENAI),
    ("tgi/stream-text-with-usage.jsonl", OPENAI),
    ("gemini/stream-text.sse", GEMINI),
    ("gemini/stream-thinking.sse", GEMINI),
    ("gemini/stream-parallel-function-calls.sse", GEMINI),
]


@pytest.mark.parametrize(("name", "spec"), CLEAN)
@pytest.mark.parametrize("piece", [0, 7])
def test_recorded_streams_have_no_problems(name: str, spec: ApiSpec, piece: int) -> None:
    a = audit(spec, stream_body(name), piece)
    assert (a.non_json, a.schema, a.content_problems, a.errors) == ([], [], [], [])
    assert a.runtime_error is None
    assert a.finish_reason and a.events and not a.unknown_fields and not a.broken
    assert a.done is (spec is not GEMINI)
    assert a.first_role == ("model" if spec is GEMINI else "assistant")
    assert a.content_seen


@pytest.mark.parametrize(("name", "spec", "dialect"), [
    ("deepseek/stream-reasoning-content.sse", OPENAI, "reasoning_content"),
    ("other-compatible/zai-stream-reasoning-content.sse", OPENAI, "reasoning_content"),
    ("groq/stream-reasoning-parsed.sse", GROQ, "reasoning"),
    ("groq/stream-reasoning-raw-think-tags.sse", GROQ, "think_tags"),
    ("gemini/stream-thinking.sse", GEMINI, "thought_parts"),
    ("openai/stream-text-with-usage.sse", OPENAI, ""),
])
def test_reasoning_dialect_is_detected(name: str, spec: ApiSpec, dialect: str) -> None:
    assert audit(spec, stream_body(name)).dialect == dialect


def test_tool_calls_and_usage_are_seen() -> None:
    a = audit(OPENAI, stream_body("openai/stream-parallel-tool-calls.sse"))
    assert len(a.tools) == 2 and a.finish_reason == "tool_calls"
    assert audit(OPENAI, stream_body("openai/stream-text-with-usage.sse")).usage_seen
    groq = audit(GROQ, stream_body("groq/stream-text.sse"))
    assert groq.usage_seen and groq.usage is not None and groq.usage.input_tokens > 0
    assert audit(GEMINI, stream_body("gemini/stream-usage-every-chunk.sse")).usage_seen


@pytest.mark.parametrize(("name", "spec"), [
    ("openrouter/stream-midstream-error.sse", OPENAI),
    ("groq/stream-midstream-error-tool-use-failed.sse", GROQ),
])
def test_in_band_errors_are_reported(name: str, spec: ApiSpec) -> None:
    a = audit(spec, stream_body(name))
    assert a.errors and "error" in a.errors[0]
    assert a.runtime_error is not None


def test_legacy_completions_chunks_break_the_schema() -> None:
    body = (b'data: {"id":"cmpl-1","object":"text_completion","choices":[{"index":0,'
            b'"text":".","finish_reason":null}]}\n\ndata: [DONE]\n\n')
    a = audit(OPENAI, body)
    assert a.schema and "legacy" in a.schema[0]


def test_a_non_json_line_is_noted_and_reading_goes_on() -> None:
    body = (b'data: {"choices":[{"index":0,"delta":{"role":"assistant","content":"po"}}]}\n\n'
            b'data: {"choices":[{"index":0,"del\n\n'
            b'data: {"choices":[{"index":0,"delta":{"content":"ng"},"finish_reason":"stop"}]}\n\n'
            b"data: [DONE]\n\n")
    a = audit(OPENAI, body, piece=5)
    assert len(a.non_json) == 1 and "event 2 is not JSON" in a.non_json[0]
    assert a.answer == "pong" and a.done and a.finish_reason == "stop"
    assert a.runtime_error is not None and a.runtime_error.kind is ErrorKind.PROTOCOL


def test_lines_a_parser_would_drop_are_noted() -> None:
    body = (b'data: {"choices":[{"index":0,"delta":{"role":"assistant","content":"x"}}]}\n\n'
            b'error: {"message":"the model crashed"}\n\n')
    a = audit(OPENAI, body)
    assert a.unknown_fields and a.unknown_fields[0].startswith("error:")


def test_a_raw_gemini_error_tail_is_an_error_event() -> None:
    body = stream_body("gemini/stream-text.sse").split(b"\r\n\r\n")[0] + b"\r\n\r\n"
    body += b'{\n  "error": {\n    "code": 503,\n    "message": "overloaded",\n' \
            b'    "status": "UNAVAILABLE"\n  }\n}\n'
    a = audit(GEMINI, body)
    assert a.errors and not a.unknown_fields and a.leftover == b""


def test_missing_role_and_content_of_the_wrong_type() -> None:
    body = (b'data: {"choices":[{"index":0,"delta":{"content":["a"]}}]}\n\n'
            b'data: {"choices":[{"index":0,"delta":{},"finish_reason":"stop"}]}\n\n'
            b"data: [DONE]\n\n")
    a = audit(OPENAI, body)
    assert a.role_checked and a.first_role is None
    assert a.content_problems and "list" in a.content_problems[0]


def test_garbage_yields_no_events() -> None:
    a = audit(OPENAI, bytes(range(14, 250)) * 4)
    assert a.events == 0 and a.raw_bytes == 944 and a.first_bytes
