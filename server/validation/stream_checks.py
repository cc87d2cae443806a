"""Judges the streamed answer: the ``streaming.*`` and ``response.*`` checks.

Each rule belongs to exactly one check, and a check whose evidence is missing because an
earlier one failed is SKIPPED with that reason, so one broken rule shows as one failure.
The adapter's decoder verdict (``StreamAudit.runtime_error``) backs the checks up: if the
gateway's own decoder refused the stream and no check caught why, the matching check fails.
"""

from __future__ import annotations

from dataclasses import dataclass

import orjson

from server.providers.base import ErrorKind
from server.registry.llm import ApiSpec, Endpoint
from server.validation.audit import StreamAudit, snippet
from server.validation.catalog import (
    CHUNK_SCHEMA,
    CONTENT,
    CONTENT_TYPE,
    END,
    ERROR_EVENTS,
    FINISH_REASON,
    FIRST_TOKEN,
    FRAMING,
    RESPONSE,
    ROLE,
    STREAM,
    USAGE,
    CheckVerdict,
    failed,
    passed,
    skipped,
    warned,
)
from server.validation.exchange import Exchange
from server.validation.report import CheckStatus

_CHAT_FINISH = frozenset({"stop", "length", "tool_calls", "content_filter", "function_call"})
_GEMINI_FAILED = frozenset({"MALFORMED_FUNCTION_CALL", "UNEXPECTED_TOOL_CALL"})
_RUNTIME_CHECK = {
    ErrorKind.PROTOCOL: CHUNK_SCHEMA,
    ErrorKind.INCOMPLETE: END,
    ErrorKind.CONTENT_FILTERED: CONTENT,
}


@dataclass(frozen=True, slots=True)
class Budget:
    first_token_s: float
    slow_first_token_s: float


def skip_all(reason: str) -> list[CheckVerdict]:
    return [skipped(c, reason) for c in (*STREAM, *RESPONSE)]


def server_of(ex: Exchange) -> str:
    """The server software when it names itself (``llama.cpp``), for hints; else ""."""
    return "llama.cpp" if ex.headers.get("server", "").lower().startswith("llama.cpp") else ""


def judge(ex: Exchange, audit: StreamAudit, endpoint: Endpoint, budget: Budget,
          admitted: str, *, limit_sent: bool = True) -> list[CheckVerdict]:
    """Verdicts for ``STREAM`` then ``RESPONSE``. ``admitted`` is "" when every admission
    check passed, else the name of the one that failed. ``limit_sent``: the request set an
    output token limit (so a ``length`` finish is that limit, not the server's)."""
    if ex.status == 0:
        failure = ex.failure
        if failure is not None and failure.timed_out and failure.phase == "headers":
            out = skip_all("no response")
            out[1] = failed(FIRST_TOKEN, f"no response within {budget.first_token_s:g}s",
                            _slow_hint(budget))
            return out
        return skip_all("no response")
    if admitted:
        return skip_all(f"not reached: {admitted} failed")
    if not ex.streamed:
        out = skip_all("no event stream to read")
        out[0] = _not_a_stream(ex, endpoint)
        return out
    gemini = endpoint.api_spec is ApiSpec.GEMINI
    verdicts = [_content_type(ex), _first_token(ex, audit, budget), _framing(ex, audit)]
    if verdicts[2].status is CheckStatus.FAIL and not audit.events:
        return [*verdicts, *(skipped(c, "no server-sent events to read")
                             for c in (*STREAM[3:], *RESPONSE))]
    if verdicts[1].status is CheckStatus.FAIL:
        return [*verdicts, *(skipped(c, "no token arrived in time")
                             for c in (*STREAM[3:], *RESPONSE))]
    verdicts += [_schema(audit, gemini), _errors(audit), _end(ex, audit, gemini)]
    verdicts += [_role(audit, gemini), _content(ex, audit),
                 _finish(audit, gemini, limit_sent, server_of(ex)),
                 _usage(ex, audit, endpoint.api_spec)]
    return _backstop(verdicts, audit)


def _slow_hint(budget: Budget) -> str:
    return (f"the endpoint did not start answering a one-line prompt within "
            f"{budget.first_token_s:g}s: check the server's load and queue, and that the model "
            "is loaded (a cold start); conversations would time out the same way")


