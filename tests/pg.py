"""PostgreSQL for tests: where it is, whether it is up, and a fresh schema per test.

The server is named by ``SWITCHBOARD_TEST_POSTGRES_DSN`` (default: the local trust-auth
server CI starts). Every test gets its own schema ``sbtest_<unix time>_<random>`` through the
store's ``schema=`` DSN parameter and drops it afterwards, so parallel runs never share tables;
schemas left by killed runs are dropped once they are a few hours old.

When the server is unreachable, PostgreSQL tests fail under ``CI=true`` and are skipped with
a warning elsewhere.
"""

from __future__ import annotations

import os
import secrets
import time
import warnings
from typing import NoReturn
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import asyncpg
import pytest

DSN_ENV = "SWITCHBOARD_TEST_POSTGRES_DSN"
DEFAULT_DSN = "postgresql://postgres@127.0.0.1:5432/test"
SCHEMA_PREFIX = "sbtest_"
LEFTOVER_AGE_S = 6 * 3600
CONNECT_TIMEOUT_S = 5.0


def base_dsn() -> str:
    return os.environ.get(DSN_ENV) or DEFAULT_DSN


def in_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() in ("true", "1", "yes")


def _where(dsn: str) -> str:
    """The DSN without credentials, for messages."""
    return dsn.split("@")[-1]


def with_schema(dsn: str, schema: str) -> str:
    parts = urlsplit(dsn)
    query = [(k, v) for k, v in parse_qsl(parts.query, keep_blank_values=True) if k != "schema"]
    query.append(("schema", schema))
    return urlunsplit(parts._replace(query=urlencode(query)))


def new_schema_name() -> str:
    return f"{SCHEMA_PREFIX}{int(time.time())}_{secrets.token_hex(4)}"


async def probe(dsn: str) -> str | None:
    """None if PostgreSQL answers at ``dsn``; otherwise why not. Drops old leftover schemas."""
    try:
        conn = await asyncpg.connect(dsn, timeout=CONNECT_TIMEOUT_S)
    except (OSError, TimeoutError, asyncpg.PostgresError) as exc:
        return f"{type(exc).__name__}: {exc}"
    try:
        names = await conn.fetch(
            "SELECT nspname FROM pg_namespace WHERE starts_with(nspname, $1)", SCHEMA_PREFIX)
        cutoff = time.time() - LEFTOVER_AGE_S
        for (name,) in names:
            stamp = name[len(SCHEMA_PREFIX):].split("_", 1)[0]
            if stamp.isdigit() and int(stamp) < cutoff:
                await conn.execute(f'DROP SCHEMA IF EXISTS "{name}" CASCADE')
    finally:
        await conn.close()
    return None


async def drop_schema(dsn: str, schema: str) -> None:
    conn = await asyncpg.connect(dsn, timeout=CONNECT_TIMEOUT_S)
    try:
        await conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
    finally:
        await conn.close()


def unavailable(dsn: str, reason: str) -> NoReturn:
    """Fails under CI=true; otherwise skips, loudly (a warning in the summary too)."""
    message = (f"PostgreSQL is unreachable at {_where(dsn)} ({reason}); start it or point "
               f"{DSN_ENV} at one")
    if in_ci():
        pytest.fail(f"{message}. CI=true: PostgreSQL tests must run", pytrace=False)
    warnings.warn(f"SKIPPING PostgreSQL tests: {message}", pytest.PytestWarning, stacklevel=2)
    pytest.skip(f"{message} (CI would fail here)")
