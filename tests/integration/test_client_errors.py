"""The Python client surfaces the server's error model: a typed ``SwitchboardError`` from every
call (unary and streaming, sync and async), and both clients have the same methods."""

from __future__ import annotations

import asyncio
import inspect

import grpc
import pytest
from switchboard.v1 import llm_pb2 as lpb
from switchboard_client import AsyncClient, Client, SwitchboardError
from switchboard_client.client import DEFAULT_TIMEOUT_S

from server.app import Switchboard
from server.simulator import Behavior, Fault, FaultKind, Simulator
from tests.support import API_KEY, create_llm, endpoint

UNARY = ("create_llm", "get_llm", "update_llm", "delete_llm", "create_session", "get_session",
         "end_session")


def _public(cls: type) -> dict[str, inspect.Signature]:
    return {name: inspect.signature(fn) for name, fn in vars(cls).items()
            if callable(fn) and not name.startswith("_")}


def test_client_and_async_client_have_the_same_methods_and_arguments() -> None:
    sync, aio = _public(Client), _public(AsyncClient)
    assert sorted(sync) == sorted(aio)
    for name in sync:
        assert list(sync[name].parameters) == list(aio[name].parameters), name
    for name in (*UNARY, "list_llms", "validate_llm"):
        for sig in (sync[name], aio[name]):
            assert sig.parameters["timeout"].default == DEFAULT_TIMEOUT_S, name


async def test_async_calls_raise_typed_errors(client: AsyncClient, server: Switchboard) -> None:
    with pytest.raises(SwitchboardError) as bad:
        await client.create_llm(lpb.Llm(display_name="x"))
    assert bad.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert bad.value.reason == "INVALID_ARGUMENT"
    assert [v.field for v in bad.value.field_violations] == ["llm.endpoints"]
    assert bad.value.request_id
    with pytest.raises(SwitchboardError) as missing:
        await client.get_session("ses_doesnotexist")
    assert missing.value.code() == grpc.StatusCode.NOT_FOUND
    async with AsyncClient(f"127.0.0.1:{server.port}", "wrong-key") as stranger:
        with pytest.raises(SwitchboardError) as denied:
            async for _ in stranger.list_llms():
                pass
    assert denied.value.code() == grpc.StatusCode.UNAUTHENTICATED
    assert denied.value.reason == "API_KEY_INVALID"
    # the dev key "dev-key" is accepted, so the message must not say keys look like sb_...
    assert "SWITCHBOARD_API_KEYS" in denied.value.message
    assert "not a Switchboard key" not in denied.value.message


async def test_streaming_failure_carries_retry_delay(client: AsyncClient) -> None:
    limited = Behavior(text="x", fault=Fault(FaultKind.RATE_LIMITED, retry_after_s=30.0))
    async with Simulator("openai", limited) as sim:
        llm = await create_llm(client, endpoint(sim))
        with pytest.raises(SwitchboardError) as exc:
            await client.reply("hi", llm_id=llm.id)
    assert exc.value.code() == grpc.StatusCode.UNAVAILABLE
    assert exc.value.retry_delay_s is not None and exc.value.retry_delay_s >= 29
    assert exc.value.reason


async def test_refused_registration_carries_its_validation_report(client: AsyncClient) -> None:
    async with Simulator("openai", Behavior(fault=Fault(FaultKind.UNAUTHORIZED))) as sim:
        with pytest.raises(SwitchboardError) as exc:
            await client.create_llm(lpb.Llm(display_name="refused", endpoints=[endpoint(sim)]))
    assert exc.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert exc.value.validation is not None and not exc.value.validation.passed
    failed = [c.check for r in exc.value.validation.endpoints for c in r.checks
              if c.status == 3]  # CHECK_STATUS_FAIL
    assert "auth.key_accepted" in failed


async def test_sync_client_raises_the_same_typed_error(server: Switchboard) -> None:
    def run() -> SwitchboardError:
        with Client(f"127.0.0.1:{server.port}", API_KEY) as sb:
            try:
                list(sb.converse("hi", llm_id="llm_doesnotexist"))
            except SwitchboardError as exc:
                return exc
        raise AssertionError("expected a SwitchboardError")

    exc = await asyncio.to_thread(run)
    assert exc.code() == grpc.StatusCode.NOT_FOUND and exc.reason
    assert "NOT_FOUND" in str(exc) and exc.request_id in str(exc)
