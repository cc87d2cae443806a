"""The one error classifier shared by every adapter.

``classify_http_error`` turns a non-2xx response (status, headers, a bounded body) into an
``UpstreamError``; ``classify_error_object`` does the same for an error reported inside a 200
stream. Both understand the error shapes of every provider in FORMATS.md: OpenAI-style
``{"error":{message,type,param,code}}`` (code a string, or a number on OpenRouter/vLLM/llama.cpp),
Azure's string codes and ``innererror``, Gemini's ``{"error":{code,message,status,details}}``
with ``ErrorInfo``/``RetryInfo`` details, TGI/Ollama ``{"error":"text"}``, and non-JSON bodies
(HTML pages from proxies, plain text).

Messages are written for developers, may quote the provider's own message (scrubbed of
anything that looks like a key and truncated), and never contain raw bodies or headers.
"""

from __future__ import annotations

import email.utils
import re
import time
from collections.abc import Mapping
from dataclasses import dataclass

import orjson

from server.providers.base import ErrorKind, UpstreamError
from server.vault.redact import quote

# -- durations and Retry-After -------------------------------------------------------------------

_DURATION_PART = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(h|ms|us|µs|ns|m|s)")
_UNIT_S = {"h": 3600.0, "m": 60.0, "s": 1.0, "ms": 1e-3, "us": 1e-6, "µs": 1e-6, "ns": 1e-9}
_RETRY_IN_TEXT = re.compile(
    r"(?i)(?:try again in|retry after|retry in)\s+"
    r"(?:(\d+(?:\.\d+)?)\s*sec(?:ond)?s?\b|((?:\d+(?:\.\d+)?(?:h|ms|m|s))+)\b)"
)


def parse_duration(text: str) -> float | None:
    """Seconds in a Go duration (``1m6.779s``, ``130ms``), a protobuf Duration (``34.4s``) or
    a bare number of seconds; ``None`` if ``text`` is none of these."""
    text = text.strip()
    if not text:
        return None
    try:
        return max(0.0, float(text))
    except ValueError:
        pass
    pos, total = 0, 0.0
    for m in _DURATION_PART.finditer(text):
        if m.start() != pos:
            return None
        total += float(m.group(1)) * _UNIT_S[m.group(2)]
        pos = m.end()
    return total if pos == len(text) else None


def _retry_from_text(message: str) -> float | None:
    """A wait written in the message: "Please retry after 33 seconds", "try again in 1m2.5s"."""
    m = _RETRY_IN_TEXT.search(message)
    if m is None:
        return None
    return float(m.group(1)) if m.group(1) else parse_duration(m.group(2))


def _retry_after_header(value: str, now: float) -> float | None:
    seconds = parse_duration(value)
    if seconds is not None:
        return seconds
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    return max(0.0, when.timestamp() - now)


def retry_after_seconds(
    headers: Mapping[str, str], *, status: int, now: float | None = None
) -> float | None:
    """The wait the upstream asked for, from ``retry-after-ms``, ``Retry-After`` (seconds or an
    HTTP date) or, on a 429, the ``x-ratelimit-reset-*`` Go durations of the exhausted limit."""
    h = {k.lower(): v for k, v in headers.items()}
    if (ms := h.get("retry-after-ms")) is not None:
        try:
            return max(0.0, float(ms) / 1000.0)
        except ValueError:
            pass
    if (ra := h.get("retry-after")) is not None:
        seconds = _retry_after_header(ra, time.time() if now is None else now)
        if seconds is not None:
            return seconds
    if status != 429:
        return None
    resets = {}
    for kind in ("requests", "tokens"):
        reset = h.get(f"x-ratelimit-reset-{kind}")
        seconds = parse_duration(reset) if reset is not None else None
        if seconds is not None:
            resets[kind] = seconds
    exhausted = [resets[k] for k in resets if h.get(f"x-ratelimit-remaining-{k}") == "0"]
    candidates = exhausted or list(resets.values())
    return max(candidates) if candidates else None


