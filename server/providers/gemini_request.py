"""Gemini ``streamGenerateContent`` request bodies.

Translation rules:

* system messages -> ``systemInstruction``; user -> ``user``; assistant -> ``model``; tool
  results -> ``functionResponse`` parts in a ``user`` turn. Consecutive turns of the same role
  are merged (parallel tool results must arrive together in one turn).
* Images: inline bytes or base64 ``data:`` URLs -> ``inlineData``; other URLs -> ``fileData``.
* Assistant tool calls -> ``functionCall`` parts carrying ``thoughtSignature`` on the SAME part,
  exactly as received, and ``id`` when Gemini issued one. Assistant text -> one text part with
  the message's ``thought_signature``.
* Tool results -> ``functionResponse{name, response, id}``; ``response`` is the result parsed as
  a JSON object, else ``{"result": text}``.
* Tools -> ``functionDeclarations`` with ``parametersJsonSchema`` (full JSON Schema, unlike the
  OpenAPI-subset ``parameters`` field, which rejects keys such as ``additionalProperties``).
* ``reasoning_effort`` -> ``thinkingConfig``: NONE -> ``thinkingBudget: 0`` (no thoughts);
  LOW/MEDIUM/HIGH -> budgets 1024/8192/24576 with ``includeThoughts: true``. Unset -> no
  ``thinkingConfig`` (model default, thoughts not streamed).
"""

from __future__ import annotations

from typing import Any

import orjson

from server.chat import (
    ChatRequest,
    Generation,
    ImagePart,
    Message,
    ReasoningEffort,
    Role,
    TextPart,
    Tool,
    ToolCall,
    ToolChoice,
    ToolChoiceMode,
)
from server.providers._common import image_mime, inline_data, tool_schema

# Ids we invent for calls Gemini sent without one; never sent back to Gemini.
GENERATED_ID_PREFIX = "gemini-call-"

THINKING_BUDGETS = {
    ReasoningEffort.NONE: 0,
    ReasoningEffort.LOW: 1024,
    ReasoningEffort.MEDIUM: 8192,
    ReasoningEffort.HIGH: 24576,
}

_MODES = {
    ToolChoiceMode.AUTO: "AUTO",
    ToolChoiceMode.NONE: "NONE",
    ToolChoiceMode.REQUIRED: "ANY",
    ToolChoiceMode.FUNCTION: "ANY",
}


def _image(image: ImagePart) -> dict[str, Any]:
    inline = inline_data(image)
    if inline is not None:
        return {"inlineData": {"mimeType": inline[0], "data": inline[1]}}
    return {"fileData": {"mimeType": image_mime(image), "fileUri": image.url}}


def _user_parts(message: Message) -> list[dict[str, Any]]:
    parts: list[dict[str, Any]] = []
    for p in message.parts:
        if isinstance(p, TextPart):
            if p.text:
                parts.append({"text": p.text})
        else:
            parts.append(_image(p))
    return parts


def _args(call: ToolCall) -> dict[str, Any]:
    try:
        args = orjson.loads(call.arguments) if call.arguments.strip() else {}
    except orjson.JSONDecodeError:
        args = None
    return args if isinstance(args, dict) else {"arguments": call.arguments}


def _model_parts(message: Message) -> list[dict[str, Any]]:
    parts: list[dict[str, Any]] = []
    text = message.text
    if text or message.thought_signature:
        part: dict[str, Any] = {"text": text}
        if message.thought_signature:
            part["thoughtSignature"] = message.thought_signature
        parts.append(part)
    for call in message.tool_calls:
        fc: dict[str, Any] = {"name": call.name, "args": _args(call)}
        if call.id and not call.id.startswith(GENERATED_ID_PREFIX):
            fc["id"] = call.id
        part = {"functionCall": fc}
        if call.thought_signature:
            part["thoughtSignature"] = call.thought_signature
        parts.append(part)
    return parts


def _tool_result(message: Message, names: dict[str, str]) -> dict[str, Any]:
    text = message.text
    try:
        parsed = orjson.loads(text) if text.strip() else None
    except orjson.JSONDecodeError:
        parsed = None
    response = parsed if isinstance(parsed, dict) else {"result": text}
    fr: dict[str, Any] = {
        "name": message.name or names.get(message.tool_call_id, ""),
        "response": response,
    }
    if message.tool_call_id and not message.tool_call_id.startswith(GENERATED_ID_PREFIX):
        fr["id"] = message.tool_call_id
    return {"functionResponse": fr}


def contents(history: tuple[Message, ...]) -> tuple[list[dict[str, Any]], list[str]]:
    """(``contents``, system texts) for the history."""
    out: list[dict[str, Any]] = []
    system: list[str] = []
    names: dict[str, str] = {}  # tool call id -> function name, for results without a name
    for m in history:
        if m.role is Role.SYSTEM:
            if m.text:
                system.append(m.text)
            continue
        if m.role is Role.ASSISTANT:
            role, parts = "model", _model_parts(m)
            names.update((c.id, c.name) for c in m.tool_calls)
        elif m.role is Role.TOOL:
            role, parts = "user", [_tool_result(m, names)]
        else:
            role, parts = "user", _user_parts(m)
        if not parts:
            continue
        if out and out[-1]["role"] == role:
            out[-1]["parts"].extend(parts)
        else:
            out.append({"role": role, "parts": parts})
    return out, system


def generation_config(gen: Generation) -> dict[str, Any]:
    cfg: dict[str, Any] = {}
    if gen.temperature is not None:
        cfg["temperature"] = gen.temperature
    if gen.top_p is not None:
        cfg["topP"] = gen.top_p
    if gen.max_output_tokens is not None:
        cfg["maxOutputTokens"] = gen.max_output_tokens
    if gen.stop:
        cfg["stopSequences"] = list(gen.stop)
    if gen.seed is not None:
        cfg["seed"] = gen.seed
    if gen.reasoning_effort is not None:
        thinking: dict[str, Any] = {"thinkingBudget": THINKING_BUDGETS[gen.reasoning_effort]}
        if gen.reasoning_effort is not ReasoningEffort.NONE:
            thinking["includeThoughts"] = True
        cfg["thinkingConfig"] = thinking
    return cfg


def _tools(defs: tuple[Tool, ...]) -> list[dict[str, Any]]:
    decls: list[dict[str, Any]] = []
    for i, t in enumerate(defs):
        decl: dict[str, Any] = {"name": t.name}
        if t.description:
            decl["description"] = t.description
        decl["parametersJsonSchema"] = tool_schema(t, i)
        decls.append(decl)
    return [{"functionDeclarations": decls}]


def _tool_config(choice: ToolChoice) -> dict[str, Any]:
    cfg: dict[str, Any] = {"mode": _MODES[choice.mode]}
    if choice.mode is ToolChoiceMode.FUNCTION:
        cfg["allowedFunctionNames"] = [choice.function_name]
    return {"functionCallingConfig": cfg}


def body(request: ChatRequest) -> dict[str, Any]:
    history, system = contents(request.messages)
    out: dict[str, Any] = {"contents": history}
    if system:
        out["systemInstruction"] = {"parts": [{"text": s} for s in system]}
    if request.tools:
        out["tools"] = _tools(request.tools)
        if request.tool_choice is not None:
            out["toolConfig"] = _tool_config(request.tool_choice)
    cfg = generation_config(request.generation)
    if cfg:
        out["generationConfig"] = cfg
    return out
