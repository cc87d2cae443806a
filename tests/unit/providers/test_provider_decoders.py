"""Decoder behaviour the recordings do not show (or show only once), event by event."""

from __future__ import annotations

import json
from typing import Any

import pytest

from server.chat import FinishReason
from server.providers.base import ErrorKind
from server.providers.gemini import GeminiAdapter
from server.providers.openai import OpenAIAdapter
from tests.unit.providers._provider_testkit import FIXTURES, Outcome, decode_pieces


def sse(*events: object, done: bool = True, tail: bytes = b"") -> bytes:
    body = b""
    for ev in events:
        if isinstance(ev, bytes):
            body += ev
        else:
            body += b"data: " + json.dumps(ev).encode() + b"\n\n"
    return body + (b"data: [DONE]\n\n" if done else b"") + tail


def chunk(
    delta: dict[str, Any] | None = None, finish: str | None = None, **extra: Any
) -> dict[str, Any]:
    choice: dict[str, Any] = {"index": 0, "delta": delta or {}, "finish_reason": finish}
    return {"choices": [choice], **extra}


def call(index: int | None = None, **kw: Any) -> dict[str, Any]:
    out: dict[str, Any] = {"function": {k: v for k, v in kw.items() if k in ("name", "arguments")}}
    if index is not None:
        out["index"] = index
    if "id" in kw:
        out["id"] = kw["id"]
    return out


def openai(body: bytes) -> Outcome:
    return decode_pieces(OpenAIAdapter(), [body])


def gemini(*events: object, tail: bytes = b"") -> Outcome:
    return decode_pieces(GeminiAdapter(), [sse(*events, done=False, tail=tail)])


def candidate(
    parts: list[dict[str, Any]] | None, finish: str | None = None, **extra: Any
) -> dict[str, Any]:
    cand: dict[str, Any] = {"content": {"role": "model", "parts": parts or []}, "index": 0}
    if finish:
        cand["finishReason"] = finish
    return {"candidates": [cand], **extra}


# -- Chat Completions ------------------------------------------------------------------------


def test_done_without_finish_is_incomplete() -> None:
    got = openai(sse(chunk({"content": "partial"})))
    assert got.text == "partial" and got.error is not None
    assert got.error.kind is ErrorKind.INCOMPLETE and got.finish is None


def test_eof_without_finish_or_done_is_incomplete() -> None:
    got = openai(sse(chunk({"content": "partial"}), done=False))
    assert got.error is not None and got.error.kind is ErrorKind.INCOMPLETE


def test_finish_without_done_is_a_complete_answer() -> None:
    got = openai(sse(chunk({"content": "ok"}), chunk(finish="stop"), done=False))
    assert got.error is None and got.finish is not None and got.finish.reason is FinishReason.STOP


def test_error_tail_without_done_is_classified() -> None:
    # llama.cpp writes the error as a last event and stops without [DONE] or a blank line.
    tail = b'data: {"error":{"code":500,"message":"slot unavailable","type":"server_error"}}'
    got = openai(sse(chunk({"content": "par"}), done=False, tail=tail))
    assert got.error is not None and got.error.kind is ErrorKind.SERVER_ERROR
    assert "slot unavailable" in got.error.message


def test_event_error_with_plain_text_data() -> None:
    got = openai(sse(chunk({"content": "x"}), b"event: error\ndata: upstream crashed\n\n"))
    assert got.error is not None and got.error.kind is ErrorKind.STREAM_ERROR
    assert "upstream crashed" in got.error.message


def test_finish_reason_error_is_a_failure() -> None:
    got = openai(sse(chunk({"content": "x"}), chunk(finish="error")))
    assert got.error is not None and got.error.kind is ErrorKind.STREAM_ERROR


@pytest.mark.parametrize(
    ("raw", "want"),
    [
        ("stop", FinishReason.STOP),
        ("length", FinishReason.LENGTH),
        ("content_filter", FinishReason.CONTENT_FILTER),
        ("function_call", FinishReason.TOOL_CALLS),
        ("eos_token", FinishReason.STOP),
        ("something_new", FinishReason.OTHER),
    ],
)
def test_finish_reasons(raw: str, want: FinishReason) -> None:
    got = openai(sse(chunk({"content": "x"}), chunk(finish=raw)))
    assert (
        got.finish is not None and got.finish.reason is want and got.finish.provider_reason == raw
    )


