"""SQLite: the session rows (``SqliteStore`` mixes this in)."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from datetime import datetime
from typing import Any, TypeVar

import orjson

from server.store.base import SessionRecord, TurnClaim

T = TypeVar("T")


def _ts(value: datetime) -> str:
    return value.isoformat(timespec="microseconds")


def _dt(value: str) -> datetime:
    return datetime.fromisoformat(value)


def _json(value: Any) -> str:
    return orjson.dumps(value).decode()


class SqliteSessions:
    """The session rows of the store (``SessionRecord``, turn claims); mixed into the store
    class, which provides the connection helpers declared here."""

    async def _run(self, fn: Callable[..., T], *args: Any) -> T:
        raise NotImplementedError

    @property
    def _db(self) -> sqlite3.Connection:
        raise NotImplementedError

    def _write(self, sql: str, params: tuple[Any, ...]) -> int:
        raise NotImplementedError

    def _execute(self, sql: str, params: tuple[Any, ...]) -> int:
        raise NotImplementedError

    async def create_session(self, record: SessionRecord) -> None:
        await self._run(
            self._write,
            "INSERT INTO sessions (id, account_id, llm_id, system_prompt, generation, "
            "idle_ttl_s, create_time, expire_time, turn_count, messages, version) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                record.id,
                record.account_id,
                record.llm_id,
                record.system_prompt,
                _json(record.generation),
                record.idle_ttl_s,
                _ts(record.create_time),
                _ts(record.expire_time),
                record.turn_count,
                _json(record.messages),
                record.version,
            ),
        )

    async def get_session(self, account_id: str, session_id: str) -> SessionRecord | None:
        def run() -> SessionRecord | None:
            row = self._db.execute(
                "SELECT * FROM sessions WHERE id = ? AND account_id = ?",
                (session_id, account_id),
            ).fetchone()
            if row is None:
                return None
            return SessionRecord(
                id=row["id"],
                account_id=row["account_id"],
                llm_id=row["llm_id"],
                system_prompt=row["system_prompt"],
                generation=orjson.loads(row["generation"]),
                idle_ttl_s=row["idle_ttl_s"],
                create_time=_dt(row["create_time"]),
                expire_time=_dt(row["expire_time"]),
                turn_count=row["turn_count"],
                messages=orjson.loads(row["messages"]),
                version=row["version"],
                running_turn_id=row["running_turn_id"],
                running_until=_dt(row["running_until"]) if row["running_until"] else None,
            )

        return await self._run(run)

    async def claim_turn(self, session_id: str, turn_id: str, now: datetime,
                         hold_until: datetime) -> TurnClaim | None:
        def run() -> TurnClaim | None:
            # One conditional UPDATE claims (a statement is its own transaction); only a
            # session held by another turn, or gone, needs the row read.
            db = self._db
            claimed = db.execute(
                "UPDATE sessions SET running_turn_id = ?1, running_until = ?2, "
                "version = version + 1 WHERE id = ?3 AND (running_turn_id = '' OR "
                "running_turn_id = ?1 OR running_until IS NULL OR running_until < ?4) "
                "RETURNING version", (turn_id, _ts(hold_until), session_id, _ts(now))).fetchall()
            if claimed:
                return TurnClaim(True, claimed[0][0], turn_id, hold_until)
            row = db.execute(
                "SELECT version, running_turn_id, running_until FROM sessions WHERE id = ?",
                (session_id,)).fetchone()
            if row is None:
                return None
            until = _dt(row["running_until"]) if row["running_until"] else None
            return TurnClaim(False, row["version"], row["running_turn_id"], until)

        return await self._run(run)

    async def end_turn(self, session_id: str, turn_id: str, expected_version: int,
                       new_messages: list[dict[str, Any]], expire_time: datetime) -> bool:
        # The new messages are appended to the stored JSON array's text (every writer stores
        # it compact, as orjson writes it), so the history is neither parsed nor written again.
        count = await self._run(
            self._execute,
            "UPDATE sessions SET messages = CASE WHEN ?1 = '[]' THEN messages "
            "WHEN messages = '[]' THEN ?1 "
            "ELSE substr(messages, 1, length(messages) - 1) || ',' || substr(?1, 2) END, "
            "turn_count = turn_count + ?2, version = version + 1, expire_time = ?3, "
            "running_turn_id = '', running_until = NULL "
            "WHERE id = ?4 AND version = ?5 AND running_turn_id = ?6",
            (_json(new_messages), 1 if new_messages else 0, _ts(expire_time), session_id,
             expected_version, turn_id))
        return count == 1

    async def replace_session(self, record: SessionRecord, expected_version: int) -> bool:
        count = await self._run(
            self._write,
            "UPDATE sessions SET system_prompt = ?, generation = ?, idle_ttl_s = ?, "
            "expire_time = ?, messages = ?, version = version + 1 "
            "WHERE id = ? AND version = ?",
            (record.system_prompt, _json(record.generation), record.idle_ttl_s,
             _ts(record.expire_time), _json(record.messages), record.id, expected_version),
        )
        return count == 1

    async def save_turn(
        self,
        session_id: str,
        expected_version: int,
        new_messages: list[dict[str, Any]],
        expire_time: datetime,
    ) -> bool:
        def run() -> bool:
            db = self._db
            db.execute("BEGIN IMMEDIATE")
            try:
                row = db.execute(
                    "SELECT messages, version FROM sessions WHERE id = ?", (session_id,)
                ).fetchone()
                if row is None or expected_version not in (-1, row["version"]):
                    db.execute("ROLLBACK")
                    return False
                messages = orjson.loads(row["messages"]) + new_messages
                db.execute(
                    "UPDATE sessions SET messages = ?, turn_count = turn_count + 1, "
                    "version = version + 1, expire_time = ? WHERE id = ?",
                    (_json(messages), _ts(expire_time), session_id),
                )
                db.execute("COMMIT")
                return True
            except BaseException:
                db.execute("ROLLBACK")
                raise

        return await self._run(run)

    async def delete_session(self, account_id: str, session_id: str) -> bool:
        count = await self._run(
            self._write,
            "DELETE FROM sessions WHERE id = ? AND account_id = ?",
            (session_id, account_id),
        )
        return count == 1

    async def delete_expired_sessions(self, now: datetime) -> int:
        return await self._run(
            self._write, "DELETE FROM sessions WHERE expire_time < ?", (_ts(now),)
        )
