"""Fixtures for the tests against llama.cpp's own llama-server (see ``llama_server``).

The servers that tests only talk to are shared by the whole session (each start loads the
model in well under a second, but a session of starts adds up on two shared cores); a test that
kills its server or needs other flags starts its own with ``start_llama``.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path

import pytest
from switchboard_client import AsyncClient

from server.app import Switchboard
from tests.llama.llama_server import LlamaServer, llama_home, require_build
from tests.llama.tinymodel import write_tiny_model
from tests.support import API_KEY, running, settings

StartLlama = Callable[..., LlamaServer]


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    require_build()
    return write_tiny_model(llama_home(), tmp_path_factory.mktemp("llama") / "tiny.gguf")


@pytest.fixture(scope="session")
def _session_llamas(tiny_model: Path, tmp_path_factory: pytest.TempPathFactory
                    ) -> Iterator[dict[str, LlamaServer]]:
    started: dict[str, LlamaServer] = {}
    yield started
    for server in started.values():
        server.stop()


def _shared(pool: dict[str, LlamaServer], name: str, model: Path, tmp: Path,
            **kwargs: object) -> LlamaServer:
    server = pool.get(name)
    if server is None or server.proc is None or server.proc.poll() is not None:
        server = LlamaServer(model, tmp / f"{name}.log", **kwargs).start()  # type: ignore[arg-type]
        pool[name] = server
    return server


@pytest.fixture
def llama(_session_llamas: dict[str, LlamaServer], tiny_model: Path,
          tmp_path_factory: pytest.TempPathFactory) -> LlamaServer:
    """The built-in chat template, a 4,096-token window: reasoning inline as <think> tags."""
    return _shared(_session_llamas, "default", tiny_model, tiny_model.parent)


@pytest.fixture
def llama_jinja(_session_llamas: dict[str, LlamaServer], tiny_model: Path) -> LlamaServer:
    """--jinja with Qwen3's template: reasoning streamed as ``reasoning_content``."""
    return _shared(_session_llamas, "jinja", tiny_model, tiny_model.parent, jinja=True)


@pytest.fixture
def llama_small(_session_llamas: dict[str, LlamaServer], tiny_model: Path) -> LlamaServer:
    """A 256-token window."""
    return _shared(_session_llamas, "small", tiny_model, tiny_model.parent, ctx_size=256)


@pytest.fixture
def start_llama(tiny_model: Path, tmp_path: Path) -> Iterator[StartLlama]:
    """Starts a llama-server of the test's own (stopped at the end of the test)."""
    mine: list[LlamaServer] = []

    def start(**kwargs: object) -> LlamaServer:
        server = LlamaServer(tiny_model, tmp_path / f"llama{len(mine)}.log",
                             **kwargs).start()  # type: ignore[arg-type]
        mine.append(server)
        return server

    yield start
    for server in mine:
        server.stop()


@pytest.fixture
async def server(tmp_path: Path) -> AsyncIterator[Switchboard]:
    async with running(settings(tmp_path)) as app:
        yield app


@pytest.fixture
async def client(server: Switchboard) -> AsyncIterator[AsyncClient]:
    async with AsyncClient(f"127.0.0.1:{server.port}", API_KEY) as c:
        yield c