def test_stop_with_tool_calls_reports_tool_calls() -> None:
    got = openai(
        sse(
            chunk({"tool_calls": [call(0, id="c1", name="f", arguments="{}")]}),
            chunk(finish="stop"),
        )
    )
    assert got.finish is not None and got.finish.reason is FinishReason.TOOL_CALLS


def test_truncated_tool_arguments_are_a_protocol_error() -> None:
    got = openai(
        sse(
            chunk({"tool_calls": [call(0, id="c1", name="f", arguments='{"a": ')]}),
            chunk(finish="length"),
        )
    )
    assert got.error is not None and got.error.kind is ErrorKind.PROTOCOL
    assert "not complete JSON" in got.error.message


def test_tool_call_without_name_is_a_protocol_error() -> None:
    got = openai(
        sse(chunk({"tool_calls": [call(0, id="c1", arguments="{}")]}), chunk(finish="tool_calls"))
    )
    assert got.error is not None and got.error.kind is ErrorKind.PROTOCOL


def test_tool_calls_without_index_use_ids() -> None:
    got = openai(
        sse(
            chunk({"tool_calls": [call(id="a", name="f", arguments='{"x"')]}),
            chunk({"tool_calls": [call(arguments=": 1}")]}),
            chunk({"tool_calls": [call(id="b", name="g", arguments="{}")]}),
            chunk(finish="tool_calls"),
        )
    )
    assert got.error is None
    assert [(c["id"], c["name"], c["arguments"]) for c in got.tool_calls] == [
        ("a", "f", '{"x": 1}'),
        ("b", "g", "{}"),
    ]


def test_missing_id_empty_and_object_arguments() -> None:
    got = openai(
        sse(
            chunk({"tool_calls": [call(0, name="f", arguments="")]}),
            chunk({"tool_calls": [call(1, id="b", name="g", arguments={"k": [1]})]}),
            chunk(finish="tool_calls"),
        )
    )
    assert got.error is None
    assert got.tool_calls[0]["id"] == "call_0" and got.tool_calls[0]["arguments"] == "{}"
    assert json.loads(got.tool_calls[1]["arguments"]) == {"k": [1]}


def test_reasoning_fields_are_not_duplicated() -> None:
    got = openai(
        sse(
            chunk({"reasoning_content": "think", "reasoning": "think"}),
            chunk({"content": "a"}),
            chunk(finish="stop"),
        )
    )
    assert got.reasoning == "think" and got.text == "a"


def test_think_tags_in_openai_compatible_content() -> None:
    got = openai(
        sse(
            chunk({"content": "<th"}),
            chunk({"content": "ink>plan</thi"}),
            chunk({"content": "nk>\n\nanswer"}),
            chunk(finish="stop"),
        )
    )
    assert (got.reasoning, got.text) == ("plan", "answer")


def test_usage_is_last_before_finish_and_events_after_done_are_ignored() -> None:
    usage = {
        "prompt_tokens": 5,
        "completion_tokens": 7,
        "completion_tokens_details": {"reasoning_tokens": 3},
    }
    body = sse(
        chunk({"content": "a"}), chunk(finish="stop"), {"choices": [], "usage": usage}
    ) + sse(chunk({"content": "late"}), done=False)
    got = openai(body)
    assert got.text == "a" and got.order == ["TextDelta", "Usage", "Finish"]
    assert got.usage is not None
    assert (got.usage.input_tokens, got.usage.output_tokens, got.usage.reasoning_tokens) == (
        5,
        4,
        3,
    )


def test_error_after_finish_wins() -> None:
    got = openai(
        sse(
            chunk({"content": "a"}),
            chunk(finish="length"),
            {"error": {"message": "Token limit reached", "code": 400}},
        )
    )
    assert got.error is not None and got.finish is None


# -- Gemini ----------------------------------------------------------------------------------


def test_gemini_blocked_prompt() -> None:
    got = gemini(
        {"promptFeedback": {"blockReason": "SAFETY"}, "usageMetadata": {"promptTokenCount": 3}}
    )
    assert got.error is not None and got.error.kind is ErrorKind.CONTENT_FILTERED
    assert got.error.provider_code == "SAFETY"


