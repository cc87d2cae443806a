"""PostgreSQL: the session rows (``PostgresStore`` mixes this in)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

import asyncpg

from server.store.base import SessionRecord, TurnClaim


def _utc(value: datetime) -> datetime:
    """Naive datetimes are UTC (asyncpg would otherwise read them as local time)."""
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value


def _count(status: str) -> int:
    """The row count of a command status such as ``UPDATE 1`` or ``DELETE 3``."""
    return int(status.rsplit(" ", 1)[-1])


class PostgresSessions:
    """The session rows of the store (``SessionRecord``, turn claims); mixed into the store
    class, which provides the connection helpers declared here."""

    async def _execute(self, sql: str, *args: Any) -> int:
        raise NotImplementedError

    async def _fetch(self, sql: str, *args: Any) -> Sequence[asyncpg.Record]:
        raise NotImplementedError

    async def _fetchrow(self, sql: str, *args: Any) -> asyncpg.Record | None:
        raise NotImplementedError

    def _acquire(self) -> Any:
        raise NotImplementedError

    async def create_session(self, record: SessionRecord) -> None:
        await self._execute(
            "INSERT INTO sessions (id, account_id, llm_id, system_prompt, generation, "
            "idle_ttl_s, create_time, expire_time, turn_count, messages, version) "
            "VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)",
            record.id, record.account_id, record.llm_id, record.system_prompt,
            record.generation, record.idle_ttl_s, _utc(record.create_time),
            _utc(record.expire_time), record.turn_count, record.messages, record.version,
        )

    async def get_session(self, account_id: str, session_id: str) -> SessionRecord | None:
        row = await self._fetchrow(
            "SELECT * FROM sessions WHERE id = $1 AND account_id = $2", session_id, account_id)
        if row is None:
            return None
        return SessionRecord(
            id=row["id"],
            account_id=row["account_id"],
            llm_id=row["llm_id"],
            system_prompt=row["system_prompt"],
            generation=row["generation"],
            idle_ttl_s=row["idle_ttl_s"],
            create_time=row["create_time"],
            expire_time=row["expire_time"],
            turn_count=row["turn_count"],
            messages=row["messages"],
            version=row["version"],
            running_turn_id=row["running_turn_id"],
            running_until=row["running_until"],
        )

    async def claim_turn(self, session_id: str, turn_id: str, now: datetime,
                         hold_until: datetime) -> TurnClaim | None:
        # One conditional UPDATE claims; a concurrent claimer waits on the row lock and then
        # re-checks the condition on the committed row, so exactly one of them wins.
        row = await self._fetchrow(
            "UPDATE sessions SET running_turn_id = $2, running_until = $4, "
            "version = version + 1 WHERE id = $1 AND (running_turn_id = '' OR "
            "running_turn_id = $2 OR running_until IS NULL OR running_until < $3) "
            "RETURNING version", session_id, turn_id, _utc(now), _utc(hold_until))
        if row is not None:
            return TurnClaim(True, row["version"], turn_id, hold_until)
        held = await self._fetchrow(
            "SELECT version, running_turn_id, running_until FROM sessions WHERE id = $1",
            session_id)
        if held is None:
            return None
        if not held["running_turn_id"]:  # freed between the two statements: try again
            return await self.claim_turn(session_id, turn_id, now, hold_until)
        return TurnClaim(False, held["version"], held["running_turn_id"], held["running_until"])

    async def end_turn(self, session_id: str, turn_id: str, expected_version: int,
                       new_messages: list[dict[str, Any]], expire_time: datetime) -> bool:
        count = await self._execute(
            "UPDATE sessions SET messages = messages || $4::jsonb, "
            "turn_count = turn_count + $5, version = version + 1, expire_time = $6, "
            "running_turn_id = '', running_until = NULL "
            "WHERE id = $1 AND running_turn_id = $2 AND version = $3",
            session_id, turn_id, expected_version, new_messages, 1 if new_messages else 0,
            _utc(expire_time))
        return count == 1

    async def replace_session(self, record: SessionRecord, expected_version: int) -> bool:
        count = await self._execute(
            "UPDATE sessions SET system_prompt = $3, generation = $4, idle_ttl_s = $5, "
            "expire_time = $6, messages = $7::jsonb, version = version + 1 "
            "WHERE id = $1 AND version = $2",
            record.id, expected_version, record.system_prompt, record.generation,
            record.idle_ttl_s, _utc(record.expire_time), record.messages)
        return count == 1

    async def save_turn(
        self,
        session_id: str,
        expected_version: int,
        new_messages: list[dict[str, Any]],
        expire_time: datetime,
    ) -> bool:
        # One conditional UPDATE is the compare-and-set: it takes the row lock, and a writer
        # that waited on a concurrent one re-checks the version on the row that one committed,
        # so concurrent appends queue up and none is lost (no SELECT ... FOR UPDATE needed).
        count = await self._execute(
            "UPDATE sessions SET messages = messages || $2::jsonb, turn_count = turn_count + 1, "
            "version = version + 1, expire_time = $3 "
            "WHERE id = $1 AND ($4 = -1 OR version = $4)",
            session_id, new_messages, _utc(expire_time), expected_version,
        )
        return count == 1

    async def delete_session(self, account_id: str, session_id: str) -> bool:
        count = await self._execute(
            "DELETE FROM sessions WHERE id = $1 AND account_id = $2", session_id, account_id)
        return count == 1

    async def delete_expired_sessions(self, now: datetime) -> int:
        return await self._execute("DELETE FROM sessions WHERE expire_time < $1", _utc(now))
