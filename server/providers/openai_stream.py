"""Decoder for Chat Completions streams: OpenAI, Azure, Groq and OpenAI-compatible servers.

One decoder handles every dialect recorded in FORMATS.md:

* text in ``delta.content``; a leading ``<think>`` block in it is reasoning (``think.py``);
* reasoning in ``delta.reasoning_content`` (DeepSeek, Z.ai, llama.cpp, old vLLM) or
  ``delta.reasoning`` (Groq parsed, OpenRouter, Ollama, new vLLM), one of them per delta;
* ``delta.refusal`` (OpenAI structured refusal) is streamed as TEXT: it is the model's answer to
  the user, and hiding it would turn a refusal into an empty success;
* tool calls accumulated by ``index`` (or by id when a server omits the index), emitted as
  ``ToolCallDelta`` pieces, validated as complete JSON at the end;
* usage from ``usage`` on any chunk (the ``choices: []`` chunk, the finish chunk, OpenRouter's
  trailing chunk) or Groq's ``x_groq.usage``; the last one seen wins;
* only choice 0 is read (we never ask for ``n > 1``);
* an ``error`` key in any event (even next to choices, even before ``[DONE]``) or an
  ``event: error`` is a failure;
* success needs a finish reason: ``[DONE]`` without one, or end of stream without one, raises.

``Usage`` and ``Finish`` are emitted together, last, at ``[DONE]`` or at end of stream, so an
error reported after the finish chunk (OpenRouter) is never preceded by a ``Finish``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import orjson

from server.chat import (
    Finish,
    FinishReason,
    ReasoningDelta,
    StreamEvent,
    ToolCallDelta,
    Usage,
)
from server.providers._common import json_text
from server.providers.base import ErrorKind, SseEvent, UpstreamError
from server.providers.errors import classify_error_object
from server.providers.think import ThinkSplitter

_FINISH = {
    "stop": FinishReason.STOP,
    "eos": FinishReason.STOP,
    "eos_token": FinishReason.STOP,
    "stop_sequence": FinishReason.STOP,
    "end_turn": FinishReason.STOP,
    "length": FinishReason.LENGTH,
    "max_tokens": FinishReason.LENGTH,
    "tool_calls": FinishReason.TOOL_CALLS,
    "function_call": FinishReason.TOOL_CALLS,
    "tool_use": FinishReason.TOOL_CALLS,
    "content_filter": FinishReason.CONTENT_FILTER,
}


def _int(value: object) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) else 0


def normalise_usage(usage: dict[str, Any]) -> Usage:
    """Chat Completions usage -> ``Usage``; output excludes reasoning (see adapters README)."""
    details = usage.get("completion_tokens_details")
    reasoning = _int(details.get("reasoning_tokens")) if isinstance(details, dict) else 0
    completion = _int(usage.get("completion_tokens"))
    return Usage(
        input_tokens=_int(usage.get("prompt_tokens")),
        output_tokens=max(0, completion - reasoning),
        reasoning_tokens=reasoning,
    )


class _Call:
    __slots__ = ("args", "id", "name", "ordinal")

    def __init__(self, ordinal: int) -> None:
        self.ordinal = ordinal
        self.id = ""
        self.name = ""
        self.args: list[str] = []


class OpenAIChatDecoder:
    """``StreamDecoder`` for Chat Completions SSE. One instance per upstream attempt."""

    __slots__ = (
        "_calls",
        "_done",
        "_finish",
        "_ids",
        "_label",
        "_last_key",
        "_think",
        "_usage",
    )

    def __init__(self, label: str) -> None:
        self._label = label
        self._think = ThinkSplitter()
        self._calls: dict[object, _Call] = {}
        self._ids: dict[str, object] = {}
        self._last_key: object = None
        self._usage: dict[str, Any] | None = None
        self._finish: str | None = None
        self._done = False

    def feed(self, event: SseEvent) -> Sequence[StreamEvent]:
        if self._done:  # after [DONE] (and our Finish) nothing can change the outcome
            return ()
        data = event.data
        if data == "[DONE]":
            return self._end("the upstream sent [DONE] without a finish reason")
        try:
            chunk = orjson.loads(data)
        except orjson.JSONDecodeError:
            if event.event == "error":
                raise classify_error_object({"error": data}, label=self._label) from None
            raise self._protocol("an event whose data is not JSON") from None
        if not isinstance(chunk, dict):
            raise self._protocol("an event whose data is not a JSON object")
        if chunk.get("error") or event.event == "error":
            raise classify_error_object(chunk, label=self._label)
        if (usage := chunk.get("usage")) and isinstance(usage, dict):
            self._usage = usage
        xg = chunk.get("x_groq")
        if xg and isinstance(xg, dict) and isinstance(xg.get("usage"), dict):
            self._usage = xg["usage"]  # Groq: usage only here on 2025 recordings
        choices = chunk.get("choices")
        if not choices or not isinstance(choices, list):
            return ()
        out: list[StreamEvent] = []
        for choice in choices:
            if not isinstance(choice, dict) or choice.get("index") not in (None, 0):
                continue  # n > 1: only choice 0 is ours
            delta = choice.get("delta")
            if isinstance(delta, dict):
                if delta:
                    self._delta(delta, out)
            elif "text" in choice:
                raise self._protocol(
                    "legacy /v1/completions chunks (choices[].text); register the base URL of "
                    "the chat completions API"
                )
            reason = choice.get("finish_reason")
            if reason and isinstance(reason, str):
                if reason == "error":
                    raise UpstreamError(
                        ErrorKind.STREAM_ERROR,
                        f"{self._label} ended the stream with finish_reason 'error'",
                    )
                self._finish = reason
        return out

    def close(self, leftover: bytes) -> Sequence[StreamEvent]:
        if self._done:
            return ()
        tail = leftover.strip()
        if tail:
            self._raise_if_error_tail(tail)
        if self._finish is not None:  # finished but no [DONE]: the answer is complete
            return self._end("")
        if tail:
            raise self._protocol(
                f"{len(tail)} bytes that are not a complete server-sent event, then closed the "
                "stream before a finish reason"
            )
        raise UpstreamError(
            ErrorKind.INCOMPLETE,
            f"{self._label} closed the stream before sending a finish reason; the answer is "
            "truncated",
        )

    # -- internals ---------------------------------------------------------------------------

    def _delta(self, delta: dict[str, Any], out: list[StreamEvent]) -> None:
        reasoning = delta.get("reasoning_content") or delta.get("reasoning")
        if reasoning and isinstance(reasoning, str):
            out.append(ReasoningDelta(reasoning))
        content = delta.get("content")
        if content and isinstance(content, str):
            out.extend(self._think.feed(content))
        refusal = delta.get("refusal")
        if refusal and isinstance(refusal, str):
            out.extend(self._think.feed(refusal))
        calls = delta.get("tool_calls")
        if calls and isinstance(calls, list):
            for tc in calls:
                if isinstance(tc, dict):
                    self._tool_piece(tc, out)

    def _tool_piece(self, tc: dict[str, Any], out: list[StreamEvent]) -> None:
        fn = tc.get("function")
        fn = fn if isinstance(fn, dict) else {}
        raw_id, raw_name = tc.get("id"), fn.get("name")
        tid = raw_id if isinstance(raw_id, str) else ""
        name = raw_name if isinstance(raw_name, str) else ""
        args = fn.get("arguments")
        if isinstance(args, dict):  # a few servers send the arguments as an object
            args = json_text(args)
            if args is None:
                raise self._protocol("tool-call arguments nested too deeply")
        elif not isinstance(args, str):
            args = ""
        call = self._call_for(tc.get("index"), tid)
        new_id = new_name = ""
        if not call.id:
            call.id = new_id = tid or f"call_{call.ordinal}"  # ids go on the first piece
        if name and not call.name:
            call.name = new_name = name
        if args:
            call.args.append(args)
        if new_id or new_name or args:
            out.append(ToolCallDelta(call.ordinal, new_id, new_name, args))

    def _call_for(self, index: object, tid: str) -> _Call:
        """The call a piece belongs to: by ``index``; by id when the index is missing or reused
        for a different id (some servers send every call as index 0); else the previous call."""
        if isinstance(index, int) and not isinstance(index, bool):
            key: object = index
            known = self._calls.get(key)
            if known is not None and tid and known.id and tid != known.id:
                key = self._ids.get(tid, ("id", tid))
        elif tid:
            key = self._ids.get(tid, ("id", tid))
        else:
            key = self._last_key if self._last_key is not None else 0
        call = self._calls.get(key)
        if call is None:
            call = self._calls[key] = _Call(len(self._calls))
        if tid:
            self._ids.setdefault(tid, key)
        self._last_key = key
        return call

    def _end(self, incomplete: str) -> list[StreamEvent]:
        if self._done:
            return []
        if self._finish is None:
            raise UpstreamError(ErrorKind.INCOMPLETE, f"{incomplete}; the answer is truncated")
        self._done = True
        out: list[StreamEvent] = list(self._think.flush())
        for call in self._calls.values():
            self._finish_call(call, out)
        if self._usage is not None:
            out.append(normalise_usage(self._usage))
        reason = _FINISH.get(self._finish, FinishReason.OTHER)
        if reason is FinishReason.STOP and self._calls:
            reason = FinishReason.TOOL_CALLS  # vLLM named tool_choice, Ollama: "stop" + calls
        out.append(Finish(reason, provider_reason=self._finish))
        return out

    def _finish_call(self, call: _Call, out: list[StreamEvent]) -> None:
        if not call.name:
            raise self._protocol(f"tool call #{call.ordinal} without a function name")
        args = "".join(call.args)
        if not args.strip():
            out.append(ToolCallDelta(call.ordinal, arguments_delta="{}"))
            return
        try:
            orjson.loads(args)
        except orjson.JSONDecodeError:
            raise self._protocol(
                f"tool call {call.name!r} whose arguments are not complete JSON "
                f"({len(args)} characters)"
            ) from None

    def _raise_if_error_tail(self, tail: bytes) -> None:
        """An unterminated last event may still be an error (llama.cpp, proxies): report it."""
        body = tail[5:].strip() if tail.startswith(b"data:") else tail
        try:
            obj = orjson.loads(body)
        except orjson.JSONDecodeError:
            return
        if isinstance(obj, dict) and obj.get("error"):
            raise classify_error_object(obj, label=self._label)

    def _protocol(self, what: str) -> UpstreamError:
        return UpstreamError(ErrorKind.PROTOCOL, f"{self._label} sent {what}")