# -- error bodies --------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ErrorFields:
    """The parts of a provider error object we classify on (all optional)."""

    message: str = ""
    code: str = ""  # "invalid_api_key", "DeploymentNotFound", "429", "tool_use_failed"
    type: str = ""  # "invalid_request_error", "exceed_context_size_error", TGI error_type
    status: str = ""  # Gemini canonical status: "RESOURCE_EXHAUSTED"
    param: str = ""
    reasons: tuple[str, ...] = ()  # Gemini ErrorInfo reasons, Azure innererror codes
    retry_delay_s: float | None = None  # Gemini RetryInfo
    embedded_status: int = 0  # an HTTP status written inside the body
    detail: str = ""  # OpenRouter metadata.raw: the real upstream message


def _text(value: object) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, bool) or value is None:
        return ""
    if isinstance(value, int | float):
        return str(value)
    return ""


def _int_status(*values: object) -> int:
    for v in values:
        if isinstance(v, bool):
            continue
        if isinstance(v, int) and 100 <= v <= 599:
            return v
        if isinstance(v, str) and v.isascii() and v.isdigit() and 100 <= int(v) <= 599:
            return int(v)
    return 0


def error_fields(obj: object) -> ErrorFields | None:
    """Pick the error fields out of a parsed body (``{"error": ...}`` or a bare error object)."""
    if not isinstance(obj, dict):
        return None
    err = obj.get("error", obj)
    if isinstance(err, str):  # TGI / Ollama native: {"error": "text", "error_type": "..."}
        return ErrorFields(message=err, type=_text(obj.get("error_type")))
    if not isinstance(err, dict):
        return None
    reasons: list[str] = []
    retry: float | None = None
    details = err.get("details")
    for d in details if isinstance(details, list) else ():
        if not isinstance(d, dict):
            continue
        if isinstance(reason := d.get("reason"), str):
            reasons.append(reason)
        if isinstance(delay := d.get("retryDelay"), str):
            retry = parse_duration(delay)
    inner = err.get("innererror")
    if isinstance(inner, dict) and isinstance(inner.get("code"), str):
        reasons.append(inner["code"])
    metadata = err.get("metadata")
    raw = metadata.get("raw") if isinstance(metadata, dict) else None
    return ErrorFields(
        message=_text(err.get("message")),
        code=_text(err.get("code")),
        type=_text(err.get("type")),
        status=_text(err.get("status")),
        param=_text(err.get("param")),
        reasons=tuple(reasons),
        retry_delay_s=retry,
        embedded_status=_int_status(
            err.get("status_code"), err.get("http_status_code"), err.get("code"), obj.get("code")
        ),
        detail=_text(raw),
    )


# -- classification ------------------------------------------------------------------------------

_CONTEXT_RE = re.compile(
    r"(?i)maximum context length|context[ _]length|context window|context size"
    r"|input token count.*exceeds|exceeds? the maximum number of (?:input )?tokens"
    r"|prompt is too long|too many (?:input )?tokens|reduce the length of the (?:messages|input)"
    r"|`inputs` tokens \+ `max_new_tokens` must be"
)
# A message that blames the request, not the server, whatever the status (llama.cpp answers
# 500 "image input is not supported" and 501 not_supported_error; vLLM 400s name the part).
_UNSUPPORTED_RE = re.compile(
    r"(?i)\b(?:image|vision|audio|video|multimodal|tool|function)s?(?: input| calling| call)?"
    r"[^.]{0,40}\b(?:is |are )?not (?:supported|enabled|allowed)"
    r"|does(?: not|n't) support (?:image|vision|audio|video|multimodal|tool|function)"
    r"|\bmmproj\b|tools? param requires --jinja|unsupported (?:content|input|image|message)"
    r"|(?:image_url|input_audio) is only supported"
)
# The window stated in a context-length error: OpenAI, vLLM and Azure ("maximum context
# length is 8192 tokens"), llama.cpp ("exceeds the available context size (256 tokens)"),
# Gemini ("exceeds the maximum number of tokens allowed (1048576)"), and newer phrasings
# ("context window of 128000 tokens", "the configured limit of 272000 tokens").
_WINDOW_RES = tuple(re.compile(p, re.I) for p in (
    r"maximum context length is (\d[\d,]*) tokens",
    r"available context size \((\d[\d,]*) tokens\)",
    r"maximum number of tokens allowed \((\d[\d,]*)\)",
    r"context (?:window|length|size) (?:is |of )(\d[\d,]*) tokens",
    r"configured limit of (\d[\d,]*) tokens",
    r"tokens > (\d[\d,]*) maximum",
))


