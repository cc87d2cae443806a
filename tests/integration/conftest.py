from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from switchboard_client import AsyncClient

from server.app import Switchboard
from tests import pg
from tests.support import API_KEY, running, settings


@pytest.fixture
async def server(tmp_path: Path) -> AsyncIterator[Switchboard]:
    async with running(settings(tmp_path)) as app:
        yield app


@pytest.fixture
async def client(server: Switchboard) -> AsyncIterator[AsyncClient]:
    async with AsyncClient(f"127.0.0.1:{server.port}", API_KEY) as c:
        yield c


@pytest.fixture(scope="session")
def postgres_unreachable() -> str | None:
    """Checked once per run: None if PostgreSQL answers, else why not."""
    return asyncio.run(pg.probe(pg.base_dsn()))


@pytest.fixture
async def pg_dsn(postgres_unreachable: str | None) -> AsyncIterator[str]:
    """A DSN for a fresh, empty schema of its own (dropped afterwards). Fails under CI=true
    when PostgreSQL is unreachable; skips loudly otherwise."""
    base = pg.base_dsn()
    if postgres_unreachable is not None:
        pg.unavailable(base, postgres_unreachable)
    schema = pg.new_schema_name()
    yield pg.with_schema(base, schema)
    await pg.drop_schema(base, schema)
