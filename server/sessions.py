"""Sessions: server-kept conversation history on an LLM, with an idle time to live.

A session's history is stored (so a session continues on another replica sharing the
database). One turn at a time runs on a session (``SessionHolds``); a turn's messages are
written when it ends, compare-and-set on the version its claim produced, so none is lost:

- finished: the new messages and the answer;
- cut short by the caller (cancelled, deadline, a newer turn barging in): the new messages
  and, when text was streamed, an assistant message with that text marked ``interrupted``;
- failed: nothing (the caller retries the turn).

``truncate_turn`` keeps only what the user heard of the last turn's answer. Expired sessions
read as NOT_FOUND and are swept in the background.

Each replica keeps the sessions its turns used (``SessionCache``), so a turn's upstream
request does not wait for the store: a turn on a cached session starts from the cached copy
while its claim runs; the claim's version says whether the copy is current (the claim bumps
the version by one; any other write in between leaves it further on). ``confirm`` awaits the
claim before the turn's first output; a stale copy is replaced by the stored session and the
turn starts again from it, before anything was sent. A turn's history write keeps the copy in
step. Barge-in turns read the store first (their claim can wait for another turn).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

import structlog

from server.chat import Generation, Message
from server.errors import (
    Aborted,
    NotFound,
    Violations,
)
from server.ids import new_id
from server.registry.codec import generation_to_dict
from server.registry.drafts import check_generation
from server.registry.service import RegistryService
from server.session_holds import SessionHolds, session_busy
from server.session_records import message_to_dict, session_from_record, session_to_record
from server.session_state import Session, SessionCache, SessionTurn, is_cut_short, truncated
from server.store.base import SessionRecord, Store

log = structlog.get_logger("switchboard.sessions")

MAX_IDLE_TTL_S = 86400.0


class SessionService:
    def __init__(
        self,
        store: Store,
        registry: RegistryService,
        default_idle_ttl_s: float,
        on_active: Callable[[str, str, float, str], None] | None = None,
        cache_size: int = 10_000,
        on_end: Callable[[str, str, str], None] | None = None,
    ) -> None:
        self._store = store
        self.holds = SessionHolds(store)
        self.cache = SessionCache(cache_size)
        self._writes: set[asyncio.Task[None]] = set()  # history writes that outlive a cancel
        self._registry = registry
        self._default_ttl = default_idle_ttl_s
        # (account id, llm id, seconds the LLM stays active, session id)
        self._on_active = on_active
        self._on_end = on_end  # (account id, llm id, session id): the session was ended

    def _active(self, account_id: str, llm_id: str, ttl_s: float, session_id: str) -> None:
        if self._on_active is not None:
            self._on_active(account_id, llm_id, ttl_s, session_id)

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
        self._active(account_id, llm_id, ttl, record.id)
        session = session_from_record(record)
        self.cache.put(session)
        return session

    async def get(self, account_id: str, session_id: str) -> Session:
        record = await self._store.get_session(account_id, session_id) if session_id else None
        if record is None or record.expire_time < datetime.now(UTC):
            raise NotFound(f"session {session_id!r} not found or expired; create a new one",
                           reason="SESSION_NOT_FOUND", resource_type="session",
                           resource_name=session_id)
        return session_from_record(record)

    async def end(self, account_id: str, session_id: str) -> None:
        cached = self.cache.get(account_id, session_id)
        record = None if cached is not None or self._on_end is None or not session_id else (
            await self._store.get_session(account_id, session_id))
        llm_id = cached.llm_id if cached is not None else record.llm_id if record else ""
        self.cache.drop(account_id, session_id)
        if not await self._store.delete_session(account_id, session_id):
            raise NotFound(f"session {session_id!r} not found", reason="SESSION_NOT_FOUND",
                           resource_type="session", resource_name=session_id)
        if self._on_end is not None and llm_id:
            self._on_end(account_id, llm_id, session_id)

    @asynccontextmanager
    async def turn(self, account_id: str, session_id: str, turn_id: str,
                   new_messages: list[Message], *, barge_in: bool, hold_s: float
                   ) -> AsyncIterator[SessionTurn]:
        """Claims the session for one turn (SESSION_BUSY, or with ``barge_in`` interrupts the
        running turn first) and writes the turn's history however the block ends.

        A session in this replica's cache is handed out at once with its claim still running:
        ``await confirm(turn)`` before the turn's first output."""
        cached = None if barge_in else self.cache.get(account_id, session_id)
        handle: SessionTurn | None = None
        if cached is not None:
            claim = asyncio.create_task(
                self.holds.claim(session_id, turn_id, barge_in=False, hold_s=hold_s))
            handle = SessionTurn(cached, turn_id, -1, new_messages, claim=claim)
        else:
            await self.get(account_id, session_id)  # NOT_FOUND for unknown, foreign or expired
            version = await self.holds.claim(session_id, turn_id, barge_in=barge_in,
                                             hold_s=hold_s)
        try:
            if handle is None:
                handle = SessionTurn(await self.get(account_id, session_id), turn_id, version,
                                     new_messages)
                self.cache.put(handle.session)
            self._active(account_id, handle.session.llm_id, handle.session.idle_ttl_s,
                         handle.session.id)
            with self.holds.running(turn_id, handle.stop):
                yield handle
        except BaseException as exc:
            claimed = await self._claimed(handle) if handle is not None else version
            if claimed is not None and (handle is None or not handle.written):
                keep = handle.messages(None) if handle is not None and is_cut_short(exc) else []
                await self._end_shielded(handle.session if handle else None, session_id,
                                         turn_id, claimed, keep)
            raise
        if not handle.written:
            await self.confirm(handle)
            await self._end_shielded(handle.session, session_id, turn_id, handle.version, [])

    async def confirm(self, turn: SessionTurn) -> bool:
        """Waits for the turn's claim (raises SESSION_BUSY / NOT_FOUND as the claim does);
        False when the cached session it started from was stale: ``turn.session`` is then the
        stored one, which the turn must start again from."""
        if turn.claim is None:
            return True
        claim, turn.claim = turn.claim, None
        try:
            turn.version = await asyncio.shield(claim)
        except asyncio.CancelledError:  # the caller left: free the hold once it is taken
            self._release_when_claimed(claim, turn)
            raise
        if turn.version == turn.session.version + 1:  # nothing else wrote since our copy
            return True
        session = turn.session
        try:
            turn.session = await self.get(session.account_id, session.id)
        except NotFound:
            self.cache.drop(session.account_id, session.id)
            raise
        self.cache.put(turn.session)
        return False

    async def _claimed(self, turn: SessionTurn) -> int | None:
        """The version the turn's claim produced, waiting for a pending claim; None if the
        claim failed. Cancelled while it is pending: the hold it may take is freed behind."""
        claim, turn.claim = turn.claim, None
        if claim is not None:
            try:
                turn.version = await asyncio.shield(claim)
            except asyncio.CancelledError:
                self._release_when_claimed(claim, turn)
                raise
            except Exception:
                return None
        return turn.version if turn.version >= 0 else None

    def _release_when_claimed(self, claim: asyncio.Future[int], turn: SessionTurn) -> None:
        """A turn cancelled while its claim was in flight (before any output): once the claim
        lands, the turn is written as cut short (its new messages) and the session freed."""
        async def release() -> None:
            with contextlib.suppress(Exception):
                version = await claim
                await self._end(turn.session, turn.session.id, turn.turn_id, version,
                                turn.messages(None))

        task = asyncio.create_task(release())
        self._writes.add(task)
        task.add_done_callback(self._writes.discard)

    async def finish_turn(self, turn: SessionTurn, answer: Message) -> None:
        """Writes a finished turn: its new messages and the answer."""
        await self.confirm(turn)
        turn.written = True
        await self._end_shielded(turn.session, turn.session.id, turn.turn_id, turn.version,
                                 turn.messages(answer))

    async def _end_shielded(self, session: Session | None, session_id: str, turn_id: str,
                            version: int, messages: list[Message]) -> None:
        """The history write runs to the end even when the caller's task is cancelled again."""
        task = asyncio.create_task(self._end(session, session_id, turn_id, version, messages))
        self._writes.add(task)
        task.add_done_callback(self._writes.discard)
        await asyncio.shield(task)

    async def _end(self, session: Session | None, session_id: str, turn_id: str, version: int,
                   messages: list[Message]) -> None:
        ttl_s = session.idle_ttl_s if session is not None else 0.0
        expire = datetime.now(UTC) + timedelta(seconds=ttl_s or self._default_ttl)
        try:
            ok = await self._store.end_turn(session_id, turn_id, version,
                                            [message_to_dict(m) for m in messages], expire)
            if session is not None:
                self._cache_ended(session, version, messages, expire, ok)
            if not ok:  # its hold lapsed and another turn took the session (or it was ended)
                log.warning("session turn not recorded: the session moved on", turn_id=turn_id,
                            session_id=session_id)
        finally:
            await self.holds.freed(session_id)

    def _cache_ended(self, session: Session, version: int, messages: list[Message],
                     expire: datetime, ok: bool) -> None:
        """The cached copy after the turn's write: the session the turn started from plus its
        messages, at the version ``end_turn`` produced (one past the claim's)."""
        if not ok or version - session.version not in (0, 1):  # 1: a cached copy, confirmed
            self.cache.drop(session.account_id, session.id)
            return
        self.cache.put(dataclasses.replace(
            session, messages=(*session.messages, *messages), version=version + 1,
            turn_count=session.turn_count + (1 if messages else 0), expire_time=expire,
            running_turn_id="", running_until=None))

    async def _read_hold(self, account_id: str, session_id: str, turn_id: str
                         ) -> datetime | None:
        session = await self.get(account_id, session_id)
        return session.running_until if session.running(datetime.now(UTC)) == turn_id else None

    async def _settled(self, account_id: str, session_id: str, turn_id: str = "") -> Session:
        """The session once ``turn_id`` (if it is the running turn) has written its history;
        SESSION_BUSY when another turn is running."""
        session = await self.get(account_id, session_id)
        running = session.running(datetime.now(UTC))
        if running and running == turn_id:  # cancelled a moment ago: its write is on its way
            await self.holds.wait_ended(
                session_id, lambda: self._read_hold(account_id, session_id, turn_id))
            session = await self.get(account_id, session_id)
            running = session.running(datetime.now(UTC))
        if running:
            raise session_busy(session_id, running)
        return session

    async def truncate_turn(self, account_id: str, session_id: str, turn_id: str,
                            heard_chars: int) -> Session:
        v = Violations()
        if not session_id:
            v.add("session_id", "is required")
        if not turn_id:
            v.add("turn_id", "is required")
        if heard_chars < 0:
            v.add("heard_text_chars", "must be at least 0")
        v.raise_if_any()
        session = await self._settled(account_id, session_id, turn_id)
        messages = truncated(session.messages, turn_id, heard_chars)
        if messages == session.messages:
            return session
        return await self._replace(dataclasses.replace(session, messages=messages))

    async def update(self, account_id: str, session_id: str, fields: set[str],
                     system_prompt: str, generation: Generation, idle_ttl_s: float | None,
                     messages: tuple[Message, ...]) -> Session:
        """Replaces the named fields (``system_prompt``, ``generation``, ``idle_ttl``,
        ``messages``); SESSION_BUSY while a turn runs."""
        v = Violations()
        if not session_id:
            v.add("session_id", "is required")
        unknown = fields - {"system_prompt", "generation", "idle_ttl", "messages"}
        if not fields or unknown:
            v.add("update_mask", "name at least one of system_prompt, generation, idle_ttl, "
                  f"messages{f'; not {sorted(unknown)}' if unknown else ''}")
        if "idle_ttl" in fields and (idle_ttl_s is None or not 0 < idle_ttl_s <= MAX_IDLE_TTL_S):
            v.add("session.idle_ttl", "must be more than 0 and at most 24 hours")
        if "\x00" in system_prompt:
            v.add("session.system_prompt", "must not contain NUL (U+0000) characters")
        check_generation(generation, "session.generation", v)
        v.raise_if_any()
        session = await self._settled(account_id, session_id)
        changes: dict[str, Any] = {}
        if "system_prompt" in fields:
            changes["system_prompt"] = system_prompt
        if "generation" in fields:
            changes["generation"] = generation
        if "idle_ttl" in fields and idle_ttl_s is not None:
            changes["idle_ttl_s"] = idle_ttl_s
            changes["expire_time"] = datetime.now(UTC) + timedelta(seconds=idle_ttl_s)
        if "messages" in fields:
            changes["messages"] = messages
        return await self._replace(dataclasses.replace(session, **changes))

    async def _replace(self, session: Session) -> Session:
        self.cache.drop(session.account_id, session.id)
        if not await self._store.replace_session(session_to_record(session), session.version):
            raise Aborted(f"session {session.id!r} changed while it was being updated; read it "
                          "again and retry", reason="SESSION_CHANGED",
                          resource_type="session", resource_name=session.id)
        return await self.get(session.account_id, session.id)

    async def sweep(self) -> int:
        return await self._store.delete_expired_sessions(datetime.now(UTC))

