"""The requests validation sends (real turns), and the optional ``capability.*`` verdicts.

Every request is a real conversation turn built by the spec's adapter, so what validates is
exactly what conversations send: the basic ``ping`` turn (with the LLM's generation
settings), a turn offering one tiny tool, a turn with a 16x16 PNG inline, and, when the basic
answer showed no reasoning, a turn with ``reasoning_effort`` low. Capability verdicts are
PASS when present and WARN when absent or refused; they never FAIL.
"""

from __future__ import annotations

import dataclasses
import struct
import zlib

from server.chat import (
    ChatRequest,
    Generation,
    ImagePart,
    Message,
    ReasoningEffort,
    Role,
    TextPart,
    Tool,
)
from server.providers.adapters import adapter_for
from server.registry.llm import Endpoint
from server.turns.shaping import continuation
from server.validation.audit import StreamAudit
from server.validation.catalog import (
    CONTINUATION,
    IMAGE_INPUT,
    REASONING,
    TOOL_CALLING,
    CheckVerdict,
    passed,
    warned,
)
from server.validation.exchange import Exchange

PING_PROMPT = "Reply with the single word: pong"
TOOL_PROMPT = "What is the weather in Paris right now? Call the get_weather tool to find out."
IMAGE_PROMPT = "What colour is this image? Answer with one word."
COUNT_PROMPT = "Count from one to ten in words, separated by spaces."
COUNT_PREFIX = "one two three"
WEATHER_TOOL = Tool(
    name="get_weather",
    description="The current weather in a city.",
    parameters_json='{"type":"object","properties":{"city":{"type":"string"}},'
    '"required":["city"]}',
)


