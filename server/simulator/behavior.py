"""What the simulated upstream says and how it misbehaves.

``Behavior`` is a frozen value: change the simulator's behaviour by assigning a new one
(``sim.behavior = Behavior(...)``), typically with ``dataclasses.replace``. ``Fault`` breaks
exactly one rule of the wire protocol so a test can aim at one code path of the gateway.
"""

from __future__ import annotations

import enum
import json
from collections.abc import Sequence
from dataclasses import dataclass, field

DEFAULT_TEXT = "Hello! How can I help you today?"


class Spec(enum.StrEnum):
    """The wire format of an upstream. Values match ``server.registry.llm.ApiSpec``."""

    OPENAI = "openai"
    AZURE_OPENAI = "azure_openai"
    GEMINI = "gemini"
    GROQ = "groq"

    @classmethod
    def parse(cls, value: str) -> Spec:
        """Accept any ``ApiSpec``/``Spec`` member or its value, case-insensitive; "azure" too."""
        text = str(value).strip().lower().replace("-", "_")
        return cls(cls.AZURE_OPENAI if text == "azure" else text)


class ReasoningDialect(enum.StrEnum):
    """How the OpenAI family streams reasoning text (Groq and Gemini have their own ways).

    - REASONING_CONTENT: ``delta.reasoning_content`` (DeepSeek, llama.cpp, Z.ai, old vLLM).
    - REASONING: ``delta.reasoning`` (OpenRouter, vLLM, Ollama). Groq "parsed" uses this too.
    - THINK_TAGS: ``<think>…</think>`` inside ``delta.content`` (Groq "raw", raw open models).
    """

    REASONING_CONTENT = "reasoning_content"
    REASONING = "reasoning"
    THINK_TAGS = "think_tags"


class Prefill(enum.StrEnum):
    """What the simulated model does with a request that ends with a partial assistant message.

    - IGNORE: starts over, as if the partial message were a finished one (OpenAI's own API
      does this): the answer repeats the partial text, then ``text``.
    - CONTINUE: continues it (llama.cpp, vLLM ``continue_final_message``, DeepSeek
      ``prefix``, Groq, Ollama): the answer is ``text`` after the partial message's text.
    - REJECT: 400 in the provider's own error body (``PREFILL_REJECTED_MESSAGES``).
    """

    IGNORE = "ignore"
    CONTINUE = "continue"
    REJECT = "reject"


# What a provider that does not take an assistant prefill answers, per wire format.
PREFILL_REJECTED_MESSAGES = {
    "openai": "This model does not support assistant message prefill. The conversation must "
              "end with a user or tool message.",
    "groq": "'messages' : the last message must have role `user` or `tool` for this model",
    "azure_openai": "This model does not support assistant message prefill. The conversation "
                    "must end with a user or tool message.",
    "gemini": "Please ensure that single turn requests end with a user role or the role field "
              "is empty.",
}


