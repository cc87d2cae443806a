"""Bad input gets the right status, a field violation, and an actionable message."""

from __future__ import annotations

import grpc
import pytest
from google.rpc import error_details_pb2
from grpc_status import rpc_status
from switchboard.v1 import conversations_pb2 as cpb
from switchboard.v1 import llm_pb2 as lpb
from switchboard.v1 import registry_pb2 as rpb
from switchboard_client import AsyncClient

from server.app import Switchboard
from server.simulator import Behavior, Simulator
from tests.support import create_llm, endpoint


def details(exc: grpc.aio.AioRpcError) -> tuple[list[str], error_details_pb2.ErrorInfo]:
    status = rpc_status.from_call(exc)
    assert status is not None, "no google.rpc.Status in the trailers"
    fields: list[str] = []
    info = error_details_pb2.ErrorInfo()
    infos = 0
    for d in status.details:
        if d.Is(error_details_pb2.BadRequest.DESCRIPTOR):
            br = error_details_pb2.BadRequest()
            d.Unpack(br)
            fields += [v.field for v in br.field_violations]
        if d.Is(error_details_pb2.ErrorInfo.DESCRIPTOR):
            d.Unpack(info)
            infos += 1
    assert infos == 1, "exactly one ErrorInfo"
    return fields, info


def good_endpoint() -> lpb.Endpoint:
    return lpb.Endpoint(api_spec=lpb.API_SPEC_OPENAI, base_url="http://127.0.0.1:9/v1",
                        model="m", api_key="sk-x")


@pytest.mark.parametrize(
    ("mutate", "field"),
    [
        (lambda llm: llm.ClearField("endpoints"), "llm.endpoints"),
        (lambda llm: setattr(llm.endpoints[0], "api_spec", 99), "llm.endpoints[0].api_spec"),
        (lambda llm: setattr(llm.endpoints[0], "api_spec", 0), "llm.endpoints[0].api_spec"),
        (lambda llm: setattr(llm.endpoints[0], "base_url", "not a url"),
         "llm.endpoints[0].base_url"),
        (lambda llm: setattr(llm.endpoints[0], "base_url", "ftp://example.com/v1"),
         "llm.endpoints[0].base_url"),
        (lambda llm: setattr(llm.endpoints[0], "model", ""), "llm.endpoints[0].model"),
        (lambda llm: setattr(llm, "display_name", ""), "llm.display_name"),
    ],
    ids=["no-endpoints", "unknown-spec", "unset-spec", "malformed-url", "ftp-url",
         "missing-model", "missing-name"],
)
async def test_create_llm_rejects_bad_fields(client: AsyncClient, mutate: object,
                                             field: str) -> None:
    llm = lpb.Llm(display_name="x", endpoints=[good_endpoint()])
    mutate(llm)  # type: ignore[operator]
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await client.create_llm(llm, skip_validation=True)
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    fields, info = details(err.value)
    assert field in fields
    assert field.split(".")[-1] in (err.value.details() or "")
    assert info.domain == "switchboard.dev"
    assert list([x async for x in client.list_llms()]) == []  # nothing stored


async def test_unknown_ids_are_not_found(client: AsyncClient) -> None:
    for call in (client.get_llm("llm_nope"), client.get_session("ses_nope"),
                 client.create_session("llm_nope")):
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await call
        assert err.value.code() == grpc.StatusCode.NOT_FOUND
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await client.reply("hi", llm_id="llm_nope")
    assert err.value.code() == grpc.StatusCode.NOT_FOUND
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await client.reply("hi", session_id="ses_nope")
    assert err.value.code() == grpc.StatusCode.NOT_FOUND


async def test_converse_input_violations(client: AsyncClient, server: Switchboard) -> None:
    async with Simulator("openai") as sim:
        llm = await create_llm(client, endpoint(sim))
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await client.reply([], llm_id=llm.id)
        assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert "messages" in details(err.value)[0]
        big = "x" * (server.settings.max_message_bytes + 1)
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await client.reply(big, llm_id=llm.id)
        assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert "messages[0]" in details(err.value)[0]
        assert "over the limit" in (err.value.details() or "")
        assert sim.requests == []  # nothing reached the upstream


async def test_negative_page_size(client: AsyncClient) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await client.registry.ListLlms(rpb.ListLlmsRequest(page_size=-1),
                                       metadata=client._metadata)
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert details(err.value)[0] == ["page_size"]


