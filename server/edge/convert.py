"""Protos <-> domain values. The only module besides the servicers that knows the protos."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable
from datetime import UTC, datetime

import orjson
from google.protobuf import json_format
from google.protobuf.duration_pb2 import Duration
from google.protobuf.timestamp_pb2 import Timestamp
from switchboard.v1 import conversations_pb2 as cpb
from switchboard.v1 import llm_pb2 as lpb

from server.chat import (
    FinishReason,
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
from server.errors import Violations
from server.registry.drafts import EndpointDraft, LlmDraft
from server.registry.endpoint_capabilities import Capabilities
from server.registry.llm import ApiSpec, Endpoint, HeaderValue, Llm, RoutingPolicy
from server.secret import Secret
from server.session_state import Session

_SPEC_FROM_PB = {
    lpb.API_SPEC_OPENAI: ApiSpec.OPENAI,
    lpb.API_SPEC_AZURE_OPENAI: ApiSpec.AZURE_OPENAI,
    lpb.API_SPEC_GEMINI: ApiSpec.GEMINI,
    lpb.API_SPEC_GROQ: ApiSpec.GROQ,
}
_SPEC_TO_PB = {v: k for k, v in _SPEC_FROM_PB.items()}
_EFFORT_FROM_PB = {
    lpb.REASONING_EFFORT_NONE: ReasoningEffort.NONE,
    lpb.REASONING_EFFORT_LOW: ReasoningEffort.LOW,
    lpb.REASONING_EFFORT_MEDIUM: ReasoningEffort.MEDIUM,
    lpb.REASONING_EFFORT_HIGH: ReasoningEffort.HIGH,
}
_EFFORT_TO_PB = {v: k for k, v in _EFFORT_FROM_PB.items()}
_ROLE_FROM_PB = {
    cpb.ROLE_SYSTEM: Role.SYSTEM,
    cpb.ROLE_USER: Role.USER,
    cpb.ROLE_ASSISTANT: Role.ASSISTANT,
    cpb.ROLE_TOOL: Role.TOOL,
}
_ROLE_TO_PB = {v: k for k, v in _ROLE_FROM_PB.items()}
_CHOICE_FROM_PB = {
    cpb.TOOL_CHOICE_MODE_AUTO: ToolChoiceMode.AUTO,
    cpb.TOOL_CHOICE_MODE_NONE: ToolChoiceMode.NONE,
    cpb.TOOL_CHOICE_MODE_REQUIRED: ToolChoiceMode.REQUIRED,
    cpb.TOOL_CHOICE_MODE_FUNCTION: ToolChoiceMode.FUNCTION,
}
FINISH_TO_PB = {
    FinishReason.STOP: cpb.FINISH_REASON_STOP,
    FinishReason.LENGTH: cpb.FINISH_REASON_LENGTH,
    FinishReason.TOOL_CALLS: cpb.FINISH_REASON_TOOL_CALLS,
    FinishReason.CONTENT_FILTER: cpb.FINISH_REASON_CONTENT_FILTER,
    FinishReason.ERROR: cpb.FINISH_REASON_OTHER,
    FinishReason.OTHER: cpb.FINISH_REASON_OTHER,
}


def timestamp(dt: object) -> Timestamp:
    ts = Timestamp()
    if dt is not None:
        ts.FromDatetime(dt)  # type: ignore[arg-type]
    return ts


def duration(seconds: float) -> Duration:
    d = Duration()
    d.FromNanoseconds(int(seconds * 1e9))
    return d


# -- generation ---------------------------------------------------------------------------------


def generation_from_pb(g: lpb.GenerationConfig) -> Generation:
    return Generation(
        temperature=g.temperature if g.HasField("temperature") else None,
        top_p=g.top_p if g.HasField("top_p") else None,
        max_output_tokens=g.max_output_tokens if g.HasField("max_output_tokens") else None,
        stop=tuple(g.stop_sequences),
        seed=g.seed if g.HasField("seed") else None,
        reasoning_effort=_EFFORT_FROM_PB.get(g.reasoning_effort),
    )


def generation_to_pb(g: Generation, out: lpb.GenerationConfig) -> None:
    if g.temperature is not None:
        out.temperature = g.temperature
    if g.top_p is not None:
        out.top_p = g.top_p
    if g.max_output_tokens is not None:
        out.max_output_tokens = g.max_output_tokens
    out.stop_sequences.extend(g.stop)
    if g.seed is not None:
        out.seed = g.seed
    if g.reasoning_effort is not None:
        out.reasoning_effort = _EFFORT_TO_PB[g.reasoning_effort]


# -- LLMs ---------------------------------------------------------------------------------------


def _header_from_pb(h: lpb.Header) -> tuple[str, HeaderValue | None]:
    """A secret header's value as a ``Secret``. An empty value keeps the stored one (None), so
    an endpoint read with GetLlm (values are input-only) can be sent back as it is."""
    if not h.value:
        return h.name, None
    return h.name, Secret(h.value) if h.secret else h.value


def llm_draft_from_pb(llm: lpb.Llm, require_keys: bool = True) -> LlmDraft:
    endpoints = []
    for e in llm.endpoints:
        endpoints.append(
            EndpointDraft(
                id=e.id,
                api_spec=_SPEC_FROM_PB.get(e.api_spec),
                api_spec_raw=int(e.api_spec),
                base_url=e.base_url,
                model=e.model,
                # An empty key on an existing endpoint keeps the stored one; a new endpoint
                # with an empty key talks to a server without authentication.
                api_key=Secret(e.api_key) if e.api_key or (not e.id and require_keys)
                else None,
                api_version=e.api_version,
                label=e.label,
                priority=e.priority if e.HasField("priority") else 0,
                context_window_tokens=e.context_window_tokens,
                continues_partial_answer=(e.continues_partial_answer
                                          if e.HasField("continues_partial_answer") else None),
                extra_headers=tuple(_header_from_pb(h) for h in e.extra_headers),
            )
        )
    routing = llm.routing
    return LlmDraft(
        display_name=llm.display_name,
        endpoints=tuple(endpoints),
        generation=generation_from_pb(llm.generation),
        policy=RoutingPolicy(
            hedging_enabled=routing.hedging if routing.HasField("hedging") else True,
            failover_after_first_token=(
                routing.failover_after_first_token
                if routing.HasField("failover_after_first_token") else True
            ),
        ),
        etag=llm.etag,
    )


def endpoint_to_pb(e: Endpoint, out: lpb.Endpoint) -> None:
    out.id = e.id
    out.api_spec = _SPEC_TO_PB[e.api_spec]
    out.base_url = e.base_url
    out.model = e.model
    out.api_version = e.api_version
    out.api_key_hint = e.key_hint
    out.label = e.label
    if e.priority:
        out.priority = e.priority
    out.context_window_tokens = e.context_window_tokens
    if e.continues_partial_answer is not None:
        out.continues_partial_answer = e.continues_partial_answer
    for name, value in e.extra_headers:
        if isinstance(value, Secret):
            out.extra_headers.add(name=name, secret=True, value_hint=value.hint)
        else:
            out.extra_headers.add(name=name, value_hint=value)
    if e.capabilities.recorded:
        out.capabilities.CopyFrom(capabilities_to_pb(e.capabilities))


def capabilities_to_pb(caps: Capabilities) -> lpb.EndpointCapabilities:
    """What validation detected; a field that is not recorded is its proto default."""
    return lpb.EndpointCapabilities(
        reasoning=bool(caps.reasoning), reasoning_dialect=caps.reasoning_dialect or "",
        tool_calling=bool(caps.tool_calling), image_input=bool(caps.image_input),
        reported_context_window_tokens=caps.reported_context_window_tokens or 0,
        continues_partial_answer=bool(caps.continues_partial_answer))


def llm_to_pb(llm: Llm) -> lpb.Llm:
    out = lpb.Llm(id=llm.id, display_name=llm.display_name, etag=llm.etag)
    for e in llm.endpoints:
        endpoint_to_pb(e, out.endpoints.add())
    generation_to_pb(llm.generation, out.generation)
    out.routing.hedging = llm.policy.hedging_enabled
    out.routing.failover_after_first_token = llm.policy.failover_after_first_token
    out.create_time.CopyFrom(timestamp(llm.create_time))
    out.update_time.CopyFrom(timestamp(llm.update_time))
    return out


# -- messages -----------------------------------------------------------------------------------


def messages_from_pb(messages: Iterable[cpb.Message], path: str, v: Violations, max_bytes: int,
                     *, history: bool = False) -> list[Message]:
    """``history``: a session history given back as read (UpdateSession), which keeps the
    messages' ``turn_id``, ``interrupted`` and ``reasoning``."""
    out: list[Message] = []
    for i, m in enumerate(messages):
        p = f"{path}[{i}]"
        role = _ROLE_FROM_PB.get(m.role)
        if role is None:
            v.add(f"{p}.role", "must be ROLE_SYSTEM, ROLE_USER, ROLE_ASSISTANT or ROLE_TOOL")
            continue
        parts: list[Part] = []
        for j, part in enumerate(m.parts):
            kind = part.WhichOneof("kind")
            if kind == "text":
                if "\x00" in part.text:
                    v.add(f"{p}.parts[{j}].text", "must not contain NUL (U+0000) characters")
                parts.append(TextPart(part.text))
            elif kind == "image":
                img = part.image
                src = img.WhichOneof("source")
                if src == "data" and not img.mime_type:
                    v.add(f"{p}.parts[{j}].image.mime_type", "is required with inline bytes")
                if src is None:
                    v.add(f"{p}.parts[{j}].image", "needs a url or inline data")
                elif src == "url" and not img.url.startswith(("https://", "data:")):
                    # The upstream fetches it: no plain http, file:, ftp: or internal hosts
                    # named by scheme tricks; the HTTP front door refuses the same.
                    v.add(f"{p}.parts[{j}].image.url", "must be an https: or data: URL")
                parts.append(ImagePart(mime_type=img.mime_type, url=img.url, data=img.data))
            else:
                v.add(f"{p}.parts[{j}]", "is empty: set text or image")
        calls = tuple(ToolCall(c.id, c.name, c.arguments_json, c.thought_signature)
                      for c in m.tool_calls)
        msg = Message(role=role, parts=tuple(parts), tool_calls=calls,
                      tool_call_id=m.tool_call_id, name=m.name,
                      thought_signature=m.thought_signature)
        if history:
            msg = dataclasses.replace(msg, turn_id=m.turn_id, interrupted=m.interrupted,
                                      reasoning=m.reasoning)
        if role is Role.TOOL and not m.tool_call_id:
            v.add(f"{p}.tool_call_id", "is required on tool messages")
        if not parts and not calls:
            v.add(f"{p}.parts", "a message needs content (or tool calls)")
        if msg.size_bytes() > max_bytes:
            v.add(p, f"is {msg.size_bytes()} bytes, over the limit of {max_bytes} bytes")
        out.append(msg)
    return out


