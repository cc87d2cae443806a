"""Azure OpenAI, deployment route (``/openai/deployments/{d}/chat/completions``).

Recorded references: ``azure/stream-text-prompt-filter.sse`` (first event with empty
``choices`` and ``prompt_filter_results``; ``content_filter_results`` on every choice; keys
sorted), ``azure/stream-model-router-usage.jsonl`` and the ``azure/error-*.json`` bodies.
"""

from __future__ import annotations

import random
import time
from typing import Any

import orjson

from server.simulator.answer import Answer
from server.simulator.behavior import FaultKind, Spec
from server.simulator.formats.chat import ChatCompletionsFormat, Ids, Json, message, openai_usage
from server.simulator.formats.common import (
    ErrorContext,
    Quirks,
    Reply,
    finish_reason,
    rand_uuid,
    retry_headers,
)
from server.simulator.formats.errors import (
    SERVER_ERROR,
    content_filter_error,
    context_length_message,
)

ACCESS_DENIED = (
    "Access denied due to invalid subscription key or wrong API endpoint. Make sure to provide a "
    "valid key for an active subscription and use a correct regional API endpoint for your "
    "resource."
)
DEPLOYMENT_NOT_FOUND = (
    "The API deployment for this resource does not exist. If you created the deployment within "
    "the last 5 minutes, please wait a moment and try again."
)
UNAVAILABLE = "The service is temporarily unable to process your request. Please try again later."
_CATEGORIES = ("hate", "self_harm", "sexual", "violence")


def _safe(categories: tuple[str, ...] = _CATEGORIES) -> Json:
    return {c: {"filtered": False, "severity": "safe"} for c in categories}


def _prompt_filter_results() -> Json:
    results = _safe()
    results["jailbreak"] = {"filtered": False, "detected": False}
    return {"prompt_index": 0, "content_filter_results": dict(sorted(results.items()))}


def rate_limit_message(retry_after_s: float | None) -> str:
    wait = round(retry_after_s) if retry_after_s is not None else 33
    return (
        "Requests to the ChatCompletions_Create Operation under Azure OpenAI API version "
        "2024-10-21 have exceeded token rate limit of your current OpenAI S0 pricing tier. "
        f"Please retry after {wait} seconds. Please go here: https://aka.ms/oai/quotaincrease "
        "if you would like to further increase the default rate limit."
    )


class AzureFormat(ChatCompletionsFormat):
    spec = Spec.AZURE_OPENAI
    content_type = "text/event-stream"

    def dumps(self, obj: Any) -> bytes:
        return orjson.dumps(obj, option=orjson.OPT_SORT_KEYS)

    def chunk(
        self, ids: Ids, delta: Json, finish: str | None, quirks: Quirks, rng: random.Random
    ) -> Json:
        speaks = "content" in delta and delta["content"] and "role" not in delta
        choice = {
            "content_filter_results": _safe() if speaks else {},
            "delta": delta,
            "finish_reason": finish,
            "index": 0,
            "logprobs": None,
        }
        chunk: Json = {
            "choices": [choice],
            "created": ids.created,
            "id": ids.chat_id,
            "model": ids.model,
            "object": "chat.completion.chunk",
            "system_fingerprint": None,
        }
        if quirks.include_usage:
            chunk["usage"] = None
        return chunk

    def preamble(self) -> bytes:
        """Sent right after the headers, before generation starts (not sorted on the wire)."""
        event = {
            "choices": [],
            "created": 0,
            "id": "",
            "model": "",
            "object": "",
            "prompt_filter_results": [_prompt_filter_results()],
        }
        return b"data: " + orjson.dumps(event) + b"\n\n"

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
            "apim-request-id": rand_uuid(rng),
            "x-request-id": rand_uuid(rng),
            "x-ms-region": "East US 2",
            "x-ms-rai-invoked": "true",
            "x-ms-deployment-name": ids.model,
            "x-ratelimit-remaining-requests": "119",
            "x-ratelimit-remaining-tokens": "119968",
            "cache-control": "no-cache, must-revalidate",
            "x-accel-buffering": "no",
        }

    def midstream_error(self) -> bytes:
        error = {"message": SERVER_ERROR, "type": "server_error", "param": None, "code": None}
        return b"data: " + orjson.dumps({"error": error}) + b"\n\n"

    def completion(self, answer: Answer, quirks: Quirks, rng: random.Random) -> Reply:
        ids = self.new_ids(answer, rng)
        body: Json = {
            "choices": [
                {
                    "content_filter_results": _safe(),
                    "finish_reason": finish_reason(answer),
                    "index": 0,
                    "logprobs": None,
                    "message": message(answer, self.dialect(answer), ids.tool_ids),
                }
            ],
            "created": int(time.time()),
            "id": ids.chat_id,
            "model": ids.model,
            "object": "chat.completion",
            "prompt_filter_results": [_prompt_filter_results()],
            "system_fingerprint": None,
            "usage": openai_usage(answer),
        }
        if quirks.no_usage:
            del body["usage"]
        return Reply(200, self.dumps(body), "application/json", self.headers(ids, rng))

    # Errors ------------------------------------------------------------------------------
    def http_error(self, kind: FaultKind, ctx: ErrorContext) -> Reply:
        if kind is FaultKind.CONTENT_FILTER:
            return content_filter_error()
        if kind is FaultKind.UNAUTHORIZED:
            return self.missing_key(ctx)
        error: Json
        if kind is FaultKind.NOT_FOUND:
            error = {
                "type": "invalid_request_error",
                "code": "DeploymentNotFound",
                "message": DEPLOYMENT_NOT_FOUND,
            }
            return _plain(404, error)
        if kind is FaultKind.CONTEXT_LENGTH:
            error = {
                "message": context_length_message(),
                "type": "invalid_request_error",
                "param": "messages",
                "code": "context_length_exceeded",
            }
            return _plain(400, error)
        status = {
            FaultKind.RATE_LIMITED: 429,
            FaultKind.SERVER_ERROR: 500,
            FaultKind.UNAVAILABLE: 503,
        }.get(kind, ctx.status)
        headers = retry_headers(ctx.retry_after_s, with_ms=True)
        if status == 429:
            text = rate_limit_message(ctx.retry_after_s)
            return _plain(429, {"code": "429", "message": text}, headers)
        if status == 503:
            return _plain(503, {"code": "ServiceUnavailable", "message": UNAVAILABLE}, headers)
        if status >= 500:
            error = {"message": SERVER_ERROR, "type": "server_error", "param": None, "code": None}
            return _plain(status, error)
        return _plain(status, {"code": str(status), "message": f"Simulated error {status}."})

    def missing_key(self, ctx: ErrorContext) -> Reply:
        return _plain(401, {"code": "401", "message": ACCESS_DENIED})

    def bad_request(self, ctx: ErrorContext) -> Reply:
        error = {
            "message": ctx.message,
            "type": "invalid_request_error",
            "param": ctx.param,
            "code": None,
        }
        return _plain(400, error)

    def unknown_path(self, ctx: ErrorContext) -> Reply:
        return _plain(404, {"code": "404", "message": "Resource not found"})


def _plain(status: int, error: Json, headers: dict[str, str] | None = None) -> Reply:
    return Reply(status, orjson.dumps({"error": error}), "application/json", headers or {})
