"""Turn events -> OpenAI Chat Completions responses: ``chat.completion`` and SSE chunks.

Streaming follows OpenAI's chunk format exactly: a first chunk with ``{"role": "assistant",
"content": ""}``, then one chunk per delta (``content``, ``reasoning_content`` as DeepSeek and
vLLM name it, or ``tool_calls`` by index with ``id``/``type``/``function.name`` on a call's
first piece), then a chunk with an empty delta and the ``finish_reason``, then (with
``stream_options.include_usage``) a chunk with ``"choices": []`` and the usage, then
``data: [DONE]``. With include_usage every other chunk carries ``"usage": null``, as OpenAI's do.
``model`` is the model of the endpoint that served the answer (the LLM id the caller asked
for is in the ``x-switchboard-llm`` header), as OpenAI SDK callers read it to see which model
answered, a fallback's included. ``finish_reason`` is OpenAI's
(``stop``, ``length``, ``tool_calls``, ``content_filter``), or ``error`` / ``other`` when the
upstream ended with a reason outside that set: never ``stop`` for an answer that did not stop.

Chunks are built from a pre-encoded prefix and suffix around the ``orjson`` delta, so a text
chunk costs one small ``dumps`` and two concatenations.
"""

from __future__ import annotations

from typing import Any

import orjson

from server.chat import FinishReason, Message, ToolCallDelta, Usage

FINISH = {
    FinishReason.STOP: "stop",
    FinishReason.LENGTH: "length",
    FinishReason.TOOL_CALLS: "tool_calls",
    FinishReason.CONTENT_FILTER: "content_filter",
    FinishReason.ERROR: "error",
    FinishReason.OTHER: "other",
}
DONE = b"data: [DONE]\n\n"


def usage_json(usage: Usage) -> dict[str, Any]:
    """OpenAI's usage: completion tokens include reasoning tokens."""
    completion = usage.output_tokens + usage.reasoning_tokens
    return {
        "prompt_tokens": usage.input_tokens,
        "completion_tokens": completion,
        "total_tokens": usage.input_tokens + completion,
        "completion_tokens_details": {"reasoning_tokens": usage.reasoning_tokens},
    }


def completion_json(completion_id: str, created: int, model: str, message: Message,
                    reason: FinishReason, usage: Usage) -> dict[str, Any]:
    """A non-streaming ``chat.completion`` from the engine's assembled answer."""
    out: dict[str, Any] = {"role": "assistant", "content": message.text or None,
                           "refusal": None}
    if message.reasoning:
        out["reasoning_content"] = message.reasoning
    if message.tool_calls:
        out["tool_calls"] = [
            {"id": c.id, "type": "function",
             "function": {"name": c.name, "arguments": c.arguments}}
            for c in message.tool_calls
        ]
    return {
        "id": completion_id,
        "object": "chat.completion",
        "created": created,
        "model": model,
        "choices": [{"index": 0, "message": out, "logprobs": None,
                     "finish_reason": FINISH[reason]}],
        "usage": usage_json(usage),
        "system_fingerprint": None,
    }


class Chunks:
    """Encodes the SSE events of one streamed completion."""

    __slots__ = ("_head", "_id_fields", "_tail", "_usage_null")

    def __init__(self, completion_id: str, created: int, model: str, include_usage: bool
                 ) -> None:
        ident = orjson.dumps({"id": completion_id, "object": "chat.completion.chunk",
                              "created": created, "model": model})
        self._id_fields = ident[:-1]  # without the closing brace
        self._head = (b"data: " + self._id_fields
                      + b',"system_fingerprint":null,"choices":[{"index":0,"delta":')
        self._usage_null = b',"usage":null' if include_usage else b""
        self._tail = b',"logprobs":null,"finish_reason":null}]' + self._usage_null + b"}\n\n"

    def _delta(self, delta: dict[str, Any]) -> bytes:
        return self._head + orjson.dumps(delta) + self._tail

    def role(self) -> bytes:
        return self._delta({"role": "assistant", "content": ""})

    def text(self, delta: str) -> bytes:
        return self._delta({"content": delta})

    def reasoning(self, delta: str) -> bytes:
        return self._delta({"reasoning_content": delta})

    def tool_call(self, event: ToolCallDelta) -> bytes:
        call: dict[str, Any] = {"index": event.index}
        if event.id or event.name:
            call["id"] = event.id
            call["type"] = "function"
            call["function"] = {"name": event.name, "arguments": event.arguments_delta}
        else:
            call["function"] = {"arguments": event.arguments_delta}
        return self._delta({"tool_calls": [call]})

    def finish(self, reason: FinishReason) -> bytes:
        return (self._head + b'{},"logprobs":null,"finish_reason":"'
                + FINISH[reason].encode() + b'"}]' + self._usage_null + b"}\n\n")

    def usage(self, usage: Usage) -> bytes:
        return (b"data: " + self._id_fields + b',"system_fingerprint":null,"choices":[],'
                b'"usage":' + orjson.dumps(usage_json(usage)) + b"}\n\n")


def sse_error(body: dict[str, Any]) -> bytes:
    """An in-stream error event; the OpenAI SDKs raise ``APIError`` on it."""
    return b"data: " + orjson.dumps(body) + b"\n\n"
