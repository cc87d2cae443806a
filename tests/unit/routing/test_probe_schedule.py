"""Probe scheduling: only while sessions are active, within budget, never over live traffic."""

from __future__ import annotations

import random
from collections import defaultdict
from itertools import pairwise

from server.clock import FakeClock
from server.providers.base import ErrorKind, UpstreamError
from server.registry.llm import Llm
from server.routing.probe_prompt import (
    PROBE_MAX_OUTPUT_TOKENS,
    PROBE_PROMPT,
    PROBE_PROMPT_TOKENS,
    probe_prompt,
)
from server.routing.probe_schedule import ProbeScheduler
from server.routing.router import Router

from .conftest import MakeLlm

DAY_S = 24 * 3600.0


def scheduler(clock: FakeClock, router: Router, max_per_hour: int = 4) -> ProbeScheduler:
    return ProbeScheduler(clock, random.Random(99), max_per_hour, view=router)


def send(router: Router, eid: str, ttft: float = 0.2, ok: bool = True) -> None:
    """What the engine does with a due probe."""
    attempt = router.admit(eid, probe=True)
    if attempt is None:
        return
    if ok:
        attempt.first_token(ttft, PROBE_PROMPT_TOKENS)
        attempt.succeeded()
    else:
        attempt.failed(UpstreamError(ErrorKind.CONNECTION, "down"))


def run(
    clock: FakeClock, router: Router, probes: ProbeScheduler, llm: Llm, seconds: float
) -> dict[str, list[float]]:
    sent: dict[str, list[float]] = defaultdict(list)
    end = clock.monotonic() + seconds
    while clock.monotonic() < end:
        now = clock.monotonic()
        for _, eid in probes.due(now, [llm]):
            sent[eid].append(now)
            send(router, eid)
        clock.advance(10.0)
    return sent


def test_no_probes_while_no_session_is_active(
    clock: FakeClock, router: Router, make_llm: MakeLlm
) -> None:
    llm = make_llm("a", "b")
    probes = scheduler(clock, router)
    assert run(clock, router, probes, llm, 3600.0) == {}
    probes.touch(llm.id, clock.monotonic() + 60.0)  # a session that then goes idle
    sent = run(clock, router, probes, llm, 3 * 3600.0)
    assert {eid: len(ts) for eid, ts in sent.items()} == {"a": 1, "b": 1}  # warm-up only


def test_one_active_session_over_a_day_stays_within_the_hourly_budget(
    clock: FakeClock, router: Router, make_llm: MakeLlm
) -> None:
    llm = make_llm("a", "b", "c")
    probes = scheduler(clock, router, max_per_hour=4)
    probes.touch(llm.id, clock.monotonic() + DAY_S)
    sent = run(clock, router, probes, llm, DAY_S)
    assert set(sent) == {"a", "b", "c"}
    for times in sent.values():
        for i, t in enumerate(times):
            in_hour = [u for u in times[i:] if u < t + 3600.0]
            assert len(in_hour) <= 4
        assert len(times) >= 24 * 3  # and they do happen, about every 15 minutes
        gaps = [b - a for a, b in pairwise(times)]
        assert min(gaps) >= 0.8 * 900 - 10  # spaced with jitter, not bunched
        assert len({round(g) for g in gaps}) > 5


def test_endpoints_busy_with_live_traffic_are_not_probed(
    clock: FakeClock, router: Router, make_llm: MakeLlm
) -> None:
    llm = make_llm("busy", "idle")
    probes = scheduler(clock, router)
    probes.touch(llm.id, clock.monotonic() + DAY_S)
    live = router.admit("busy")
    assert live  # a long live turn, no first token yet
    sent = run(clock, router, probes, llm, 700.0)
    assert "busy" not in sent and len(sent["idle"]) == 1
    live.cancelled()
    assert ("llm-1", "busy") in probes.due(clock.monotonic(), [llm])


def test_a_probe_waiting_too_long_goes_even_over_live_traffic(
    clock: FakeClock, router: Router, make_llm: MakeLlm
) -> None:
    llm = make_llm("busy")
    probes = ProbeScheduler(clock, random.Random(1), 4, view=router, max_defer_s=300.0)
    probes.touch(llm.id, clock.monotonic() + DAY_S)
    send(router, "busy")  # fresh sample: nothing due for ~15 minutes
    assert router.admit("busy")
    sent = run(clock, router, probes, llm, 2 * 3600.0)
    assert sent["busy"]
    first = sent["busy"][0] - 1000.0
    assert 0.8 * 900 + 300 <= first <= 1.2 * 900 + 310