class FaultKind(enum.StrEnum):
    """One broken rule each. Chunk positions count content chunks (see ``Fault.chunk``)."""

    # HTTP errors with the provider's own body (a JSON error body, never SSE).
    RATE_LIMITED = "rate_limited"  # 429; Retry-After from Fault.retry_after_s (Gemini: RetryInfo)
    SERVER_ERROR = "server_error"  # 500
    UNAVAILABLE = "unavailable"  # 503 overloaded
    CONTEXT_LENGTH = "context_length"  # 400 context_length_exceeded (Gemini: INVALID_ARGUMENT)
    CONTENT_FILTER = "content_filter"  # 400 Azure content_filter shape (Gemini: 200 blockReason)
    UNAUTHORIZED = "unauthorized"  # 401 invalid key (Gemini: 400 API_KEY_INVALID)
    NOT_FOUND = "not_found"  # 404 unknown model / deployment
    HTTP_STATUS = "http_status"  # any Fault.status with the provider's generic body
    # Transport.
    RESET_BEFORE_HEADERS = "reset_before_headers"  # read the request, then TCP RST, no response
    HANG = "hang"  # read the request, never answer
    # Stream.
    CUT_AFTER = "cut_after"  # close the connection after N content chunks: no finish, no [DONE]
    STALL_AFTER = "stall_after"  # pause Fault.seconds after N content chunks, then continue
    MALFORMED_CHUNK_AT = "malformed_chunk_at"  # a truncated-JSON data line after N chunks
    MIDSTREAM_ERROR_AT = "midstream_error_at"  # the provider's in-band error after N chunks
    NO_DONE = "no_done"  # everything but the final [DONE] (no-op on Gemini, which has none)
    HTML_ERROR_PAGE = "html_error_page"  # 502 text/html from a proxy
    GARBAGE = "garbage"  # 200 text/event-stream whose body is random non-SSE bytes
    WRONG_CONTENT_TYPE = "wrong_content_type"  # a good stream labelled text/plain
    NO_ROLE = "no_role"  # the first delta has no role (Gemini: content without "role")
    NON_STREAMING_ONLY = "non_streaming_only"  # application/json completion even to stream:true
    NO_USAGE = "no_usage"  # usage omitted wherever the spec puts it
    SLOW = "slow"  # time to first token is Fault.seconds (default 30 s) instead of Behavior's


HTTP_FAULTS = frozenset(
    {
        FaultKind.RATE_LIMITED,
        FaultKind.SERVER_ERROR,
        FaultKind.UNAVAILABLE,
        FaultKind.CONTEXT_LENGTH,
        FaultKind.CONTENT_FILTER,
        FaultKind.UNAUTHORIZED,
        FaultKind.NOT_FOUND,
        FaultKind.HTTP_STATUS,
    }
)
# Faults about the shape of a stream; a non-streaming request is answered normally.
STREAM_ONLY_FAULTS = frozenset(
    {
        FaultKind.CUT_AFTER,
        FaultKind.STALL_AFTER,
        FaultKind.MALFORMED_CHUNK_AT,
        FaultKind.MIDSTREAM_ERROR_AT,
        FaultKind.NO_DONE,
        FaultKind.WRONG_CONTENT_TYPE,
        FaultKind.NO_ROLE,
        FaultKind.NON_STREAMING_ONLY,
    }
)


@dataclass(frozen=True, slots=True)
class Fault:
    """A fault and its parameters; fields a kind does not use are ignored.

    ``chunk``: for CUT_AFTER, STALL_AFTER, MALFORMED_CHUNK_AT and MIDSTREAM_ERROR_AT, how many
    content chunks (reasoning, text and tool-call fragments) go out before the fault. Values
    past the end mean "after the last content chunk, before the finish chunk".
    ``seconds``: the STALL_AFTER pause, or the SLOW time to first token (0 means 30 s).
    ``status``: the HTTP status for HTTP_STATUS (e.g. 502, 504, 529).
    ``retry_after_s``: RATE_LIMITED (and HTTP_STATUS 429/503) Retry-After; None sends none.
    ``abrupt``: CUT_AFTER closes the TCP connection inside the chunked body (the client sees an
    incomplete payload); False ends the body cleanly, so only the missing finish/[DONE] tells.
    ``raw_tail``: Gemini MIDSTREAM_ERROR_AT appends a raw pretty-printed JSON error without a
    ``data:`` prefix, as Gemini sometimes does, instead of a ``data:`` error event.
    """

    kind: FaultKind
    chunk: int = 0
    seconds: float = 0.0
    status: int = 0
    retry_after_s: float | None = None
    abrupt: bool = True
    raw_tail: bool = False

    def __post_init__(self) -> None:
        object.__setattr__(self, "kind", FaultKind(self.kind))
        if self.chunk < 0 or self.seconds < 0:
            raise ValueError("Fault.chunk and Fault.seconds must not be negative")
        if self.kind is FaultKind.HTTP_STATUS and not 400 <= self.status <= 599:
            raise ValueError("Fault(HTTP_STATUS) needs status between 400 and 599")


