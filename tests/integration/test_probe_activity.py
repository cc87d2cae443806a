"""Issue 19: probes measure a fresh prompt, fit the endpoint's window and follow activity.

Every probe used to send the same nonce-0 prompt, which llama.cpp answers from its prompt
cache (5 ms instead of 158 ms); it failed every interval on a 256-token server; it went on
until the idle TTL after the last session ended; and a stateless caller's recovered primary
was found only by a caller's turn. Probes per hour up to 3600 make this observable in seconds.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from switchboard_client import AsyncClient

from server.app import Switchboard
from server.clock import FakeClock
from server.simulator import Behavior, Simulator
from tests.support import API_KEY, create_llm, endpoint, settings

PER_HOUR = 3600  # one probe a second per endpoint


@pytest.fixture
async def app_and_clock(tmp_path: Path) -> AsyncIterator[tuple[Switchboard, FakeClock]]:
    clock = FakeClock()
    app = Switchboard(settings(tmp_path, probes_per_hour=PER_HOUR), clock=clock)
    await app.start()
    await app.pause_background()  # the fake clock drives probes through app.probes.tick()
    try:
        yield app, clock
    finally:
        await app.stop(grace_s=1.0)


def _prompt(request: object) -> str:
    body = request.body  # type: ignore[attr-defined]
    content = body["messages"][-1]["content"]
    return content if isinstance(content, str) else str(content[0]["text"])


async def _seconds(app: Switchboard, clock: FakeClock, n: int) -> None:
    assert app.probes is not None
    for _ in range(n):
        clock.advance(1.3)  # past the 1 s interval and its 20 % jitter
        await app.probes.tick()


async def test_each_probe_has_a_fresh_prefix_and_fits_a_small_window(
        app_and_clock: tuple[Switchboard, FakeClock]) -> None:
    app, clock = app_and_clock
    async with AsyncClient(f"127.0.0.1:{app.port}", API_KEY) as client, \
            Simulator("openai", Behavior(text="ok")) as big, \
            Simulator("openai", Behavior(text="ok")) as small:
        llm = await create_llm(client, endpoint(big),
                               endpoint(small, context_window_tokens=256))
        await client.create_session(llm.id)
        await _seconds(app, clock, 6)
    for sim in (big, small):
        prompts = [_prompt(r) for r in sim.requests]
        assert len(prompts) >= 4
        assert len({p.splitlines()[0] for p in prompts}) == len(prompts), "a fresh first line"
    assert all(len(_prompt(r)) // 4 <= 128 for r in small.requests)  # half the window at most
    assert all(len(_prompt(r)) > 5000 for r in big.requests)  # the full ~1,500 tokens


async def test_probes_stop_when_the_last_session_ends(
        app_and_clock: tuple[Switchboard, FakeClock]) -> None:
    app, clock = app_and_clock
    async with AsyncClient(f"127.0.0.1:{app.port}", API_KEY) as client, \
            Simulator("openai", Behavior(text="ok")) as sim:
        llm = await create_llm(client, endpoint(sim))
        one = await client.create_session(llm.id, idle_ttl_s=3600)
        two = await client.create_session(llm.id, idle_ttl_s=3600)
        await _seconds(app, clock, 3)
        assert sim.requests
        await client.end_session(one.id)
        before = len(sim.requests)
        await _seconds(app, clock, 3)
        assert len(sim.requests) > before, "one session is still live"
        await client.end_session(two.id)
        before = len(sim.requests)
        await _seconds(app, clock, 5)
        assert len(sim.requests) == before, "no session left: no probe (not until the TTL)"


async def test_stateless_traffic_keeps_its_llm_probed(
        app_and_clock: tuple[Switchboard, FakeClock]) -> None:
    app, clock = app_and_clock
    async with AsyncClient(f"127.0.0.1:{app.port}", API_KEY) as client, \
            Simulator("openai", Behavior(text="ok")) as a, \
            Simulator("openai", Behavior(text="ok")) as b:
        llm = await create_llm(client, endpoint(a, priority=0), endpoint(b, priority=1))
        await _seconds(app, clock, 3)
        assert a.requests == [] and b.requests == []  # nothing active: nothing probed
        await client.reply("hi", llm_id=llm.id)  # a stateless turn, served by a
        served = len(a.requests)
        await _seconds(app, clock, 4)
        assert len(b.requests) >= 2, "the fallback no turn went to is probed too"
        assert len(a.requests) > served
        clock.advance(400.0)  # well past the recent-turn window
        await _seconds(app, clock, 1)
        before = len(a.requests) + len(b.requests)
        await _seconds(app, clock, 4)
        assert len(a.requests) + len(b.requests) == before
