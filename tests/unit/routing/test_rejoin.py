"""A recovered endpoint rejoins its tier and keeps its traffic (the router alone, fake clock).

The integration test ``test_faults.py::test_a_recovered_endpoint_rejoins_its_tier_under_
stateless_traffic`` lost its last turns to the slower endpoint in loaded CI runs: A (10 ms)
came back after an outage, served 21 turns, then B (40 ms) served the last 3. What was wrong:
one first token that came late on the wall clock (the host was busy, not A) reached the latency
EWMA as a full sample. A hedge that B won booked A's wait (hedge delay 0.25 s + B's 40 ms) as
a 0.29 s TTFT, so A's estimate went from 12 ms to ~95 ms in one step, and a plain late first
token of 0.15 s did nearly as much. Ranking then put B first, and since the ranking is what
sends traffic, A got no live samples that could bring its estimate back down (exploration waits
for a 30 s-stale estimate, scheduled probes come every 15 minutes): one blip flipped routing for
every later turn. Now a sample moves the EWMA by at most ``LatencyConfig.outlier_factor`` times
the estimate, so one blip is absorbed while a real slowdown still moves traffic within a few
turns (the quantile window behind the hedge delay keeps the raw sample).

Turns here are driven as ``server.turns.engine`` drives the router: plan, admit, hedge after
``hedge_delay_s`` on the next candidate, the first token wins and the loser's wait is reported
with ``first_token_missed``; probes come from a ``ProbeScheduler`` as the probe runner sends
them. All times are chosen, none measured.
"""

from __future__ import annotations

import random
from collections.abc import Mapping
from dataclasses import dataclass

from server.clock import FakeClock
from server.providers.base import ErrorKind, UpstreamError
from server.registry.llm import Llm
from server.routing.breaker import CircuitState
from server.routing.probe_prompt import PROBE_PROMPT_TOKENS
from server.routing.probe_schedule import ProbeScheduler
from server.routing.route_plan import Reason
from server.routing.router import Router

from .conftest import MakeLlm

PROMPT = 5  # a short stateless turn ("hi")
FAST, SLOW = 0.010, 0.040  # A and B, as the integration test's simulators
DOWN = None  # the endpoint answers 503 at once


@dataclass(frozen=True)
class Turn:
    preferred: str  # the plan's first candidate: where the router sends the turn
    reason: Reason  # why: FASTEST, or EXPLORATION (a rare refresh of a stale estimate)
    served_by: str
    hedged: bool

    @property
    def by_preference(self) -> bool:
        return self.reason is not Reason.EXPLORATION


class Fleet:
    """One tier of two endpoints, one turn and one probe round per simulated second."""

    def __init__(self, router: Router, clock: FakeClock, llm: Llm) -> None:
        self.router, self.clock, self.llm = router, clock, llm
        self.probes = ProbeScheduler(clock, random.Random(5), 4, view=router)

    def turn(self, ttft: Mapping[str, float | None]) -> Turn:
        router, llm = self.router, self.llm
        plan = list(router.plan(llm, PROMPT).candidates)
        preferred, reason = plan[0].endpoint_id, plan[0].reason
        attempted: list[str] = []
        hedged = False
        while plan:
            eid = plan.pop(0).endpoint_id
            attempt = router.admit(eid)
            if attempt is None:
                continue
            attempted.append(eid)
            t = ttft[eid]
            if t is None:
                error = UpstreamError(ErrorKind.SERVER_ERROR, "overloaded", status=503)
                attempt.failed(error)
                plan = list(router.next_after(llm, PROMPT, eid, error, attempted).candidates)
                continue
            delay = router.hedge_delay_s(eid, PROMPT)
            rival = router.admit(plan[0].endpoint_id) if t > delay and plan else None
            if rival is not None:  # late: the next-best endpoint races it
                hedged, other = True, plan[0].endpoint_id
                t_other = ttft[other]
                assert t_other is not None
                if delay + t_other < t:  # the hedge wins; A's wait is booked as missed
                    rival.first_token(t_other, PROMPT)
                    attempt.first_token_missed(delay + t_other, PROMPT)
                    attempt.cancelled()
                    rival.succeeded()
                    return Turn(preferred, reason, other, hedged)
                rival.first_token_missed(t - delay, PROMPT)
                rival.cancelled()
            attempt.first_token(t, PROMPT)
            attempt.succeeded()
            return Turn(preferred, reason, eid, hedged)
        raise AssertionError(f"nothing served the turn: {attempted}")

    def second(self, ttft: Mapping[str, float | None]) -> Turn:
        """A turn, then the probes due (the test ticks them), then one second passes."""
        out = self.turn(ttft)
        self.probes.keep_alive(self.llm.id, 300.0, "turns")
        for _, eid in self.probes.due(self.clock.monotonic(), [self.llm]):
            attempt = self.router.admit(eid, probe=True)
            if attempt is None:
                continue
            t = ttft[eid]
            if t is None:
                attempt.failed(UpstreamError(ErrorKind.SERVER_ERROR, "overloaded", status=503))
            else:
                attempt.first_token(t, PROBE_PROMPT_TOKENS)
                attempt.succeeded()
        self.clock.advance(1.0)
        return out


