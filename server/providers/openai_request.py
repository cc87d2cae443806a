"""Chat Completions request bodies (OpenAI, Azure OpenAI, Groq, OpenAI-compatible servers).

The adapters add their spec-specific fields (reasoning controls, ``model``) to the body built
here. Reasoning text from earlier turns is never sent back: Groq rejects ``reasoning`` and
``reasoning_content`` on assistant messages, and no provider needs it.
"""

from __future__ import annotations

from typing import Any

from server.chat import (
    ChatRequest,
    Generation,
    ImagePart,
    Message,
    Role,
    TextPart,
    Tool,
    ToolChoice,
    ToolChoiceMode,
)
from server.providers._common import image_url, tool_schema


def _content(message: Message) -> str | list[dict[str, Any]]:
    """A plain string when the message is only text, else a list of typed parts."""
    given = message.parts
    if len(given) == 1 and type(given[0]) is TextPart:  # the common case, without a scan
        return given[0].text
    if all(isinstance(p, TextPart) for p in given):
        return message.text
    parts: list[dict[str, Any]] = []
    for p in message.parts:
        if isinstance(p, TextPart):
            parts.append({"type": "text", "text": p.text})
        elif isinstance(p, ImagePart):
            parts.append({"type": "image_url", "image_url": {"url": image_url(p)}})
    return parts


def _assistant(message: Message) -> dict[str, Any]:
    text = message.text
    out: dict[str, Any] = {"role": "assistant", "content": text}
    if message.tool_calls:
        out["content"] = text or None
        out["tool_calls"] = [
            {
                "id": c.id,
                "type": "function",
                "function": {"name": c.name, "arguments": c.arguments or "{}"},
            }
            for c in message.tool_calls
        ]
    return out


def messages(history: tuple[Message, ...]) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    assistant, tool, system = Role.ASSISTANT, Role.TOOL, Role.SYSTEM  # one lookup each
    for m in history:
        role = m.role
        if role is assistant:
            out.append(_assistant(m))
        elif role is tool:
            out.append({"role": "tool", "tool_call_id": m.tool_call_id, "content": m.text})
        elif role is system:
            out.append({"role": "system", "content": m.text})
        else:
            out.append({"role": "user", "content": _content(m)})
    return out


def tools(defs: tuple[Tool, ...]) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for i, t in enumerate(defs):
        fn: dict[str, Any] = {"name": t.name}
        if t.description:
            fn["description"] = t.description
        fn["parameters"] = tool_schema(t, i)
        out.append({"type": "function", "function": fn})
    return out


def tool_choice(choice: ToolChoice) -> str | dict[str, Any]:
    if choice.mode is ToolChoiceMode.FUNCTION:
        return {"type": "function", "function": {"name": choice.function_name}}
    return choice.mode.value  # "auto" | "none" | "required"


def sampling(gen: Generation, body: dict[str, Any], max_tokens_field: str) -> None:
    """Temperature, top_p, stop, seed and the output cap (under ``max_tokens_field``)."""
    if gen.temperature is not None:
        body["temperature"] = gen.temperature
    if gen.top_p is not None:
        body["top_p"] = gen.top_p
    if gen.max_output_tokens is not None:
        body[max_tokens_field] = gen.max_output_tokens
    if gen.stop:
        body["stop"] = list(gen.stop)
    if gen.seed is not None:
        body["seed"] = gen.seed


def body(request: ChatRequest, *, model: str, max_tokens_field: str) -> dict[str, Any]:
    """The common streaming body; ``model`` is omitted when empty (Azure deployment route).

    We never send ``n``: the default is 1 and the decoder only reads choice 0.
    """
    out: dict[str, Any] = {}
    if model:
        out["model"] = model
    out["messages"] = messages(request.messages)
    out["stream"] = True
    out["stream_options"] = {"include_usage": True}
    if request.tools:
        out["tools"] = tools(request.tools)
        if request.tool_choice is not None:
            out["tool_choice"] = tool_choice(request.tool_choice)
    sampling(request.generation, out, max_tokens_field)
    return out
