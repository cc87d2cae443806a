"""Sessions: server-kept conversation history on an LLM, with an idle time to live.

A session's history is stored (so a session continues on another replica sharing the
database) and appended atomically when a turn completes. Expired sessions read as NOT_FOUND
and are swept in the background.

Each replica also keeps the sessions its turns used (``SessionCache``), so a turn does not
wait for the store before its upstream request: ``open_turn`` hands out the cached session
with a check of its version against the store that runs while the upstream request is in
flight; a turn whose check fails (the session changed on another replica, ended, expired)
is restarted with the stored session before it sends any output. ``save_turn`` writes the
turn back and keeps the cached copy in step.
"""

from __future__ import annotations

import asyncio
import base64
import dataclasses
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from server.chat import Generation, ImagePart, Message, Part, Role, TextPart, ToolCall
from server.errors import NotFound, Violations
from server.registry.codec import generation_from_dict, generation_to_dict
from server.registry.service import RegistryService, check_generation, new_id
from server.store.base import SessionRecord, Store

MAX_IDLE_TTL_S = 86400.0


@dataclass(frozen=True, slots=True)
class Session:
    id: str
    account_id: str
    llm_id: str
    system_prompt: str
    generation: Generation
    idle_ttl_s: float
    create_time: datetime
    expire_time: datetime
    turn_count: int
    messages: tuple[Message, ...]
    version: int


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
    for key in ("tool_call_id", "name", "reasoning", "thought_signature"):
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
    )


def _from_record(r: SessionRecord) -> Session:
    return Session(
        id=r.id, account_id=r.account_id, llm_id=r.llm_id, system_prompt=r.system_prompt,
        generation=generation_from_dict(r.generation), idle_ttl_s=r.idle_ttl_s,
        create_time=r.create_time, expire_time=r.expire_time, turn_count=r.turn_count,
        messages=tuple(message_from_dict(m) for m in r.messages), version=r.version,
    )


class SessionCache:
    """The sessions this replica's turns used last, newest last, at most ``size`` of them.

    An entry is the session as this replica last read or wrote it, with that version; it is
    never trusted on its own: every turn checks the version against the store."""

    def __init__(self, size: int) -> None:
        self._size = size
        self._entries: OrderedDict[tuple[str, str], Session] = OrderedDict()

    def get(self, account_id: str, session_id: str) -> Session | None:
        key = (account_id, session_id)
        session = self._entries.get(key)
        if session is None:
            return None
        if session.expire_time < datetime.now(UTC):
            del self._entries[key]
            return None
        self._entries.move_to_end(key)
        return session

    def put(self, session: Session) -> None:
        if self._size <= 0:
            return
        key = (session.account_id, session.id)
        self._entries[key] = session
        self._entries.move_to_end(key)
        while len(self._entries) > self._size:
            self._entries.popitem(last=False)

    def drop(self, account_id: str, session_id: str) -> None:
        self._entries.pop((account_id, session_id), None)

    def __len__(self) -> int:
        return len(self._entries)


@dataclass(frozen=True, slots=True)
class OpenedTurn:
    """A session as a turn starts from it. ``unchanged`` is None when the session was just
    read from the store; otherwise it resolves to whether the store still holds this version
    (await it before the turn's first output; ``close()`` cancels it)."""

    session: Session
    unchanged: asyncio.Future[bool] | None

    def close(self) -> None:
        if self.unchanged is not None:
            self.unchanged.cancel()


class SessionService:
    def __init__(
        self,
        store: Store,
        registry: RegistryService,
        default_idle_ttl_s: float,
        on_active: Callable[[str, str, float], None] | None = None,
        cache_size: int = 10_000,
    ) -> None:
        self._store = store
        self._registry = registry
        self._default_ttl = default_idle_ttl_s
        self._on_active = on_active  # (account id, llm id, seconds the LLM stays active)
        self.cache = SessionCache(cache_size)

    def _active(self, account_id: str, llm_id: str, ttl_s: float) -> None:
        if self._on_active is not None:
            self._on_active(account_id, llm_id, ttl_s)

    async def create(self, account_id: str, llm_id: str, system_prompt: str,
                     generation: Generation, idle_ttl_s: float | None) -> Session:
        v = Violations()
        if not llm_id:
            v.add("llm_id", "is required")
        if idle_ttl_s is not None and not 0 < idle_ttl_s <= MAX_IDLE_TTL_S:
            v.add("idle_ttl", "must be more than 0 and at most 24 hours")
        if "\x00" in system_prompt:
            v.add("system_prompt", "must not contain NUL (U+0000) characters")
        check_generation(generation, "generation", v)
        v.raise_if_any()
        await self._registry.resolve(account_id, llm_id)  # NOT_FOUND for unknown or foreign
        ttl = idle_ttl_s or self._default_ttl
        now = datetime.now(UTC)
        record = SessionRecord(
            id=new_id("ses"), account_id=account_id, llm_id=llm_id, system_prompt=system_prompt,
            generation=generation_to_dict(generation), idle_ttl_s=ttl, create_time=now,
            expire_time=now + timedelta(seconds=ttl), turn_count=0, messages=[], version=0,
        )
        await self._store.create_session(record)
        self._active(account_id, llm_id, ttl)
        session = _from_record(record)
        self.cache.put(session)
        return session

    async def get(self, account_id: str, session_id: str) -> Session:
        record = await self._store.get_session(account_id, session_id) if session_id else None
        if record is None or record.expire_time < datetime.now(UTC):
            raise NotFound(f"session {session_id!r} not found or expired; create a new one",
                           reason="SESSION_NOT_FOUND", resource_type="session",
                           resource_name=session_id)
        return _from_record(record)

    async def open_turn(self, account_id: str, session_id: str) -> OpenedTurn:
        """The session a turn starts from: the cached one at once, with its version check
        running meanwhile, or (not cached) the stored one, read now (NOT_FOUND if gone)."""
        cached = self.cache.get(account_id, session_id) if session_id else None
        if cached is None:
            session = await self.get(account_id, session_id)
            self.cache.put(session)
            return OpenedTurn(session, None)
        return OpenedTurn(cached, asyncio.ensure_future(self._unchanged(cached)))

    async def _unchanged(self, session: Session) -> bool:
        version = await self._store.session_version(session.account_id, session.id)
        if version == session.version:
            return True
        self.cache.drop(session.account_id, session.id)
        return False

    async def end(self, account_id: str, session_id: str) -> None:
        self.cache.drop(account_id, session_id)
        if not await self._store.delete_session(account_id, session_id):
            raise NotFound(f"session {session_id!r} not found", reason="SESSION_NOT_FOUND",
                           resource_type="session", resource_name=session_id)

    def turn_started(self, session: Session) -> None:
        self._active(session.account_id, session.llm_id, session.idle_ttl_s)

    async def save_turn(self, session: Session, new_messages: list[Message]) -> None:
        """Appends a completed turn's messages and extends the idle TTL; the cached copy
        becomes ``session`` plus the turn, one version on (if another write came in between,
        the store's version is further on, and the next turn's check reads it again)."""
        expire = datetime.now(UTC) + timedelta(seconds=session.idle_ttl_s)
        saved = await self._store.save_turn(
            session.id, -1, [message_to_dict(m) for m in new_messages], expire
        )
        if not saved:
            self.cache.drop(session.account_id, session.id)
            return
        self.cache.put(dataclasses.replace(
            session, messages=(*session.messages, *new_messages),
            turn_count=session.turn_count + 1, version=session.version + 1,
            expire_time=expire))

    async def sweep(self) -> int:
        return await self._store.delete_expired_sessions(datetime.now(UTC))
