"""A session and one running turn of it, as values; and this replica's cache of sessions.

``Session`` is what the store holds (history, generation settings, idle TTL, version);
``SessionTurn`` watches one turn from its claim to its history write; ``truncated`` keeps
what a user heard of an answer they barged in on; ``SessionCache`` is what
``SessionService`` reads before the store (a turn confirms it by its claim's version).
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime

from server.chat import Generation, Message, Role, TextPart
from server.errors import DeadlineExceeded, FailedPrecondition, NotFound, SwitchboardError


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
    running_turn_id: str = ""
    running_until: datetime | None = None

    def running(self, now: datetime) -> str:
        """The id of the turn in flight, "" when none (or its hold lapsed)."""
        if self.running_turn_id and self.running_until is not None and self.running_until >= now:
            return self.running_turn_id
        return ""

    def after_turn(self, messages: list[Message], version: int, expire_time: datetime
                   ) -> Session:
        """The session once a turn added ``messages`` and was written at ``version``, no
        turn running (built directly: ``dataclasses.replace`` costs a few microseconds a
        call, and this runs after every session turn)."""
        return Session(self.id, self.account_id, self.llm_id, self.system_prompt,
                       self.generation, self.idle_ttl_s, self.create_time, expire_time,
                       self.turn_count + (1 if messages else 0), (*self.messages, *messages),
                       version)

    def history(self) -> list[Message]:
        """What a turn sends before its new messages: the system prompt, then the messages."""
        out: list[Message] = []
        if self.system_prompt:
            out.append(Message(Role.SYSTEM, (TextPart(self.system_prompt),)))
        out.extend(self.messages)
        return out


def tagged(message: Message, turn_id: str) -> Message:
    """``message`` as added to a history by turn ``turn_id`` (built directly, as
    ``Session.after_turn``: every message of every session turn comes through here)."""
    m = message
    return Message(m.role, m.parts, m.tool_calls, m.tool_call_id, m.name, m.reasoning,
                   m.thought_signature, m.interrupted, turn_id)


def is_cut_short(exc: BaseException) -> bool:
    """Whether a turn ended because its caller went away, its deadline passed or a newer turn
    barged in (as opposed to failing)."""
    if isinstance(exc, (asyncio.CancelledError, GeneratorExit, ConnectionError)):
        return True
    if isinstance(exc, DeadlineExceeded):
        return True
    return isinstance(exc, SwitchboardError) and exc.reason == "TURN_INTERRUPTED"


@dataclass(slots=True)
class SessionTurn:
    """One turn of a session, from its claim to its history write: it watches what the turn
    streams, so that however the turn ends, the history records what happened."""

    session: Session  # as read after the claim: its history is what this turn builds on
    turn_id: str
    version: int  # the session version the claim produced (-1 while the claim is pending)
    new_messages: list[Message]
    claim: asyncio.Future[int] | None = None  # pending: started with a cached session
    text_id: str = ""  # the text message being streamed
    text: list[str] = field(default_factory=list)
    written: bool = False
    _stop: Callable[[], None] | None = None
    _stop_requested: bool = False

    def on_stop(self, stop: Callable[[], None]) -> None:
        """What stops the running turn when a newer turn barges in (called at once when one
        already did)."""
        self._stop = stop
        if self._stop_requested:
            stop()

    def stop(self) -> None:
        self._stop_requested = True
        if self._stop is not None:
            self._stop()

    def streamed(self, message_id: str, delta: str) -> None:
        if message_id != self.text_id:  # a restarted answer replaces the text so far
            self.text_id, self.text = message_id, []
        self.text.append(delta)

    def restarted(self) -> None:
        self.text_id, self.text = "", []

    def messages(self, answer: Message | None) -> list[Message]:
        """The turn's messages for the history: the new ones tagged with the turn, then the
        answer (None: the turn was cut short; the text streamed so far, if any)."""
        turn_id = self.turn_id
        out = [tagged(m, turn_id) for m in self.new_messages]
        if answer is None and self.text:
            answer = Message(Role.ASSISTANT, (TextPart("".join(self.text)),), interrupted=True)
        if answer is not None:
            out.append(tagged(answer, turn_id))
        return out


def truncated(messages: tuple[Message, ...], turn_id: str, heard_chars: int
              ) -> tuple[Message, ...]:
    """The history with turn ``turn_id``'s answer cut to the first ``heard_chars`` characters
    (its tool calls dropped unless the whole text was heard; an answer left empty removed).
    NOT_FOUND for a turn not in the history, FAILED_PRECONDITION for one that is not last."""
    mine = [i for i, m in enumerate(messages) if m.turn_id == turn_id]
    if not mine:
        raise NotFound(f"turn {turn_id!r} is not in this session's history",
                       reason="TURN_NOT_FOUND", resource_type="turn", resource_name=turn_id)
    if any(m.turn_id != turn_id for m in messages[mine[0]:]):
        raise FailedPrecondition(f"turn {turn_id!r} is not the session's last turn; only the "
                                 "last turn's answer can be truncated", reason="TURN_NOT_LAST")
    answers = [i for i in mine if messages[i].role is Role.ASSISTANT]
    if not answers:
        return messages  # cancelled before any text: nothing was heard
    i = answers[-1]
    answer = messages[i]
    text = answer.text
    if heard_chars >= len(text):
        return messages  # all of it was heard (or it was truncated already): unchanged
    kept = text[:heard_chars]
    if not kept:
        return messages[:i] + messages[i + 1:]
    cut = dataclasses.replace(answer, parts=(TextPart(kept),), tool_calls=(), interrupted=True)
    return (*messages[:i], cut, *messages[i + 1:])


class SessionCache:
    """The sessions this replica's turns used last, newest last, at most ``size`` of them.

    An entry is the session as this replica last read or wrote it, at that version; a turn
    never trusts it without its claim's version (``SessionService.confirm``)."""

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
