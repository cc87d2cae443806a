from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from switchboard_client import AsyncClient

from server.app import Switchboard
from tests.support import API_KEY, running, settings


@pytest.fixture
async def server(tmp_path: Path) -> AsyncIterator[Switchboard]:
    async with running(settings(tmp_path)) as app:
        yield app


@pytest.fixture
async def client(server: Switchboard) -> AsyncIterator[AsyncClient]:
    async with AsyncClient(f"127.0.0.1:{server.port}", API_KEY) as c:
        yield c
