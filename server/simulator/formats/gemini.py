"""Gemini native ``streamGenerateContent`` / ``generateContent``.

Recorded references: ``gemini/stream-text.sse`` (CRLF event boundaries, ``"key": value``
spacing, no [DONE]), ``gemini/stream-usage-every-chunk.sse`` (cumulative ``usageMetadata`` on
every event), ``gemini/stream-thinking.sse`` (``thought: true`` parts),
``gemini/stream-parallel-function-calls.sse`` (whole ``functionCall`` parts with ``id``; the
``thoughtSignature`` only on the first), ``gemini/stream-no-alt-sse.json`` (JSON array framing
without ``alt=sse``) and the ``gemini/error-*.json`` bodies.
"""

from __future__ import annotations

import base64
import json
import random
from typing import Any

from server.simulator.answer import Answer
from server.simulator.behavior import FaultKind, Spec
from server.simulator.formats.common import (
    Encoded,
    ErrorContext,
    Quirks,
    Reply,
    rand_id,
    rand_lower,
)

Json = dict[str, Any]
SSE_TYPE = "text/event-stream"
JSON_TYPE = "application/json; charset=UTF-8"
_CANONICAL = {
    400: "INVALID_ARGUMENT", 401: "UNAUTHENTICATED", 403: "PERMISSION_DENIED", 404: "NOT_FOUND",
    409: "ABORTED", 429: "RESOURCE_EXHAUSTED", 499: "CANCELLED", 500: "INTERNAL",
    501: "NOT_IMPLEMENTED", 503: "UNAVAILABLE", 504: "DEADLINE_EXCEEDED",
}  # fmt: skip
_MESSAGES = {
    FaultKind.SERVER_ERROR: (500, "An internal error has occurred. Please retry or report in "
                             "https://developers.generativeai.google/guide/troubleshooting"),
    FaultKind.UNAVAILABLE: (503, "The model is overloaded. Please try again later."),
    FaultKind.CONTEXT_LENGTH: (400, "The input token count (1200000) exceeds the maximum number "
                               "of tokens allowed (1048576)."),
}  # fmt: skip
UNREGISTERED = (
    "Method doesn't allow unregistered callers (callers without established identity). Please "
    "use API Key or other form of API consumer identity to call this API."
)


def google_json(obj: Any) -> bytes:
    """Google's stream spacing: ``{"a": 1,"b": 2}`` (space after colons, none after commas)."""
    return json.dumps(obj, separators=(",", ": "), ensure_ascii=False).encode()


def pretty(obj: Any) -> bytes:
    return json.dumps(obj, indent=2, ensure_ascii=False).encode()


class _Counter:
    """Cumulative ``usageMetadata``: counts grow with the parts already sent."""

    def __init__(self, answer: Answer, thought_events: int, output_events: int) -> None:
        self.usage = answer.usage
        self.thought_events, self.output_events = thought_events, output_events
        self.thoughts_sent = self.outputs_sent = 0

    def metadata(self) -> Json:
        u = self.usage
        thoughts = u.reasoning_tokens * self.thoughts_sent // max(1, self.thought_events)
        output = u.output_tokens * self.outputs_sent // max(1, self.output_events)
        meta: Json = {"promptTokenCount": u.input_tokens}
        if output:
            meta["candidatesTokenCount"] = output
        meta["totalTokenCount"] = u.input_tokens + output + thoughts
        meta["promptTokensDetails"] = [{"modality": "TEXT", "tokenCount": u.input_tokens}]
        if thoughts:
            meta["thoughtsTokenCount"] = thoughts
        return meta


