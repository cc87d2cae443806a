"""OpenAI Chat Completions (api.openai.com and OpenAI-compatible servers).

Recorded references: ``openai/stream-text-with-usage.sse``, ``openai/stream-tool-call.sse``,
``openai/stream-parallel-tool-calls.sse`` and the ``openai/error-*.json`` bodies.
"""

from __future__ import annotations

import json
import random
from typing import Any

from server.simulator.answer import Answer
from server.simulator.behavior import FaultKind, Spec
from server.simulator.formats.chat import (
    ChatCompletionsFormat,
    Ids,
    Json,
    message,
    openai_usage,
)
from server.simulator.formats.common import (
    ErrorContext,
    Quirks,
    Reply,
    finish_reason,
    retry_headers,
)
from server.simulator.formats.errors import (
    NO_KEY,
    OVERLOADED,
    SERVER_ERROR,
    content_filter_error,
    context_length_message,
    masked_key,
    rate_limit_message,
)


class OpenAIFormat(ChatCompletionsFormat):
    spec = Spec.OPENAI

    def chunk(
        self, ids: Ids, delta: Json, finish: str | None, quirks: Quirks, rng: random.Random
    ) -> Json:
        if "role" in delta and "reasoning_content" not in delta:
            delta["refusal"] = None
        chunk: Json = {
            "id": ids.chat_id,
            "object": "chat.completion.chunk",
            "created": ids.created,
            "model": ids.model,
            "service_tier": "default",
            "system_fingerprint": ids.fingerprint,
            "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}],
        }
        if quirks.include_usage:
            chunk["usage"] = None
        chunk["obfuscation"] = ids.padding()
        return chunk

    def tail(self, ids: Ids, answer: Answer, quirks: Quirks, rng: random.Random) -> bytes:
        out = self.frame(self.chunk(ids, {}, finish_reason(answer), quirks, rng))
        if quirks.include_usage and not quirks.no_usage:
            usage = self.chunk(ids, {}, None, quirks, rng)
            usage["choices"] = []
            usage["usage"] = openai_usage(answer)
            out += self.frame(usage)
        return out

    def headers(self, ids: Ids, rng: random.Random) -> dict[str, str]:
        return {
            "x-request-id": ids.request_id,
            "openai-processing-ms": str(rng.randint(80, 400)),
            "openai-version": "2020-10-01",
            "x-ratelimit-limit-requests": "10000",
            "x-ratelimit-limit-tokens": "200000",
            "x-ratelimit-remaining-requests": "9999",
            "x-ratelimit-remaining-tokens": "199961",
            "x-ratelimit-reset-requests": "8.64s",
            "x-ratelimit-reset-tokens": "11ms",
            "access-control-expose-headers": "X-Request-ID",
        }

    def midstream_error(self) -> bytes:
        body = {"error": _error_obj(SERVER_ERROR, "server_error", None, None)}
        return self.frame(body)

    def completion(self, answer: Answer, quirks: Quirks, rng: random.Random) -> Reply:
        ids = self.new_ids(answer, rng)
        msg = message(answer, self.dialect(answer), ids.tool_ids)
        msg.update(refusal=None, annotations=[])
        body: Json = {
            "id": ids.chat_id,
            "object": "chat.completion",
            "created": ids.created,
            "model": ids.model,
            "choices": [
                {
                    "index": 0,
                    "message": msg,
                    "logprobs": None,
                    "finish_reason": finish_reason(answer),
                }
            ],
            "usage": openai_usage(answer),
            "service_tier": "default",
            "system_fingerprint": ids.fingerprint,
        }
        if quirks.no_usage:
            del body["usage"]
        data = json.dumps(body, indent=2, ensure_ascii=False).encode()
        return Reply(200, data, "application/json", self.headers(ids, rng))

    # Errors ------------------------------------------------------------------------------
    def http_error(self, kind: FaultKind, ctx: ErrorContext) -> Reply:
        if kind is FaultKind.CONTENT_FILTER:
            return content_filter_error()
        if kind is FaultKind.UNAUTHORIZED:
            message_ = (
                f"Incorrect API key provided: {masked_key(ctx.api_key or 'sk-')}. You can find "
                "your API key at https://platform.openai.com/account/api-keys."
            )
            return _reply(401, message_, "invalid_request_error", None, "invalid_api_key")
        if kind is FaultKind.NOT_FOUND:
            text = f"The model `{ctx.model}` does not exist or you do not have access to it."
            return _reply(404, text, "invalid_request_error", None, "model_not_found")
        if kind is FaultKind.CONTEXT_LENGTH:
            return _reply(
                400,
                context_length_message(),
                "invalid_request_error",
                "messages",
                "context_length_exceeded",
            )
        if kind is FaultKind.RATE_LIMITED or ctx.status == 429:
            headers = retry_headers(ctx.retry_after_s, with_ms=True)
            headers.update(
                {"x-ratelimit-remaining-requests": "0", "x-ratelimit-reset-requests": "20s"}
            )
            text = rate_limit_message(ctx.model, ctx.retry_after_s)
            return _reply(429, text, "requests", None, "rate_limit_exceeded", headers)
        status = {FaultKind.SERVER_ERROR: 500, FaultKind.UNAVAILABLE: 503}.get(kind, ctx.status)
        headers = retry_headers(ctx.retry_after_s, with_ms=True) if status == 503 else {}
        if status >= 500:
            text = OVERLOADED if status == 503 else SERVER_ERROR
            return _reply(status, text, "server_error", None, None, headers)
        return _reply(status, f"Simulated error {status}.", "invalid_request_error", None, None)

    def missing_key(self, ctx: ErrorContext) -> Reply:
        return _reply(401, NO_KEY, "invalid_request_error", None, None)

    def bad_request(self, ctx: ErrorContext) -> Reply:
        code = "missing_required_parameter" if ctx.param else None
        return _reply(400, ctx.message, "invalid_request_error", ctx.param, code)

    def unknown_path(self, ctx: ErrorContext) -> Reply:
        text = f"Invalid URL ({ctx.method} {ctx.path})"
        return _reply(404, text, "invalid_request_error", None, None)


def _error_obj(message_: str, type_: str, param: str | None, code: str | None) -> Json:
    return {"message": message_, "type": type_, "param": param, "code": code}


def _reply(
    status: int,
    message_: str,
    type_: str,
    param: str | None,
    code: str | None,
    headers: dict[str, str] | None = None,
) -> Reply:
    """OpenAI error bodies are pretty-printed with a 4-space indent."""
    body: Any = {"error": _error_obj(message_, type_, param, code)}
    data = (json.dumps(body, indent=4) + "\n").encode()
    return Reply(status, data, "application/json; charset=utf-8", headers or {})
