"""Which endpoint a turn goes to: speed, tiers, load, priors, exploration, context windows."""

from __future__ import annotations

import random
from collections import Counter

from hypothesis import given, settings
from hypothesis import strategies as st

from server.clock import FakeClock
from server.registry.llm import ApiSpec, Endpoint, Llm
from server.routing.breaker import CircuitState
from server.routing.config import RouterConfig
from server.routing.route_plan import Reason, SkipReason, StopReason
from server.routing.router import Router
from server.secret import Secret

from .conftest import MakeLlm, Serve

FLEET = {"fast": 0.030, "mid": 0.060, "slow": 0.120}


def drive(
    router: Router,
    clock: FakeClock,
    llm_ttft: dict[str, float],
    make_llm: MakeLlm,
    serve: Serve,
    turns: int,
    rng: random.Random,
) -> list[str]:
    """Run ``turns`` sequential turns, one per second; return each plan's first endpoint."""
    llm = make_llm(*llm_ttft)
    firsts = []
    for _ in range(turns):
        plan = router.plan(llm, 500)
        assert plan.first is not None
        eid = plan.first.endpoint_id
        firsts.append(eid)
        serve(eid, llm_ttft[eid] * rng.uniform(0.9, 1.1))
        clock.advance(1.0)
    return firsts


def test_after_warm_up_at_least_95_percent_of_turns_go_to_the_fastest(
    router: Router, clock: FakeClock, make_llm: MakeLlm, serve: Serve
) -> None:
    rng = random.Random(1)
    firsts = drive(router, clock, FLEET, make_llm, serve, 2_000, rng)
    after = Counter(firsts[20:])
    assert after["fast"] / len(firsts[20:]) >= 0.95
    assert after["mid"] + after["slow"] > 0  # estimates are being refreshed


def test_routing_moves_within_10_turns_when_the_fastest_slows_down(
    router: Router, clock: FakeClock, make_llm: MakeLlm, serve: Serve
) -> None:
    rng = random.Random(2)
    fleet = dict(FLEET)
    drive(router, clock, fleet, make_llm, serve, 200, rng)
    fleet["fast"] = 0.200
    firsts = drive(router, clock, fleet, make_llm, serve, 300, rng)
    assert "mid" in firsts[:10]
    moved = firsts.index("mid")
    assert Counter(firsts[moved:])["mid"] / len(firsts[moved:]) >= 0.95


def test_a_recovered_endpoint_wins_its_traffic_back(
    router: Router, clock: FakeClock, make_llm: MakeLlm, serve: Serve
) -> None:
    rng = random.Random(3)
    fleet = dict(FLEET)
    drive(router, clock, fleet, make_llm, serve, 100, rng)
    fleet["fast"] = 0.200
    drive(router, clock, fleet, make_llm, serve, 100, rng)
    fleet["fast"] = 0.030
    firsts = drive(router, clock, fleet, make_llm, serve, 1_500, rng)
    assert Counter(firsts[-200:])["fast"] >= 190


def test_lower_priority_number_wins_over_speed(
    router: Router, make_llm: MakeLlm, serve: Serve
) -> None:
    llm = make_llm("backup", "primary", "default", priority={"backup": 1, "primary": 0})
    serve("backup", 0.010)
    serve("primary", 0.300)
    serve("default", 0.200)  # no priority given: tier 0
    plan = router.plan(llm, 500)
    assert plan.endpoint_ids == ("default", "primary", "backup")
    assert [c.tier for c in plan.candidates] == [0, 0, 1]
    assert [c.reason for c in plan.candidates] == [
        Reason.FASTEST,
        Reason.NEXT_FASTEST,
        Reason.NEXT_FASTEST,
    ]


def test_requests_in_flight_make_an_endpoint_look_slower(
    router: Router, make_llm: MakeLlm, serve: Serve
) -> None:
    llm = make_llm("fast", "mid")
    serve("fast", 0.030)
    serve("mid", 0.060)
    live = [router.admit("fast") for _ in range(2)]
    assert all(live)
    assert router.plan(llm, 500).endpoint_ids[0] == "fast"  # 30 * 1.5 = 45 < 60
    live += [router.admit("fast") for _ in range(3)]
    assert all(live)
    plan = router.plan(llm, 500)  # 30 * 2.25 = 67.5 > 60
    assert plan.endpoint_ids == ("mid", "fast")
    assert plan.candidates[1].in_flight == 5
    assert plan.candidates[1].score_ms == 30 * 2.25
    for attempt in live:
        assert attempt
        attempt.cancelled()
    assert router.plan(llm, 500).endpoint_ids[0] == "fast"


def test_an_endpoint_without_samples_is_tried_first(
    router: Router, make_llm: MakeLlm, serve: Serve
) -> None:
    llm = make_llm("fast", "mid", "new")
    serve("fast", 0.030)
    serve("mid", 0.060)
    plan = router.plan(llm, 500)
    assert plan.endpoint_ids[0] == "new"
    assert plan.candidates[0].expected_ttft_ms is None
    serve("new", 0.500)
    assert router.plan(llm, 500).endpoint_ids == ("fast", "mid", "new")


def test_with_no_samples_anywhere_the_configured_order_stands(
    router: Router, make_llm: MakeLlm
) -> None:
    plan = router.plan(make_llm("a", "b", "c"), 500)
    assert plan.endpoint_ids == ("a", "b", "c")
    assert plan.candidates[0].reason is Reason.FASTEST