def test_gemini_error_event_after_partial_output() -> None:
    err = {"error": {"code": 503, "message": "The model is overloaded.", "status": "UNAVAILABLE"}}
    got = gemini(candidate([{"text": "Hel"}]), err)
    assert got.text == "Hel" and got.error is not None
    assert got.error.kind is ErrorKind.SERVER_ERROR and got.finish is None


def test_gemini_raw_json_error_tail() -> None:
    error = {"error": {"code": 500, "message": "Internal error", "status": "INTERNAL"}}
    tail = json.dumps(error, indent=2).encode()  # pretty-printed, no "data:", no blank line
    got = gemini(candidate([{"text": "Hel"}]), tail=tail)
    assert got.error is not None and got.error.kind is ErrorKind.SERVER_ERROR
    assert "Internal error" in got.error.message


def test_gemini_eof_without_finish_is_incomplete() -> None:
    got = gemini(candidate([{"text": "Hel"}]))
    assert got.error is not None and got.error.kind is ErrorKind.INCOMPLETE


def test_gemini_malformed_function_call_is_a_failure() -> None:
    got = gemini(candidate([], finish="MALFORMED_FUNCTION_CALL"))
    assert got.error is not None and got.error.kind is ErrorKind.STREAM_ERROR


@pytest.mark.parametrize(
    ("name", "reason", "text"),
    [
        ("gemini/nonstream-finish-safety.json", FinishReason.CONTENT_FILTER, ""),
        ("gemini/nonstream-max-tokens-no-parts.json", FinishReason.LENGTH, ""),
        (
            "gemini/nonstream-finish-max-tokens.json",
            FinishReason.LENGTH,
            "The capital of France is",
        ),
        ("gemini/nonstream.json", FinishReason.STOP, "Hello! How can I help you today?"),
    ],
)
def test_gemini_recorded_bodies_as_one_event(name: str, reason: FinishReason, text: str) -> None:
    """A generateContent body has the shape of one streamed event: the finish mapping holds."""
    body = json.loads((FIXTURES / name).read_text())["body"]
    got = gemini(body)
    assert got.error is None and got.finish is not None
    assert got.finish.reason is reason and got.text == text


@pytest.mark.parametrize(
    "fc",
    [
        {"name": "f", "willContinue": True, "partialArgs": 3},
        {
            "name": "f",
            "willContinue": True,
            "partialArgs": [{"jsonPath": "$.a[99999999]", "stringValue": "x"}],
        },
        {"name": "f", "willContinue": True, "partialArgs": [{"jsonPath": "no-dollar path"}]},
        {"args": {}},
    ],
)
def test_gemini_bad_function_calls_are_protocol_errors(fc: dict[str, Any]) -> None:
    got = gemini(candidate([{"functionCall": fc}], finish="STOP"))
    assert got.error is not None and got.error.kind is ErrorKind.PROTOCOL


def test_deeply_nested_arguments_are_protocol_errors() -> None:
    deep: Any = 1
    for _ in range(300):
        deep = {"a": deep}
    got = gemini(candidate([{"functionCall": {"name": "f", "args": deep}}], finish="STOP"))
    assert got.error is not None and got.error.kind is ErrorKind.PROTOCOL
    got = openai(
        sse(
            chunk({"tool_calls": [call(0, id="c", name="f", arguments=deep)]}),
            chunk(finish="tool_calls"),
        )
    )
    assert got.error is not None and got.error.kind is ErrorKind.PROTOCOL


def test_parallel_calls_that_all_claim_index_0_are_kept_apart() -> None:
    got = openai(
        sse(
            chunk({"tool_calls": [call(0, id="a", name="f", arguments='{"n": 1}')]}),
            chunk({"tool_calls": [call(0, id="b", name="f", arguments='{"n": 2}')]}),
            chunk(finish="tool_calls"),
        )
    )
    assert [(c["id"], c["arguments"]) for c in got.tool_calls] == [
        ("a", '{"n": 1}'),
        ("b", '{"n": 2}'),
    ]


def test_events_after_done_cannot_fail_a_finished_turn() -> None:
    body = sse(chunk({"content": "a"}), chunk(finish="stop")) + sse(
        {"error": {"message": "late"}}, done=False
    )
    got = openai(body)
    assert got.error is None and got.finish is not None