def _not_a_stream(ex: Exchange, endpoint: Endpoint) -> CheckVerdict:
    body = ex.body.lstrip()
    if "ndjson" in ex.mime:
        return failed(CONTENT_TYPE, f"{ex.mime} (newline-delimited JSON) to stream: true",
                      "this looks like Ollama's native API: register the OpenAI-compatible "
                      "base_url ending in /v1")
    if endpoint.api_spec is ApiSpec.GEMINI and body[:1] == b"[":
        return failed(CONTENT_TYPE, f"{ex.mime}: a JSON array instead of server-sent events",
                      "the server ignored ?alt=sse (a proxy in front of Gemini may drop the "
                      "query string); Gemini streams server-sent events only with alt=sse")
    try:
        obj = orjson.loads(body) if body else None
    except orjson.JSONDecodeError:
        obj = None
    if isinstance(obj, dict) and ("choices" in obj or "candidates" in obj):
        return failed(CONTENT_TYPE, f"returns {ex.mime} to stream: true: one complete, "
                      "non-streamed answer",
                      "the server does not stream (non-streaming only): enable streaming on "
                      "the server or in the proxy in front of it; Switchboard relays answers "
                      "token by token and needs text/event-stream")
    return failed(CONTENT_TYPE, f"returns {ex.mime} to stream: true",
                  "the server does not answer streaming requests with server-sent events: "
                  "check base_url and that the server supports streaming chat completions")


def _content_type(ex: Exchange) -> CheckVerdict:
    if ex.mime == "text/event-stream":
        return passed(CONTENT_TYPE, ex.content_type)
    if not ex.mime:
        return warned(CONTENT_TYPE, "no Content-Type header",
                      "label the stream Content-Type: text/event-stream")
    return failed(CONTENT_TYPE, f"{ex.content_type} (the events themselves were read)",
                  "label the stream Content-Type: text/event-stream; proxies and clients "
                  "buffer or refuse a stream labelled otherwise")


def _first_token(ex: Exchange, audit: StreamAudit, budget: Budget) -> CheckVerdict:
    if audit.first_content_at is not None:
        ttft = audit.first_content_at - ex.sent_at
        observed = f"first token after {ttft * 1000:.0f} ms"
        if ttft > budget.slow_first_token_s:
            return warned(FIRST_TOKEN, observed, "slow: conversations will feel sluggish; "
                          "check the server's load or choose a faster deployment")
        return passed(FIRST_TOKEN, observed)
    failure = ex.failure
    if failure is not None and failure.timed_out and failure.phase in ("first_token", "total"):
        return failed(FIRST_TOKEN, f"HTTP {ex.status} then no token within "
                      f"{budget.first_token_s:g}s", _slow_hint(budget))
    if failure is not None:
        return skipped(FIRST_TOKEN, f"the stream ended before any token ({failure.message})")
    return passed(FIRST_TOKEN, f"the stream ended after {ex.duration_s * 1000:.0f} ms without "
                  "a token")


def _framing(ex: Exchange, audit: StreamAudit) -> CheckVerdict:
    hint = ("send each chunk as `data: <json>` followed by a blank line (\\n\\n); other lines "
            "are dropped by SSE parsers")
    if audit.broken:
        return failed(FRAMING, audit.broken, hint)
    if not audit.events:
        if audit.raw_bytes:
            return failed(FRAMING, f"no server-sent event in {audit.raw_bytes} bytes; the body "
                          f"starts {snippet(audit.first_bytes, 40)!r}", hint)
        if ex.failure is not None:
            return skipped(FRAMING, f"nothing arrived ({ex.failure.message})")
        return failed(FRAMING, "the stream was empty", "the server accepted the request but "
                      "sent no events: check its logs")
    errors = [f for f in audit.unknown_fields if f.lower().startswith("error")]
    if errors:
        return failed(FRAMING, f"a line with the non-standard field {errors[0]!r}",
                      "report errors as `data: {\"error\": {...}}`: SSE parsers drop unknown "
                      "fields, so this error would be invisible")
    tail = audit.leftover.strip()
    if tail and ex.failure is None:
        return failed(FRAMING, f"{len(tail)} bytes after the last event are not a complete "
                      f"event: {snippet(tail, 40)!r}", "end every event, the last one too, "
                      "with a blank line")
    if audit.unknown_fields:
        return warned(FRAMING, f"{audit.events} events; lines with unknown fields, e.g. "
                      f"{audit.unknown_fields[0]!r}", hint)
    return passed(FRAMING, f"{audit.events} events")


