"""Test helpers for the HTTP port: a real Switchboard with its front door on a free port."""

from __future__ import annotations

import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
from openai import AsyncOpenAI
from prometheus_client.parser import text_string_to_metric_families
from switchboard_client import AsyncClient

from server.app import Switchboard
from tests.support import API_KEY, settings


@dataclass
class Door:
    app: Switchboard
    grpc: AsyncClient
    openai: AsyncOpenAI
    base_url: str  # http://127.0.0.1:<port>
    metrics_url: str  # http://127.0.0.1:<metrics port>, the listener of /metrics


@asynccontextmanager
async def running_door(tmp_path: Path, *, switchboard: dict[str, Any] | None = None,
                       **overrides: Any) -> AsyncIterator[Door]:
    """A Switchboard with its HTTP port on a socket bound to port 0 (no port race).
    ``overrides`` change settings; ``switchboard`` goes to ``Switchboard`` (``span_exporter``)."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    metrics_sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    metrics_sock.bind(("127.0.0.1", 0))
    app = Switchboard(settings(tmp_path, **overrides), http_sock=sock, metrics_sock=metrics_sock,
                      **(switchboard or {}))
    await app.start()
    base_url = f"http://127.0.0.1:{app.http_port}"
    metrics_url = f"http://127.0.0.1:{app.metrics_port}"
    try:
        async with AsyncClient(f"127.0.0.1:{app.port}", API_KEY) as grpc_client:
            client = AsyncOpenAI(api_key=API_KEY, base_url=f"{base_url}/v1", max_retries=0)
            try:
                yield Door(app, grpc_client, client, base_url, metrics_url)
            finally:
                await client.close()
    finally:
        await app.stop(grace_s=1.0)


async def scrape(base_url: str) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    """GET /metrics, as {(sample name, labels): value}."""
    async with aiohttp.ClientSession() as session, session.get(f"{base_url}/metrics") as r:
        assert r.status == 200
        assert r.headers["Content-Type"].startswith("text/plain")
        text = await r.text()
    out: dict[tuple[str, frozenset[tuple[str, str]]], float] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            out[(sample.name, frozenset(sample.labels.items()))] = sample.value
    return out


def value(samples: dict[tuple[str, frozenset[tuple[str, str]]], float], name: str,
          **labels: str) -> float:
    """The one sample named ``name`` whose labels include ``labels`` (0 if none)."""
    want = set(labels.items())
    found = [v for (n, ls), v in samples.items() if n == name and want <= ls]
    assert len(found) <= 1, f"{name} {labels}: {len(found)} samples"
    return found[0] if found else 0.0
