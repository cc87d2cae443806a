"""Session turns start from the replica's cached session, checked against the store meanwhile.

What is promised (``server.sessions``): a session turn's upstream request never waits for the
store; the cached copy's version is checked while that request is in flight, and a session
changed elsewhere (another replica appended a turn) restarts the turn from the stored
history before any output, so the caller sees one turn built on the current history.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import grpc
import pytest
from switchboard_client import AsyncClient
from switchboard_client.errors import SwitchboardError

from server.accounts import DEFAULT_ACCOUNT
from server.app import Switchboard
from server.simulator import Behavior, Simulator
from server.store.sqlite import SqliteStore
from tests.support import API_KEY, create_llm, endpoint, running, settings


@pytest.fixture
async def server(tmp_path: Path) -> AsyncIterator[Switchboard]:
    """Probes off: the simulator then sees the turns' requests only."""
    async with running(settings(tmp_path, probes_per_hour=0)) as app:
        yield app


@pytest.fixture
async def client(server: Switchboard) -> AsyncIterator[AsyncClient]:
    async with AsyncClient(f"127.0.0.1:{server.port}", API_KEY) as c:
        yield c


def _roles_and_text(body: dict[str, object]) -> list[tuple[str, str]]:
    messages = body["messages"]
    assert isinstance(messages, list)
    return [(m["role"], m["content"]) for m in messages]


async def test_a_cached_session_turn_sends_its_request_while_the_store_is_busy(
        server: Switchboard, client: AsyncClient) -> None:
    async with Simulator("openai", Behavior(text="Noted.")) as sim:
        llm = await create_llm(client, endpoint(sim))
        session = await client.create_session(llm.id, system_prompt="Be brief.")
        await client.reply("My name is Ada.", session_id=session.id)
        store = server.store
        assert isinstance(store, SqliteStore)
        release = threading.Event()
        # The store's one thread is held: any read of the session now waits for `release`.
        held = asyncio.ensure_future(store._run(release.wait))
        turn = asyncio.ensure_future(client.reply("What is my name?", session_id=session.id))
        try:
            requests = await sim.wait_for_requests(2)  # went out with the store still held
        finally:
            release.set()
        await held
        reply = await turn
        assert reply.complete and reply.text == "Noted."
        assert _roles_and_text(requests[1].body) == [
            ("system", "Be brief."), ("user", "My name is Ada."), ("assistant", "Noted."),
            ("user", "What is my name?")]


async def test_a_session_changed_elsewhere_restarts_the_turn_before_any_output(
        server: Switchboard, client: AsyncClient) -> None:
    async with Simulator("openai", Behavior(text="Noted.")) as sim:
        llm = await create_llm(client, endpoint(sim))
        session = await client.create_session(llm.id)
        await client.reply("My name is Ada.", session_id=session.id)
        # Another replica runs a turn (claim, then history write): the store moves on, this
        # replica's cache does not.
        assert server.store is not None
        now = datetime.now(UTC)
        claim = await server.store.claim_turn(session.id, "turn_other", now,
                                              now + timedelta(minutes=5))
        assert claim is not None and claim.claimed
        other = [{"role": "user", "parts": [{"text": "I live in Lisbon."}]},
                 {"role": "assistant", "parts": [{"text": "Nice."}]}]
        assert await server.store.end_turn(session.id, "turn_other", claim.version, other,
                                           now + timedelta(hours=1))

        events = [e async for e in client.converse("Where do I live?", session_id=session.id)]

        kinds = [type(e).__name__ for e in events]
        assert kinds.count("TurnStarted") == 1 and kinds.count("RouteDecision") == 1, kinds
        assert kinds[0] == "TurnStarted" and kinds[-1] == "TurnFinished"
        # The stale attempt's request went out (nothing waited for the store), then the turn
        # restarted from the stored history; only the restarted one produced output.
        assert len(sim.requests) == 3
        assert _roles_and_text(sim.requests[-1].body) == [
            ("user", "My name is Ada."), ("assistant", "Noted."),
            ("user", "I live in Lisbon."), ("assistant", "Nice."), ("user", "Where do I live?")]
        stored = await client.get_session(session.id)
        assert stored.turn_count == 3 and len(stored.messages) == 6
        # The cache holds the written-back session: the next turn needs no restart.
        await client.reply("Thanks.", session_id=session.id)
        assert len(sim.requests) == 4
        assert _roles_and_text(sim.requests[-1].body)[-2:] == [
            ("assistant", "Noted."), ("user", "Thanks.")]


async def test_an_ended_session_is_not_served_from_the_cache(
        server: Switchboard, client: AsyncClient) -> None:
    async with Simulator("openai", Behavior(text="Noted.")) as sim:
        llm = await create_llm(client, endpoint(sim))
        session = await client.create_session(llm.id)
        await client.reply("Hi", session_id=session.id)
        assert server.store is not None
        # Deleted behind this replica's back (another replica ended it).
        assert await server.store.delete_session(DEFAULT_ACCOUNT, session.id)
        with pytest.raises(SwitchboardError) as caught:
            await client.reply("Still there?", session_id=session.id)
        assert caught.value.reason == "SESSION_NOT_FOUND"
        assert caught.value.code() == grpc.StatusCode.NOT_FOUND


async def test_a_turn_cancelled_while_its_claim_is_in_flight_frees_the_session(
        server: Switchboard, client: AsyncClient) -> None:
    async with Simulator("openai", Behavior(text="Noted.", ttft_s=30.0)) as sim:
        llm = await create_llm(client, endpoint(sim))
        session = await client.create_session(llm.id)
        store = server.store
        assert isinstance(store, SqliteStore)
        release = threading.Event()
        held = asyncio.ensure_future(store._run(release.wait))  # the claim queues behind it
        turn = asyncio.ensure_future(client.reply("Are you there?", session_id=session.id))
        try:
            await sim.wait_for_requests(1)  # the cached turn's request is out, its claim is not
            turn.cancel()  # the caller leaves before any output
            with pytest.raises(asyncio.CancelledError):
                await turn
            await sim.wait_for_disconnect(0)  # the server saw it go
        finally:
            release.set()
        await held
        # The claim landed after the caller left; the turn is written as cut short and the
        # session freed, so a barge-in turn (it waits for the session) gets it at once.
        sim.behavior = Behavior(text="Yes.")
        reply = await client.reply("Hello?", session_id=session.id, barge_in=True)
        assert reply.complete and reply.text == "Yes."
        stored = await client.get_session(session.id)
        texts = [m.parts[0].text for m in stored.messages]
        assert texts == ["Are you there?", "Hello?", "Yes."]
