"""The shared store: PostgreSQL through a small asyncpg pool, for several replicas.

Semantics match ``SqliteStore`` exactly (see ``server.store.base``): every write is one
statement or one transaction, updates are compare-and-set on the etag or version, lists are
newest first with a ``(create_time, id)`` cursor, and deleting an LLM deletes its sessions.

The DSN is an ordinary libpq/asyncpg URL plus two optional query parameters that this module
takes out before connecting:

- ``schema=NAME``: keep the tables in that schema (created if missing) instead of the
  connection's default (usually ``public``), via ``search_path``.
- ``pool_max_size=N``: connections per replica (default 10); size it so that
  replicas x N stays under the server's ``max_connections``.

Migrations run at ``open`` in one transaction under a transaction-scoped advisory lock, so
replicas that start at the same time apply each migration exactly once; DDL in PostgreSQL is
transactional, so a failed migration leaves the schema as it was.

Limit: PostgreSQL ``text`` and ``jsonb`` cannot hold U+0000, so a string containing it fails
to store (SQLite stores it).
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import asyncpg
import orjson

from server.config import ConfigError
from server.store.base import ApiKeyRecord, LlmRecord
from server.store.postgres_sessions import PostgresSessions, _count, _utc

# Each entry migrates the schema from version i to i+1. Never edit a released entry.
# Ids use the "C" collation so that the cursor orders them bytewise, as SQLite does.
MIGRATIONS: tuple[str, ...] = (
    """
    CREATE TABLE llms (
        id TEXT COLLATE "C" PRIMARY KEY,
        account_id TEXT COLLATE "C" NOT NULL,
        display_name TEXT NOT NULL,
        body JSONB NOT NULL,
        create_time TIMESTAMPTZ NOT NULL,
        update_time TIMESTAMPTZ NOT NULL,
        etag TEXT NOT NULL
    );
    CREATE INDEX llms_by_account ON llms (account_id, create_time DESC, id DESC);
    CREATE TABLE sessions (
        id TEXT COLLATE "C" PRIMARY KEY,
        account_id TEXT COLLATE "C" NOT NULL,
        llm_id TEXT COLLATE "C" NOT NULL REFERENCES llms (id) ON DELETE CASCADE,
        system_prompt TEXT NOT NULL,
        generation JSONB NOT NULL,
        idle_ttl_s DOUBLE PRECISION NOT NULL,
        create_time TIMESTAMPTZ NOT NULL,
        expire_time TIMESTAMPTZ NOT NULL,
        turn_count INTEGER NOT NULL,
        messages JSONB NOT NULL,
        version INTEGER NOT NULL
    );
    CREATE INDEX sessions_by_expiry ON sessions (expire_time);
    CREATE INDEX sessions_by_llm ON sessions (llm_id);
    CREATE TABLE accounts (
        id TEXT COLLATE "C" PRIMARY KEY,
        name TEXT NOT NULL,
        create_time TIMESTAMPTZ NOT NULL
    );
    CREATE TABLE api_keys (
        key_id TEXT COLLATE "C" PRIMARY KEY,
        account_id TEXT COLLATE "C" NOT NULL,
        key_hash TEXT NOT NULL,
        create_time TIMESTAMPTZ NOT NULL,
        revoked BOOLEAN NOT NULL DEFAULT FALSE,
        description TEXT NOT NULL DEFAULT ''
    );
    CREATE INDEX api_keys_by_account ON api_keys (account_id, create_time);
    """,
    """
    ALTER TABLE sessions ADD COLUMN running_turn_id TEXT COLLATE "C" NOT NULL DEFAULT '',
                         ADD COLUMN running_until TIMESTAMPTZ;
    """,
    """
    CREATE TABLE master_key_checks (
        key_id TEXT COLLATE "C" PRIMARY KEY,
        check_value TEXT NOT NULL
    );
    """,
)

# pg_advisory_xact_lock key for migrations ("SWBMIG" in ASCII); advisory locks are per database.
MIGRATION_LOCK = 0x535742_4D4947

POOL_MIN_SIZE = 1
POOL_MAX_SIZE = 10
CONNECT_TIMEOUT_S = 10.0  # opening one connection
ACQUIRE_TIMEOUT_S = 10.0  # waiting for a free pooled connection
STATEMENT_TIMEOUT_S = 30.0  # one statement; asyncpg cancels it on the server after that
CLOSE_TIMEOUT_S = 10.0  # waiting for in-use connections at close; then they are terminated
MIGRATE_TIMEOUT_S = 600.0  # each migration step, and waiting for another replica's migration

_SCHEMA_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,62}")


def parse_dsn(dsn: str) -> tuple[str, str | None, int]:
    """Splits our own query parameters off a DSN: (asyncpg DSN, schema or None, pool size)."""
    parts = urlsplit(dsn)
    query: list[tuple[str, str]] = []
    schema: str | None = None
    pool_max = POOL_MAX_SIZE
    for key, value in parse_qsl(parts.query, keep_blank_values=True):
        if key == "schema":
            if not _SCHEMA_NAME.fullmatch(value):
                raise ConfigError(f"database DSN: schema {value!r} is not a plain identifier "
                                 "(letters, digits and _, at most 63, not starting with a digit)")
            schema = value
        elif key == "pool_max_size":
            if not value.isdigit() or not 1 <= int(value) <= 1000:
                raise ConfigError(f"database DSN: pool_max_size must be 1 to 1000, got {value!r}")
            pool_max = int(value)
        else:
            query.append((key, value))
    return urlunsplit(parts._replace(query=urlencode(query))), schema, pool_max


def _quote(identifier: str) -> str:
    return '"' + identifier.replace('"', '""') + '"'




async def _init_connection(conn: asyncpg.Connection) -> None:
    for name in ("json", "jsonb"):
        await conn.set_type_codec(name, schema="pg_catalog", format="text",
                                  encoder=lambda v: orjson.dumps(v).decode(),
                                  decoder=orjson.loads)


class PostgresStore(PostgresSessions):
    def __init__(self, dsn: str, *, min_size: int = POOL_MIN_SIZE,
                 max_size: int | None = None) -> None:
        self._dsn, self._schema, pool_max = parse_dsn(dsn)
        self._min_size = min_size
        self._max_size = max_size or pool_max
        self._pool: asyncpg.Pool | None = None
        self._listener: asyncpg.Connection | None = None  # LISTEN needs its own connection

    @property
    def schema(self) -> str | None:
        return self._schema

    @property
    def _db(self) -> asyncpg.Pool:
        if self._pool is None:
            raise RuntimeError("store is not open")
        return self._pool

    def _acquire(self) -> Any:
        return self._db.acquire(timeout=ACQUIRE_TIMEOUT_S)

    # -- lifecycle -----------------------------------------------------------------------------

    async def open(self) -> None:
        settings = {"application_name": "switchboard"}
        if self._schema is not None:
            settings["search_path"] = _quote(self._schema)
        pool = await asyncpg.create_pool(
            self._dsn, min_size=min(self._min_size, self._max_size), max_size=self._max_size,
            timeout=CONNECT_TIMEOUT_S, command_timeout=STATEMENT_TIMEOUT_S,
            server_settings=settings, init=_init_connection,
        )
        self._pool = pool
        try:
            await self._migrate()
        except BaseException:
            self._pool = None
            pool.terminate()
            raise

    async def _migrate(self) -> None:
        async with self._acquire() as conn, conn.transaction():
            await conn.execute("SELECT pg_advisory_xact_lock($1)", MIGRATION_LOCK,
                               timeout=MIGRATE_TIMEOUT_S)
            if self._schema is not None:
                await conn.execute(f"CREATE SCHEMA IF NOT EXISTS {_quote(self._schema)}")
            await conn.execute(
                "CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)")
            current = await conn.fetchval("SELECT version FROM schema_version") or 0
            if current > len(MIGRATIONS):
                where = f"schema {self._schema}" if self._schema else "the database"
                raise RuntimeError(
                    f"{where} has schema version {current}, newer than this server knows "
                    f"({len(MIGRATIONS)}); upgrade the server"
                )
            for version in range(current, len(MIGRATIONS)):
                await conn.execute(MIGRATIONS[version], timeout=MIGRATE_TIMEOUT_S)
            if current < len(MIGRATIONS):
                await conn.execute("DELETE FROM schema_version")
                await conn.execute("INSERT INTO schema_version VALUES ($1)", len(MIGRATIONS))

    async def close(self) -> None:
        listener, self._listener = self._listener, None
        if listener is not None:
            listener.terminate()
        pool, self._pool = self._pool, None
        if pool is None:
            return
        try:
            await asyncio.wait_for(pool.close(), CLOSE_TIMEOUT_S)
        except TimeoutError:
            pool.terminate()

    async def _execute(self, sql: str, *args: Any) -> int:
        async with self._acquire() as conn:
            return _count(await conn.execute(sql, *args))

    async def _fetch(self, sql: str, *args: Any) -> Sequence[asyncpg.Record]:
        async with self._acquire() as conn:
            rows: Sequence[asyncpg.Record] = await conn.fetch(sql, *args)
            return rows

    async def _fetchrow(self, sql: str, *args: Any) -> asyncpg.Record | None:
        async with self._acquire() as conn:
            return await conn.fetchrow(sql, *args)

    # -- LLMs ----------------------------------------------------------------------------------

    async def create_llm(self, record: LlmRecord) -> None:
        await self._execute(
            "INSERT INTO llms (id, account_id, display_name, body, create_time, update_time, "
            "etag) VALUES ($1, $2, $3, $4, $5, $6, $7)",
            record.id, record.account_id, record.display_name, record.body,
            _utc(record.create_time), _utc(record.update_time), record.etag,
        )

    @staticmethod
    def _llm(row: asyncpg.Record) -> LlmRecord:
        return LlmRecord(
            id=row["id"],
            account_id=row["account_id"],
            display_name=row["display_name"],
            body=row["body"],
            create_time=row["create_time"],
            update_time=row["update_time"],
            etag=row["etag"],
        )

    async def get_llm(self, account_id: str, llm_id: str) -> LlmRecord | None:
        row = await self._fetchrow(
            "SELECT * FROM llms WHERE id = $1 AND account_id = $2", llm_id, account_id)
        return self._llm(row) if row else None

    async def list_llms(
        self, account_id: str, limit: int, after: tuple[datetime, str] | None
    ) -> list[LlmRecord]:
        if after is None:
            rows = await self._fetch(
                "SELECT * FROM llms WHERE account_id = $1 "
                "ORDER BY create_time DESC, id DESC LIMIT $2",
                account_id, limit,
            )
        else:
            rows = await self._fetch(
                "SELECT * FROM llms WHERE account_id = $1 AND (create_time, id) < ($2, $3) "
                "ORDER BY create_time DESC, id DESC LIMIT $4",
                account_id, _utc(after[0]), after[1], limit,
            )
        return [self._llm(r) for r in rows]

    async def replace_llm(self, record: LlmRecord, expected_etag: str) -> bool:
        count = await self._execute(
            "UPDATE llms SET display_name = $1, body = $2, update_time = $3, etag = $4 "
            "WHERE id = $5 AND account_id = $6 AND etag = $7",
            record.display_name, record.body, _utc(record.update_time), record.etag,
            record.id, record.account_id, expected_etag,
        )
        return count == 1

    async def delete_llm(self, account_id: str, llm_id: str, expected_etag: str) -> bool:
        # One statement: the cascade to sessions happens in the same transaction.
        count = await self._execute(
            "DELETE FROM llms WHERE id = $1 AND account_id = $2 AND ($3 = '' OR etag = $3)",
            llm_id, account_id, expected_etag,
        )
        return count == 1

    async def all_llms(self) -> list[LlmRecord]:
        return [self._llm(r) for r in await self._fetch("SELECT * FROM llms")]

    # -- notifications (the session rows: postgres_sessions) --------------------------

    def _channel(self, channel: str) -> str:
        # Replicas share a channel only when they share the schema (tests isolate by schema).
        return f"switchboard.{self._schema or 'public'}.{channel}"

    async def notify(self, channel: str, payload: str) -> None:
        await self._execute("SELECT pg_notify($1, $2)", self._channel(channel), payload)

    async def listen(self, channel: str, callback: Callable[[str], None]) -> None:
        if self._listener is None:
            self._listener = await asyncpg.connect(self._dsn, timeout=CONNECT_TIMEOUT_S)

        def deliver(_conn: object, _pid: int, _channel: str, payload: str) -> None:
            callback(payload)

        await self._listener.add_listener(self._channel(channel), deliver)

    # -- accounts and caller API keys ----------------------------------------------------------

    async def create_account(self, account_id: str, name: str, create_time: datetime) -> None:
        await self._execute(
            "INSERT INTO accounts (id, name, create_time) VALUES ($1, $2, $3)",
            account_id, name, _utc(create_time),
        )

    async def list_accounts(self) -> list[tuple[str, str]]:
        rows = await self._fetch("SELECT id, name FROM accounts ORDER BY create_time")
        return [(r["id"], r["name"]) for r in rows]

    async def create_api_key(self, record: ApiKeyRecord) -> None:
        await self._execute(
            "INSERT INTO api_keys (key_id, account_id, key_hash, create_time, revoked, "
            "description) VALUES ($1, $2, $3, $4, $5, $6)",
            record.key_id, record.account_id, record.key_hash, _utc(record.create_time),
            record.revoked, record.description,
        )

    @staticmethod
    def _key(row: asyncpg.Record) -> ApiKeyRecord:
        return ApiKeyRecord(
            key_id=row["key_id"],
            account_id=row["account_id"],
            key_hash=row["key_hash"],
            create_time=row["create_time"],
            revoked=row["revoked"],
            description=row["description"],
        )

    async def get_api_key(self, key_id: str) -> ApiKeyRecord | None:
        row = await self._fetchrow("SELECT * FROM api_keys WHERE key_id = $1", key_id)
        return self._key(row) if row else None

    async def list_api_keys(self, account_id: str) -> list[ApiKeyRecord]:
        rows = await self._fetch(
            "SELECT * FROM api_keys WHERE account_id = $1 ORDER BY create_time", account_id)
        return [self._key(r) for r in rows]

    async def revoke_api_key(self, key_id: str) -> bool:
        count = await self._execute(
            "UPDATE api_keys SET revoked = TRUE WHERE key_id = $1", key_id)
        return count == 1

    async def master_key_checks(self) -> dict[str, str]:
        rows = await self._fetch("SELECT key_id, check_value FROM master_key_checks")
        return {r["key_id"]: r["check_value"] for r in rows}

    async def add_master_key_check(self, key_id: str, check_value: str) -> None:
        await self._execute("INSERT INTO master_key_checks VALUES ($1, $2) "
                            "ON CONFLICT (key_id) DO NOTHING", key_id, check_value)