def context_window_from(message: str) -> int:
    """The context window a context-length error states, in tokens; 0 if it states none."""
    for pattern in _WINDOW_RES:
        if m := pattern.search(message):
            return int(m.group(1).replace(",", ""))
    return 0


_FILTER_CODES = ("content_filter", "content_policy", "responsibleaipolicyviolation", "safety")


def _kind(status: int, f: ErrorFields) -> ErrorKind:
    words = {w.lower() for w in (f.code, f.type, f.status, *f.reasons) if w}
    if any("api_key" in w for w in words) or words & {"invalid_api_key", "unauthenticated"}:
        return ErrorKind.AUTHENTICATION
    if any(w.startswith(_FILTER_CODES) for w in words):
        return ErrorKind.CONTENT_FILTERED
    if words & {"context_length_exceeded", "exceed_context_size_error"} or (
        status in (0, 400, 413, 422) and _CONTEXT_RE.search(f.message)
    ):
        return ErrorKind.CONTEXT_LENGTH
    if "not_supported_error" in words or (
        (status == 0 or status >= 400) and _UNSUPPORTED_RE.search(f.message)
    ):
        return ErrorKind.UNSUPPORTED_INPUT
    if words & {"insufficient_quota", "billing_hard_limit_reached"} or status == 402:
        return ErrorKind.QUOTA_EXHAUSTED
    if status in (401, 403) or "permission_denied" in words:
        if status == 403 and re.search(r"(?i)moderation|flagged", f.message):
            return ErrorKind.CONTENT_FILTERED
        return ErrorKind.AUTHENTICATION
    if status == 404 or words & {"model_not_found", "deploymentnotfound", "not_found"}:
        return ErrorKind.NOT_FOUND
    if status == 429 or "resource_exhausted" in words or any("rate_limit" in w for w in words):
        return ErrorKind.RATE_LIMITED
    if status == 408:
        return ErrorKind.TIMEOUT
    if status >= 500 or words & {"unavailable", "internal", "server_error", "overloaded_error"}:
        return ErrorKind.SERVER_ERROR
    if 400 <= status < 500:
        return ErrorKind.BAD_REQUEST
    return ErrorKind.PROTOCOL


_HINTS = {
    ErrorKind.AUTHENTICATION: "rejected the endpoint's API key",
    ErrorKind.NOT_FOUND: "could not find the model, deployment or route",
    ErrorKind.RATE_LIMITED: "rate-limited the request",
    ErrorKind.QUOTA_EXHAUSTED: "reports that the account's quota or credits are used up",
    ErrorKind.CONTEXT_LENGTH: "says the conversation is too long for the model's context window",
    ErrorKind.CONTENT_FILTERED: "blocked the request with its content filter",
    ErrorKind.BAD_REQUEST: "rejected the request as invalid",
    ErrorKind.UNSUPPORTED_INPUT: "cannot take something this request uses",
    ErrorKind.SERVER_ERROR: "failed with a server error",
    ErrorKind.TIMEOUT: "timed out processing the request",
    ErrorKind.PROTOCOL: "answered with an unexpected status",
    ErrorKind.STREAM_ERROR: "reported an error in the middle of the stream",
}
_ADVICE = {
    ErrorKind.AUTHENTICATION: " Update the key stored for this endpoint.",
    ErrorKind.NOT_FOUND: " Check the endpoint's model name and base_url.",
    ErrorKind.QUOTA_EXHAUSTED: " Add credits or raise the quota with the provider.",
    ErrorKind.CONTEXT_LENGTH: " Shorten the history or use a model with a larger window.",
    ErrorKind.BAD_REQUEST: " The endpoint may not support a parameter or value this request uses.",
    ErrorKind.UNSUPPORTED_INPUT: (" Send it to an endpoint that supports it (validation records"
                                  " image input and tool calling) or leave that part out."),
    ErrorKind.PROTOCOL: " Check the endpoint's base_url.",
}


def provider_code(f: ErrorFields) -> str:
    """The most specific provider code: a named code, an ErrorInfo reason, a status name."""
    named = [c for c in (f.code, *f.reasons, f.status, f.type) if c and not c.isdigit()]
    return quote(named[0] if named else f.code, 64)


