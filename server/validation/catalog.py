"""The checks, in the order they run and are reported, with what each one expects.

Required checks block registration when they FAIL (``response.usage`` only ever WARNs).
``capability.*`` checks are optional: they record what the endpoint can do and never FAIL.
"""

from __future__ import annotations

from dataclasses import dataclass

from server.registry.llm import ApiSpec
from server.validation.report import CheckStatus

DNS = "network.dns"
CONNECT = "network.connect"
TLS = "network.tls"
ROUTE = "http.route"
AUTH = "auth.key_accepted"
QUOTA = "auth.quota"
MODEL = "request.model"
STATUS = "streaming.status"
CONTENT_TYPE = "streaming.content_type"
FIRST_TOKEN = "streaming.first_token"
FRAMING = "streaming.framing"
CHUNK_SCHEMA = "streaming.chunk_schema"
ERROR_EVENTS = "streaming.error_events"
END = "streaming.end"
ROLE = "response.role"
CONTENT = "response.content"
FINISH_REASON = "response.finish_reason"
USAGE = "response.usage"
REASONING = "capability.reasoning"
TOOL_CALLING = "capability.tool_calling"
IMAGE_INPUT = "capability.image_input"
CONTINUATION = "capability.continues_partial_answer"

NETWORK = (DNS, CONNECT, TLS)
# Judged from the status line and error body of the first streaming request, in the order a
# provider processes a request: route, key, quota, model, then anything else.
ADMISSION = (ROUTE, AUTH, QUOTA, MODEL, STATUS)
STREAM = (CONTENT_TYPE, FIRST_TOKEN, FRAMING, CHUNK_SCHEMA, ERROR_EVENTS, END)
RESPONSE = (ROLE, CONTENT, FINISH_REASON, USAGE)
CAPABILITIES = (REASONING, TOOL_CALLING, IMAGE_INPUT, CONTINUATION)
ALL = (*NETWORK, *ADMISSION, *STREAM, *RESPONSE, *CAPABILITIES)
REQUIRED = frozenset(ALL) - frozenset(CAPABILITIES)

_COMMON = {
    DNS: "the host name of base_url resolves to an address",
    CONNECT: "a TCP connection to the host and port of base_url opens",
    TLS: "a TLS handshake with a certificate that is valid for the host name",
    AUTH: "the API key is accepted (no 401 or 403)",
    QUOTA: "the account may make requests now (no 429 or 402)",
    MODEL: "the model (Azure: the deployment) exists",
    STATUS: "HTTP 200 to a streaming chat request",
    CONTENT_TYPE: "Content-Type: text/event-stream",
    FIRST_TOKEN: "the first token of the answer arrives in time",
    FRAMING: "server-sent events: `data:` lines, each event ended by a blank line",
    ERROR_EVENTS: "no error object inside a 200 stream",
    REASONING: "reasoning text streamed apart from the answer",
    TOOL_CALLING: "a tool call in answer to a request that offers a tool",
    IMAGE_INPUT: "an answer to a message that holds a small inline PNG",
    CONTINUATION: "a request ending with a partial assistant answer is continued, not restarted",
}
_CHAT = {
    ROUTE: "POST {base_url}/chat/completions is a route of the server",
    CHUNK_SCHEMA: "each data line is a JSON chat.completion.chunk: an object with a `choices` "
    "array whose items have `index`, a `delta` object and `finish_reason`",
    END: "a chunk with a finish_reason, then `data: [DONE]`",
    ROLE: 'role "assistant" in the first delta',
    CONTENT: "text as strings in delta.content (or tool_calls)",
    FINISH_REASON: "finish_reason stop, length, tool_calls or content_filter",
    USAGE: "a usage object (prompt_tokens, completion_tokens) when "
    "stream_options.include_usage is true",
}
_GEMINI = {
    ROUTE: "POST {base_url}/models/{model}:streamGenerateContent?alt=sse is a route",
    CHUNK_SCHEMA: "each data line is a JSON GenerateContentResponse: `candidates` with "
    "`content.parts`, or `promptFeedback`",
    END: "a candidate with a finishReason, then the server closes the stream",
    ROLE: 'content.role "model"',
    CONTENT: "text parts as strings (or functionCall parts)",
    FINISH_REASON: "finishReason STOP or MAX_TOKENS",
    USAGE: "usageMetadata with promptTokenCount on the events",
}
_AZURE = {
    ROUTE: "POST {base_url}/openai/deployments/{model}/chat/completions?api-version=... "
    "(or {base_url}/chat/completions for a .../openai/v1 base_url) is a route",
}
_GROQ = {
    USAGE: "usage (or x_groq.usage) with prompt_tokens on the finish chunk",
}


@dataclass(frozen=True, slots=True)
class Check:
    name: str
    required: bool
    expected: str


def check(name: str, spec: ApiSpec) -> Check:
    """The check ``name`` as it applies to ``spec``."""
    if spec is ApiSpec.GEMINI:
        expected = _GEMINI.get(name) or _COMMON[name]
    else:
        extra = _AZURE if spec is ApiSpec.AZURE_OPENAI else _GROQ if spec is ApiSpec.GROQ else {}
        expected = extra.get(name) or _CHAT.get(name) or _COMMON[name]
    return Check(name, name in REQUIRED, expected)


@dataclass(frozen=True, slots=True)
class CheckVerdict:
    """The outcome of one check before the runner adds timing and the catalogue's texts.
    ``expected`` overrides the catalogue's text when the check knows better."""

    check: str
    status: CheckStatus
    observed: str
    hint: str = ""
    expected: str = ""


def passed(name: str, observed: str) -> CheckVerdict:
    return CheckVerdict(name, CheckStatus.PASS, observed)


def skipped(name: str, reason: str) -> CheckVerdict:
    return CheckVerdict(name, CheckStatus.SKIPPED, reason)


def failed(name: str, observed: str, hint: str) -> CheckVerdict:
    return CheckVerdict(name, CheckStatus.FAIL, observed, hint)


def warned(name: str, observed: str, hint: str) -> CheckVerdict:
    return CheckVerdict(name, CheckStatus.WARN, observed, hint)
