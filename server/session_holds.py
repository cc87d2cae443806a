"""One turn at a time per session, across every replica that shares the store.

A session turn first claims its session (``Store.claim_turn``: one conditional write on the
session row that bumps its version). A second turn finds the session held and fails with
ABORTED ``SESSION_BUSY`` naming the running turn, or, when it barges in, asks the running turn
to stop and waits until the session is free:

    new turn B (any replica)                 running turn A (its replica)
    claim -> held by A
    notify "interrupt:A"  ---------------->  A stops streaming, writes its history
                                             (interrupted), frees the session
    wakes on "freed:<session>"  <----------  notify "freed:<session>"
    claim -> claimed; reads the history with A's interrupted answer in it

Notifications go through the store (PostgreSQL ``LISTEN``/``NOTIFY``; SQLite, one process:
in process). A replica that dies holding a session cannot notify: its hold lapses at the
``running_until`` it wrote (the turn's own time limit), and waiters re-claim then.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable, Iterator
from datetime import UTC, datetime, timedelta

import structlog

from server.errors import Aborted, NotFound
from server.store.base import Store

log = structlog.get_logger("switchboard.sessions")

CHANNEL = "session_turns"
HOLD_MARGIN_S = 5.0  # a hold outlives its turn's time limit by this much


def session_busy(session_id: str, running_turn_id: str) -> Aborted:
    return Aborted(f"session {session_id!r} has turn {running_turn_id!r} in flight; wait for it, "
                   "cancel it, or send the new turn with barge_in=true",
                   reason="SESSION_BUSY", metadata={"running_turn_id": running_turn_id},
                   resource_type="session", resource_name=session_id)


def _not_found(session_id: str) -> NotFound:
    return NotFound(f"session {session_id!r} not found or expired; create a new one",
                    reason="SESSION_NOT_FOUND", resource_type="session",
                    resource_name=session_id)


class SessionHolds:
    """Claims sessions for turns, interrupts running turns, and wakes turns that wait."""

    def __init__(self, store: Store) -> None:
        self._store = store
        self._interrupts: dict[str, Callable[[], None]] = {}  # turn id -> stop it (this replica)
        self._waiters: dict[str, set[asyncio.Event]] = {}  # session id -> turns waiting for it

    async def start(self) -> None:
        await self._store.listen(CHANNEL, self._on_notify)

    def _on_notify(self, payload: str) -> None:
        kind, _, ident = payload.partition(":")
        if kind == "interrupt":
            stop = self._interrupts.get(ident)
            if stop is not None:
                stop()
        elif kind == "freed":
            for waiter in self._waiters.get(ident, ()):
                waiter.set()

    @contextlib.contextmanager
    def _waiting(self, session_id: str) -> Iterator[asyncio.Event]:
        waiter = asyncio.Event()
        self._waiters.setdefault(session_id, set()).add(waiter)
        try:
            yield waiter
        finally:
            waiters = self._waiters.get(session_id)
            if waiters is not None:
                waiters.discard(waiter)
                if not waiters:
                    del self._waiters[session_id]

    async def claim(self, session_id: str, turn_id: str, *, barge_in: bool, hold_s: float
                    ) -> int:
        """Claims the session for ``turn_id``; returns the session version to write the turn's
        history at. Raises SESSION_BUSY, or with ``barge_in`` interrupts the running turn and
        waits (bounded by the caller's deadline) until it has written its history."""
        while True:
            now = datetime.now(UTC)
            until = now + timedelta(seconds=hold_s + HOLD_MARGIN_S)
            claim = await self._store.claim_turn(session_id, turn_id, now, until)
            if claim is None:
                raise _not_found(session_id)
            if claim.claimed:
                return claim.version
            if not barge_in:
                raise session_busy(session_id, claim.running_turn_id)
            with self._waiting(session_id) as waiter:
                await self._store.notify(CHANNEL, f"interrupt:{claim.running_turn_id}")
                again = await self._store.claim_turn(session_id, turn_id, now, until)
                if again is None:
                    raise _not_found(session_id)
                if again.claimed:
                    return again.version
                await _wait(waiter, again.running_until)

    async def wait_ended(self, session_id: str,
                         read_hold: Callable[[], Awaitable[datetime | None]]) -> None:
        """Waits until a turn no longer holds the session; ``read_hold()`` re-reads when the
        turn's hold lapses, None once it has ended."""
        while True:
            with self._waiting(session_id) as waiter:
                until = await read_hold()
                if until is None:
                    return
                await _wait(waiter, until)

    @contextlib.contextmanager
    def running(self, turn_id: str, interrupt: Callable[[], None]) -> Iterator[None]:
        """While the block runs, an interrupt of ``turn_id`` from any replica calls
        ``interrupt``."""
        self._interrupts[turn_id] = interrupt
        try:
            yield
        finally:
            self._interrupts.pop(turn_id, None)

    async def freed(self, session_id: str) -> None:
        """Tells every replica's waiting turns that the session is free."""
        await self._store.notify(CHANNEL, f"freed:{session_id}")


async def _wait(waiter: asyncio.Event, until: datetime | None) -> None:
    """Until the waiter is woken or the hold lapses (its replica is gone)."""
    left = 0.0 if until is None else (until - datetime.now(UTC)).total_seconds()
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(max(0.0, left)):
            await waiter.wait()