def _message(kind: ErrorKind, status: int, f: ErrorFields, label: str, mid_stream: bool) -> str:
    tags = [f"HTTP {status}"] if status else []
    code = provider_code(f)
    if code and code != str(status):
        tags.append(code)
    if f.param:
        tags.append(f"param {quote(f.param, 64)!r}")
    hint = _HINTS[ErrorKind.STREAM_ERROR] if mid_stream else _HINTS[kind]
    text = f"{label} {hint}"
    if tags:
        text += f" ({', '.join(tags)})"
    said = f.message
    if f.detail and f.detail not in said:
        said = f"{said}: {f.detail}" if said else f.detail
    if said:
        text += f": {quote(said)}"
    return text.rstrip(".") + "." + _ADVICE.get(kind, "")


def _non_json(status: int, headers: Mapping[str, str], body: bytes, label: str) -> UpstreamError:
    ctype = next((v for k, v in headers.items() if k.lower() == "content-type"), "")
    head = body.lstrip()[:256].lower()
    if "html" in ctype.lower() or head.startswith((b"<!doctype", b"<html", b"<")):
        what = f"{label} returned an HTML page (status {status}) instead of JSON; check base_url"
    elif not body.strip():
        what = f"{label} returned status {status} with an empty body"
    else:
        said = quote(body[:2048].decode("utf-8", "replace"))
        what = f"{label} returned status {status} with a non-JSON body: {said}"
    kind = _kind(status, ErrorFields())
    if kind is ErrorKind.BAD_REQUEST:
        kind = ErrorKind.PROTOCOL  # an unexplained 4xx page is usually a wrong URL or proxy
    return UpstreamError(
        kind,
        what,
        status=status,
        retry_after_s=retry_after_seconds(headers, status=status),
    )


def classify_http_error(
    status: int, headers: Mapping[str, str], body: bytes, *, label: str
) -> UpstreamError:
    """Classify a non-2xx response. ``label`` names the provider in the message."""
    try:
        parsed = orjson.loads(body) if body.strip() else None
    except orjson.JSONDecodeError:
        parsed = None
    fields = error_fields(parsed)
    if fields is None:
        return _non_json(status, headers, body, label)
    kind = _kind(status, fields)
    retry = retry_after_seconds(headers, status=status)
    if retry is None:
        retry = fields.retry_delay_s
    if retry is None and kind is ErrorKind.RATE_LIMITED:
        retry = _retry_from_text(fields.message)
    message = _message(kind, status, fields, label, mid_stream=False)
    if retry is not None:
        message += f" The provider asks to retry after {retry:g}s."
    # Gemini FAILED_PRECONDITION: the account cannot serve this (region, billing), not the
    # request: another endpoint may well succeed.
    account_level = fields.status.upper() == "FAILED_PRECONDITION"
    return UpstreamError(
        kind,
        message,
        status=status,
        retry_after_s=retry,
        provider_code=provider_code(fields),
        failover_helps=True if account_level else None,
        context_window_tokens=(context_window_from(f"{fields.message} {fields.detail}")
                               if kind is ErrorKind.CONTEXT_LENGTH else 0),
    )


def classify_error_object(obj: object, *, label: str) -> UpstreamError:
    """Classify an error reported inside a 200 stream (an event whose JSON has ``error``).

    Request-level kinds (bad request, not found) become ``STREAM_ERROR``: the request was
    accepted, so retrying elsewhere may succeed. Rate limits, overload, context length and
    content filtering keep their kind.
    """
    fields = error_fields(obj) or ErrorFields(message="malformed error object")
    status = fields.embedded_status
    kind = _kind(status, fields)
    if kind in (
        ErrorKind.BAD_REQUEST,
        ErrorKind.NOT_FOUND,
        ErrorKind.PROTOCOL,
        ErrorKind.AUTHENTICATION,
        ErrorKind.TIMEOUT,
    ):
        kind = ErrorKind.STREAM_ERROR
    return UpstreamError(
        kind,
        _message(kind, status, fields, label, mid_stream=True),
        status=status,
        retry_after_s=fields.retry_delay_s,
        provider_code=provider_code(fields),
        context_window_tokens=(context_window_from(fields.message)
                               if kind is ErrorKind.CONTEXT_LENGTH else 0),
    )