def _schema(audit: StreamAudit, gemini: bool) -> CheckVerdict:
    what = "GenerateContentResponse" if gemini else "chat.completion.chunk"
    if audit.non_json:
        return failed(CHUNK_SCHEMA, audit.non_json[0], "every data line must hold one complete "
                      "JSON object: a line was cut or several were merged (a buffering proxy, "
                      "or a server writing partial JSON)")
    if audit.schema:
        problem = audit.schema[0]
        hint = (f"send {what} objects as the spec defines them")
        if "legacy" in problem:
            hint = "register the base URL of the chat completions API, not /v1/completions"
        elif "non-streaming" in problem:
            hint = "the server sends whole responses inside the stream: send chunks with delta"
        return failed(CHUNK_SCHEMA, problem, hint)
    return passed(CHUNK_SCHEMA, f"{audit.chunks} chunks, each a JSON {what}")


def _errors(audit: StreamAudit) -> CheckVerdict:
    if audit.errors:
        return failed(ERROR_EVENTS, f"an error event after {audit.errors_after} content "
                      f"chunk(s): {audit.errors[0]}", "the server failed while it streamed: "
                      "check its logs; an error inside a 200 stream fails the conversation turn")
    return passed(ERROR_EVENTS, "no error events")


def _end(ex: Exchange, audit: StreamAudit, gemini: bool) -> CheckVerdict:
    if audit.errors:
        return skipped(END, "the stream reported an error")
    if audit.blocked:
        return skipped(END, "the prompt was blocked")
    failure = ex.failure
    finish = audit.finish_reason
    if failure is not None:
        where = ("after the finish reason" if finish
                 else f"after {audit.events} events, before a finish reason")
        return failed(END, f"{failure.message} {where}", "the answer is truncated: check the "
                      "server (and any proxy in front of it) for timeouts or crashes while "
                      "streaming")
    if gemini:
        if not finish:
            return failed(END, "the stream closed without a finishReason", "end the answer "
                          "with a candidate that carries finishReason")
        return passed(END, f"finishReason {finish}, then the stream closed")
    if not finish and not audit.done:
        return failed(END, "the stream ended without a finish_reason or [DONE]",
                      "the answer looks truncated: end it with a chunk that carries "
                      "finish_reason, then `data: [DONE]`")
    if not audit.done:  # turns accept a finish reason and a clean close: a caveat, not a fault
        return warned(END, f"finish_reason {finish!r}, then the stream closed without "
                      "`data: [DONE]`",
                      "end the stream with `data: [DONE]` after the last chunk, as OpenAI "
                      "does: strict clients use it to tell a complete answer from a cut "
                      "connection (Switchboard accepts the finish reason and a clean close)")
    if not finish:
        return failed(END, "[DONE] without a finish_reason", "send finish_reason (stop, "
                      "length, tool_calls) on the last chunk before [DONE]")
    if audit.after_done:
        return warned(END, f"{audit.after_done} events after [DONE]",
                      "send nothing after [DONE]; clients stop reading there")
    return passed(END, f"finish_reason {finish!r}, then [DONE]")


def _role(audit: StreamAudit, gemini: bool) -> CheckVerdict:
    if audit.errors and not audit.role_checked:
        return skipped(ROLE, "the stream reported an error first")
    if not audit.role_checked:
        return skipped(ROLE, "no delta arrived")
    role, want = audit.first_role, "model" if gemini else "assistant"
    where = "content" if gemini else "delta"
    if role == want:
        return passed(ROLE, f"role {role!r} in the first {where}")
    observed = f"the first {where} has no role" if role is None else f"role {role!r}"
    if gemini:  # the gateway does not need it on Gemini: a caveat, not a failure
        return warned(ROLE, observed, 'send content.role "model", as Gemini does')
    return failed(ROLE, observed, f'send "role": "{want}" in the first delta of the answer')


