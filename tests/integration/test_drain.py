"""Issue 9: graceful drain on stop() and on SIGTERM.

While a replica drains, health reports NOT_SERVING (so load balancers stop sending), a new
stream is refused with UNAVAILABLE (ErrorInfo reason DRAINING, RetryInfo) so that the caller
retries elsewhere, in-flight streams finish within the grace period, and the process exits 0.
A stream still running when the grace period ends is cut, never reported as a success.
(The SIGTERM drain of an in-flight stream plus restart is in test_reflection_and_lifecycle.py.)
"""

from __future__ import annotations

import asyncio
import signal
import time
from pathlib import Path
from typing import Any

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc
from switchboard.v1 import llm_pb2 as lpb
from switchboard_client import AsyncClient, Reply

from server.app import Switchboard
from server.simulator import Behavior, Simulator
from tests.support import (
    API_KEY,
    create_llm,
    endpoint,
    reason_and_retry,
    server_env,
    settings,
    start_server_process,
)

PACED = Behavior(text=" ".join(f"w{i}" for i in range(30)), chunks=30, chunk_gap_s=0.04)


async def health(port: int, service: str = "") -> Any:
    async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
        return (await health_pb2_grpc.HealthStub(channel).Check(
            health_pb2.HealthCheckRequest(service=service), timeout=2.0)).status


async def stream_until_text(client: AsyncClient, llm_id: str, reply: Reply,
                            started: asyncio.Event) -> Reply:
    async for event in client.converse("go", llm_id=llm_id):
        reply.apply(event)
        if reply.text:
            started.set()
    return reply


async def test_stop_drains_health_refuses_new_streams_and_finishes_in_flight(
        tmp_path: Path) -> None:
    app = Switchboard(settings(tmp_path))
    await app.start()
    port = app.port
    stopped = False
    try:
        async with AsyncClient(f"127.0.0.1:{port}", API_KEY) as client, \
                Simulator("openai", PACED) as sim:
            llm = await create_llm(client, endpoint(sim))
            assert await health(port) == health_pb2.HealthCheckResponse.SERVING
            # a Watch opened before the drain sees the change (what a load balancer holds)
            watch_channel = grpc.aio.insecure_channel(f"127.0.0.1:{port}")
            watch = health_pb2_grpc.HealthStub(watch_channel).Watch(
                health_pb2.HealthCheckRequest(service="switchboard.v1.Conversations"))
            assert (await watch.read()).status == health_pb2.HealthCheckResponse.SERVING

            started = asyncio.Event()
            in_flight = asyncio.create_task(stream_until_text(client, llm.id, Reply(), started))
            await asyncio.wait_for(started.wait(), 2.0)
            stop_started = time.monotonic()
            stopping = asyncio.create_task(app.stop(grace_s=5.0))

            assert (await watch.read()).status == health_pb2.HealthCheckResponse.NOT_SERVING
            watch.cancel()
            await watch_channel.close()
            for service in ("", "switchboard.v1.Conversations"):
                assert await health(port, service) == \
                    health_pb2.HealthCheckResponse.NOT_SERVING
            try:
                await client.reply("new", llm_id=llm.id)
                raise AssertionError("a new stream was accepted while draining")
            except grpc.aio.AioRpcError as exc:
                assert exc.code() == grpc.StatusCode.UNAVAILABLE
                reason, retry = reason_and_retry(exc)
                assert reason == "DRAINING" and retry is not None and retry > 0
                assert "shutting down" in (exc.details() or "")
            assert len(sim.requests) == 1, "the refused stream never reached an upstream"

            reply = await asyncio.wait_for(in_flight, 5.0)
            assert reply.complete and reply.text == PACED.text
            await asyncio.wait_for(stopping, 5.0)
            stopped = True
            assert time.monotonic() - stop_started < 5.0, "stop waited no longer than needed"
            assert sim.requests[0].completed_at is not None
    finally:
        if not stopped:
            await app.stop(grace_s=0.5)


async def test_a_stream_longer_than_the_grace_period_is_cut_not_completed(
        tmp_path: Path) -> None:
    endless = Behavior(text=" ".join(f"w{i}" for i in range(400)), chunks=400, chunk_gap_s=0.05)
    app = Switchboard(settings(tmp_path))
    await app.start()
    stopped = False
    try:
        async with AsyncClient(f"127.0.0.1:{app.port}", API_KEY) as client, \
                Simulator("openai", endless) as sim:
            llm = await create_llm(client, endpoint(sim))
            started = asyncio.Event()
            reply = Reply()
            in_flight = asyncio.create_task(stream_until_text(client, llm.id, reply, started))
            await asyncio.wait_for(started.wait(), 2.0)
            grace = 0.5
            stop_started = time.monotonic()
            await app.stop(grace_s=grace)
            stopped = True
            assert time.monotonic() - stop_started < grace + 1.0
            try:
                await asyncio.wait_for(in_flight, 2.0)
                raise AssertionError("a stream cut by the shutdown ended OK")
            except grpc.aio.AioRpcError as exc:
                assert exc.code() in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.CANCELLED,
                                      grpc.StatusCode.ABORTED)
            assert reply.text and not reply.complete
            record = await sim.wait_for_end(index=0, timeout=1.0)
            assert record.disconnected, "the upstream request was closed, not left running"
    finally:
        if not stopped:
            await app.stop(grace_s=0.5)


async def test_sigterm_health_not_serving_new_streams_refused_exit_0(tmp_path: Path) -> None:
    env = server_env(tmp_path)
    async with Simulator("openai", PACED) as sim:
        proc, port = await asyncio.to_thread(start_server_process, env)
        try:
            async with AsyncClient(f"127.0.0.1:{port}", API_KEY) as client:
                llm = await create_llm(client, endpoint(sim))
                started = asyncio.Event()
                in_flight = asyncio.create_task(
                    stream_until_text(client, llm.id, Reply(), started))
                await asyncio.wait_for(started.wait(), 5.0)
                proc.send_signal(signal.SIGTERM)
                for _ in range(200):  # the signal is handled asynchronously
                    if await health(port) == health_pb2.HealthCheckResponse.NOT_SERVING:
                        break
                    await asyncio.sleep(0.01)
                assert await health(port) == health_pb2.HealthCheckResponse.NOT_SERVING
                try:
                    await client.reply("new", llm_id=llm.id)
                    raise AssertionError("a new stream was accepted while draining")
                except grpc.aio.AioRpcError as exc:
                    assert exc.code() == grpc.StatusCode.UNAVAILABLE
                    assert reason_and_retry(exc)[0] == "DRAINING"
                try:
                    await client.create_llm(lpb.Llm(display_name="late",
                                                    endpoints=[endpoint(sim)]),
                                            skip_validation=True)
                    raise AssertionError("a unary call was accepted while draining")
                except grpc.aio.AioRpcError as exc:
                    assert exc.code() == grpc.StatusCode.UNAVAILABLE
                reply = await asyncio.wait_for(in_flight, 10.0)
                assert reply.complete and reply.text == PACED.text
            code = await asyncio.to_thread(proc.wait, 15)
            assert code == 0
            assert len(sim.requests) == 1
        finally:
            if proc.poll() is None:
                proc.kill()
