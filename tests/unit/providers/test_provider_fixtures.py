"""Every recorded upstream response, replayed byte for byte over loopback HTTP.

Each file in ``fixtures/`` (see ``_provider_testkit`` for how ``.jsonl``/``.json``/``.ndjson``
become responses) is served by a real aiohttp server and read by ``UpstreamClient.stream``
through the adapter of its provider. The expectations below were checked against the files by
hand. ``test_every_fixture_has_an_expectation`` makes sure no file is silently skipped.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

import pytest

from server.chat import ChatRequest, FinishReason, Message, Role, StreamEvent, TextPart
from server.providers.adapters import adapter_for
from server.providers.base import ErrorKind, UpstreamError
from server.providers.transport import UpstreamClient
from tests.unit.providers._provider_testkit import (
    Outcome,
    ReplayServer,
    endpoint_for,
    fixture_names,
    load_reply,
    merge,
    spec_of,
)

STOP, LENGTH, TOOLS = FinishReason.STOP, FinishReason.LENGTH, FinishReason.TOOL_CALLS
HI = ChatRequest(messages=(Message(Role.USER, (TextPart("hi"),)),))


@dataclass(frozen=True)
class Expect:
    text: str = ""
    reasoning: str = ""
    calls: tuple[tuple[str, object], ...] = ()
    usage: tuple[int, int, int] | None = None
    finish: FinishReason | None = None
    provider_reason: str = ""
    signature_len: int = 0  # Finish.thought_signature length
    call_signature_lens: tuple[int, ...] = ()
    call_ids: tuple[str, ...] = ()
    error: ErrorKind | None = None
    error_text: str = ""
    status: int = 0
    retry_after_s: float | None = None
    provider_code: str = ""


def not_streaming(what: str = "does not stream") -> Expect:
    return Expect(error=ErrorKind.PROTOCOL, error_text=what)


EXPECT: dict[str, Expect] = {
    # -- Azure ------------------------------------------------------------------------------
    "azure/error-400-content-filter-prompt.json": Expect(
        error=ErrorKind.CONTENT_FILTERED,
        status=400,
        provider_code="content_filter",
        error_text="content filter",
    ),
    "azure/error-401-invalid-key.json": Expect(
        error=ErrorKind.AUTHENTICATION, status=401, error_text="Access denied"
    ),
    "azure/error-404-deployment-not-found.json": Expect(
        error=ErrorKind.NOT_FOUND, status=404, provider_code="DeploymentNotFound"
    ),
    "azure/error-404-resource-not-found.json": Expect(
        error=ErrorKind.NOT_FOUND, status=404, error_text="Resource not found"
    ),
    "azure/nonstream-finish-content-filter.json": not_streaming(),
    "azure/nonstream-reasoning-model.json": not_streaming(),
    "azure/nonstream.json": not_streaming(),
    "azure/stream-foundry-deepseek-reasoning-content.jsonl": Expect(
        text="Exciting news, K🧡💙",
        reasoning="We need to invent a new holiday around the latest I'll craft a response.",
        usage=(19, 1720, 0),
        finish=STOP,
        provider_reason="stop",
    ),
    "azure/stream-model-router-usage.jsonl": Expect(
        text="Capital of Denmark.", usage=(15, 14, 64), finish=STOP
    ),
    "azure/stream-text-prompt-filter.sse": Expect(text="Why did the Op!", finish=STOP),
    # -- DeepSeek ---------------------------------------------------------------------------
    "deepseek/nonstream-reasoning.json": not_streaming(),
    "deepseek/stream-reasoning-content.sse": Expect(
        text="Hello there!?", reasoning="Hmm, too.", usage=(6, 14, 198), finish=STOP
    ),
    # Trimmed recording: its finish chunk (line 52) was dropped, so [DONE] arrives without a
    # finish reason. The tool call itself is fully assembled before that.
    "deepseek/stream-reasoning-then-tool-call.jsonl": Expect(
        reasoning='The userSan Francisco".',
        calls=(("weather", {"location": "San Francisco"}),),
        error=ErrorKind.INCOMPLETE,
        error_text="without a finish reason",
    ),
    # -- Gemini -----------------------------------------------------------------------------
    "gemini/error-400-api-key-invalid.json": Expect(
        error=ErrorKind.AUTHENTICATION, status=400, provider_code="API_KEY_INVALID"
    ),
    "gemini/error-400-vertex-invalid-argument.json": Expect(
        error=ErrorKind.BAD_REQUEST, status=400, error_text="temperature value of 1000"
    ),
    "gemini/error-404-model-not-found.json": Expect(
        error=ErrorKind.NOT_FOUND, status=404, provider_code="NOT_FOUND"
    ),
    "gemini/error-429-quota-retry-info.json": Expect(
        error=ErrorKind.RATE_LIMITED, status=429, retry_after_s=34.4
    ),
    "gemini/error-429-resource-exhausted.json": Expect(
        error=ErrorKind.RATE_LIMITED, status=429, provider_code="RESOURCE_EXHAUSTED"
    ),
    "gemini/nonstream-finish-max-tokens.json": not_streaming(),
    "gemini/nonstream-finish-safety.json": not_streaming(),
    "gemini/nonstream-max-tokens-no-parts.json": not_streaming(),
    "gemini/nonstream.json": not_streaming(),
    # Without ?alt=sse Gemini streams a JSON array as application/json; we always send alt=sse.
    "gemini/stream-no-alt-sse.json": not_streaming(),
    "gemini/stream-gemini3-empty-text-signature.jsonl": Expect(
        text='There are **3** "r"s in strawberry.\n\nSt**r**awbe**rr**y',
        usage=(9, 23, 302),
        finish=STOP,
        provider_reason="STOP",
        signature_len=1392,
    ),
    "gemini/stream-parallel-function-calls.sse": Expect(
        calls=(("get_weather", {"location": "Boston"}), ("get_weather", {"location": "New Delhi"})),
        call_ids=("dv8szvqe", "j80tal12"),
        call_signature_lens=(680, 0),
        usage=(71, 33, 93),
        finish=TOOLS,
        provider_reason="STOP",
    ),
    "gemini/stream-text.sse": Expect(
        text="The capital of France is Paris.\n", usage=(13, 8, 0), finish=STOP
    ),
    "gemini/stream-thinking.sse": Expect(
        text="This is a great question! Safely crossing the street",
        reasoning="**Clarifying User Goals**\n\nI'm currently focused",
        usage=(34, 469, 787),
        finish=STOP,
        signature_len=6152,
    ),
    "gemini/stream-tool-call-thought-signature.sse": Expect(
        calls=(("get_country", {}),), call_signature_lens=(1408,), usage=(29, 10, 202), finish=TOOLS
    ),
    "gemini/stream-usage-every-chunk.sse": Expect(
        text="\n".join(str(i) for i in range(1, 31)), usage=(18, 80, 35), finish=STOP
    ),
    "gemini/stream-vertex-partial-args.jsonl": Expect(
        calls=(
            ("getWeather", {"location": "Boston"}),
            ("getWeather", {"location": "San Francisco"}),
        ),
        call_signature_lens=(1032, 0),
        usage=(26, 23, 132),
        finish=TOOLS,
    ),
    # -- Groq -------------------------------------------------------------------------------
    "groq/error-400-tool-use-failed.json": Expect(
        error=ErrorKind.BAD_REQUEST, status=400, provider_code="tool_use_failed"
    ),
    "groq/error-404-model-not-found.json": Expect(
        error=ErrorKind.NOT_FOUND, status=404, provider_code="model_not_found"
    ),
    "groq/nonstream-reasoning-parsed.json": not_streaming(),
    "groq/nonstream.json": not_streaming(),
    "groq/stream-gpt-oss-reasoning-tool-call.sse": Expect(
        reasoning='We need".',
        calls=(("get_something_by_name", {"name": "example"}),),
        usage=(304, 26, 23),
        finish=TOOLS,
    ),
    "groq/stream-midstream-error-tool-use-failed.sse": Expect(
        reasoning="We need.",
        error=ErrorKind.STREAM_ERROR,
        status=400,
        provider_code="tool_use_failed",
        error_text="Tool call validation failed",
    ),
    "groq/stream-reasoning-parsed.sse": Expect(
        text="To cook Arg.", reasoning="Alright, soajor.\n", usage=(573, 1509, 0), finish=STOP
    ),
    "groq/stream-reasoning-raw-think-tags.sse": Expect(
        text="To!", reasoning="\nOkay time.\n", usage=(21, 988, 0), finish=STOP
    ),
    "groq/stream-text.sse": Expect(text="A joke about Open!)", usage=(18, 73, 0), finish=STOP),
    "groq/stream-tool-call.jsonl": Expect(
        calls=(("weather", {}),), call_ids=("tk85n1k4m",), usage=(210, 15, 0), finish=TOOLS
    ),
    # -- Ollama -----------------------------------------------------------------------------
    "ollama/error-404-native-model-not-found.json": Expect(
        error=ErrorKind.NOT_FOUND, status=404, error_text="nonexistent-model"
    ),
    # Ollama's native /api/chat streams NDJSON, not SSE: a clear PROTOCOL error.
    "ollama/native-chat-stream.ndjson": not_streaming("Ollama's native API"),
    "ollama/nonstream-openai-compat-tool-call.json": not_streaming(),
    "ollama/nonstream-openai-compat.json": not_streaming(),
    # -- OpenAI -----------------------------------------------------------------------------
    "openai/error-400-unsupported-parameter.json": Expect(
        error=ErrorKind.BAD_REQUEST,
        status=400,
        provider_code="unsupported_parameter",
        error_text="param 'stop'",
    ),
    "openai/error-400-unsupported-value.json": Expect(
        error=ErrorKind.BAD_REQUEST, status=400, provider_code="unsupported_value"
    ),
    "openai/error-401-invalid-api-key.json": Expect(
        error=ErrorKind.AUTHENTICATION, status=401, provider_code="invalid_api_key"
    ),
    "openai/error-404-model-not-found.json": Expect(
        error=ErrorKind.NOT_FOUND, status=404, provider_code="model_not_found"
    ),
    "openai/nonstream-tool-calls.json": not_streaming(),
    "openai/nonstream.json": not_streaming(),
    "openai/stream-extra-trailing-chunk.sse": Expect(text="Paris.", usage=(13, 11, 0), finish=STOP),
    "openai/stream-finish-length.sse": Expect(
        text='{"', usage=(79, 1, 0), finish=LENGTH, provider_reason="length"
    ),
    "openai/stream-logprobs.sse": Expect(text="Foo!", usage=(9, 2, 0), finish=STOP),
    # n=3: only choice 0 is read (choices 1 and 2 say 61 and 59 degrees).
    "openai/stream-n3-interleaved-choices.sse": Expect(
        text='{"city":"San Francisco","temperature":65,"units":"f"}', usage=(79, 42, 0), finish=STOP
    ),
    "openai/stream-parallel-tool-calls.sse": Expect(
        calls=(
            ("get_current_weather", {"location": "Seattle, WA"}),
            ("get_current_weather", {"location": "San Francisco, CA"}),
        ),
        call_ids=("call_fHCjJqt9Pysde6vcJcvbXGBx", "call_3J9foSw3CUb48lrqIXoTky6U"),
        usage=(75, 51, 0),
        finish=TOOLS,
        provider_reason="tool_calls",
    ),
    # A refusal is the model's answer: streamed as text.
    "openai/stream-refusal.sse": Expect(
        text="I'm sorry, I can't assist with that request.", usage=(79, 11, 0), finish=STOP
    ),
    "openai/stream-text-with-usage.sse": Expect(
        text="The capital of the UK is London.", usage=(78, 9, 0), finish=STOP
    ),
    "openai/stream-tool-call.sse": Expect(
        calls=(("get_capital", {"country": "UK"}),),
        call_ids=("call_ZR5UUuTt3pf61kjwAJIYdVMj",),
        usage=(53, 15, 0),
        finish=TOOLS,
    ),
    # -- OpenRouter -------------------------------------------------------------------------
    "openrouter/error-401-no-auth.json": Expect(
        error=ErrorKind.AUTHENTICATION, status=401, error_text="No cookie auth"
    ),
    "openrouter/error-429-upstream-rate-limited.json": Expect(
        error=ErrorKind.RATE_LIMITED, status=429, error_text="temporarily rate-limited"
    ),
    "openrouter/nonstream-reasoning.json": not_streaming(),
    # finish_reason "length" (twice), then an error chunk, then [DONE]: the error wins.
    "openrouter/stream-midstream-error.sse": Expect(
        reasoning="We need to respond to a greeting. The user",
        error=ErrorKind.STREAM_ERROR,
        status=400,
        error_text="Token limit reached",
    ),
    "openrouter/stream-reasoning.sse": Expect(
        text="2 + 2 = 4",
        reasoning="This is a simple arithmetic question. 2+2 equals 4.",
        usage=(43, 23, 13),
        finish=STOP,
    ),
    # -- Other OpenAI-compatible --------------------------------------------------------------
    "other-compatible/zai-stream-reasoning-content.sse": Expect(
        text="4", reasoning="\n1.  **Analyze the User's Request:**", usage=(13, 3, 561), finish=STOP
    ),
    # -- TGI --------------------------------------------------------------------------------
    "tgi/nonstream-finish-length.json": not_streaming(),
    "tgi/stream-text-with-usage.jsonl": Expect(text="OK!", usage=(39, 3, 0), finish=STOP),
    # The snapshot holds no finish chunk (17 chunks, all finish_reason null): INCOMPLETE, with
    # the fragmented arguments fully assembled before that.
    "tgi/stream-tool-call.jsonl": Expect(
        calls=(("get_current_weather", {"location": "Brooklyn, NY", "format": "fahrenheit"}),),
        call_ids=("0",),
        error=ErrorKind.INCOMPLETE,
    ),
    # -- vLLM -------------------------------------------------------------------------------
    "vllm/completions-legacy-stream.sse": not_streaming("legacy /v1/completions"),
    "vllm/nonstream-tool-call.json": not_streaming(),
    "vllm/stream-text-with-usage.sse": Expect(text="1, 2, 3, 4, 5", usage=(46, 14, 0), finish=STOP),
}


def test_every_fixture_has_an_expectation() -> None:
    assert sorted(EXPECT) == fixture_names()


async def replay(server: ReplayServer, client: UpstreamClient, name: str) -> Outcome:
    server.reply = load_reply(name)
    spec = spec_of(name)
    events: list[StreamEvent] = []
    try:
        async for ev in client.stream(adapter_for(spec), endpoint_for(spec, server.url), HI):
            events.append(ev)
    except UpstreamError as err:
        return merge(events, err)
    return merge(events)


def check(name: str, got: Outcome) -> None:
    want = EXPECT[name]
    if name.endswith((".sse", ".jsonl")) and "legacy" not in name:
        if len(want.text) > 40 or "thinking" in name:
            assert got.text.startswith(want.text)
        else:
            assert got.text == want.text
        if "thinking" in name or "zai" in name:
            assert got.reasoning.startswith(want.reasoning)
        else:
            assert got.reasoning == want.reasoning
        assert got.calls() == list(want.calls)
        for call in got.tool_calls:
            assert call["id"], "every tool call has an id"
            json.loads(call["arguments"])
    if want.call_ids:
        assert tuple(c["id"] for c in got.tool_calls) == want.call_ids
    if want.call_signature_lens:
        assert tuple(len(c["sig"]) for c in got.tool_calls) == want.call_signature_lens
    # Reasoning never leaks into text.
    assert "<think>" not in got.text and "</think>" not in got.text
    if got.reasoning.strip():
        assert got.reasoning.strip() not in got.text
    if want.error is not None:
        assert got.error is not None, f"expected {want.error}, got {got.finish}"
        assert got.error.kind is want.error, got.error
        assert want.error_text in got.error.message
        assert got.finish is None, "no Finish before a failure"
        if want.status:
            assert got.error.status == want.status
        if want.provider_code:
            assert got.error.provider_code == want.provider_code
        assert got.error.retry_after_s == want.retry_after_s
        return
    assert got.error is None, got.error
    assert got.finish is not None and got.finish.reason is want.finish
    assert got.order[-1] == "Finish"
    if want.provider_reason:
        assert got.finish.provider_reason == want.provider_reason
    assert len(got.finish.thought_signature) == want.signature_len
    if want.usage is None:
        assert got.usage is None
    else:
        assert got.usage is not None
        assert (got.usage.input_tokens, got.usage.output_tokens, got.usage.reasoning_tokens) == (
            want.usage
        )
        assert got.order[-2:] == ["Usage", "Finish"]


@pytest.mark.parametrize("name", sorted(EXPECT))
async def test_replay_fixture(
    name: str, replay_server: ReplayServer, client: UpstreamClient
) -> None:
    got = await replay(replay_server, client, name)
    check(name, got)
    request = replay_server.requests[0]
    assert request.method == "POST"


@pytest.mark.parametrize("name", [n for n in sorted(EXPECT) if n.endswith((".sse", ".jsonl"))])
async def test_replay_fixture_in_small_writes(
    name: str, replay_server: ReplayServer, client: UpstreamClient
) -> None:
    """The same streams written 7 bytes at a time (events and UTF-8 split across reads)."""
    replay_server.chunk_size = 7
    check(name, await replay(replay_server, client, name))