def _content(ex: Exchange, audit: StreamAudit) -> CheckVerdict:
    if audit.content_problems:
        return failed(CONTENT, audit.content_problems[0], "send text as a string (delta.content "
                      "for Chat Completions, parts[].text for Gemini)")
    if audit.blocked:
        return failed(CONTENT, f"the prompt was blocked (blockReason {audit.blocked})",
                      "check the safety settings of this model: a harmless prompt was blocked")
    if audit.errors:
        return skipped(CONTENT, "the stream reported an error")
    if ex.failure is not None and not audit.answer and not audit.tools:
        return skipped(CONTENT, f"the stream broke before any content ({ex.failure.message})")
    if audit.tools:
        return passed(CONTENT, f"a tool call to {audit.tools[0]!r}")
    if not audit.answer.strip() and audit.non_json:
        return skipped(CONTENT, "no readable text: some events were not JSON")
    if not audit.answer.strip():
        return warned(CONTENT, "the answer was empty", "the endpoint finished without any "
                      "text to a one-line prompt: check the model and its output token limit")
    return passed(CONTENT, f"answered {snippet(audit.answer, 40)!r}")


def _finish(audit: StreamAudit, gemini: bool, limit_sent: bool = True, server: str = ""
            ) -> CheckVerdict:
    finish = audit.finish_reason
    if audit.errors or not finish:
        return skipped(FINISH_REASON, "no finish reason arrived")
    if gemini:
        if finish in _GEMINI_FAILED:
            return failed(FINISH_REASON, f"finishReason {finish}", "the model failed to produce "
                          "a valid answer to a one-line prompt")
        if finish == "STOP":
            return passed(FINISH_REASON, "finishReason STOP")
        return warned(FINISH_REASON, f"finishReason {finish}",
                      _finish_hint(finish, limit_sent, server))
    if finish == "error":
        return failed(FINISH_REASON, "finish_reason 'error'", "the server reports that "
                      "generation failed: check its logs")
    if finish in ("stop", "tool_calls", "function_call"):
        return passed(FINISH_REASON, f"finish_reason {finish!r}")
    if finish in _CHAT_FINISH:
        return warned(FINISH_REASON, f"finish_reason {finish!r}",
                      _finish_hint(finish, limit_sent, server))
    return warned(FINISH_REASON, f"non-standard finish_reason {finish!r}",
                  "use stop, length, tool_calls or content_filter; other values are reported "
                  "to clients as 'other'")


def _finish_hint(finish: str, limit_sent: bool = True, server: str = "") -> str:
    if finish.lower() in ("length", "max_tokens"):
        if not limit_sent:  # nothing of ours cut it: the server's own limit did
            where = ("llama-server: raise --ctx-size (the window of a slot is --ctx-size / "
                     "--parallel) or check --n-predict" if server == "llama.cpp"
                     else "raise the server's context length or its default output limit")
            return ("no output limit was sent, so the server stopped at its own: its context "
                    f"window filled or its default output cap was reached ({where})")
        return ("the answer to a one-line prompt hit the output token limit: raise "
                "max_output_tokens (reasoning models spend tokens before answering)")
    return "a harmless one-line prompt was cut by a content filter: check its settings"


def _usage(ex: Exchange, audit: StreamAudit, spec: ApiSpec) -> CheckVerdict:
    if audit.errors or ex.failure is not None or not audit.finish_reason:
        return skipped(USAGE, "the stream did not complete")
    if audit.usage_seen:
        u = audit.usage
        counts = f": {u.input_tokens} prompt and {u.output_tokens + u.reasoning_tokens} " \
            "completion tokens" if u is not None else ""
        return passed(USAGE, f"usage reported{counts}")
    where = {
        ApiSpec.GEMINI: "usageMetadata on the events",
        ApiSpec.GROQ: "usage (or x_groq.usage) on the finish chunk",
    }.get(spec, "a usage chunk when the request sets stream_options.include_usage")
    return warned(USAGE, "usage missing: no token counts in the stream",
                  f"send {where}; without it token usage is reported as 0")


def _backstop(verdicts: list[CheckVerdict], audit: StreamAudit) -> list[CheckVerdict]:
    err = audit.runtime_error
    if err is None or any(v.status is CheckStatus.FAIL for v in verdicts):
        return verdicts
    name = _RUNTIME_CHECK.get(err.kind, ERROR_EVENTS)
    return [failed(name, err.message, "Switchboard's decoder for this spec cannot use the "
                   "stream: fix what the observed message names")
            if v.check == name else v for v in verdicts]
