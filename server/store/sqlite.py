"""The embedded store: one SQLite file in WAL mode.

All access goes through one dedicated thread that owns the connection, so statements never
block the event loop and writes are naturally serialised. Each write is one transaction. The
hop to that thread is a queue and one ``call_soon_threadsafe`` back (no executor: its
``concurrent.futures`` future chained to an asyncio one cost twice the instructions per call).
``synchronous=NORMAL`` in WAL mode survives a process crash (SIGKILL) without losing committed
transactions; a power loss may lose the last few, never corrupt the file.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import queue
import sqlite3
import threading
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any, TypeVar

import orjson

from server.store.base import ApiKeyRecord, LlmRecord
from server.store.sqlite_sessions import SqliteSessions, _dt, _json, _ts

T = TypeVar("T")

# Each entry migrates the schema from version i to i+1. Never edit a released entry.
MIGRATIONS: tuple[str, ...] = (
    """
    CREATE TABLE llms (
        id TEXT PRIMARY KEY,
        account_id TEXT NOT NULL,
        display_name TEXT NOT NULL,
        body TEXT NOT NULL,
        create_time TEXT NOT NULL,
        update_time TEXT NOT NULL,
        etag TEXT NOT NULL
    );
    CREATE INDEX llms_by_account ON llms (account_id, create_time DESC, id DESC);
    CREATE TABLE sessions (
        id TEXT PRIMARY KEY,
        account_id TEXT NOT NULL,
        llm_id TEXT NOT NULL REFERENCES llms (id) ON DELETE CASCADE,
        system_prompt TEXT NOT NULL,
        generation TEXT NOT NULL,
        idle_ttl_s REAL NOT NULL,
        create_time TEXT NOT NULL,
        expire_time TEXT NOT NULL,
        turn_count INTEGER NOT NULL,
        messages TEXT NOT NULL,
        version INTEGER NOT NULL
    );
    CREATE INDEX sessions_by_expiry ON sessions (expire_time);
    CREATE TABLE accounts (
        id TEXT PRIMARY KEY,
        name TEXT NOT NULL,
        create_time TEXT NOT NULL
    );
    CREATE TABLE api_keys (
        key_id TEXT PRIMARY KEY,
        account_id TEXT NOT NULL,
        key_hash TEXT NOT NULL,
        create_time TEXT NOT NULL,
        revoked INTEGER NOT NULL DEFAULT 0,
        description TEXT NOT NULL DEFAULT ''
    );
    """,
    """
    ALTER TABLE sessions ADD COLUMN running_turn_id TEXT NOT NULL DEFAULT '';
    ALTER TABLE sessions ADD COLUMN running_until TEXT;
    """,
    """
    CREATE TABLE master_key_checks (
        key_id TEXT PRIMARY KEY,
        check_value TEXT NOT NULL
    );
    """,
)





_Call = tuple[asyncio.AbstractEventLoop, "asyncio.Future[Any]", Callable[[], Any]]


def _serve(calls: queue.SimpleQueue[_Call | None]) -> None:
    """The store thread: runs each call and hands its outcome back to the caller's loop."""
    while (call := calls.get()) is not None:
        loop, future, fn = call
        if future.cancelled():  # the caller left before its turn came: skip it
            continue
        try:
            result = fn()
        except BaseException as exc:  # handed to the caller, who re-raises it
            _reply(loop, _fail, future, exc)
        else:
            _reply(loop, _succeed, future, result)


def _reply(loop: asyncio.AbstractEventLoop, settle: Callable[..., None], *args: Any) -> None:
    with contextlib.suppress(RuntimeError):  # the loop was closed meanwhile: nobody waits
        loop.call_soon_threadsafe(settle, *args)


def _succeed(future: asyncio.Future[Any], result: Any) -> None:
    if not future.cancelled():
        future.set_result(result)


def _fail(future: asyncio.Future[Any], exc: BaseException) -> None:
    if not future.cancelled():
        future.set_exception(exc)


