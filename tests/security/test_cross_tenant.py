"""Cross-tenant attempts on every RPC and HTTP route, over the real ports.

Account B holds a valid key and knows account A's LLM, endpoint and session ids. Every RPC of
``LlmRegistry`` and ``Conversations`` (and the HTTP front door's routes) answers NOT_FOUND
(404), exactly like an id that does not exist, and A's upstream receives nothing. RPCs a server
does not implement yet may answer UNIMPLEMENTED instead; none may answer OK or reveal A's data.
(tests/integration/test_tenancy.py checks the wording in detail for the main RPCs.)
"""

from __future__ import annotations

import socket
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import aiohttp
import grpc
import pytest
from google.protobuf import field_mask_pb2
from switchboard.v1 import conversations_pb2 as cpb
from switchboard.v1 import llm_pb2 as lpb
from switchboard.v1 import registry_pb2 as rpb
from switchboard_client import AsyncClient

from server.accounts import AccountAdmin
from server.app import Switchboard
from server.simulator import Behavior, Simulator
from tests.support import create_llm, endpoint, settings

REFUSED = {grpc.StatusCode.NOT_FOUND, grpc.StatusCode.UNIMPLEMENTED}


async def refused(name: str, call: Callable[[], Awaitable[Any]]) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as err:
        result = call()
        if hasattr(result, "__aiter__"):
            async for _ in result:
                pass
        else:
            await result
    assert err.value.code() in REFUSED, (name, err.value.code(), err.value.details())
    text = f"{err.value.details()} {err.value.trailing_metadata()}"
    assert "acme" not in text, name


async def test_every_rpc_refuses_another_accounts_ids(tmp_path: Path) -> None:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    app = Switchboard(settings(tmp_path, probes_per_hour=0), http_sock=sock)
    await app.start()
    try:
        assert app.store is not None
        admin = AccountAdmin(app.store)
        acme, globex = await admin.create_account("acme"), await admin.create_account("globex")
        key_a, key_b = await admin.create_key(acme), await admin.create_key(globex)
        target = f"127.0.0.1:{app.port}"
        async with Simulator("openai", Behavior(text="acme answer")) as sim, \
                AsyncClient(target, key_a.plaintext.reveal()) as a, \
                AsyncClient(target, key_b.plaintext.reveal()) as b:
            llm = await create_llm(a, endpoint(sim, key="sk-acme-upstream-key"), name="acme-bot")
            session = await a.create_session(llm.id, system_prompt="acme secrets")
            await a.reply("hi", session_id=session.id)
            before = len(sim.requests)
            auth = (("authorization", f"Bearer {key_b.plaintext.reveal()}"),)
            reg, conv = b.registry, b.conversations
            calls: dict[str, Callable[[], Any]] = {
                "GetLlm": lambda: reg.GetLlm(rpb.GetLlmRequest(llm_id=llm.id), metadata=auth),
                "UpdateLlm": lambda: reg.UpdateLlm(rpb.UpdateLlmRequest(
                    llm=lpb.Llm(id=llm.id, display_name="pwned"),
                    update_mask=field_mask_pb2.FieldMask(paths=["display_name"]),
                    skip_validation=True), metadata=auth),
                "DeleteLlm": lambda: reg.DeleteLlm(rpb.DeleteLlmRequest(llm_id=llm.id),
                                                   metadata=auth),
                "ValidateLlm": lambda: reg.ValidateLlm(rpb.ValidateLlmRequest(
                    llm_id=llm.id, endpoint_id=llm.endpoints[0].id), metadata=auth),
                "GetRoutingState": lambda: reg.GetRoutingState(
                    rpb.GetRoutingStateRequest(llm_id=llm.id), metadata=auth),
                "CreateSession": lambda: conv.CreateSession(
                    cpb.CreateSessionRequest(llm_id=llm.id), metadata=auth),
                "GetSession": lambda: conv.GetSession(
                    cpb.GetSessionRequest(session_id=session.id), metadata=auth),
                "EndSession": lambda: conv.EndSession(
                    cpb.EndSessionRequest(session_id=session.id), metadata=auth),
                "UpdateSession": lambda: conv.UpdateSession(cpb.UpdateSessionRequest(
                    session_id=session.id, session=cpb.Session(system_prompt="pwned"),
                    update_mask=field_mask_pb2.FieldMask(paths=["system_prompt"])),
                    metadata=auth),
                "TruncateTurn": lambda: conv.TruncateTurn(cpb.TruncateTurnRequest(
                    session_id=session.id, turn_id="turn_x", heard_text_chars=1),
                    metadata=auth),
                "Converse(session)": lambda: conv.Converse(cpb.ConverseRequest(
                    session_id=session.id, messages=[cpb.Message(
                        role=cpb.ROLE_USER, parts=[cpb.ContentPart(text="hi")])]),
                    metadata=auth),
                "Converse(llm)": lambda: conv.Converse(cpb.ConverseRequest(
                    llm_id=llm.id, messages=[cpb.Message(
                        role=cpb.ROLE_USER, parts=[cpb.ContentPart(text="hi")])]),
                    metadata=auth),
            }
            for name, call in calls.items():
                await refused(name, call)
            assert [x async for x in b.list_llms()] == []

            base = f"http://127.0.0.1:{app.http_port}"
            headers = {"Authorization": f"Bearer {key_b.plaintext.reveal()}"}
            async with aiohttp.ClientSession() as http:
                async with http.get(f"{base}/v1/models/{llm.id}", headers=headers) as r:
                    assert r.status == 404
                async with http.get(f"{base}/v1/models", headers=headers) as r:
                    assert llm.id not in await r.text()
                async with http.post(f"{base}/v1/chat/completions", headers=headers, json={
                        "model": llm.id, "messages": [{"role": "user", "content": "hi"}]}) as r:
                    assert r.status == 404

            assert len(sim.requests) == before  # nothing reached A's upstream
            got = await a.get_llm(llm.id)
            assert got.display_name == "acme-bot"
            assert (await a.get_session(session.id)).system_prompt == "acme secrets"
    finally:
        await app.stop(grace_s=1.0)
