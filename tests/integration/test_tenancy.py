"""Accounts and caller API keys over gRPC.

What is promised: every RPC is authenticated by one interceptor; an unknown, malformed or
revoked key is UNAUTHENTICATED; another account's LLM or session is NOT_FOUND exactly like one
that does not exist, never appears in a list, and is never sent a request; a revoked key is
refused within the auth cache TTL (``AUTH_CACHE_TTL_S``, 1 s) without a restart, also in the
middle of a session; `switchboard admin` creates accounts and keys (shown once, stored hashed).
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
import pytest
from switchboard.v1 import llm_pb2 as lpb
from switchboard.v1 import registry_pb2 as rpb
from switchboard_client import AsyncClient
from switchboard_client.cli import main as cli_main

from server.accounts import AUTH_CACHE_TTL_S, AccountAdmin
from server.app import Switchboard
from server.clock import FakeClock
from server.simulator import Behavior, Simulator
from server.vault import apikeys
from tests.security_support import status_of
from tests.support import API_KEY, create_llm, endpoint, settings


@dataclass
class Tenants:
    app: Switchboard
    clock: FakeClock
    admin: AccountAdmin
    sim: Simulator
    a: AsyncClient  # account "acme"
    b: AsyncClient  # account "globex"
    a_key_id: str
    a_account: str


@pytest.fixture
async def tenants(tmp_path: Path) -> AsyncIterator[Tenants]:
    clock = FakeClock()
    app = Switchboard(settings(tmp_path, probes_per_hour=0), clock=clock)
    await app.start()
    assert app.store is not None
    admin = AccountAdmin(app.store)
    acme, globex = await admin.create_account("acme"), await admin.create_account("globex")
    key_a, key_b = await admin.create_key(acme, "ci"), await admin.create_key(globex)
    target = f"127.0.0.1:{app.port}"
    try:
        async with Simulator("openai", Behavior(text="mine"), api_key="sk-acme-upstream") as sim, \
                AsyncClient(target, key_a.plaintext.reveal()) as a, \
                AsyncClient(target, key_b.plaintext.reveal()) as b:
            yield Tenants(app, clock, admin, sim, a, b, key_a.key_id, acme)
    finally:
        await app.stop(grace_s=1.0)


async def not_found(call: Awaitable[Any]) -> grpc.aio.AioRpcError:
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await call
    assert err.value.code() == grpc.StatusCode.NOT_FOUND, err.value.details()
    return err.value


async def drain(stream: AsyncIterator[Any]) -> None:
    async for _ in stream:
        pass


async def test_another_accounts_llm_and_session_do_not_exist(tenants: Tenants) -> None:
    a, b, sim = tenants.a, tenants.b, tenants.sim
    llm = await create_llm(a, endpoint(sim, key="sk-acme-upstream"), name="acme-bot")
    session = await a.create_session(llm.id, system_prompt="acme secrets")
    assert (await a.reply("hi", session_id=session.id)).text == "mine"
    requests_before = len(sim.requests)

    foreign = await not_found(b.get_llm(llm.id))
    missing = await not_found(b.get_llm("llm_00000000000000000000"))
    # Indistinguishable from an id that does not exist: same reason, same words.
    assert status_of(foreign).info.reason == status_of(missing).info.reason == "LLM_NOT_FOUND"
    assert (foreign.details() or "").replace(llm.id, "ID") == \
        (missing.details() or "").replace("llm_00000000000000000000", "ID")

    assert [x.id async for x in b.list_llms()] == []
    assert [x.id async for x in a.list_llms()] == [llm.id]
    renamed = lpb.Llm(id=llm.id, display_name="pwned")
    await not_found(b.update_llm(renamed, ["display_name"], skip_validation=True))
    await not_found(b.delete_llm(llm.id))
    await not_found(drain(b.validate_llm(llm.id)))
    await not_found(b.create_session(llm.id))
    await not_found(b.get_session(session.id))
    await not_found(b.end_session(session.id))
    await not_found(b.reply("hi", session_id=session.id))
    await not_found(b.reply("hi", llm_id=llm.id))
    missing_session = await not_found(b.get_session("ses_00000000000000000000"))
    foreign_session = await not_found(b.get_session(session.id))
    assert (foreign_session.details() or "").replace(session.id, "ID") == \
        (missing_session.details() or "").replace("ses_00000000000000000000", "ID")

    # The static development key is the "default" account: it sees nothing of acme's either.
    async with AsyncClient(f"127.0.0.1:{tenants.app.port}", API_KEY) as default:
        assert [x async for x in default.list_llms()] == []
        await not_found(default.reply("hi", llm_id=llm.id))

    # Nothing reached the upstream, and acme's LLM and session are untouched.
    assert len(sim.requests) == requests_before
    assert (await a.get_llm(llm.id)).display_name == "acme-bot"
    assert len((await a.get_session(session.id)).messages) == 2
    assert (await a.reply("still mine?", session_id=session.id)).text == "mine"


async def unauthenticated(call: Callable[[], Awaitable[Any]]) -> str:
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await call()
    assert err.value.code() == grpc.StatusCode.UNAUTHENTICATED, err.value.details()
    return str(status_of(err.value).info.reason)


async def test_unknown_malformed_and_missing_keys_are_unauthenticated(tenants: Tenants) -> None:
    target = f"127.0.0.1:{tenants.app.port}"
    real = apikeys.generate()  # well formed, never stored
    stored_id = tenants.a_key_id
    wrong_secret = f"sb_{stored_id}_{'A' * 43}"  # a real key id, the wrong secret
    for key in ("nope", real.plaintext.reveal(), wrong_secret):
        async with AsyncClient(target, key) as c:
            assert await unauthenticated(lambda: drain(c.list_llms())) == "API_KEY_INVALID"
            assert await unauthenticated(lambda: c.reply("hi", llm_id="llm_x")) \
                == "API_KEY_INVALID"
    async with AsyncClient(target, API_KEY) as c:  # no authorization metadata at all
        reason = await unauthenticated(lambda: c.registry.ListLlms(rpb.ListLlmsRequest()))
        assert reason == "MISSING_API_KEY"


async def test_revoked_key_is_refused_mid_session_without_restart(tenants: Tenants) -> None:
    a = tenants.a
    llm = await create_llm(a, endpoint(tenants.sim, key="sk-acme-upstream"))
    session = await a.create_session(llm.id)
    assert (await a.reply("first", session_id=session.id)).complete
    second = await tenants.admin.create_key(tenants.a_account, "spare")

    await tenants.admin.revoke_key(tenants.a_key_id)
    tenants.clock.advance(AUTH_CACHE_TTL_S)  # the cached verdict expires
    assert await unauthenticated(lambda: a.reply("second", session_id=session.id)) \
        == "API_KEY_INVALID"
    assert await unauthenticated(lambda: a.get_session(session.id)) == "API_KEY_INVALID"
    # Revocation is per key: the account's other key continues the same session.
    async with AsyncClient(f"127.0.0.1:{tenants.app.port}", second.plaintext.reveal()) as spare:
        assert (await spare.reply("second", session_id=session.id)).complete
        assert len((await spare.get_session(session.id)).messages) == 4


async def test_admin_cli_manages_accounts_and_keys(
        tenants: Tenants, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("SWITCHBOARD_DATABASE", tenants.app.settings.database)

    async def cli(*args: str) -> str:
        assert await asyncio.to_thread(cli_main, list(args)) == 0
        return capsys.readouterr().out

    account = (await cli("admin", "create-account", "initech")).strip()
    assert re.fullmatch(r"acct_[0-9a-f]{20}", account)
    out = await cli("admin", "create-key", account, "--description", "billing job")
    header, key = out.strip().splitlines()
    key_id = apikeys.parse(key)
    assert header == f"key id {key_id} for account {account}; shown once:"
    listed = await cli("admin", "list-keys", account)
    assert f"{key_id}  active" in listed and "billing job" in listed
    assert key not in listed and key[-20:] not in listed  # the key is never shown again

    async with AsyncClient(f"127.0.0.1:{tenants.app.port}", key) as initech:
        assert [x async for x in initech.list_llms()] == []
        assert "revoked" in await cli("admin", "revoke-key", key_id)
        tenants.clock.advance(AUTH_CACHE_TTL_S)
        assert await unauthenticated(lambda: drain(initech.list_llms())) == "API_KEY_INVALID"
    assert f"{key_id}  revoked" in await cli("admin", "list-keys", account)

    assert await asyncio.to_thread(cli_main, ["admin", "create-key", "acct_nope"]) == 1
    assert "account 'acct_nope' not found" in capsys.readouterr().err
