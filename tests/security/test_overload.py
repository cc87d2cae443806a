"""Beyond ``max_concurrent_streams``, every caller gets RESOURCE_EXHAUSTED with RetryInfo.

A burst of 2,300 Converse calls on one channel against a limit of 100 (the upstream holds the
admitted turns): before the fix about 300 of the refused calls got a bare CANCELLED (no status,
no RetryInfo) from grpc's pending-request limit, so a client could not tell "retry shortly"
from a failure. Now all 2,200 are RESOURCE_EXHAUSTED ``TOO_MANY_STREAMS`` with RetryInfo.
"""

from __future__ import annotations

import asyncio
import collections
from pathlib import Path

import grpc
from switchboard_client import AsyncClient

from server.simulator import Behavior, Simulator
from tests.support import API_KEY, create_llm, endpoint, reason_and_retry, running, settings

LIMIT, BURST = 100, 2300


async def test_every_caller_beyond_the_limit_gets_retry_info(tmp_path: Path) -> None:
    async with Simulator("openai", Behavior(text="ok", ttft_s=120.0)) as sim, \
            running(settings(tmp_path, max_concurrent_streams=LIMIT)) as app, \
            AsyncClient(f"127.0.0.1:{app.port}", API_KEY) as client:
        llm = await create_llm(client, endpoint(sim))

        async def one() -> str:
            try:
                await client.reply("hi", llm_id=llm.id)
            except grpc.aio.AioRpcError as exc:
                if exc.code() != grpc.StatusCode.RESOURCE_EXHAUSTED:
                    return exc.code().name
                reason, delay = reason_and_retry(exc)
                return f"{reason} retry={delay is not None}"
            return "OK"

        tasks = [asyncio.create_task(one()) for _ in range(BURST)]
        pending = set(tasks)
        while len(pending) > LIMIT:  # the admitted turns are held by the upstream
            _, pending = await asyncio.wait(pending, timeout=120,
                                            return_when=asyncio.FIRST_COMPLETED)
        for task in pending:
            task.cancel()
        await asyncio.gather(*pending, return_exceptions=True)
        outcomes = collections.Counter(t.result() for t in tasks if not t.cancelled())
        assert outcomes == {"TOO_MANY_STREAMS retry=True": BURST - LIMIT}, outcomes
