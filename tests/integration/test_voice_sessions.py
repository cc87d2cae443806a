"""Voice rules for session turns, through the real gRPC server on SQLite and PostgreSQL.

- Barge-in by cancellation: a turn the caller cancels after text was streamed leaves the user's
  messages and an ``interrupted`` assistant message with the streamed text in the history;
  cancelled before any text, only the user's messages.
- TruncateTurn keeps what the user heard of the last turn's answer.
- One turn at a time: a second Converse fails with ABORTED ``SESSION_BUSY`` naming the running
  turn, unless it barges in, which interrupts the running turn first.
- UpdateSession replaces fields named by its mask.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import grpc
import pytest
from switchboard.v1 import conversations_pb2 as cpb
from switchboard_client import AsyncClient

from server.simulator import Behavior, Fault, FaultKind, Simulator
from tests.support import (
    API_KEY,
    create_llm,
    endpoint,
    error_info,
    master_keys,
    running,
    settings,
)

WORDS = "one two three four five six seven eight"


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def database(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "postgres":
        return str(request.getfixturevalue("pg_dsn"))
    return str(tmp_path / "switchboard.db")


@pytest.fixture
async def client(database: str, tmp_path: Path) -> AsyncIterator[AsyncClient]:
    async with running(settings(tmp_path, database=database, probes_per_hour=0)) as app, \
            AsyncClient(f"127.0.0.1:{app.port}", API_KEY) as c:
        yield c


@pytest.fixture
async def sim() -> AsyncIterator[Simulator]:
    async with Simulator("openai", Behavior(text=WORDS)) as s:
        yield s


def stalls_after(words: int) -> Behavior:
    """Streams ``words`` words, then holds the stream open (the caller barges in meanwhile)."""
    return Behavior(text=WORDS, fault=Fault(FaultKind.STALL_AFTER, chunk=words, seconds=600))


async def start_turn(client: AsyncClient, session_id: str, text: str, *, until: str,
                     **kwargs: Any) -> tuple[AsyncIterator[object], str, str]:
    """Starts a turn and reads until the text ``until`` arrived (deltas may coalesce);
    returns the open stream, the turn id and the text so far."""
    stream = client.converse(text, session_id=session_id, **kwargs)
    turn_id, heard = "", ""
    while len(heard) < len(until) or not turn_id:
        event = await anext(stream)
        if isinstance(event, cpb.TurnStarted):
            turn_id = event.turn_id
        elif isinstance(event, cpb.TextDelta):
            heard += event.delta
    return stream, turn_id, heard


def history(session: cpb.Session) -> list[tuple[int, str, bool]]:
    return [(m.role, "".join(p.text for p in m.parts), m.interrupted) for m in session.messages]


async def test_a_cancelled_answer_is_recorded_as_interrupted(
        client: AsyncClient, sim: Simulator) -> None:
    sim.behavior = stalls_after(3)
    llm = await create_llm(client, endpoint(sim))
    session = await client.create_session(llm.id)
    stream, turn_id, heard = await start_turn(client, session.id, "Count to eight.",
                                               until="one two three")
    assert heard == "one two three"
    await stream.aclose()  # type: ignore[attr-defined]  # the user started talking
    # TruncateTurn on the cancelled turn waits for its history write, then keeps it all.
    after = await client.truncate_turn(session.id, turn_id, len(heard))
    assert history(after) == [(cpb.ROLE_USER, "Count to eight.", False),
                              (cpb.ROLE_ASSISTANT, "one two three", True)]
    assert [m.turn_id for m in after.messages] == [turn_id, turn_id]
    assert after.running_turn_id == ""
    # The next turn's model sees the question and the interrupted answer.
    sim.behavior = Behavior(text="Sure.")
    reply = await client.reply("Stop.", session_id=session.id)
    assert reply.text == "Sure."
    sent = [(m["role"], m["content"]) for m in sim.requests[-1].body["messages"]]
    assert sent == [("user", "Count to eight."), ("assistant", "one two three"),
                    ("user", "Stop.")]


async def test_a_turn_cancelled_before_any_text_keeps_the_user_message(
        client: AsyncClient, sim: Simulator) -> None:
    sim.behavior = Behavior(text=WORDS, fault=Fault(FaultKind.SLOW, seconds=600))
    llm = await create_llm(client, endpoint(sim))
    session = await client.create_session(llm.id)
    stream = client.converse("Hello?", session_id=session.id)
    started = await anext(stream)
    assert isinstance(started, cpb.TurnStarted)
    await stream.aclose()  # type: ignore[attr-defined]
    after = await client.truncate_turn(session.id, started.turn_id, 0)
    assert history(after) == [(cpb.ROLE_USER, "Hello?", False)]


async def test_truncate_turn_keeps_what_was_heard_of_a_finished_answer(
        client: AsyncClient, sim: Simulator) -> None:
    llm = await create_llm(client, endpoint(sim))
    session = await client.create_session(llm.id)
    reply = await client.reply("Count.", session_id=session.id)
    assert reply.text == WORDS
    after = await client.truncate_turn(session.id, reply.turn_id, len("one two th"))
    assert history(after) == [(cpb.ROLE_USER, "Count.", False),
                              (cpb.ROLE_ASSISTANT, "one two th", True)]
    again = await client.truncate_turn(session.id, reply.turn_id, len("one two th"))
    assert history(again) == history(after)  # idempotent
    assert history(await client.truncate_turn(session.id, reply.turn_id, 999)) == history(after)
    # Heard nothing: the answer goes, the question stays.
    assert history(await client.truncate_turn(session.id, reply.turn_id, 0)) == [
        (cpb.ROLE_USER, "Count.", False)]


async def test_truncate_turn_drops_tool_calls_unless_all_text_was_heard(
        client: AsyncClient, sim: Simulator) -> None:
    sim.behavior = Behavior(text="Let me check.", tool_calls=[("weather", '{"city":"Oslo"}')])
    llm = await create_llm(client, endpoint(sim))
    session = await client.create_session(llm.id)
    first = await client.reply("Weather?", session_id=session.id)
    whole = await client.truncate_turn(session.id, first.turn_id, len("Let me check."))
    assert [len(m.tool_calls) for m in whole.messages] == [0, 1]
    assert not whole.messages[1].interrupted
    cut = await client.truncate_turn(session.id, first.turn_id, len("Let me"))
    assert [len(m.tool_calls) for m in cut.messages] == [0, 0]
    assert history(cut)[1] == (cpb.ROLE_ASSISTANT, "Let me", True)


async def test_truncate_turn_errors(client: AsyncClient, sim: Simulator) -> None:
    llm = await create_llm(client, endpoint(sim))
    session = await client.create_session(llm.id)
    first = await client.reply("One.", session_id=session.id)
    await client.reply("Two.", session_id=session.id)
    with pytest.raises(grpc.aio.AioRpcError) as not_last:
        await client.truncate_turn(session.id, first.turn_id, 3)
    assert not_last.value.code() is grpc.StatusCode.FAILED_PRECONDITION
    assert error_info(not_last.value).reason == "TURN_NOT_LAST"
    with pytest.raises(grpc.aio.AioRpcError) as unknown:
        await client.truncate_turn(session.id, "turn_unknown", 3)
    assert unknown.value.code() is grpc.StatusCode.NOT_FOUND
    with pytest.raises(grpc.aio.AioRpcError) as negative:
        await client.truncate_turn(session.id, first.turn_id, -1)
    assert negative.value.code() is grpc.StatusCode.INVALID_ARGUMENT


async def test_a_second_turn_on_a_busy_session_is_aborted_naming_the_running_turn(
        client: AsyncClient, sim: Simulator) -> None:
    sim.behavior = stalls_after(2)
    llm = await create_llm(client, endpoint(sim))
    session = await client.create_session(llm.id)
    stream, turn_id, _ = await start_turn(client, session.id, "First.", until="one two")
    with pytest.raises(grpc.aio.AioRpcError) as busy:
        await client.reply("Second.", session_id=session.id)
    assert busy.value.code() is grpc.StatusCode.ABORTED
    info = error_info(busy.value)
    assert (info.reason, info.metadata["running_turn_id"]) == ("SESSION_BUSY", turn_id)
    assert (await client.get_session(session.id)).running_turn_id == turn_id
    with pytest.raises(grpc.aio.AioRpcError) as update:
        await client.update_session(session.id, cpb.Session(system_prompt="x"),
                                    ["system_prompt"])
    assert error_info(update.value).reason == "SESSION_BUSY"
    await stream.aclose()  # type: ignore[attr-defined]


async def test_barge_in_interrupts_the_running_turn_and_builds_on_its_answer(
        client: AsyncClient, sim: Simulator) -> None:
    sim.behavior = stalls_after(2)
    llm = await create_llm(client, endpoint(sim))
    session = await client.create_session(llm.id)
    stream, first_id, _ = await start_turn(client, session.id, "Count.", until="one two")
    sim.behavior = Behavior(text="Okay.")
    reply = await client.reply("Wait.", session_id=session.id, barge_in=True)
    assert reply.text == "Okay."
    with pytest.raises(grpc.aio.AioRpcError) as interrupted:
        async for _ in stream:
            pass
    assert interrupted.value.code() is grpc.StatusCode.ABORTED
    assert error_info(interrupted.value).reason == "TURN_INTERRUPTED"
    sent = [(m["role"], m["content"]) for m in sim.requests[-1].body["messages"]]
    assert sent == [("user", "Count."), ("assistant", "one two"), ("user", "Wait.")]
    stored = await client.get_session(session.id)
    assert history(stored) == [(cpb.ROLE_USER, "Count.", False),
                               (cpb.ROLE_ASSISTANT, "one two", True),
                               (cpb.ROLE_USER, "Wait.", False),
                               (cpb.ROLE_ASSISTANT, "Okay.", False)]
    assert [m.turn_id for m in stored.messages] == [first_id, first_id, reply.turn_id,
                                                    reply.turn_id]
    assert stored.turn_count == 2


async def test_update_session_replaces_the_masked_fields(
        client: AsyncClient, sim: Simulator) -> None:
    llm = await create_llm(client, endpoint(sim))
    session = await client.create_session(llm.id, system_prompt="Old.")
    await client.reply("One.", session_id=session.id)
    second = await client.reply("Two.", session_id=session.id)
    stored = await client.get_session(session.id)
    trimmed = cpb.Session(system_prompt="New.", messages=list(stored.messages)[2:])
    updated = await client.update_session(session.id, trimmed, ["system_prompt", "messages"])
    assert updated.system_prompt == "New."
    assert history(updated) == [(cpb.ROLE_USER, "Two.", False),
                                (cpb.ROLE_ASSISTANT, WORDS, False)]
    # Turn ids survive a replace, so the last turn can still be truncated.
    cut = await client.truncate_turn(session.id, second.turn_id, 3)
    assert history(cut)[-1] == (cpb.ROLE_ASSISTANT, "one", True)
    with pytest.raises(grpc.aio.AioRpcError) as bad:
        await client.update_session(session.id, trimmed, ["llm_id"])
    assert bad.value.code() is grpc.StatusCode.INVALID_ARGUMENT
    await client.reply("Three.", session_id=session.id)
    sent = [(m["role"], m["content"]) for m in sim.requests[-1].body["messages"]]
    assert sent == [("system", "New."), ("user", "Two."), ("assistant", "one"),
                    ("user", "Three.")]


@pytest.mark.postgres
async def test_busy_and_barge_in_hold_across_two_replicas(
        tmp_path: Path, pg_dsn: str, sim: Simulator) -> None:
    s = settings(tmp_path, database=pg_dsn, master_keys=master_keys(), probes_per_hour=0)
    async with running(s) as a, running(s) as b, \
            AsyncClient(f"127.0.0.1:{a.port}", API_KEY) as ca, \
            AsyncClient(f"127.0.0.1:{b.port}", API_KEY) as cb:
        sim.behavior = stalls_after(2)
        llm = await create_llm(ca, endpoint(sim))
        session = await ca.create_session(llm.id)
        stream, first_id, _ = await start_turn(ca, session.id, "Count.", until="one two")
        with pytest.raises(grpc.aio.AioRpcError) as busy:  # replica B sees A's turn
            await cb.reply("Second.", session_id=session.id)
        info = error_info(busy.value)
        assert (info.reason, info.metadata["running_turn_id"]) == ("SESSION_BUSY", first_id)
        sim.behavior = Behavior(text="Okay.")
        reply = await cb.reply("Wait.", session_id=session.id, barge_in=True)
        assert reply.text == "Okay."
        with pytest.raises(grpc.aio.AioRpcError) as interrupted:  # A's turn was stopped
            async for _ in stream:
                pass
        assert error_info(interrupted.value).reason == "TURN_INTERRUPTED"
        sent = [(m["role"], m["content"]) for m in sim.requests[-1].body["messages"]]
        assert sent == [("user", "Count."), ("assistant", "one two"), ("user", "Wait.")]
        assert history(await ca.get_session(session.id))[-1] == (cpb.ROLE_ASSISTANT, "Okay.",
                                                                 False)


async def test_a_history_too_long_for_the_window_sends_the_newest_exchanges(
        client: AsyncClient, sim: Simulator) -> None:
    sim.behavior = Behavior(text="x" * 400)  # each exchange is about 100 tokens
    llm = await create_llm(client, endpoint(sim, context_window_tokens=350))
    session = await client.create_session(llm.id, system_prompt="Be brief.")
    omitted = []
    for i in range(5):
        events = [e async for e in client.converse(f"Question {i}?", session_id=session.id)]
        started = events[0]
        assert isinstance(started, cpb.TurnStarted)
        omitted.append(started.history_messages_omitted)
        assert isinstance(events[-1], cpb.TurnFinished)
    assert omitted[:2] == [0, 0] and omitted[-1] > 0
    sent = [(m["role"], m["content"]) for m in sim.requests[-1].body["messages"]]
    assert sent[0] == ("system", "Be brief.")
    assert sent[-1] == ("user", "Question 4?")
    assert sent[1][0] == "user"  # cut where an exchange starts
    assert len(sent) == 1 + 9 - omitted[-1]  # the stored history is intact
    assert len((await client.get_session(session.id)).messages) == 10


async def test_a_window_learned_from_a_rejection_keeps_a_long_session_alive(
        client: AsyncClient, sim: Simulator) -> None:
    # The endpoint declares no window; it rejects prompts over 300 tokens (context_length).
    sim.behavior = Behavior(text="x" * 400, context_window_tokens=300)
    llm = await create_llm(client, endpoint(sim))
    session = await client.create_session(llm.id, system_prompt="Be brief.")
    for i in range(6):
        reply = await client.reply(f"Question {i}?", session_id=session.id)
        assert reply.complete, f"turn {i} failed for history length"
    assert any(r.status == 400 for r in sim.requests)  # the window was learned from one
    served = [len(r.body["messages"]) for r in sim.requests if r.status == 200]
    assert served[-1] < 1 + 2 * 5 + 1  # the last turn left old exchanges out
    sent = [(m["role"], m["content"]) for m in sim.requests[-1].body["messages"]]
    assert sent[0] == ("system", "Be brief.") and sent[-1] == ("user", "Question 5?")
    assert len((await client.get_session(session.id)).messages) == 12


async def test_a_turn_past_its_deadline_is_recorded_as_interrupted(
        client: AsyncClient, sim: Simulator) -> None:
    sim.behavior = stalls_after(2)
    llm = await create_llm(client, endpoint(sim))
    session = await client.create_session(llm.id)
    turn_id, heard = "", ""
    with pytest.raises(grpc.aio.AioRpcError) as late:
        async for event in client.converse("Count.", session_id=session.id, timeout=1.0):
            if isinstance(event, cpb.TurnStarted):
                turn_id = event.turn_id
            elif isinstance(event, cpb.TextDelta):
                heard += event.delta
    assert late.value.code() is grpc.StatusCode.DEADLINE_EXCEEDED
    assert heard == "one two"
    after = await client.truncate_turn(session.id, turn_id, len(heard))
    assert history(after) == [(cpb.ROLE_USER, "Count.", False),
                              (cpb.ROLE_ASSISTANT, "one two", True)]
