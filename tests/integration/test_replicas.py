"""Two replicas sharing one PostgreSQL database and the same master keys.

What is promised: LLMs, sessions and caller keys live in the database, so every replica
sees every write (a session continues on any replica); each replica keeps its own live
latency view; a deleted LLM stops serving turns on another replica within the registry's
cache time (``RegistryService`` ``cache_ttl_s``, 2 s), and reads (GetLlm, ListLlms,
GetSession) see the delete at once.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import grpc
import pytest
from switchboard.v1 import conversations_pb2 as cpb
from switchboard.v1 import llm_pb2 as lpb
from switchboard_client import AsyncClient

from server.accounts import AccountAdmin
from server.app import Switchboard
from server.simulator import Behavior, Simulator
from tests.support import API_KEY, create_llm, endpoint, master_keys, running, settings

pytestmark = pytest.mark.postgres

CACHE_TTL_S = 2.0  # RegistryService's default, which the app uses


@dataclass
class Replicas:
    a: Switchboard
    b: Switchboard
    client_a: AsyncClient
    client_b: AsyncClient


@pytest.fixture
async def replicas(tmp_path: Path, pg_dsn: str) -> AsyncIterator[Replicas]:
    keys = master_keys()
    # Probes off: a replica's latency view then holds only the turns it served itself.
    s = settings(tmp_path, database=pg_dsn, master_keys=keys, probes_per_hour=0)
    async with running(s) as a, running(s) as b, \
            AsyncClient(f"127.0.0.1:{a.port}", API_KEY) as ca, \
            AsyncClient(f"127.0.0.1:{b.port}", API_KEY) as cb:
        yield Replicas(a, b, ca, cb)


@pytest.fixture
async def sim() -> AsyncIterator[Simulator]:
    async with Simulator("openai", Behavior(text="Noted.")) as s:
        yield s


def texts(body: dict[str, object]) -> list[tuple[str, str]]:
    messages = body["messages"]
    assert isinstance(messages, list)
    return [(m["role"], m["content"]) for m in messages]


async def test_an_llm_created_on_one_replica_is_served_by_the_other(
        replicas: Replicas, sim: Simulator) -> None:
    created = await create_llm(replicas.client_a, endpoint(sim), name="shared")
    got = await replicas.client_b.get_llm(created.id)
    assert (got.display_name, got.etag) == ("shared", created.etag)
    assert [x.id async for x in replicas.client_b.list_llms()] == [created.id]
    # B decrypts the endpoint key sealed by A (same master keys) and calls upstream with it.
    reply = await replicas.client_b.reply("Hi", llm_id=created.id)
    assert reply.text == "Noted."
    assert sim.requests[-1].headers["Authorization"] == "Bearer sk-test"


async def test_a_session_continues_on_the_other_replica(
        replicas: Replicas, sim: Simulator) -> None:
    llm = await create_llm(replicas.client_a, endpoint(sim))
    session = await replicas.client_a.create_session(llm.id, system_prompt="Be brief.")
    await replicas.client_a.reply("My name is Ada.", session_id=session.id)

    reply = await replicas.client_b.reply("What is my name?", session_id=session.id)
    assert reply.complete
    assert texts(sim.requests[-1].body) == [
        ("system", "Be brief."), ("user", "My name is Ada."), ("assistant", "Noted."),
        ("user", "What is my name?")]

    await replicas.client_a.reply("Thanks.", session_id=session.id)  # and back on A
    assert texts(sim.requests[-1].body)[-3:] == [
        ("user", "What is my name?"), ("assistant", "Noted."), ("user", "Thanks.")]
    stored = await replicas.client_b.get_session(session.id)
    assert len(stored.messages) == 6 and stored.turn_count == 3
    assert [m.role for m in stored.messages[:2]] == [cpb.ROLE_USER, cpb.ROLE_ASSISTANT]


async def test_each_replica_keeps_its_own_latency_view(
        replicas: Replicas, sim: Simulator) -> None:
    llm = await create_llm(replicas.client_a, endpoint(sim))
    for _ in range(3):
        await replicas.client_a.reply("Hi", llm_id=llm.id)

    on_a = (await replicas.client_a.get_llm(llm.id)).endpoints[0].health
    on_b = (await replicas.client_b.get_llm(llm.id)).endpoints[0].health
    assert on_a.samples >= 3 and on_a.ttft_estimate_ms > 0
    assert on_b.samples == 0 and on_b.ttft_estimate_ms == 0
    assert on_b.last_sample_age_seconds == -1.0


async def test_a_delete_on_one_replica_reaches_the_other(
        replicas: Replicas, sim: Simulator) -> None:
    llm = await create_llm(replicas.client_a, endpoint(sim))
    session = await replicas.client_b.create_session(llm.id)
    await replicas.client_b.reply("Hi", llm_id=llm.id)  # B now has the LLM in its cache

    await replicas.client_a.delete_llm(llm.id, etag=llm.etag)
    deleted_at = time.monotonic()

    # Reads go to the database: the delete shows at once, sessions included.
    for call in (replicas.client_b.get_llm(llm.id), replicas.client_b.get_session(session.id)):
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await call
        assert err.value.code() == grpc.StatusCode.NOT_FOUND
    assert [x.id async for x in replicas.client_b.list_llms()] == []

    # Turns resolve through B's cache, which may serve the LLM for up to CACHE_TTL_S more.
    while True:
        try:
            await replicas.client_b.reply("Still there?", llm_id=llm.id)
        except grpc.aio.AioRpcError as exc:
            assert exc.code() == grpc.StatusCode.NOT_FOUND
            break
        assert time.monotonic() - deleted_at < CACHE_TTL_S + 1.0, "B still serves the LLM"
        await asyncio.sleep(0.1)


async def test_a_caller_key_issued_through_one_replica_works_on_the_other(
        replicas: Replicas, sim: Simulator) -> None:
    assert replicas.a.store is not None
    admin = AccountAdmin(replicas.a.store)
    account = await admin.create_account("Acme")
    issued = await admin.create_key(account, description="replica test")

    async with AsyncClient(f"127.0.0.1:{replicas.b.port}",
                           issued.plaintext.reveal()) as acme_b, \
            AsyncClient(f"127.0.0.1:{replicas.a.port}", issued.plaintext.reveal()) as acme_a:
        created = await create_llm(acme_b, endpoint(sim), name="acme")
        assert [x.id async for x in acme_a.list_llms()] == [created.id]
    # The static development key's account does not see Acme's LLM on either replica.
    assert [x.id async for x in replicas.client_a.list_llms()] == []


async def test_a_replaced_key_resets_the_endpoints_circuit_on_every_replica(
        replicas: Replicas) -> None:
    """Issue 19: after UpdateLlm replaced a rejected key, the endpoint kept its open circuit
    (30 s for a rejected key) on every replica. A changed key, URL, model or spec is a new
    upstream: each replica resets its router state when its registry reads the new version."""
    async with Simulator("openai", Behavior(text="Noted."), api_key="sk-right-key") as sim:
        llm = await create_llm(replicas.client_a, endpoint(sim, key="sk-wrong-key"))
        for client in (replicas.client_a, replicas.client_b):
            with pytest.raises(grpc.aio.AioRpcError) as rejected:
                await client.reply("Hi", llm_id=llm.id)
            assert rejected.value.code() == grpc.StatusCode.FAILED_PRECONDITION
            with pytest.raises(grpc.aio.AioRpcError) as open_circuit:  # the circuit is open
                await client.reply("Hi", llm_id=llm.id)
            assert open_circuit.value.code() == grpc.StatusCode.UNAVAILABLE
        fixed = llm_with_key(llm, "sk-right-key")
        await replicas.client_a.update_llm(fixed, ["endpoints"], skip_validation=True)
        assert (await replicas.client_a.reply("Hi", llm_id=llm.id)).text == "Noted."
        await replicas.client_b.get_llm(llm.id)  # B reads the new version (as its refresh does)
        assert (await replicas.client_b.reply("Hi", llm_id=llm.id)).text == "Noted."


def llm_with_key(llm: lpb.Llm, key: str) -> lpb.Llm:
    out = lpb.Llm()
    out.CopyFrom(llm)
    for e in out.endpoints:
        e.api_key = key
    return out