@dataclass(frozen=True, slots=True)
class Usage:
    """Token counts. ``output_tokens`` excludes reasoning; OpenAI's completion_tokens is the sum."""

    input_tokens: int = 0
    output_tokens: int = 0
    reasoning_tokens: int = 0


@dataclass(frozen=True, slots=True)
class ToolCall:
    """A tool call the simulated model makes; ``arguments`` is a JSON object as text."""

    name: str
    arguments: str = "{}"


@dataclass(frozen=True, slots=True)
class Behavior:
    """What the simulator answers, how fast, and which fault (if any) it injects.

    Content: ``text`` (None: a default sentence, or nothing when ``tool_calls`` are set),
    split into ``chunks`` content chunks (None: one per word); ``reasoning`` (sent before the
    text) split into ``reasoning_chunks``; ``tool_calls`` as ``(name, arguments_json)`` pairs or
    ``ToolCall``s, sent after the text; ``echo`` answers with the last user message instead of
    ``text``; ``model`` overrides the model name in responses (default: the requested one);
    ``finish_reason`` overrides "stop"/"tool_calls" (OpenAI family) or "STOP" (Gemini);
    ``usage`` overrides the token counts (default: estimated at 4 characters per token).

    Timing: ``ttft_s`` before the first content chunk; headers go out at once unless
    ``headers_after_ttft``. ``chunk_gap_s`` between chunks. Azure's prompt_filter_results event
    goes out with the headers, before ``ttft_s``, as Azure does.

    Faults: ``fault`` applies to every chat request while enabled, or only to the next
    ``fault_times`` of them, or only until the monotonic time ``fault_until``.
    """

    text: str | None = None
    chunks: int | None = None
    reasoning: str = ""
    reasoning_chunks: int | None = None
    reasoning_dialect: ReasoningDialect = ReasoningDialect.REASONING_CONTENT
    tool_calls: Sequence[ToolCall | tuple[str, str]] = field(default=())
    usage: Usage | None = None
    echo: bool = False
    model: str | None = None
    finish_reason: str | None = None
    ttft_s: float = 0.0
    chunk_gap_s: float = 0.0
    headers_after_ttft: bool = False
    fault: Fault | None = None
    fault_times: int | None = None
    fault_until: float | None = None
    prefill: Prefill = Prefill.IGNORE
    context_window_tokens: int | None = None  # a longer prompt (4 characters a token): 400

    def __post_init__(self) -> None:
        calls = tuple(c if isinstance(c, ToolCall) else ToolCall(*c) for c in self.tool_calls)
        for call in calls:
            _check_arguments(call)
        object.__setattr__(self, "tool_calls", calls)
        object.__setattr__(self, "reasoning_dialect", ReasoningDialect(self.reasoning_dialect))
        object.__setattr__(self, "prefill", Prefill(self.prefill))
        for name in ("chunks", "reasoning_chunks"):
            value = getattr(self, name)
            if value is not None and value < 1:
                raise ValueError(f"Behavior.{name} must be at least 1")
        if self.ttft_s < 0 or self.chunk_gap_s < 0:
            raise ValueError("Behavior.ttft_s and chunk_gap_s must not be negative")
        if self.fault_times is not None and self.fault_times < 0:
            raise ValueError("Behavior.fault_times must not be negative")

    @property
    def calls(self) -> tuple[ToolCall, ...]:
        """``tool_calls`` after normalisation (always ``ToolCall``s)."""
        return tuple(c for c in self.tool_calls if isinstance(c, ToolCall))

    def answer_text(self, last_user_message: str) -> str:
        if self.echo:
            return last_user_message
        if self.text is not None:
            return self.text
        return "" if self.tool_calls else DEFAULT_TEXT


def _check_arguments(call: ToolCall) -> None:
    try:
        parsed = json.loads(call.arguments)
    except ValueError as exc:
        raise ValueError(f"tool call {call.name!r}: arguments are not JSON: {exc}") from None
    if not isinstance(parsed, dict):
        raise ValueError(f"tool call {call.name!r}: arguments must be a JSON object")
