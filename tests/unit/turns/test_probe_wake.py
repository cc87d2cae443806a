"""The probe loop wakes when an LLM becomes active, not on every turn of an active one."""

from __future__ import annotations

import random

from server.clock import FakeClock
from server.routing.router import Router
from server.turns.probe_runner import ProbeRunner


async def test_only_an_llm_becoming_active_wakes_the_probe_loop() -> None:
    clock = FakeClock()
    runner = ProbeRunner(Router(clock, random.Random(1)), clock, probes_per_hour=4)
    woken = runner._wake  # what run() waits on between its one-second ticks
    runner.touch("acct", "llm_a", 300.0, "turns")
    assert woken.is_set(), "a newly active LLM is probed at once (warm-up)"
    woken.clear()
    runner.touch("acct", "llm_a", 300.0, "turns")  # the next turn: probes wait for the tick
    runner.touch("acct", "llm_a", 3600.0, "ses_1")
    assert not woken.is_set()
    runner.touch("acct", "llm_b", 300.0, "turns")  # another LLM
    assert woken.is_set()
    woken.clear()
    clock.advance(3601.0)  # everything lapsed: active again from scratch
    runner.touch("acct", "llm_a", 300.0, "turns")
    assert woken.is_set()
