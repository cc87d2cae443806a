"""Sessions and their messages as the store keeps them (``SessionRecord``, plain dicts)."""

from __future__ import annotations

import base64
from typing import Any

from server.chat import ImagePart, Message, Part, Role, TextPart, ToolCall
from server.registry.codec import generation_from_dict, generation_to_dict
from server.session_state import Session
from server.store.base import SessionRecord


def message_to_dict(m: Message) -> dict[str, Any]:
    parts: list[dict[str, Any]] = []
    for p in m.parts:
        if isinstance(p, TextPart):
            parts.append({"text": p.text})
        else:
            parts.append({"image": {"mime_type": p.mime_type, "url": p.url,
                                    "data": base64.b64encode(p.data).decode()}})
    out: dict[str, Any] = {"role": m.role.value, "parts": parts}
    if m.tool_calls:
        out["tool_calls"] = [
            {"id": c.id, "name": c.name, "arguments": c.arguments,
             "thought_signature": c.thought_signature}
            for c in m.tool_calls
        ]
    for key in ("tool_call_id", "name", "reasoning", "thought_signature", "interrupted",
                "turn_id"):
        if getattr(m, key):
            out[key] = getattr(m, key)
    return out


def message_from_dict(d: dict[str, Any]) -> Message:
    parts: list[Part] = []
    for p in d.get("parts", ()):
        if "text" in p:
            parts.append(TextPart(p["text"]))
        else:
            img = p["image"]
            parts.append(ImagePart(mime_type=img.get("mime_type", ""), url=img.get("url", ""),
                                   data=base64.b64decode(img.get("data", ""))))
    return Message(
        role=Role(d["role"]),
        parts=tuple(parts),
        tool_calls=tuple(
            ToolCall(c["id"], c["name"], c["arguments"], c.get("thought_signature", ""))
            for c in d.get("tool_calls", ())
        ),
        tool_call_id=d.get("tool_call_id", ""),
        name=d.get("name", ""),
        reasoning=d.get("reasoning", ""),
        thought_signature=d.get("thought_signature", ""),
        interrupted=bool(d.get("interrupted", False)),
        turn_id=d.get("turn_id", ""),
    )


def session_from_record(r: SessionRecord) -> Session:
    return Session(
        id=r.id, account_id=r.account_id, llm_id=r.llm_id, system_prompt=r.system_prompt,
        generation=generation_from_dict(r.generation), idle_ttl_s=r.idle_ttl_s,
        create_time=r.create_time, expire_time=r.expire_time, turn_count=r.turn_count,
        messages=tuple(message_from_dict(m) for m in r.messages), version=r.version,
        running_turn_id=r.running_turn_id, running_until=r.running_until,
    )


def session_to_record(s: Session) -> SessionRecord:
    return SessionRecord(
        id=s.id, account_id=s.account_id, llm_id=s.llm_id, system_prompt=s.system_prompt,
        generation=generation_to_dict(s.generation), idle_ttl_s=s.idle_ttl_s,
        create_time=s.create_time, expire_time=s.expire_time, turn_count=s.turn_count,
        messages=[message_to_dict(m) for m in s.messages], version=s.version,
    )
