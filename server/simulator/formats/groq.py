"""Groq (``/openai/v1/chat/completions``).

Recorded references: ``groq/stream-text.sse`` (``x_groq.id`` on the first chunk, usage in
``x_groq.usage`` on the finish chunk), ``groq/stream-tool-call.jsonl`` (whole call in one
chunk, top-level ``usage`` too), ``groq/stream-reasoning-raw-think-tags.sse`` (``<`` and ``>``
escaped as ``\\u003c``/``\\u003e``), ``groq/stream-midstream-error-tool-use-failed.sse``.
"""

from __future__ import annotations

import random
import time
import uuid
from typing import Any

import orjson

from server.simulator.answer import Answer
from server.simulator.behavior import FaultKind, ReasoningDialect, Spec
from server.simulator.formats.chat import ChatCompletionsFormat, Ids, Json, message
from server.simulator.formats.common import (
    ErrorContext,
    Quirks,
    Reply,
    finish_reason,
    rand_lower,
    retry_headers,
)
from server.simulator.formats.errors import content_filter_error

TOOL_USE_FAILED = {
    "message": (
        "Tool call validation failed: tool call validation failed: parameters for tool "
        "get_something_by_name did not match schema: errors: [missing properties: 'name', "
        "additionalProperties 'invalid_param' not allowed]"
    ),
    "type": "invalid_request_error",
    "code": "tool_use_failed",
    "failed_generation": (
        '{"name": "get_something_by_name", "arguments": {\n  "invalid_param": "value"\n}}'
    ),
    "status_code": 400,
}


def go_json(obj: Any) -> bytes:
    """Go's encoding/json escapes <, > and & in strings; JSON has them nowhere else."""
    data = orjson.dumps(obj)
    if b"<" in data or b">" in data or b"&" in data:
        data = data.replace(b"<", b"\\u003c").replace(b">", b"\\u003e").replace(b"&", b"\\u0026")
    return data


def groq_usage(answer: Answer, rng: random.Random) -> Json:
    u = answer.usage
    completion = u.output_tokens + u.reasoning_tokens
    queue, prompt_time = round(rng.uniform(0.01, 0.1), 9), round(rng.uniform(0.001, 0.02), 9)
    completion_time = round(completion / 800, 9)
    usage: Json = {
        "queue_time": queue,
        "prompt_tokens": u.input_tokens,
        "prompt_time": prompt_time,
        "completion_tokens": completion,
        "completion_time": completion_time,
        "total_tokens": u.input_tokens + completion,
        "total_time": round(prompt_time + completion_time, 9),
    }
    if u.reasoning_tokens:
        usage["completion_tokens_details"] = {"reasoning_tokens": u.reasoning_tokens}
    return usage


