"""Turn a ``Behavior`` and a request body into the pieces of one answer.

Every wire format encodes the same ``Answer``: reasoning pieces, then text pieces, then tool
calls. Splitting happens once per request, so the formats only frame bytes.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Any

from server.simulator.behavior import Behavior, ReasoningDialect, ToolCall, Usage

_WORD = re.compile(r"\s*\S+")
_FRAGMENT_SIZES = (4, 5, 6, 3, 7)


@dataclass(frozen=True, slots=True)
class Answer:
    """What one response says, already split into content chunks."""

    model: str
    reasoning: tuple[str, ...]
    text: tuple[str, ...]
    tool_calls: tuple[ToolCall, ...]
    usage: Usage
    finish_reason: str | None
    dialect: ReasoningDialect

    @property
    def full_text(self) -> str:
        return "".join(self.text)

    @property
    def full_reasoning(self) -> str:
        return "".join(self.reasoning)


def build_answer(behavior: Behavior, body: Any, model: str, prompt_text: str,
                 prefix: str = "") -> Answer:
    """The answer to a request whose last user message is ``prompt_text``; ``prefix`` is a
    partial answer to continue (Prefill.CONTINUE): the answer is the rest of the text."""
    text = behavior.answer_text(prompt_text)
    if prefix and text.startswith(prefix):
        text = text[len(prefix):]
    calls = behavior.calls
    usage = behavior.usage or Usage(
        input_tokens=max(1, _tokens(_all_text(body))),
        output_tokens=_tokens(text) + sum(_tokens(c.name + c.arguments) for c in calls),
        reasoning_tokens=_tokens(behavior.reasoning),
    )
    return Answer(
        model=behavior.model or model,
        reasoning=split_text(behavior.reasoning, behavior.reasoning_chunks),
        text=split_text(text, behavior.chunks),
        tool_calls=calls,
        usage=usage,
        finish_reason=behavior.finish_reason,
        dialect=behavior.reasoning_dialect,
    )


def split_text(text: str, chunks: int | None) -> tuple[str, ...]:
    """Split ``text`` into pieces that concatenate back to it.

    ``None``: one piece per word, leading whitespace attached (" capital", " of"), as
    tokenisers do. A number: that many pieces, grouping words, or cutting inside words when
    there are more pieces than words (never more pieces than characters).
    """
    if not text:
        return ()
    words = _WORD.findall(text)
    tail = text[sum(map(len, words)) :]
    if words and tail:
        words[-1] += tail
    if not words:
        words = [text]
    if chunks is None:
        return tuple(words)
    if chunks <= len(words):
        return tuple("".join(group) for group in _even_groups(words, chunks))
    return tuple("".join(group) for group in _even_groups(list(text), min(chunks, len(text))))


def cut_fragments(arguments: str) -> tuple[str, ...]:
    """Cut tool-call arguments at arbitrary points, as OpenAI streams them ("{\"lo", "catio")."""
    pieces: list[str] = []
    start = 0
    while start < len(arguments):
        size = _FRAGMENT_SIZES[len(pieces) % len(_FRAGMENT_SIZES)]
        pieces.append(arguments[start : start + size])
        start += size
    return tuple(pieces)


def last_user_text_openai(body: Any) -> str:
    """The text of the last ``user`` message of a Chat Completions body."""
    messages = body.get("messages") if isinstance(body, dict) else None
    for message in reversed(messages if isinstance(messages, list) else []):
        if isinstance(message, dict) and message.get("role") == "user":
            return _content_text(message.get("content"))
    return ""


def prefill_text(body: Any) -> str | None:
    """The text of a trailing assistant (Gemini: ``model``) message, None when the request
    ends with another role."""
    if not isinstance(body, dict):
        return None
    if isinstance(body.get("contents"), list) and body["contents"]:
        last = body["contents"][-1]
        if isinstance(last, dict) and last.get("role") == "model":
            return _content_text(last.get("parts"))
        return None
    messages = body.get("messages")
    if isinstance(messages, list) and messages:
        last = messages[-1]
        if isinstance(last, dict) and last.get("role") == "assistant":
            return _content_text(last.get("content"))
    return None


def last_user_text_gemini(body: Any) -> str:
    """The text of the last ``user`` turn of a Gemini ``contents`` body."""
    contents = body.get("contents") if isinstance(body, dict) else None
    for content in reversed(contents if isinstance(contents, list) else []):
        if isinstance(content, dict) and content.get("role", "user") == "user":
            return _content_text(content.get("parts"))
    return ""


def _content_text(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(
            p["text"] for p in content if isinstance(p, dict) and isinstance(p.get("text"), str)
        )
    return ""


def _all_text(value: Any) -> str:
    """Every string inside a JSON value, for a rough prompt token count."""
    if isinstance(value, str):
        return value
    if isinstance(value, dict):
        return " ".join(_all_text(v) for v in value.values())
    if isinstance(value, list):
        return " ".join(_all_text(v) for v in value)
    return ""


def prompt_tokens(body: Any) -> int:
    """The prompt size of a request body at 4 characters a token (all its strings)."""
    return _tokens(_all_text(body))


def _tokens(text: str) -> int:
    return math.ceil(len(text) / 4)


def _even_groups(items: list[str], count: int) -> list[list[str]]:
    size, extra = divmod(len(items), count)
    groups: list[list[str]] = []
    start = 0
    for i in range(count):
        end = start + size + (1 if i < extra else 0)
        groups.append(items[start:end])
        start = end
    return groups