def message_to_pb(m: Message, out: cpb.Message) -> None:
    out.role = _ROLE_TO_PB[m.role]
    for part in m.parts:
        if isinstance(part, TextPart):
            out.parts.add(text=part.text)
        else:
            pb = out.parts.add()
            pb.image.mime_type = part.mime_type
            if part.url:
                pb.image.url = part.url
            else:
                pb.image.data = part.data
    for c in m.tool_calls:
        out.tool_calls.add(id=c.id, name=c.name, arguments_json=c.arguments,
                           thought_signature=c.thought_signature)
    out.tool_call_id = m.tool_call_id
    out.name = m.name
    out.reasoning = m.reasoning
    out.thought_signature = m.thought_signature
    out.interrupted = m.interrupted
    out.turn_id = m.turn_id


def tools_from_pb(tools: Iterable[cpb.Tool], v: Violations) -> tuple[Tool, ...]:
    out = []
    for i, t in enumerate(tools):
        if not t.name:
            v.add(f"tools[{i}].name", "is required")
        params = ""
        if t.HasField("parameters"):
            params = orjson.dumps(json_format.MessageToDict(t.parameters)).decode()
        out.append(Tool(t.name, t.description, params))
    return tuple(out)


def tool_choice_from_pb(choice: cpb.ToolChoice, present: bool) -> ToolChoice | None:
    if not present or choice.mode == cpb.TOOL_CHOICE_MODE_UNSPECIFIED:
        return None
    return ToolChoice(_CHOICE_FROM_PB.get(choice.mode, ToolChoiceMode.AUTO), choice.function_name)


def session_to_pb(s: Session, with_messages: bool = True) -> cpb.Session:
    out = cpb.Session(id=s.id, llm_id=s.llm_id, system_prompt=s.system_prompt,
                      turn_count=s.turn_count)
    generation_to_pb(s.generation, out.generation)
    out.idle_ttl.CopyFrom(duration(s.idle_ttl_s))
    out.create_time.CopyFrom(timestamp(s.create_time))
    out.expire_time.CopyFrom(timestamp(s.expire_time))
    out.running_turn_id = s.running(datetime.now(UTC))
    if with_messages:
        for m in s.messages:
            message_to_pb(m, out.messages.add())
    return out