class GeminiFormat:
    spec = Spec.GEMINI

    def parts(self, answer: Answer, rng: random.Random, *, merged: bool) -> list[Json]:
        """Thought parts, text parts, then whole functionCall parts, signatures placed."""
        reasoning = (answer.full_reasoning,) if merged and answer.reasoning else answer.reasoning
        text = (answer.full_text,) if merged and answer.text else answer.text
        parts: list[Json] = [{"text": piece, "thought": True} for piece in reasoning]
        texts: list[Json] = [{"text": piece} for piece in text]
        calls: list[Json] = [
            {
                "functionCall": {
                    "name": call.name,
                    "args": json.loads(call.arguments),
                    "id": rand_lower(rng, 8),
                }
            }
            for call in answer.tool_calls
        ]
        signed = calls[0] if calls else (texts[0] if texts and reasoning else None)
        if signed is not None:
            signed["thoughtSignature"] = base64.b64encode(rng.randbytes(96)).decode()
        return parts + texts + calls

    def event(self, part: Json | None, meta: Json | None, answer: Answer, rid: str, *,
              finish: bool, quirks: Quirks) -> Json:  # fmt: skip
        content: Json = {"parts": [part if part is not None else {"text": ""}]}
        if not quirks.no_role:
            content["role"] = "model"
        candidate: Json = {"content": content}
        if finish:
            candidate["finishReason"] = answer.finish_reason or "STOP"
        candidate["index"] = 0
        event: Json = {"candidates": [candidate]}
        if meta is not None:
            event["usageMetadata"] = meta
        event.update(modelVersion=answer.model, responseId=rid)
        return event

    def stream(self, answer: Answer, quirks: Quirks, rng: random.Random) -> Encoded:
        rid = rand_id(rng, 23)
        parts = self.parts(answer, rng, merged=False)
        thoughts = len(answer.reasoning)
        counter = _Counter(answer, thoughts, len(parts) - thoughts)
        separate_finish = bool(answer.tool_calls) or not answer.text
        events: list[Json] = []
        for i, part in enumerate(parts):
            if i < thoughts:
                counter.thoughts_sent += 1
            else:
                counter.outputs_sent += 1
            last = i == len(parts) - 1 and not separate_finish
            meta = None if quirks.no_usage else counter.metadata()
            events.append(self.event(part, meta, answer, rid, finish=last, quirks=quirks))
        if separate_finish:
            meta = None if quirks.no_usage else counter.metadata()
            events.append(self.event(None, meta, answer, rid, finish=True, quirks=quirks))
        frames = self._frames(events, quirks.sse)
        content, tail = (frames, b"") if not separate_finish else (frames[:-1], frames[-1])
        error = {"error": {"code": 503, "message": _MESSAGES[FaultKind.UNAVAILABLE][1],
                           "status": "UNAVAILABLE"}}  # fmt: skip
        if quirks.raw_tail or not quirks.sse:
            error_frame = (b"" if quirks.sse else b"\n,\r\n") + pretty(error) + b"\n"
        else:
            error_frame = b"data: " + google_json(error) + b"\r\n\r\n"
        example = b"data: " + google_json(events[0])
        return Encoded(
            status=200,
            headers=self._headers(quirks.sse, rng),
            preamble=b"",
            head=b"",
            content=content,
            tail=tail,
            done=b"" if quirks.sse else b"\n]",
            error_frame=error_frame,
            malformed=example[: len(example) * 2 // 3] + b"\r\n\r\n",
            finish_in_last=not separate_finish,
        )

    def _frames(self, events: list[Json], sse: bool) -> list[bytes]:
        if sse:
            return [b"data: " + google_json(e) + b"\r\n\r\n" for e in events]
        return [(b"[" if i == 0 else b"\n,\r\n") + pretty(e) for i, e in enumerate(events)]

    def _headers(self, sse: bool, rng: random.Random) -> dict[str, str]:
        return {
            "content-type": SSE_TYPE if sse else JSON_TYPE,
            "content-disposition": "attachment",
            "vary": "Origin, X-Origin, Referer",
            "server": "scaffolding on HTTPServer2",
            "server-timing": f"gfet4t7; dur={rng.randint(200, 900)}",
        }

    def completion(self, answer: Answer, quirks: Quirks, rng: random.Random) -> Reply:
        parts = self.parts(answer, rng, merged=True)
        counter = _Counter(answer, 1, 1)
        counter.thoughts_sent = counter.outputs_sent = 1
        meta = None if quirks.no_usage else counter.metadata()
        event = self.event(None, meta, answer, rand_id(rng, 23), finish=True, quirks=quirks)
        event["candidates"][0]["content"]["parts"] = parts or [{"text": ""}]
        headers = self._headers(False, rng)
        del headers["content-disposition"]
        return Reply(200, pretty(event), headers.pop("content-type"), headers)

    # Errors ------------------------------------------------------------------------------
    def http_error(self, kind: FaultKind, ctx: ErrorContext) -> Reply:
        if kind is FaultKind.UNAUTHORIZED:
            details: list[Json] = [
                {
                    "@type": "type.googleapis.com/google.rpc.ErrorInfo",
                    "reason": "API_KEY_INVALID",
                    "domain": "googleapis.com",
                    "metadata": {"service": "generativelanguage.googleapis.com"},
                },
                {
                    "@type": "type.googleapis.com/google.rpc.LocalizedMessage",
                    "locale": "en-US",
                    "message": "API key not valid. Please pass a valid API key.",
                },
            ]
            return _error(ctx, 400, "API key not valid. Please pass a valid API key.", details)
        if kind is FaultKind.NOT_FOUND:
            text = (
                f"models/{ctx.model} is not found for API version v1beta, or is not supported "
                "for generateContent. Call ListModels to see the list of available models and "
                "their supported methods."
            )
            return _error(ctx, 404, text)
        if kind is FaultKind.CONTENT_FILTER:
            return self._blocked_prompt(ctx)
        if kind is FaultKind.RATE_LIMITED or ctx.status == 429:
            return _rate_limited(ctx)
        if kind in _MESSAGES:
            return _error(ctx, *_MESSAGES[kind])
        by_status = {FaultKind.SERVER_ERROR: 500, FaultKind.UNAVAILABLE: 503}
        same = next((k for k, s in by_status.items() if s == ctx.status), None)
        text = _MESSAGES[same][1] if same else f"Simulated error {ctx.status}."
        return _error(ctx, ctx.status, text)

    def _blocked_prompt(self, ctx: ErrorContext) -> Reply:
        """A blocked prompt is HTTP 200 with ``promptFeedback.blockReason`` and no candidates."""
        ratings: list[Json] = [
            {"category": f"HARM_CATEGORY_{c}", "probability": "NEGLIGIBLE"}
            for c in ("SEXUALLY_EXPLICIT", "HATE_SPEECH", "HARASSMENT", "DANGEROUS_CONTENT")
        ]
        ratings[1].update(probability="HIGH", blocked=True)
        event = {
            "promptFeedback": {"blockReason": "SAFETY", "safetyRatings": ratings},
            "usageMetadata": {"promptTokenCount": 8, "totalTokenCount": 8},
            "modelVersion": ctx.model,
            "responseId": "blocked0000000000000000",
        }
        if ctx.gemini_sse:
            return Reply(200, b"data: " + google_json(event) + b"\r\n\r\n", SSE_TYPE)
        return Reply(200, b"[" + pretty(event) + b"\n]", JSON_TYPE)

    def missing_key(self, ctx: ErrorContext) -> Reply:
        return _error(ctx, 403, UNREGISTERED)

    def bad_request(self, ctx: ErrorContext) -> Reply:
        return _error(ctx, 400, ctx.message)

    def unknown_path(self, ctx: ErrorContext) -> Reply:
        return _error(ctx, 404, "Method not found.")


def _rate_limited(ctx: ErrorContext) -> Reply:
    if ctx.retry_after_s is None:
        text = (
            "Resource exhausted. Please try again later. Please refer to https://cloud.google.com"
            "/vertex-ai/generative-ai/docs/error-code-429 for more details."
        )
        return _error(ctx, 429, text)
    details: list[Json] = [
        {
            "@type": "type.googleapis.com/google.rpc.QuotaFailure",
            "violations": [{"quotaId": "GenerateRequestsPerMinutePerProjectPerModel-FreeTier"}],
        },
        {
            "@type": "type.googleapis.com/google.rpc.RetryInfo",
            "retryDelay": f"{ctx.retry_after_s:g}s",
        },
    ]
    text = "You exceeded your current quota, please check your plan and billing details."
    return _error(ctx, 429, text, details)


def _error(
    ctx: ErrorContext, status: int, message: str, details: list[Json] | None = None
) -> Reply:
    """Google errors: pretty-printed, canonical status name; text/event-stream on alt=sse."""
    error: Json = {"code": status, "message": message, "status": _CANONICAL.get(status, "UNKNOWN")}
    if details:
        error["details"] = details
    content_type = SSE_TYPE if ctx.gemini_sse else JSON_TYPE
    return Reply(status, pretty({"error": error}) + b"\n", content_type)