async def test_bad_page_token(client: AsyncClient) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await client.registry.ListLlms(rpb.ListLlmsRequest(page_token="garbage!"),
                                       metadata=client._metadata)
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT


async def test_pagination_walks_every_llm_once(client: AsyncClient) -> None:
    created = {(await create_llm(client, good_endpoint(), name=f"llm{i}")).id for i in range(7)}
    seen = [llm.id async for llm in client.list_llms(page_size=3)]
    assert sorted(seen) == sorted(created)


async def test_missing_and_wrong_api_key(server: Switchboard) -> None:
    async with AsyncClient(f"127.0.0.1:{server.port}", "wrong-key") as bad:
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await bad.get_llm("llm_x")
        assert err.value.code() == grpc.StatusCode.UNAUTHENTICATED
    channel = grpc.aio.insecure_channel(f"127.0.0.1:{server.port}")
    try:
        from switchboard.v1 import registry_pb2_grpc

        stub = registry_pb2_grpc.LlmRegistryStub(channel)
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await stub.GetLlm(rpb.GetLlmRequest(llm_id="x"))
        assert err.value.code() == grpc.StatusCode.UNAUTHENTICATED
        assert "authorization" in (err.value.details() or "")
    finally:
        await channel.close()


@pytest.mark.parametrize(
    "fault", ["garbage", "html_error_page", "cut_after", "reset_before_headers"])
async def test_upstream_garbage_is_unavailable_and_server_keeps_serving(
        client: AsyncClient, fault: str) -> None:
    from server.simulator import Fault, FaultKind

    kind = FaultKind(fault)
    broken = Behavior(text="one two three four five six", fault=Fault(kind, chunk=2))
    async with Simulator("openai", broken) as sim:
        llm = await create_llm(client, endpoint(sim),
                               routing=lpb.RoutingPolicy(hedging=False))
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await client.reply("hello", llm_id=llm.id)
        assert err.value.code() == grpc.StatusCode.UNAVAILABLE
        message = err.value.details() or ""
        assert message and "Traceback" not in message
        sim.behavior = Behavior(text="fine now")
        # the circuit may have opened after repeated failures; the next healthy turn must work
        # once it admits a trial, and the server itself must still be up
        assert (await client.get_llm(llm.id)).id == llm.id


async def test_one_garbage_answer_is_retried_with_backoff(client: AsyncClient) -> None:
    """A single endpoint that fails once before the first token: retried, and the turn wins."""
    from server.simulator import Fault, FaultKind

    async with Simulator("openai", Behavior(fault=Fault(FaultKind.GARBAGE), fault_times=1,
                                            text="recovered")) as sim:
        llm = await create_llm(client, endpoint(sim))
        reply = await client.reply("hello", llm_id=llm.id)
        assert reply.text == "recovered" and reply.complete
        assert reply.finished is not None and reply.finished.attempts == 2
        assert len(sim.requests) == 2
        gap = sim.requests[1].received_at - sim.requests[0].received_at
        assert gap > 0.04, "a retry of the same endpoint waits a jittered backoff"


async def test_stateless_converse_sends_full_history(client: AsyncClient) -> None:
    async with Simulator("openai", Behavior(text="ok")) as sim:
        llm = await create_llm(client, endpoint(sim))
        messages = [
            cpb.Message(role=cpb.ROLE_SYSTEM, parts=[cpb.ContentPart(text="sys")]),
            cpb.Message(role=cpb.ROLE_USER, parts=[cpb.ContentPart(text="q1")]),
            cpb.Message(role=cpb.ROLE_ASSISTANT, parts=[cpb.ContentPart(text="a1")]),
            cpb.Message(role=cpb.ROLE_USER, parts=[cpb.ContentPart(text="q2")]),
        ]
        reply = await client.reply(messages, llm_id=llm.id)
        assert reply.text == "ok"
        sent = sim.requests[-1].body["messages"]
        assert [m["role"] for m in sent] == ["system", "user", "assistant", "user"]
        assert sent[-1]["content"] in ("q2", [{"type": "text", "text": "q2"}])


async def test_an_unexpected_failure_is_internal_with_a_request_id(
        client: AsyncClient, server: Switchboard) -> None:
    assert server.store is not None
    await server.store.close()  # every store call now raises a plain RuntimeError
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await client.get_llm("llm_any")
    assert err.value.code() == grpc.StatusCode.INTERNAL
    message = err.value.details() or ""
    assert "request id" in message and "store is not open" not in message
    _, info = details(err.value)
    assert info.reason == "INTERNAL"