def exploration_share(router: Router, make_llm: MakeLlm, n: int) -> float:
    llm = make_llm("fast", "mid", "slow")
    explored = 0
    for _ in range(n):
        first = router.plan(llm, 500).first
        assert first is not None
        explored += first.reason is Reason.EXPLORATION
    return explored / n


def test_exploration_is_rare_and_only_for_stale_estimates(
    router: Router, clock: FakeClock, make_llm: MakeLlm, serve: Serve
) -> None:
    for eid, ttft in FLEET.items():
        serve(eid, ttft)
    assert exploration_share(router, make_llm, 2_000) == 0.0  # all fresh
    clock.advance(60.0)
    share = exploration_share(router, make_llm, 20_000)
    assert 0.01 <= share <= 0.03  # configured 2%, never above the 5% cap


def test_exploration_skips_hopelessly_slow_and_other_tier_endpoints(
    router: Router, clock: FakeClock, make_llm: MakeLlm, serve: Serve
) -> None:
    llm = make_llm("fast", "glacial", "other_tier", priority={"other_tier": 1})
    serve("fast", 0.030)
    serve("glacial", 1.0)  # > 4x the best
    serve("other_tier", 0.040)
    clock.advance(600.0)
    for _ in range(5_000):
        assert router.plan(llm, 500).endpoint_ids[0] == "fast"


def test_exploration_rate_is_capped_at_5_percent() -> None:
    try:
        RouterConfig(exploration_rate=0.2)
    except ValueError:
        return
    raise AssertionError("an exploration rate above 5% was accepted")


def test_endpoints_too_small_for_the_prompt_go_last(
    router: Router, make_llm: MakeLlm, serve: Serve
) -> None:
    llm = make_llm("small", "large", window={"small": 8_000, "large": 128_000})
    serve("small", 0.030, prompt_tokens=20_000)
    serve("large", 0.300, prompt_tokens=20_000)
    plan = router.plan(llm, 20_000)
    assert plan.endpoint_ids == ("large", "small")
    assert not plan.candidates[1].fits_context
    assert router.plan(llm, 1_000).endpoint_ids == ("small", "large")


def test_single_endpoint_is_only_available(router: Router, make_llm: MakeLlm) -> None:
    plan = router.plan(make_llm("solo"), 500)
    assert plan.endpoint_ids == ("solo",)
    assert plan.candidates[0].reason is Reason.ONLY_AVAILABLE
    assert plan.candidates[0].state is CircuitState.CLOSED


def test_excluded_endpoints_are_skipped(router: Router, make_llm: MakeLlm) -> None:
    llm = make_llm("a", "b")
    plan = router.plan(llm, 500, exclude={"a"})
    assert plan.endpoint_ids == ("b",)
    assert plan.skipped == (("a", SkipReason.EXCLUDED),)
    empty = router.plan(llm, 500, exclude={"a", "b"})
    assert empty.candidates == () and empty.stop is StopReason.ALL_TRIED


def test_an_llm_without_endpoints_has_an_empty_plan(router: Router, make_llm: MakeLlm) -> None:
    assert router.plan(make_llm(), 500).stop is StopReason.NO_ENDPOINTS


@settings(max_examples=60, deadline=None)
@given(
    st.lists(
        st.tuples(st.floats(0.005, 5.0), st.integers(0, 2), st.integers(0, 6)),
        min_size=1,
        max_size=8,
    )
)
def test_plans_are_ordered_by_tier_then_load_adjusted_ttft(
    fleet: list[tuple[float, int, int]],
) -> None:
    clock = FakeClock()
    router = Router(clock, random.Random(0), RouterConfig(exploration_rate=0.0))
    ids = [f"e{i}" for i in range(len(fleet))]
    for eid, (ttft, _, in_flight) in zip(ids, fleet, strict=True):
        router.first_token(eid, ttft, 500)
        for _ in range(in_flight):
            router.admit(eid)
    eps = tuple(
        Endpoint(eid, ApiSpec.GROQ, "https://x.invalid", "m", Secret("k"), priority=p)
        for eid, (_, p, _) in zip(ids, fleet, strict=True)
    )
    plan = router.plan(Llm("l", "a", "l", eps), 500)
    keys = [(c.tier, c.score_ms) for c in plan.candidates]
    assert keys == sorted(keys)
    assert len(plan.candidates) == len(fleet)


def test_snapshot_reports_health_and_forget_resets_it(
    router: Router, clock: FakeClock, serve: Serve
) -> None:
    for ttft in (0.1, 0.2, 0.3):
        serve("a", ttft)
    router.record_gaps("a", [0.01, 0.02, 0.05])
    router.record_gaps("a", [0.04])
    assert router.admit("a")
    clock.advance(3.0)
    h = router.snapshot("a")
    assert h.state is CircuitState.CLOSED
    assert h.samples == 3
    assert h.ttft_p50_ms is not None and round(h.ttft_p50_ms) == 200
    assert h.ttft_p95_ms is not None and round(h.ttft_p95_ms) == 300
    assert h.ttft_ewma_ms is not None and 100 < h.ttft_ewma_ms < 300
    assert h.gap_p99_ms is not None and round(h.gap_p99_ms) == 50
    assert h.in_flight == 1
    assert h.last_sample_age_s == 3.0
    assert h.error_rate == 0.0
    router.forget("a")
    fresh = router.snapshot("a")
    assert fresh.samples == 0 and fresh.ttft_ewma_ms is None and fresh.in_flight == 0
