"""Issue 17: ``LlmRegistry.GetRoutingState`` on a real server with simulated upstreams.

A turn fails over from a failing endpoint to a healthy one; the routing state then shows the
failover with its cause on the failed endpoint and the live first-token time on the other,
ordered by rank. Another account asking for the same LLM gets NOT_FOUND, exactly as for an
id that does not exist; ``buf curl`` reads it over gRPC with server reflection.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import time
from collections.abc import AsyncIterator
from pathlib import Path

import grpc
import pytest
from switchboard.v1 import registry_pb2 as rpb
from switchboard_client import AsyncClient

from server.accounts import AccountAdmin
from server.app import Switchboard
from server.simulator import Behavior, Fault, FaultKind, Simulator
from tests.support import API_KEY, ROOT, create_llm, endpoint, settings

BUF = ROOT / "clients" / "lab" / "node_modules" / ".bin" / "buf"


@pytest.fixture
async def app(tmp_path: Path) -> AsyncIterator[Switchboard]:
    server = Switchboard(settings(tmp_path, probes_per_hour=0))
    await server.start()
    try:
        yield server
    finally:
        await server.stop(grace_s=1.0)


async def state(client: AsyncClient, llm_id: str) -> rpb.GetRoutingStateResponse:
    return await client.registry.GetRoutingState(
        rpb.GetRoutingStateRequest(llm_id=llm_id), metadata=client._metadata)


async def test_a_failover_and_the_serving_endpoints_first_token_show_up(
        app: Switchboard) -> None:
    async with Simulator("openai", Behavior(text="down")) as bad, \
            Simulator("openai", Behavior(text="Fine, thanks.")) as good, \
            AsyncClient(f"127.0.0.1:{app.port}", API_KEY) as client:
        bad.set_fault(Fault(FaultKind.SERVER_ERROR))
        llm = await create_llm(client, endpoint(bad, label="eu", priority=0),
                               endpoint(good, label="us", priority=1))
        bad_id, good_id = (e.id for e in llm.endpoints)
        before = await state(client, llm.id)
        assert [e.endpoint_id for e in before.endpoints] == [bad_id, good_id]
        assert all(not e.recent_ttfts and not e.recent_failovers for e in before.endpoints)
        started = time.time()
        reply = await client.reply("How are you?", llm_id=llm.id)
        assert reply.text == "Fine, thanks."
        after = await state(client, llm.id)
    by_id = {e.endpoint_id: e for e in after.endpoints}
    (failover,) = by_id[bad_id].recent_failovers
    assert (failover.from_endpoint_id, failover.to_endpoint_id) == (bad_id, good_id)
    assert failover.cause == "server_error (HTTP 500)"
    assert started - 1 <= failover.time.ToNanoseconds() / 1e9 <= time.time() + 1
    (sample,) = by_id[good_id].recent_ttfts
    assert sample.ttft_ms > 0 and not sample.probe
    assert by_id[good_id].label == "us" and by_id[good_id].health.samples == 1
    assert by_id[bad_id].health.consecutive_failures == 1
    assert after.llm_id == llm.id and after.read_time.seconds >= int(started)


async def test_another_accounts_llm_is_not_found(app: Switchboard) -> None:
    assert app.store is not None
    admin = AccountAdmin(app.store)
    other = await admin.create_key(await admin.create_account("globex"))
    async with Simulator("openai", Behavior()) as sim, \
            AsyncClient(f"127.0.0.1:{app.port}", API_KEY) as mine, \
            AsyncClient(f"127.0.0.1:{app.port}", other.plaintext.reveal()) as theirs:
        llm = await create_llm(mine, endpoint(sim))
        await mine.reply("Hi", llm_id=llm.id)
        errors = []
        for llm_id in (llm.id, "llm_does_not_exist"):
            with pytest.raises(grpc.aio.AioRpcError) as caught:
                await state(theirs, llm_id)
            details = caught.value.details() or ""
            errors.append((caught.value.code(), details.replace(llm_id, "ID")))
        assert errors[0] == errors[1] and errors[0][0] is grpc.StatusCode.NOT_FOUND
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await state(mine, "")
        assert caught.value.code() is grpc.StatusCode.INVALID_ARGUMENT


async def test_buf_curl_reads_it_over_grpc_with_reflection(app: Switchboard) -> None:
    if not BUF.exists():
        if os.environ.get("CI"):
            pytest.fail("clients/lab/node_modules/.bin/buf is missing (required in CI): "
                        "make lab-deps")
        pytest.skip("clients/lab/node_modules/.bin/buf is missing: make lab-deps")
    async with Simulator("openai", Behavior()) as sim, \
            AsyncClient(f"127.0.0.1:{app.port}", API_KEY) as client:
        llm = await create_llm(client, endpoint(sim, label="solo"))
        await client.reply("Hi", llm_id=llm.id)
        out = await asyncio.to_thread(
            subprocess.run,
            [str(BUF), "curl", "--protocol", "grpc", "--http2-prior-knowledge",
             "-H", f"authorization: Bearer {API_KEY}", "-d", json.dumps({"llmId": llm.id}),
             f"http://127.0.0.1:{app.port}/switchboard.v1.LlmRegistry/GetRoutingState"],
            capture_output=True, text=True, timeout=60, check=False)
    assert out.returncode == 0, out.stderr
    body = json.loads(out.stdout)
    (only,) = body["endpoints"]
    assert only["label"] == "solo" and only["rank"] == 1
    assert only["health"]["circuitState"] == "CIRCUIT_STATE_CLOSED"
    assert only["recentTtfts"][0]["time"].endswith("Z")
