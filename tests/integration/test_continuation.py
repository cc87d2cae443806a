"""A broken answer continues on an endpoint that continues partial answers (assistant prefill),
so the caller hears one seamless answer; where the fallback refuses the continuation, the
answer restarts cleanly. Through the real gRPC server and the OpenAI-compatible front door."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import openai
import pytest
from switchboard.v1 import conversations_pb2 as cpb
from switchboard.v1 import llm_pb2 as lpb

from server.simulator import Behavior, Fault, FaultKind, Prefill, Simulator
from tests.http_support import Door, running_door
from tests.support import create_llm, endpoint

SIXTY = " ".join(f"w{i:02d}" for i in range(1, 61))  # a 60-word answer, one word a token


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def database(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "postgres":
        return str(request.getfixturevalue("pg_dsn"))
    return str(tmp_path / "switchboard.db")


@pytest.fixture
async def door(tmp_path: Path, database: str) -> AsyncIterator[Door]:
    async with running_door(tmp_path, database=database, probes_per_hour=0) as d:
        yield d


@pytest.fixture
async def cut() -> AsyncIterator[Simulator]:
    """Streams 40 of the 60 words, then the stream ends without a finish (a clean cut, so
    exactly 40 words arrive; an abrupt one can lose the last chunks in flight)."""
    fault = Fault(FaultKind.CUT_AFTER, chunk=40, abrupt=False)
    async with Simulator("openai", Behavior(text=SIXTY, fault=fault)) as sim:
        yield sim


async def llm_with_fallback(door: Door, cut: Simulator, fallback: Simulator,
                            spec: str = "openai") -> lpb.Llm:
    return await create_llm(
        door.grpc, endpoint(cut, priority=1),
        endpoint(fallback, spec, priority=2, continues_partial_answer=True))


@pytest.mark.parametrize("spec", ["openai", "groq", "gemini"])
async def test_a_cut_answer_continues_with_nothing_discarded(
        door: Door, cut: Simulator, spec: str) -> None:
    async with Simulator(spec, Behavior(text=SIXTY, prefill=Prefill.CONTINUE)) as fallback:
        llm = await llm_with_fallback(door, cut, fallback, spec)
        events = [e async for e in door.grpc.converse("Sixty words.", llm_id=llm.id)]
        texts = [e for e in events if isinstance(e, cpb.TextDelta)]
        failovers = [e for e in events if isinstance(e, cpb.Failover)]
        assert [(f.mode, list(f.discard_message_ids)) for f in failovers] == [
            (cpb.FAILOVER_MODE_CONTINUE, [])]
        assert {t.message_id for t in texts} == {texts[0].message_id}  # one message throughout
        assert "".join(t.delta for t in texts) == SIXTY
        assert len(SIXTY.split()) == 60
        finished = events[-1]
        assert isinstance(finished, cpb.TurnFinished) and finished.complete
        assert finished.endpoint_id == llm.endpoints[1].id
        # The fallback got the 40 words streamed before the cut as the answer to continue.
        before = "".join(e.delta for e in events[:events.index(failovers[0])]
                         if isinstance(e, cpb.TextDelta))
        assert before == " ".join(SIXTY.split()[:40])
        sent = fallback.requests[-1].body
        if spec == "gemini":
            assert sent["contents"][-1] == {"role": "model", "parts": [{"text": before}]}
        else:
            assert sent["messages"][-1] == {"role": "assistant", "content": before}
        reply = await door.grpc.reply("Sixty words.", llm_id=llm.id)
        assert reply.text == SIXTY  # the Python client's Reply applies CONTINUE


async def test_a_refused_continuation_restarts_cleanly(door: Door, cut: Simulator) -> None:
    async with Simulator("openai", Behavior(text=SIXTY, prefill=Prefill.REJECT)) as fallback:
        llm = await llm_with_fallback(door, cut, fallback)
        events = [e async for e in door.grpc.converse("Sixty words.", llm_id=llm.id)]
        failovers = [e for e in events if isinstance(e, cpb.Failover)]
        assert [f.mode for f in failovers] == [cpb.FAILOVER_MODE_CONTINUE,
                                               cpb.FAILOVER_MODE_RESTART]
        first_id = next(e.message_id for e in events if isinstance(e, cpb.TextDelta))
        assert list(failovers[1].discard_message_ids) == [first_id]
        assert "prefill" in failovers[1].cause
        assert isinstance(events[-1], cpb.TurnFinished) and events[-1].complete
        assert [r.body["messages"][-1]["role"] for r in fallback.requests] == ["assistant",
                                                                               "user"]
        reply = await door.grpc.reply("Sixty words.", llm_id=llm.id)
        assert reply.text == SIXTY
        # This replica learned that the fallback refuses: the next cut answer restarts at once.
        assert [f.mode for f in reply.failovers] == [cpb.FAILOVER_MODE_RESTART]


async def test_the_front_door_completes_a_cut_stream(door: Door, cut: Simulator) -> None:
    async with Simulator("openai", Behavior(text=SIXTY, prefill=Prefill.CONTINUE)) as fallback:
        llm = await llm_with_fallback(door, cut, fallback)
        stream = await door.openai.chat.completions.create(
            model=llm.id, messages=[{"role": "user", "content": "Sixty words."}], stream=True)
        chunks = [c async for c in stream]
        text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
        assert text == SIXTY
        assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == "stop"


async def test_the_front_door_still_ends_a_cut_stream_it_cannot_continue(
        door: Door, cut: Simulator) -> None:
    async with Simulator("openai", Behavior(text=SIXTY, prefill=Prefill.REJECT)) as fallback:
        llm = await llm_with_fallback(door, cut, fallback)
        stream = await door.openai.chat.completions.create(
            model=llm.id, messages=[{"role": "user", "content": "Sixty words."}], stream=True)
        with pytest.raises(openai.APIError) as caught:
            async for _ in stream:
                pass
        assert caught.value.body["code"] == "upstream_stream_broken"  # type: ignore[index]


async def test_validation_detects_the_capability_and_turns_use_it(
        door: Door, cut: Simulator) -> None:
    async with Simulator("openai", Behavior(text=SIXTY, prefill=Prefill.CONTINUE)) as fallback:
        cut.faults_enabled = False  # both endpoints validate healthy
        created = await door.grpc.create_llm(lpb.Llm(display_name="detected", endpoints=[
            endpoint(cut, priority=1), endpoint(fallback, priority=2)]))
        cut.faults_enabled = True
        caps = [e.capabilities.continues_partial_answer for e in created.llm.endpoints]
        assert caps == [False, True]  # the cut endpoint (Prefill.IGNORE) started over
        reply = await door.grpc.reply("Sixty words.", llm_id=created.llm.id)
        assert [f.mode for f in reply.failovers] == [cpb.FAILOVER_MODE_CONTINUE]
        assert reply.text == SIXTY
