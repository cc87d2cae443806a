"""The seam between the turn engine and each provider's wire format.

An adapter is pure translation: ``build_request`` turns a ``ChatRequest`` into the HTTP
request of its spec, a ``StreamDecoder`` turns the SSE events of the response into
``StreamEvent``s, and ``classify_error`` turns a non-2xx response into an ``UpstreamError``.
The HTTP exchange itself (pooled session, phased timeouts, incremental reading) lives in
``server.providers.transport`` and is shared by all adapters.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol

from server.chat import ChatRequest, StreamEvent
from server.registry.llm import Endpoint


class ErrorKind(enum.StrEnum):
    """What went wrong upstream, normalised across providers."""

    AUTHENTICATION = "authentication"  # 401/403, Gemini 400 API_KEY_INVALID
    NOT_FOUND = "not_found"  # model or deployment unknown, wrong path
    RATE_LIMITED = "rate_limited"  # 429 (retry later)
    QUOTA_EXHAUSTED = "quota_exhausted"  # 429 insufficient_quota / billing (do not retry soon)
    CONTEXT_LENGTH = "context_length"  # prompt too long for this endpoint
    CONTENT_FILTERED = "content_filtered"  # provider safety system refused
    BAD_REQUEST = "bad_request"  # other 4xx: our request is wrong for this endpoint
    # The endpoint cannot take something this request uses (image input, tools), whatever
    # the status (llama.cpp answers 500 "image input is not supported"): another endpoint may.
    UNSUPPORTED_INPUT = "unsupported_input"
    SERVER_ERROR = "server_error"  # 5xx, overloaded
    TIMEOUT = "timeout"  # connect / first token / between chunks / total
    CONNECTION = "connection"  # refused, reset, closed early, DNS
    PROTOCOL = "protocol"  # bytes that do not follow the spec (garbage, HTML, bad JSON)
    STREAM_ERROR = "stream_error"  # an error reported inside a 200 stream
    INCOMPLETE = "incomplete"  # the stream ended without a finish reason


# Which kinds another endpoint might succeed on where this one failed.
_FAILOVER_HELPS = {
    ErrorKind.AUTHENTICATION: True,  # another endpoint has another key
    ErrorKind.NOT_FOUND: True,
    ErrorKind.RATE_LIMITED: True,
    ErrorKind.QUOTA_EXHAUSTED: True,
    ErrorKind.CONTEXT_LENGTH: False,  # only an endpoint with a larger window; the router decides
    ErrorKind.CONTENT_FILTERED: False,
    ErrorKind.BAD_REQUEST: False,
    ErrorKind.UNSUPPORTED_INPUT: True,  # only where the capability is; never the same endpoint
    ErrorKind.SERVER_ERROR: True,
    ErrorKind.TIMEOUT: True,
    ErrorKind.CONNECTION: True,
    ErrorKind.PROTOCOL: True,
    ErrorKind.STREAM_ERROR: True,
    ErrorKind.INCOMPLETE: True,
}


class UpstreamError(Exception):
    """A classified upstream failure.

    ``message`` is safe to show to a developer: it is written by us, may quote the provider's
    own error message after scrubbing, and never holds keys or raw bodies.
    ``failover_helps`` says whether trying another endpoint can help.
    ``retry_after_s`` is the provider's requested wait (Retry-After, RetryInfo), if any.
    ``context_window_tokens``: for CONTEXT_LENGTH, the window the error body stated (0: none).
    """

    def __init__(
        self,
        kind: ErrorKind,
        message: str,
        *,
        status: int = 0,
        retry_after_s: float | None = None,
        provider_code: str = "",
        failover_helps: bool | None = None,
        context_window_tokens: int = 0,
    ) -> None:
        super().__init__(message)
        self.kind = kind
        self.context_window_tokens = context_window_tokens
        self.message = message
        self.status = status
        self.retry_after_s = retry_after_s
        self.provider_code = provider_code
        self.failover_helps = (
            _FAILOVER_HELPS[kind] if failover_helps is None else failover_helps
        )

    def __repr__(self) -> str:
        return f"UpstreamError({self.kind.value}, status={self.status}, {self.message!r})"


@dataclass(frozen=True, slots=True)
class HttpRequest:
    """An upstream HTTP request. ``headers`` may hold the key; never log them."""

    url: str
    headers: Mapping[str, str]
    body: bytes
    method: str = "POST"

    def __repr__(self) -> str:  # the URL can hold no key (we send keys in headers), but be safe
        return f"HttpRequest({self.method} {self.url.split('?')[0]})"


@dataclass(frozen=True, slots=True)
class SseEvent:
    """One parsed server-sent event. ``data`` is the joined ``data:`` lines."""

    data: str
    event: str = ""


class StreamDecoder(Protocol):
    """Turns one response's events into ``StreamEvent``s. One instance per upstream attempt.

    ``feed`` may raise ``UpstreamError`` (an error inside the stream, a malformed chunk).
    ``close`` is called at end of stream with any bytes left after the last complete event
    (Gemini may append a raw JSON error); it returns the final events, and raises
    ``UpstreamError`` if the stream did not end properly (no finish reason, error tail).
    """

    def feed(self, event: SseEvent) -> Sequence[StreamEvent]: ...

    def close(self, leftover: bytes) -> Sequence[StreamEvent]: ...


class ProviderAdapter(Protocol):
    """One API spec."""

    def build_request(self, endpoint: Endpoint, request: ChatRequest) -> HttpRequest: ...

    def new_decoder(self) -> StreamDecoder: ...

    def classify_error(
        self, status: int, headers: Mapping[str, str], body: bytes
    ) -> UpstreamError: ...