def tiny_png(size: int = 16, rgb: tuple[int, int, int] = (220, 40, 40)) -> bytes:
    """A valid ``size`` x ``size`` single-colour PNG (a few dozen bytes)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(
            ">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    row = b"\x00" + bytes(rgb) * size
    header = struct.pack(">IIBBBBB", size, size, 8, 2, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header)
            + chunk(b"IDAT", zlib.compress(row * size)) + chunk(b"IEND", b""))


def _user(*parts: TextPart | ImagePart) -> tuple[Message, ...]:
    return (Message(Role.USER, parts),)


def ping(generation: Generation) -> ChatRequest:
    return ChatRequest(_user(TextPart(PING_PROMPT)), generation=generation)


def with_tool(generation: Generation) -> ChatRequest:
    return ChatRequest(_user(TextPart(TOOL_PROMPT)), tools=(WEATHER_TOOL,), generation=generation)


def with_image(generation: Generation) -> ChatRequest:
    image = ImagePart(mime_type="image/png", data=tiny_png())
    return ChatRequest(_user(TextPart(IMAGE_PROMPT), image), generation=generation)


def with_partial_answer(generation: Generation) -> ChatRequest:
    """A count the model has started: a model that continues it goes on from "four"."""
    request = ChatRequest(_user(TextPart(COUNT_PROMPT)), generation=generation)
    return continuation(request, COUNT_PREFIX)


def with_reasoning(generation: Generation) -> ChatRequest:
    return ping(dataclasses.replace(generation, reasoning_effort=ReasoningEffort.LOW))


def wants_reasoning_probe(generation: Generation) -> bool:
    """The basic turn already asked for reasoning unless the LLM leaves it unset or off."""
    return generation.reasoning_effort in (None, ReasoningEffort.NONE)


def estimate_tokens(text: str) -> int:
    return max(1, len(text) // 4)


def refusal(ex: Exchange, endpoint: Endpoint) -> str:
    """Why a probe got no usable stream, or "" when it got one."""
    if ex.status == 0:
        return ex.failure.message if ex.failure else "no response"
    if not ex.ok:
        err = adapter_for(endpoint.api_spec).classify_error(ex.status, ex.headers, ex.body)
        return err.message
    if not ex.streamed:
        return f"it answered {ex.mime or 'an unlabelled body'} instead of an event stream"
    return ""


def _broken(audit: StreamAudit) -> str:
    if audit.errors:
        return audit.errors[0]
    if audit.runtime_error is not None:
        return audit.runtime_error.message
    return ""


def reasoning_verdict(basic: StreamAudit, probe: tuple[Exchange, StreamAudit] | None,
                      endpoint: Endpoint, server: str = "") -> tuple[CheckVerdict, str]:
    """The verdict and the reasoning dialect ("" when there is no reasoning)."""
    if basic.reasoning:
        return passed(REASONING, f"reasoning streams as {basic.dialect}"), basic.dialect
    if probe is None:
        return warned(REASONING, "no reasoning text in the answer, although the LLM sets "
                      "reasoning_effort", _reasoning_hint(server)), ""
    ex, audit = probe
    why = refusal(ex, endpoint)
    if why:
        return warned(REASONING, f"no reasoning: a turn with reasoning_effort low was refused "
                      f"({why})", "leave reasoning_effort unset for this LLM: conversations "
                      "that set it would fail on this endpoint"), ""
    if audit.reasoning:
        return passed(REASONING, f"reasoning streams as {audit.dialect} when "
                      "reasoning_effort is set"), audit.dialect
    return warned(REASONING, "no reasoning text in the stream", _reasoning_hint(server)), ""


def _reasoning_hint(server: str = "") -> str:
    if server == "llama.cpp":
        return ("optional: llama-server streams reasoning apart (reasoning_content) with "
                "--jinja, a chat template that knows the model's thinking tags "
                "(--chat-template-file, e.g. from llama.cpp's models/templates) and "
                "--reasoning-format deepseek; with --reasoning-format none the tags stay in "
                "the text")
    return ("optional: if the model reasons, have the server stream it (vLLM "
            "--reasoning-parser, Groq reasoning_format parsed, Gemini includeThoughts); it is "
            "then shown apart from the answer")


def _tool_server_hint(ex: Exchange) -> str:
    if ex.headers.get("server", "").lower().startswith("llama.cpp"):
        return ("llama-server: start it with --jinja and a chat template that supports tools "
                "(--chat-template-file)")
    return "vLLM: --enable-auto-tool-choice --tool-call-parser"


def tool_verdict(ex: Exchange, audit: StreamAudit, endpoint: Endpoint) -> CheckVerdict:
    why = refusal(ex, endpoint) or _broken(audit)
    server = _tool_server_hint(ex)
    if why:
        return warned(TOOL_CALLING, f"no tool calling: a turn offering a tool failed ({why})",
                      "do not pass tools in conversations on this LLM, or enable tool calling "
                      f"on the server ({server})")
    if audit.tools:
        return passed(TOOL_CALLING, f"called {audit.tools[0]!r} when offered a tool")
    return warned(TOOL_CALLING, "answered with text instead of calling the offered tool",
                  "optional: the model may not support tool calling, or the server needs it "
                  f"enabled ({server})")


def continuation_verdict(ex: Exchange, audit: StreamAudit, endpoint: Endpoint
                         ) -> CheckVerdict:
    why = refusal(ex, endpoint) or _broken(audit)
    hint = ("optional: a broken answer restarts on this endpoint instead of continuing; "
            "declare continues_partial_answer if it does continue assistant prefills")
    if why:
        return warned(CONTINUATION, f"a partial answer was refused ({why})", hint)
    answer = audit.answer.strip()
    if not answer:
        return warned(CONTINUATION, "a partial answer got no continuation", hint)
    if answer.lower().startswith(COUNT_PREFIX.split()[0]):
        return warned(CONTINUATION, f"the answer started over ({answer[:40]!r})", hint)
    return passed(CONTINUATION, f"continued {COUNT_PREFIX!r} with {answer[:40]!r}")


def image_verdict(ex: Exchange, audit: StreamAudit, endpoint: Endpoint) -> CheckVerdict:
    why = refusal(ex, endpoint) or _broken(audit)
    if why:
        return warned(IMAGE_INPUT, f"no image input: a turn with a small PNG failed ({why})",
                      "optional: send text only to this LLM, or use a vision model")
    if not audit.answer.strip() and not audit.finish_reason:
        return warned(IMAGE_INPUT, "a turn with a small PNG got no answer",
                      "optional: the model may not accept images")
    return passed(IMAGE_INPUT, "answered a message that holds a 16x16 PNG")