class SqliteStore(SqliteSessions):
    def __init__(self, path: str | Path) -> None:
        self._path = Path(path)
        self._calls: queue.SimpleQueue[_Call | None] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._conn: sqlite3.Connection | None = None
        # One process shares one file: notifications fan out in process.
        self._listeners: dict[str, list[Callable[[str], None]]] = {}

    async def _run(self, fn: Callable[..., T], *args: Any) -> T:
        """``fn(*args)`` on the store's thread. Cancelled before the thread took it up, it
        does not run (as with an executor); once running, it runs to its end."""
        if self._thread is None:
            self._thread = threading.Thread(target=_serve, args=(self._calls,), name="sqlite",
                                            daemon=True)
            self._thread.start()
        loop = asyncio.get_running_loop()
        future: asyncio.Future[T] = loop.create_future()
        self._calls.put((loop, future, functools.partial(fn, *args) if args else fn))
        return await future

    @property
    def _db(self) -> sqlite3.Connection:
        if self._conn is None:
            raise RuntimeError("store is not open")
        return self._conn

    # -- lifecycle -----------------------------------------------------------------------------

    async def open(self) -> None:
        await self._run(self._open)

    def _open(self) -> None:
        if self._path.parent and not self._path.parent.exists():
            self._path.parent.mkdir(parents=True, exist_ok=True)
        conn = sqlite3.connect(self._path, isolation_level=None, check_same_thread=False)
        conn.row_factory = sqlite3.Row
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=NORMAL")
        conn.execute("PRAGMA foreign_keys=ON")
        conn.execute("PRAGMA busy_timeout=5000")
        # Freed content is overwritten: a secret replaced or migrated leaves no old bytes.
        conn.execute("PRAGMA secure_delete=ON")
        self._conn = conn
        self._migrate()

    def _migrate(self) -> None:
        db = self._db
        db.execute("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)")
        row = db.execute("SELECT version FROM schema_version").fetchone()
        current = row[0] if row else 0
        if current > len(MIGRATIONS):
            raise RuntimeError(
                f"database {self._path} has schema version {current}, newer than this "
                f"server knows ({len(MIGRATIONS)}); upgrade the server"
            )
        for version in range(current, len(MIGRATIONS)):
            db.execute("BEGIN IMMEDIATE")
            try:
                for statement in MIGRATIONS[version].split(";"):
                    if statement.strip():
                        db.execute(statement)
                db.execute("DELETE FROM schema_version")
                db.execute("INSERT INTO schema_version VALUES (?)", (version + 1,))
                db.execute("COMMIT")
            except BaseException:
                db.execute("ROLLBACK")
                raise

    async def close(self) -> None:
        if self._conn is not None:
            await self._run(self._db.close)
            self._conn = None
        if self._thread is not None:
            self._calls.put(None)
            self._thread.join()
            self._thread = None

    def _execute(self, sql: str, params: tuple[Any, ...]) -> int:
        """One statement, its own transaction (autocommit): the rows it changed."""
        return self._db.execute(sql, params).rowcount

    def _write(self, sql: str, params: tuple[Any, ...]) -> int:
        db = self._db
        db.execute("BEGIN IMMEDIATE")
        try:
            count = db.execute(sql, params).rowcount
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            raise
        return count

    # -- LLMs ----------------------------------------------------------------------------------

    async def create_llm(self, record: LlmRecord) -> None:
        await self._run(
            self._write,
            "INSERT INTO llms VALUES (?, ?, ?, ?, ?, ?, ?)",
            (
                record.id,
                record.account_id,
                record.display_name,
                _json(record.body),
                _ts(record.create_time),
                _ts(record.update_time),
                record.etag,
            ),
        )

    @staticmethod
    def _llm(row: sqlite3.Row) -> LlmRecord:
        return LlmRecord(
            id=row["id"],
            account_id=row["account_id"],
            display_name=row["display_name"],
            body=orjson.loads(row["body"]),
            create_time=_dt(row["create_time"]),
            update_time=_dt(row["update_time"]),
            etag=row["etag"],
        )

    async def get_llm(self, account_id: str, llm_id: str) -> LlmRecord | None:
        def run() -> LlmRecord | None:
            row = self._db.execute(
                "SELECT * FROM llms WHERE id = ? AND account_id = ?", (llm_id, account_id)
            ).fetchone()
            return self._llm(row) if row else None

        return await self._run(run)

    async def list_llms(
        self, account_id: str, limit: int, after: tuple[datetime, str] | None
    ) -> list[LlmRecord]:
        def run() -> list[LlmRecord]:
            if after is None:
                rows = self._db.execute(
                    "SELECT * FROM llms WHERE account_id = ? "
                    "ORDER BY create_time DESC, id DESC LIMIT ?",
                    (account_id, limit),
                ).fetchall()
            else:
                rows = self._db.execute(
                    "SELECT * FROM llms WHERE account_id = ? AND (create_time, id) < (?, ?) "
                    "ORDER BY create_time DESC, id DESC LIMIT ?",
                    (account_id, _ts(after[0]), after[1], limit),
                ).fetchall()
            return [self._llm(r) for r in rows]

        return await self._run(run)

    async def replace_llm(self, record: LlmRecord, expected_etag: str) -> bool:
        count = await self._run(
            self._write,
            "UPDATE llms SET display_name = ?, body = ?, update_time = ?, etag = ? "
            "WHERE id = ? AND account_id = ? AND etag = ?",
            (
                record.display_name,
                _json(record.body),
                _ts(record.update_time),
                record.etag,
                record.id,
                record.account_id,
                expected_etag,
            ),
        )
        return count == 1

    async def delete_llm(self, account_id: str, llm_id: str, expected_etag: str) -> bool:
        if expected_etag:
            sql = "DELETE FROM llms WHERE id = ? AND account_id = ? AND etag = ?"
            params: tuple[Any, ...] = (llm_id, account_id, expected_etag)
        else:
            sql = "DELETE FROM llms WHERE id = ? AND account_id = ?"
            params = (llm_id, account_id)
        return await self._run(self._write, sql, params) == 1

    async def all_llms(self) -> list[LlmRecord]:
        def run() -> list[LlmRecord]:
            return [self._llm(r) for r in self._db.execute("SELECT * FROM llms").fetchall()]

        return await self._run(run)

    # -- notifications (the session rows: sqlite_sessions) --------------------------

    async def notify(self, channel: str, payload: str) -> None:
        for callback in list(self._listeners.get(channel, ())):
            callback(payload)

    async def listen(self, channel: str, callback: Callable[[str], None]) -> None:
        self._listeners.setdefault(channel, []).append(callback)

    # -- accounts and caller API keys ----------------------------------------------------------

    async def create_account(self, account_id: str, name: str, create_time: datetime) -> None:
        await self._run(
            self._write,
            "INSERT INTO accounts VALUES (?, ?, ?)",
            (account_id, name, _ts(create_time)),
        )

    async def list_accounts(self) -> list[tuple[str, str]]:
        def run() -> list[tuple[str, str]]:
            rows = self._db.execute("SELECT id, name FROM accounts ORDER BY create_time").fetchall()
            return [(r["id"], r["name"]) for r in rows]

        return await self._run(run)

    async def create_api_key(self, record: ApiKeyRecord) -> None:
        await self._run(
            self._write,
            "INSERT INTO api_keys VALUES (?, ?, ?, ?, ?, ?)",
            (
                record.key_id,
                record.account_id,
                record.key_hash,
                _ts(record.create_time),
                int(record.revoked),
                record.description,
            ),
        )

    @staticmethod
    def _key(row: sqlite3.Row) -> ApiKeyRecord:
        return ApiKeyRecord(
            key_id=row["key_id"],
            account_id=row["account_id"],
            key_hash=row["key_hash"],
            create_time=_dt(row["create_time"]),
            revoked=bool(row["revoked"]),
            description=row["description"],
        )

    async def get_api_key(self, key_id: str) -> ApiKeyRecord | None:
        def run() -> ApiKeyRecord | None:
            row = self._db.execute("SELECT * FROM api_keys WHERE key_id = ?", (key_id,)).fetchone()
            return self._key(row) if row else None

        return await self._run(run)

    async def list_api_keys(self, account_id: str) -> list[ApiKeyRecord]:
        def run() -> list[ApiKeyRecord]:
            rows = self._db.execute(
                "SELECT * FROM api_keys WHERE account_id = ? ORDER BY create_time", (account_id,)
            ).fetchall()
            return [self._key(r) for r in rows]

        return await self._run(run)

    async def revoke_api_key(self, key_id: str) -> bool:
        count = await self._run(
            self._write, "UPDATE api_keys SET revoked = 1 WHERE key_id = ?", (key_id,)
        )
        return count == 1

    # -- master key check values -----------------------------------------------------------------

    async def master_key_checks(self) -> dict[str, str]:
        def run() -> dict[str, str]:
            rows = self._db.execute("SELECT key_id, check_value FROM master_key_checks")
            return {r[0]: r[1] for r in rows.fetchall()}

        return await self._run(run)

    async def add_master_key_check(self, key_id: str, check_value: str) -> None:
        await self._run(self._write, "INSERT OR IGNORE INTO master_key_checks VALUES (?, ?)",
                        (key_id, check_value))