def recovered(router: Router, clock: FakeClock, make_llm: MakeLlm) -> Fleet:
    """Warm-up, a 60 s outage of A, then turns until A serves again (within 30 s)."""
    fleet = Fleet(router, clock, make_llm("a", "b"))
    healthy = {"a": FAST, "b": SLOW}
    for _ in range(6):
        fleet.turn(healthy)
    for _ in range(60):
        assert fleet.second({"a": DOWN, "b": SLOW}).served_by == "b"
    for _ in range(30):
        if fleet.second(healthy).served_by == "a":
            break
    else:
        raise AssertionError("A is not back within 30 s of recovering")
    assert router.snapshot("a").state is CircuitState.CLOSED
    return fleet


def test_a_recovered_endpoint_serves_every_turn_after_it_rejoins(
    router: Router, clock: FakeClock, make_llm: MakeLlm
) -> None:
    """Every turn routed by preference; an exploration turn (at most 2 %, once B's estimate
    is 30 s old) may go to B, which is how B's estimate stays fresh."""
    fleet = recovered(router, clock, make_llm)
    turns = [fleet.second({"a": FAST, "b": SLOW}) for _ in range(40)]
    assert {t.served_by for t in turns if t.by_preference} == {"a"}


def test_a_hedge_won_by_the_slower_endpoint_does_not_flip_routing(
    router: Router, clock: FakeClock, make_llm: MakeLlm
) -> None:
    """One turn where A's first token comes late (a loaded host delays it past A's 0.25 s
    hedge delay): B's hedge wins that turn, and A must still be preferred for the next ones.
    Before the fix, A's estimate jumped to ~95 ms and B took every later turn."""
    fleet = recovered(router, clock, make_llm)
    for _ in range(10):
        assert fleet.second({"a": FAST, "b": SLOW}).served_by == "a"
    blip = fleet.second({"a": 5.0, "b": SLOW})
    assert (blip.preferred, blip.served_by, blip.hedged) == ("a", "b", True)
    later = [fleet.second({"a": FAST, "b": SLOW}) for _ in range(20)]
    assert {t.preferred for t in later if t.by_preference} == {"a"}, router.snapshot("a")
    assert {t.served_by for t in later if t.by_preference} == {"a"}


def test_one_late_first_token_does_not_flip_routing(
    router: Router, clock: FakeClock, make_llm: MakeLlm
) -> None:
    """A first token 15 times later than usual but within the hedge delay (a busy event loop)
    is a real sample; it must not hand B the following turns either."""
    fleet = recovered(router, clock, make_llm)
    for _ in range(10):
        fleet.second({"a": FAST, "b": SLOW})
    late = fleet.second({"a": 0.15, "b": SLOW})
    assert (late.served_by, late.hedged) == ("a", False)
    later = [fleet.second({"a": FAST, "b": SLOW}) for _ in range(20)]
    assert {t.preferred for t in later if t.by_preference} == {"a"}, router.snapshot("a")


def test_an_endpoint_that_keeps_losing_hedges_still_loses_its_traffic(
    router: Router, clock: FakeClock, make_llm: MakeLlm
) -> None:
    """The other side of the bound: A really slowed down (5 s to a first token), so every
    turn to it is rescued by B's hedge; within a few turns B is preferred outright."""
    fleet = recovered(router, clock, make_llm)
    for _ in range(10):
        fleet.second({"a": FAST, "b": SLOW})
    slowed = [fleet.second({"a": 5.0, "b": SLOW}) for _ in range(12)]
    assert {t.served_by for t in slowed} == {"b"}
    moved = [t.preferred for t in slowed].index("b")
    assert moved <= 6, slowed
    assert all(t.preferred == "b" and not t.hedged for t in slowed[moved:])
    plan = router.plan(fleet.llm, PROMPT)
    assert plan.endpoint_ids == ("b", "a") and plan.candidates[0].reason is Reason.FASTEST