class GroqFormat(ChatCompletionsFormat):
    spec = Spec.GROQ
    content_type = "text/event-stream"
    whole_tool_calls = True

    def dumps(self, obj: Any) -> bytes:
        return go_json(obj)

    def new_ids(self, answer: Answer, rng: random.Random) -> Ids:
        return Ids(
            chat_id=f"chatcmpl-{uuid.UUID(int=rng.getrandbits(128), version=4)}",
            created=int(time.time()),
            model=answer.model,
            fingerprint="fp_" + f"{rng.getrandbits(40):010x}",
            request_id="req_01" + rand_lower(rng, 24),
            tool_ids=[rand_lower(rng, 9) for _ in answer.tool_calls],
        )

    def dialect(self, answer: Answer) -> ReasoningDialect:
        """reasoning_format "raw" puts think tags in content; "parsed" uses ``reasoning``."""
        if answer.dialect is ReasoningDialect.THINK_TAGS:
            return ReasoningDialect.THINK_TAGS
        return ReasoningDialect.REASONING

    def chunk(
        self, ids: Ids, delta: Json, finish: str | None, quirks: Quirks, rng: random.Random
    ) -> Json:
        return {
            "id": ids.chat_id,
            "object": "chat.completion.chunk",
            "created": ids.created,
            "model": ids.model,
            "system_fingerprint": ids.fingerprint,
            "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}],
        }

    def first_chunk(self, chunk: Json, ids: Ids) -> Json:
        chunk["x_groq"] = {"id": ids.request_id, "seed": int(ids.fingerprint[3:], 16) % 2**31}
        return chunk

    def tail(self, ids: Ids, answer: Answer, quirks: Quirks, rng: random.Random) -> bytes:
        chunk = self.chunk(ids, {}, finish_reason(answer), quirks, rng)
        if quirks.no_usage:
            chunk["x_groq"] = {"id": ids.request_id}
        else:
            usage = groq_usage(answer, rng)
            chunk["x_groq"] = {"id": ids.request_id, "usage": usage}
            chunk["usage"] = usage
        return self.frame(chunk)

    def headers(self, ids: Ids, rng: random.Random) -> dict[str, str]:
        return {
            "cache-control": "no-cache",
            "x-groq-region": "me-central-1",
            "x-ratelimit-limit-requests": "14400",
            "x-ratelimit-limit-tokens": "6000",
            "x-ratelimit-remaining-requests": "14399",
            "x-ratelimit-remaining-tokens": "5987",
            "x-ratelimit-reset-requests": "6s",
            "x-ratelimit-reset-tokens": "130ms",
            "x-request-id": ids.request_id,
        }

    def midstream_error(self) -> bytes:
        """``event: error`` then the connection closes: no finish chunk, no [DONE]."""
        return b"event: error\ndata: " + go_json({"error": TOOL_USE_FAILED}) + b"\n\n"

    def completion(self, answer: Answer, quirks: Quirks, rng: random.Random) -> Reply:
        ids = self.new_ids(answer, rng)
        msg = message(answer, self.dialect(answer), ids.tool_ids)
        body: Json = {
            "choices": [
                {
                    "finish_reason": finish_reason(answer),
                    "index": 0,
                    "logprobs": None,
                    "message": msg,
                }
            ],
            "created": ids.created,
            "id": ids.chat_id,
            "model": ids.model,
            "object": "chat.completion",
            "system_fingerprint": ids.fingerprint,
            "usage": groq_usage(answer, rng),
            "usage_breakdown": {"models": None},
            "x_groq": {"id": ids.request_id},
        }
        if quirks.no_usage:
            del body["usage"]
        return Reply(200, go_json(body), "application/json", self.headers(ids, rng))

    # Errors ------------------------------------------------------------------------------
    def http_error(self, kind: FaultKind, ctx: ErrorContext) -> Reply:
        model = ctx.model or "llama-3.3-70b-versatile"
        if kind is FaultKind.CONTENT_FILTER:
            return content_filter_error()
        if kind is FaultKind.UNAUTHORIZED:
            return self.missing_key(ctx)
        if kind is FaultKind.NOT_FOUND:
            text = f"The model `{model}` does not exist or you do not have access to it."
            return _reply(404, text, "invalid_request_error", code="model_not_found")
        if kind is FaultKind.CONTEXT_LENGTH:
            text = "Please reduce the length of the messages or completion."
            return _reply(400, text, "invalid_request_error", "context_length_exceeded", "messages")
        status = {
            FaultKind.RATE_LIMITED: 429,
            FaultKind.SERVER_ERROR: 500,
            FaultKind.UNAVAILABLE: 503,
        }.get(kind, ctx.status)
        headers = retry_headers(ctx.retry_after_s, with_ms=False)
        if status == 429:
            wait = f"{ctx.retry_after_s:g}s" if ctx.retry_after_s is not None else "2s"
            text = (
                f"Rate limit reached for model `{model}` in organization `org_simulator` service "
                "tier `on_demand` on tokens per minute (TPM): Limit 6000, Used 5800, Requested "
                f"400. Please try again in {wait}. Need more tokens? Upgrade to Dev Tier today "
                "at https://console.groq.com/settings/billing"
            )
            return _reply(429, text, "tokens", "rate_limit_exceeded", headers=headers)
        if status == 503:
            text = (
                f"{model} is currently over capacity. Please try again and back off "
                "exponentially. Visit https://groqstatus.com to see if there is an active "
                "incident."
            )
            return _reply(
                503, text, "internal_server_error", "service_unavailable", headers=headers
            )
        if status >= 500:
            return _reply(status, "Internal Server Error", "internal_server_error")
        return _reply(status, f"Simulated error {status}.", "invalid_request_error")

    def missing_key(self, ctx: ErrorContext) -> Reply:
        return _reply(401, "Invalid API Key", "invalid_request_error", "invalid_api_key")

    def bad_request(self, ctx: ErrorContext) -> Reply:
        return _reply(400, ctx.message, "invalid_request_error", param=ctx.param)

    def unknown_path(self, ctx: ErrorContext) -> Reply:
        text = (
            f"Unknown request URL: {ctx.method} {ctx.path}. Please check the URL for typos, "
            "or see the docs at https://console.groq.com/docs/"
        )
        return _reply(404, text, "invalid_request_error", "unknown_url")


def _reply(
    status: int,
    message_: str,
    type_: str,
    code: str | None = None,
    param: str | None = None,
    headers: dict[str, str] | None = None,
) -> Reply:
    """Groq error objects have no ``param`` key unless it names a field."""
    error: Json = {"message": message_, "type": type_}
    if param:
        error["param"] = param
    if code:
        error["code"] = code
    return Reply(status, go_json({"error": error}), "application/json", headers or {})
