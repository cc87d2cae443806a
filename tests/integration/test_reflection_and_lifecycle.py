"""What a grpcurl user and an operator rely on: reflection, health, cancellation, drain, restart."""

from __future__ import annotations

import asyncio
import signal
from pathlib import Path
from typing import Any

import grpc
from google.protobuf import descriptor_pool, json_format, message_factory
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2
from grpc_reflection.v1alpha.proto_reflection_descriptor_database import (
    ProtoReflectionDescriptorDatabase,
)
from switchboard.v1 import llm_pb2 as lpb
from switchboard_client import AsyncClient, Client, Reply
from switchboard_client.client import _converse_request

from server.app import Switchboard
from server.simulator import Behavior, Simulator
from tests.support import API_KEY, create_llm, endpoint, server_env, start_server_process


def _reflect_and_converse(port: int, llm_id: str) -> tuple[list[str], list[dict[str, Any]]]:
    """Does what grpcurl does: discover services by reflection, then call Converse from JSON."""
    with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
        db = ProtoReflectionDescriptorDatabase(channel)
        services = list(db.get_services())
        pool = descriptor_pool.DescriptorPool(db)
        service = pool.FindServiceByName("switchboard.v1.Conversations")
        method = service.methods_by_name["Converse"]
        request_cls = message_factory.GetMessageClass(method.input_type)
        response_cls = message_factory.GetMessageClass(method.output_type)
        body = {"llmId": llm_id, "messages": [{"role": "ROLE_USER", "parts": [{"text": "hi"}]}]}
        request = json_format.ParseDict(body, request_cls())
        call: grpc.UnaryStreamMultiCallable[Any, Any] = channel.unary_stream(
            "/switchboard.v1.Conversations/Converse",
            request_serializer=lambda m: m.SerializeToString(),
            response_deserializer=response_cls.FromString,
        )
        events = [json_format.MessageToDict(r) for r in
                  call(request, metadata=(("authorization", f"Bearer {API_KEY}"),))]
        # reflection v1 (what grpcurl tries first) answers with the same wire messages
        v1 = channel.stream_stream(
            "/grpc.reflection.v1.ServerReflection/ServerReflectionInfo",
            request_serializer=reflection_pb2.ServerReflectionRequest.SerializeToString,
            response_deserializer=reflection_pb2.ServerReflectionResponse.FromString,
        )
        answer = next(iter(v1(iter([reflection_pb2.ServerReflectionRequest(list_services="")]))))
        v1_services = [s.name for s in answer.list_services_response.service]
        assert v1_services == services
    return services, events


async def test_reflection_lists_services_and_calls_converse_from_json(
        client: AsyncClient, server: Switchboard) -> None:
    async with Simulator("openai", Behavior(text="hello from json",
                                            reasoning="thinking")) as sim:
        llm = await create_llm(client, endpoint(sim))
        services, events = await asyncio.to_thread(_reflect_and_converse, server.port, llm.id)
    for name in ("switchboard.v1.LlmRegistry", "switchboard.v1.Conversations",
                 "grpc.health.v1.Health"):
        assert name in services
    kinds = [next(iter(e)) for e in events]
    assert kinds[0] == "started" and kinds[-1] == "finished"
    assert "reasoning" in kinds
    text = "".join(e["text"]["delta"] for e in events if "text" in e)
    assert text == "hello from json"


async def test_health_serving(server: Switchboard) -> None:
    async with grpc.aio.insecure_channel(f"127.0.0.1:{server.port}") as channel:
        stub = health_pb2_grpc.HealthStub(channel)
        for service in ("", "switchboard.v1.Conversations"):
            res = await stub.Check(health_pb2.HealthCheckRequest(service=service))
            assert res.status == health_pb2.HealthCheckResponse.SERVING


async def test_cancel_closes_the_upstream_request(client: AsyncClient) -> None:
    """The upstream would stream for 10 s; cancelling the call hangs up on it mid-answer.
    (Not timed against the host: a loaded machine delays the close, it does not change it.)"""
    slow = Behavior(text=" ".join(f"w{i}" for i in range(200)), chunks=200, chunk_gap_s=0.05)
    async with Simulator("openai", slow) as sim:
        llm = await create_llm(client, endpoint(sim))
        call = client.conversations.Converse(
            _converse_request("", llm.id, "talk"), metadata=client._metadata)
        async for response in call:
            if response.WhichOneof("event") == "text":
                break
        call.cancel()
        record = await sim.wait_for_end(index=-1, timeout=5.0)
        assert record.disconnected and record.completed_at is None
        assert record.chunks_sent < 200


async def test_deadline_closes_upstream_and_returns_deadline_exceeded(
        client: AsyncClient) -> None:
    hang = Behavior(text="late", ttft_s=5.0)
    async with Simulator("openai", hang) as sim:
        llm = await create_llm(client, endpoint(sim))
        try:
            await client.reply("hi", llm_id=llm.id, timeout=0.3)
            raise AssertionError("expected DEADLINE_EXCEEDED")
        except grpc.aio.AioRpcError as exc:
            assert exc.code() == grpc.StatusCode.DEADLINE_EXCEEDED
        # hung up on before its first token (5 s away), not left to answer
        record = await sim.wait_for_end(index=-1, timeout=4.0)
        assert record.disconnected and record.first_chunk_at is None


async def test_sigterm_finishes_the_stream_then_restart_keeps_llms(tmp_path: Path) -> None:
    env = server_env(tmp_path)
    paced = Behavior(text=" ".join(f"w{i}" for i in range(30)), chunks=30, chunk_gap_s=0.05)
    async with Simulator("openai", paced) as sim:
        proc, port = await asyncio.to_thread(start_server_process, env)
        try:
            def run() -> tuple[str, Reply, int]:
                with Client(f"127.0.0.1:{port}", API_KEY) as sb:
                    llm = sb.create_llm(lpb.Llm(
                        display_name="kept", endpoints=[endpoint(sim)]), skip_validation=True).llm
                    reply = Reply()
                    for i, event in enumerate(sb.converse("go", llm_id=llm.id)):
                        reply.apply(event)
                        if i == 4:
                            proc.send_signal(signal.SIGTERM)
                    return llm.id, reply, proc.wait(timeout=15)

            llm_id, reply, code = await asyncio.to_thread(run)
        finally:
            if proc.poll() is None:
                proc.kill()
        assert reply.complete and reply.text == paced.text
        assert code == 0
        proc, port = await asyncio.to_thread(start_server_process, env)
        try:
            def check() -> list[str]:
                with Client(f"127.0.0.1:{port}", API_KEY) as sb:
                    return [llm.id for llm in sb.list_llms()]

            assert await asyncio.to_thread(check) == [llm_id]
        finally:
            proc.send_signal(signal.SIGTERM)
            await asyncio.to_thread(proc.wait, 15)
