"""The HTTP side, attacked from outside: /metrics is not on the tenant port, slow and huge
request heads are cut off.

- ``/metrics`` lists every tenant's LLM and endpoint ids with their traffic; it is served only
  on the metrics listener (``metrics_port``), never on the front door (404 there, with or
  without a key), and the metrics listener serves nothing else.
- A connection that never completes its request head (slowloris) is closed after
  ``http_header_timeout_s``; a request line or header over 8 KiB, or more than 64 headers, gets
  400 at once.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import aiohttp

from server.simulator import Behavior, Simulator
from tests.http_support import running_door, scrape
from tests.support import API_KEY, create_llm, endpoint


async def test_metrics_are_not_on_the_tenant_port(tmp_path: Path) -> None:
    async with Simulator("openai", Behavior(text="ok")) as sim, running_door(tmp_path) as door:
        llm = await create_llm(door.grpc, endpoint(sim))
        assert (await door.grpc.reply("hi", llm_id=llm.id)).complete
        async with aiohttp.ClientSession() as http:
            for headers in ({}, {"Authorization": f"Bearer {API_KEY}"}):
                async with http.get(f"{door.base_url}/metrics", headers=headers) as r:
                    assert r.status in (401, 404)
                    assert llm.id not in await r.text()
            async with http.get(f"{door.metrics_url}/v1/models",
                                headers={"Authorization": f"Bearer {API_KEY}"}) as r:
                assert r.status == 404
        samples = await scrape(door.metrics_url)
        assert any(dict(labels).get("switchboard_llm_id") == llm.id for _, labels in samples)


async def test_slow_request_heads_are_cut_off(tmp_path: Path) -> None:
    async with running_door(tmp_path, http_header_timeout_s=0.5) as door:
        reader, writer = await asyncio.open_connection("127.0.0.1", door.app.http_port)
        try:
            writer.write(b"GET /v1/models HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: a")
            await writer.drain()
            # The server closes the connection: EOF arrives. (The 30 s only bounds a failure.)
            await asyncio.wait_for(reader.read(), timeout=30)
            assert reader.at_eof()
        finally:
            writer.close()
        # A well-behaved caller on a new connection is served.
        async with aiohttp.ClientSession() as http, http.get(
                f"{door.base_url}/v1/models", headers={"Authorization": f"Bearer {API_KEY}"}) as r:
            assert r.status == 200


async def test_oversized_request_heads_get_400(tmp_path: Path) -> None:
    async with running_door(tmp_path) as door, aiohttp.ClientSession() as http:
        big = {"Authorization": "Bearer " + "A" * (3 * 1024 * 1024)}
        many = {f"X-H{i}": "v" for i in range(100)}
        for headers in (big, many):
            try:
                async with http.get(f"{door.base_url}/v1/models", headers=headers) as r:
                    assert r.status in (400, 431)
            except aiohttp.ClientOSError:
                pass  # the server answered 400 and closed while the head was still sent