def test_live_samples_postpone_probes(clock: FakeClock, router: Router, make_llm: MakeLlm) -> None:
    llm = make_llm("served", "unused")
    probes = scheduler(clock, router)
    probes.touch(llm.id, clock.monotonic() + DAY_S)
    sent: dict[str, int] = defaultdict(int)
    for _ in range(360):  # an hour of a turn every 10 s on "served"
        router.first_token("served", 0.1, 500)
        for _, eid in probes.due(clock.monotonic(), [llm]):
            sent[eid] += 1
            send(router, eid)
        clock.advance(10.0)
    assert sent["served"] == 0
    assert sent["unused"] >= 4


def test_an_open_circuit_gets_its_half_open_trial_through_a_probe(
    clock: FakeClock, router: Router, make_llm: MakeLlm
) -> None:
    llm = make_llm("down")
    probes = scheduler(clock, router, max_per_hour=1)
    probes.touch(llm.id, clock.monotonic() + DAY_S)
    assert probes.due(clock.monotonic(), [llm]) == [("llm-1", "down")]  # warm-up, budget spent
    for _ in range(3):
        attempt = router.admit("down")
        assert attempt
        attempt.failed(UpstreamError(ErrorKind.SERVER_ERROR, "503"))
    assert probes.due(clock.monotonic(), [llm]) == []  # open: no request at all
    clock.advance(router.snapshot("down").open_remaining_s)
    assert probes.due(clock.monotonic(), [llm]) == [("llm-1", "down")]  # the trial
    probe = router.admit("down", probe=True)
    assert probe
    assert not router.admit("down")  # a live turn cannot take a second trial
    assert probes.due(clock.monotonic(), [llm]) == []
    probe.first_token(0.2, PROBE_PROMPT_TOKENS)
    probe.succeeded()
    assert router.snapshot("down").state.value == "closed"


def test_a_dead_endpoint_is_trial_probed_at_the_breaker_pace(
    clock: FakeClock, router: Router, make_llm: MakeLlm
) -> None:
    llm = make_llm("dead")
    probes = scheduler(clock, router)
    probes.touch(llm.id, clock.monotonic() + DAY_S)
    sent: list[float] = []
    for _ in range(3 * 3600):
        for _, eid in probes.due(clock.monotonic(), [llm]):
            sent.append(clock.monotonic())
            send(router, eid, ok=False)
        clock.advance(1.0)
    # three ordinary probes fail ~15 minutes apart and open the circuit; from then on one
    # trial per cooldown (1, 2, 4, ... capped at 20 s ± 20%): about three a minute, never a
    # flood
    last_hour = [t for t in sent if t >= clock.monotonic() - 3600.0]
    assert 150 <= len(last_hour) <= 230
    assert min(b - a for a, b in pairwise(last_hour)) >= 15.0


def test_probe_prompt_is_a_realistic_deterministic_transcript() -> None:
    assert 5_500 <= len(PROBE_PROMPT) <= 6_500
    assert 1_300 <= PROBE_PROMPT_TOKENS <= 1_700
    assert probe_prompt(0) == PROBE_PROMPT
    assert "Agent:" in PROBE_PROMPT and "Customer:" in PROBE_PROMPT
    assert "lorem" not in PROBE_PROMPT.lower()
    assert PROBE_PROMPT.isascii()
    assert 1 <= PROBE_MAX_OUTPUT_TOKENS <= 4
    other = probe_prompt(41)
    assert other != PROBE_PROMPT and other[:40] != PROBE_PROMPT[:40]  # no shared cache prefix
    assert abs(len(other) - len(PROBE_PROMPT)) < 10


def test_forgotten_llms_are_no_longer_active(clock: FakeClock, router: Router) -> None:
    probes = scheduler(clock, router)
    probes.keep_alive("llm-1", 60.0)
    assert probes.is_active("llm-1")
    probes.forget_llm("llm-1")
    assert not probes.is_active("llm-1")


def test_a_busy_endpoint_never_sampled_is_warmed_up_once_it_waited_too_long(
    clock: FakeClock, router: Router, make_llm: MakeLlm
) -> None:
    llm = make_llm("stuck")
    probes = ProbeScheduler(clock, random.Random(1), 4, view=router, max_defer_s=300.0)
    probes.touch(llm.id, clock.monotonic() + DAY_S)
    assert router.admit("stuck")  # a live turn that never produces a token
    sent = run(clock, router, probes, llm, 600.0)
    assert [t - 1000.0 for t in sent["stuck"]] == [310.0]
