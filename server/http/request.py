"""OpenAI Chat Completions request bodies -> a checked ``TurnInput``.

Accepted: ``model`` (a Switchboard LLM id), ``messages`` (system, developer, user, assistant,
tool; text and ``image_url`` parts), ``tools``, ``tool_choice``, ``temperature``, ``top_p``,
``max_tokens`` / ``max_completion_tokens``, ``stop``, ``seed``, ``reasoning_effort``,
``stream``, ``stream_options.include_usage``. Bookkeeping fields (``user``, ``metadata``,
``store``, ``parallel_tool_calls``...) and unknown fields are ignored. Fields that would change
the answer but that Switchboard cannot honour (``n`` > 1, ``logprobs``, penalties,
``response_format`` other than text, audio) are refused with 400 rather than silently dropped.
Every problem is reported at once, with OpenAI-style paths (``messages[2].content``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import orjson

from server.chat import (
    Generation,
    ImagePart,
    Message,
    Part,
    ReasoningEffort,
    Role,
    TextPart,
    Tool,
    ToolCall,
    ToolChoice,
    ToolChoiceMode,
)
from server.errors import InvalidArgument, Violations
from server.turns.runner import TurnInput

_ROLES = {"system": Role.SYSTEM, "developer": Role.SYSTEM, "user": Role.USER,
          "assistant": Role.ASSISTANT, "tool": Role.TOOL}
_EFFORTS = {"none": ReasoningEffort.NONE, "minimal": ReasoningEffort.LOW,
            "low": ReasoningEffort.LOW, "medium": ReasoningEffort.MEDIUM,
            "high": ReasoningEffort.HIGH, "xhigh": ReasoningEffort.HIGH}
_CHOICES = {"auto": ToolChoiceMode.AUTO, "none": ToolChoiceMode.NONE,
            "required": ToolChoiceMode.REQUIRED}
# Fields accepted only at their neutral value: field -> what counts as neutral.
_NEUTRAL: dict[str, tuple[Any, ...]] = {
    "n": (None, 1),
    "logprobs": (None, False),
    "top_logprobs": (None, 0),
    "frequency_penalty": (None, 0, 0.0),
    "presence_penalty": (None, 0, 0.0),
    "logit_bias": (None, {}),
    "audio": (None,),
    "prediction": (None,),
    "functions": (None, []),
    "function_call": (None,),
}


@dataclass(frozen=True, slots=True)
class CompletionRequest:
    llm_id: str
    chat: TurnInput
    stream: bool
    include_usage: bool


def parse(raw: bytes, max_messages: int, max_message_bytes: int) -> CompletionRequest:
    """Parses and checks a request body; raises InvalidArgument with every violation."""
    try:
        body = orjson.loads(raw)
    except orjson.JSONDecodeError:
        raise InvalidArgument("the request body is not valid JSON",
                              reason="INVALID_JSON") from None
    if not isinstance(body, dict):
        raise InvalidArgument("the request body must be a JSON object", reason="INVALID_JSON")
    v = Violations()
    model = body.get("model")
    if not isinstance(model, str) or not model:
        v.add("model", "is required: the id of a Switchboard LLM (see GET /v1/models)")
    messages = _messages(body.get("messages"), v, max_messages, max_message_bytes)
    tools = _tools(body.get("tools"), v)
    choice = _tool_choice(body.get("tool_choice"), tools, v)
    generation = _generation(body, v)
    stream = body.get("stream") or False
    if not isinstance(stream, bool):
        v.add("stream", "must be a boolean")
    options = body.get("stream_options") or {}
    include_usage = isinstance(options, dict) and options.get("include_usage") is True
    for name, neutral in _NEUTRAL.items():
        if name in body and body[name] not in neutral:
            v.add(name, "is not supported by Switchboard; remove it")
    fmt = body.get("response_format")
    if fmt is not None and not (isinstance(fmt, dict) and fmt.get("type") == "text"):
        v.add("response_format", "only {\"type\": \"text\"} is supported")
    modalities = body.get("modalities")
    if modalities is not None and modalities != ["text"]:
        v.add("modalities", "only [\"text\"] is supported")
    v.raise_if_any()
    return CompletionRequest(str(model), TurnInput(tuple(messages), tools, choice, generation),
                             bool(stream), include_usage)


def _messages(raw: Any, v: Violations, max_messages: int, max_bytes: int) -> list[Message]:
    if not isinstance(raw, list) or not raw:
        v.add("messages", "is required: a non-empty array of messages")
        return []
    if len(raw) > max_messages:
        v.add("messages", f"{len(raw)} messages is over the limit of {max_messages}")
        return []
    out: list[Message] = []
    for i, m in enumerate(raw):
        p = f"messages[{i}]"
        if not isinstance(m, dict):
            v.add(p, "must be an object")
            continue
        role_raw = m.get("role")
        role = _ROLES.get(role_raw) if isinstance(role_raw, str) else None
        if role is None:
            v.add(f"{p}.role", "must be one of system, developer, user, assistant, tool")
            continue
        parts = _content(m.get("content"), f"{p}.content", role, v)
        calls = _tool_calls(m.get("tool_calls"), f"{p}.tool_calls", v) \
            if role is Role.ASSISTANT else ()
        tool_call_id = m.get("tool_call_id") or ""
        if role is Role.TOOL and (not isinstance(tool_call_id, str) or not tool_call_id):
            v.add(f"{p}.tool_call_id", "is required on tool messages")
            tool_call_id = ""
        # A tool result may name its function (Gemini needs it; it is otherwise found from
        # the assistant's call); a participant name on other roles has no upstream meaning.
        name = m.get("name") if role is Role.TOOL and isinstance(m.get("name"), str) else ""
        if not parts and not calls:
            v.add(f"{p}.content", "a message needs content (or, from the assistant, tool_calls)")
        msg = Message(role, tuple(parts), calls, str(tool_call_id), str(name or ""))
        if msg.size_bytes() > max_bytes:
            v.add(p, f"is {msg.size_bytes()} bytes, over the limit of {max_bytes} bytes")
        out.append(msg)
    return out


def _content(raw: Any, path: str, role: Role, v: Violations) -> list[Part]:
    if raw is None:
        return []
    if isinstance(raw, str):
        return [TextPart(raw)] if raw else []
    if not isinstance(raw, list):
        v.add(path, "must be a string or an array of content parts")
        return []
    parts: list[Part] = []
    for j, part in enumerate(raw):
        kind = part.get("type") if isinstance(part, dict) else None
        if kind == "text" and isinstance(part.get("text"), str):
            parts.append(TextPart(part["text"]))
        elif kind == "refusal" and role is Role.ASSISTANT:
            parts.append(TextPart(str(part.get("refusal") or "")))
        elif kind == "image_url" and role is Role.USER:
            image = part.get("image_url")
            url = image.get("url") if isinstance(image, dict) else image
            if not isinstance(url, str) or not url.startswith(("https://", "data:")):
                v.add(f"{path}[{j}].image_url.url", "must be an https: or data: URL")
                continue
            parts.append(ImagePart(url=url))
        else:
            allowed = "text and image_url parts" if role is Role.USER else "text parts"
            v.add(f"{path}[{j}]", f"unsupported content part; {role.value} messages take "
                  f"{allowed}")
    return parts


def _tool_calls(raw: Any, path: str, v: Violations) -> tuple[ToolCall, ...]:
    if raw is None:
        return ()
    if not isinstance(raw, list):
        v.add(path, "must be an array")
        return ()
    calls = []
    for k, c in enumerate(raw):
        fn = c.get("function") if isinstance(c, dict) else None
        if not isinstance(fn, dict) or not isinstance(fn.get("name"), str) or \
                not isinstance(c.get("id"), str):
            v.add(f"{path}[{k}]", "needs an id and a function with a name and arguments")
            continue
        arguments = fn.get("arguments")
        calls.append(ToolCall(c["id"], fn["name"],
                              arguments if isinstance(arguments, str) else "{}"))
    return tuple(calls)


def _tools(raw: Any, v: Violations) -> tuple[Tool, ...]:
    if raw is None:
        return ()
    if not isinstance(raw, list):
        v.add("tools", "must be an array")
        return ()
    out = []
    for i, t in enumerate(raw):
        fn = t.get("function") if isinstance(t, dict) else None
        if not isinstance(t, dict) or t.get("type") != "function" or not isinstance(fn, dict):
            v.add(f"tools[{i}]", "only {\"type\": \"function\", \"function\": {...}} tools "
                  "are supported")
            continue
        name = fn.get("name")
        if not isinstance(name, str) or not name:
            v.add(f"tools[{i}].function.name", "is required")
            continue
        params = fn.get("parameters")
        if params is not None and not isinstance(params, dict):
            v.add(f"tools[{i}].function.parameters", "must be a JSON Schema object")
            continue
        description = fn.get("description")
        out.append(Tool(name, description if isinstance(description, str) else "",
                        orjson.dumps(params).decode() if params is not None else ""))
    return tuple(out)


def _tool_choice(raw: Any, tools: tuple[Tool, ...], v: Violations) -> ToolChoice | None:
    if raw is None:
        return None
    if isinstance(raw, str) and raw in _CHOICES:
        return ToolChoice(_CHOICES[raw])
    fn = raw.get("function") if isinstance(raw, dict) else None
    name = fn.get("name") if isinstance(fn, dict) else None
    if not isinstance(name, str):
        v.add("tool_choice", "must be auto, none, required or "
              "{\"type\": \"function\", \"function\": {\"name\": ...}}")
        return None
    if not any(t.name == name for t in tools):
        v.add("tool_choice.function.name", "must name one of the request's tools")
    return ToolChoice(ToolChoiceMode.FUNCTION, name)


def _number(body: dict[str, Any], name: str, v: Violations, low: float, high: float
            ) -> float | None:
    value = body.get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or not low <= value <= high:
        v.add(name, f"must be a number between {low:g} and {high:g}")
        return None
    return float(value)


def _generation(body: dict[str, Any], v: Violations) -> Generation:
    temperature = _number(body, "temperature", v, 0, 2)
    top_p = _number(body, "top_p", v, 0, 1)
    max_tokens = None
    for name in ("max_tokens", "max_completion_tokens"):  # the newer name wins
        value = body.get(name)
        if value is None:
            continue
        if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
            v.add(name, "must be a positive integer")
        else:
            max_tokens = value
    stop_raw = body.get("stop")
    stop: tuple[str, ...] = ()
    if isinstance(stop_raw, str):
        stop = (stop_raw,)
    elif isinstance(stop_raw, list) and all(isinstance(s, str) for s in stop_raw):
        stop = tuple(stop_raw)
    elif stop_raw is not None:
        v.add("stop", "must be a string or an array of strings")
    if len(stop) > 4:
        v.add("stop", "at most 4 stop sequences are allowed")
    seed = body.get("seed")
    if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int)):
        v.add("seed", "must be an integer")
        seed = None
    effort_raw = body.get("reasoning_effort")
    effort = _EFFORTS.get(effort_raw) if isinstance(effort_raw, str) else None
    if effort_raw is not None and effort is None:
        v.add("reasoning_effort", "must be one of none, minimal, low, medium, high")
    if top_p == 0:
        v.add("top_p", "must be greater than 0")
    return Generation(temperature, top_p, max_tokens, stop, seed, effort)
