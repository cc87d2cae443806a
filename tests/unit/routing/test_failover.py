"""Failures: breaker wiring, rate-limit cooldowns, what comes next, single endpoints."""

from __future__ import annotations

from server.clock import FakeClock
from server.providers.base import ErrorKind, UpstreamError
from server.routing.breaker import CircuitState
from server.routing.route_plan import Reason, SkipReason, StopReason
from server.routing.router import Router

from .conftest import MakeLlm, Serve


def err(kind: ErrorKind, retry_after_s: float | None = None) -> UpstreamError:
    return UpstreamError(kind, f"simulated {kind.value}", retry_after_s=retry_after_s)


def fail(router: Router, eid: str, error: UpstreamError | None) -> None:
    attempt = router.admit(eid)
    assert attempt
    if error is None:
        attempt.cancelled()
    else:
        attempt.failed(error)


def test_429_with_retry_after_keeps_the_endpoint_out_of_every_plan_for_that_long(
    router: Router, clock: FakeClock, make_llm: MakeLlm, serve: Serve
) -> None:
    llm = make_llm("a", "b")
    serve("a", 0.030)
    serve("b", 0.060)
    fail(router, "a", err(ErrorKind.RATE_LIMITED, retry_after_s=2.0))
    for _ in range(20):
        plan = router.plan(llm, 500)
        assert "a" not in plan.endpoint_ids
        assert ("a", SkipReason.COOLING_DOWN) in plan.skipped
        assert not router.admit("a")  # not even a hedge or probe
        clock.advance(0.099)
    clock.advance(2.0 - 20 * 0.099)
    assert router.plan(llm, 500).endpoint_ids == ("a", "b")
    health = router.snapshot("a")
    assert health.state is CircuitState.CLOSED and health.consecutive_failures == 0


def test_rate_limits_do_not_open_the_circuit(
    router: Router, clock: FakeClock, make_llm: MakeLlm
) -> None:
    for _ in range(10):
        fail(router, "a", err(ErrorKind.RATE_LIMITED, retry_after_s=0.5))
        clock.advance(0.5)
    assert router.snapshot("a").state is CircuitState.CLOSED
    assert router.snapshot("a").error_rate == 1.0


def test_single_rate_limited_endpoint_gives_an_empty_plan_with_retry_after(
    router: Router, make_llm: MakeLlm
) -> None:
    fail(router, "solo", err(ErrorKind.RATE_LIMITED, retry_after_s=2.0))
    plan = router.plan(make_llm("solo"), 500)
    assert plan.candidates == ()
    assert plan.stop is StopReason.ALL_UNAVAILABLE
    assert plan.retry_after_s == 2.0


def test_a_rate_limited_single_endpoint_says_when_to_retry(
    router: Router, make_llm: MakeLlm
) -> None:
    e = err(ErrorKind.RATE_LIMITED, retry_after_s=2.0)
    fail(router, "solo", e)
    plan = router.next_after(make_llm("solo"), 500, "solo", e, ["solo"])
    assert plan.candidates == ()
    assert plan.stop is StopReason.ALL_UNAVAILABLE and plan.retry_after_s == 2.0


def test_context_length_fails_over_only_to_larger_windows(
    router: Router, make_llm: MakeLlm
) -> None:
    windows = {"w8k": 8_000, "w4k": 4_000, "w32k": 32_000, "w128k": 128_000}
    llm = make_llm("w8k", "w4k", "w32k", "unknown", "w128k", window=windows)
    fail(router, "w8k", err(ErrorKind.CONTEXT_LENGTH))
    plan = router.next_after(llm, 7_000, "w8k", err(ErrorKind.CONTEXT_LENGTH), ["w8k"])
    # Known larger windows first; an unknown window may be larger too (issue 19), so it is
    # tried last rather than never.
    assert set(plan.endpoint_ids[:2]) == {"w32k", "w128k"}
    assert plan.endpoint_ids[2:] == ("unknown",)
    assert all(c.reason is Reason.LARGER_CONTEXT_WINDOW for c in plan.candidates)
    assert router.snapshot("w8k").consecutive_failures == 0  # the endpoint is fine


def test_context_length_with_no_larger_window_stops(router: Router, make_llm: MakeLlm) -> None:
    llm = make_llm("big", "small", window={"big": 128_000, "small": 8_000})
    plan = router.next_after(llm, 200_000, "big", err(ErrorKind.CONTEXT_LENGTH), ["big"])
    assert plan.candidates == ()
    assert plan.stop is StopReason.NO_LARGER_CONTEXT_WINDOW


def test_context_length_on_an_unknown_window_needs_a_window_above_the_prompt(
    router: Router, make_llm: MakeLlm
) -> None:
    llm = make_llm("unknown", "w16k", "w64k", "other", window={"w16k": 16_000, "w64k": 64_000})
    plan = router.next_after(llm, 20_000, "unknown", err(ErrorKind.CONTEXT_LENGTH), ["unknown"])
    assert plan.endpoint_ids == ("w64k", "other")


def test_content_filter_and_bad_request_do_not_fail_over(router: Router, make_llm: MakeLlm) -> None:
    llm = make_llm("a", "b")
    for kind in (ErrorKind.CONTENT_FILTERED, ErrorKind.BAD_REQUEST):
        fail(router, "a", err(kind))
        plan = router.next_after(llm, 500, "a", err(kind), ["a"])
        assert plan.candidates == () and plan.stop is StopReason.NOT_RETRYABLE
    assert router.snapshot("a").state is CircuitState.CLOSED


def test_rejected_key_opens_that_circuit_and_continues_with_the_others(
    router: Router, make_llm: MakeLlm, serve: Serve
) -> None:
    llm = make_llm("a", "b")
    serve("a", 0.030)
    serve("b", 0.060)
    fail(router, "a", err(ErrorKind.AUTHENTICATION))
    assert router.snapshot("a").state is CircuitState.OPEN
    plan = router.next_after(llm, 500, "a", err(ErrorKind.AUTHENTICATION), ["a"])
    assert plan.endpoint_ids == ("b",)
    assert router.plan(llm, 500).endpoint_ids == ("b",)


def test_next_after_opens_the_circuit_on_auth_even_if_not_reported(
    router: Router, make_llm: MakeLlm
) -> None:
    llm = make_llm("a", "b")
    router.next_after(llm, 500, "a", err(ErrorKind.AUTHENTICATION), ["a"])
    assert router.snapshot("a").state is CircuitState.OPEN


def test_transient_errors_fail_over_to_the_next_fastest(
    router: Router, make_llm: MakeLlm, serve: Serve
) -> None:
    llm = make_llm("a", "b", "c")
    for eid, t in (("a", 0.03), ("b", 0.06), ("c", 0.09)):
        serve(eid, t)
    fail(router, "a", err(ErrorKind.SERVER_ERROR))
    plan = router.next_after(llm, 500, "a", err(ErrorKind.SERVER_ERROR), ["a"])
    assert plan.endpoint_ids == ("b", "c")
    assert plan.candidates[0].reason is Reason.FASTEST


def test_attempts_per_turn_are_bounded(router: Router, make_llm: MakeLlm) -> None:
    llm = make_llm("a", "b", "c", "d", "e")
    plan = router.next_after(llm, 500, "d", err(ErrorKind.TIMEOUT), ["a", "b", "c", "d"])
    assert plan.candidates == () and plan.stop is StopReason.ATTEMPTS_EXHAUSTED


def test_single_endpoint_transient_error_is_retried_after_a_backoff(
    router: Router, make_llm: MakeLlm
) -> None:
    llm = make_llm("solo")
    fail(router, "solo", err(ErrorKind.CONNECTION))
    plan = router.next_after(llm, 500, "solo", err(ErrorKind.CONNECTION), ["solo"])
    assert plan.endpoint_ids == ("solo",)
    assert plan.candidates[0].reason is Reason.RETRY
    assert 0.05 <= plan.candidates[0].backoff_s <= 0.1
    # but not after an error that retrying cannot fix
    plan = router.next_after(llm, 500, "solo", err(ErrorKind.NOT_FOUND), ["solo"])
    assert plan.candidates == () and plan.stop is StopReason.ALL_TRIED


def test_a_cancelled_hedge_loser_is_not_a_failure(router: Router) -> None:
    for _ in range(10):
        fail(router, "a", None)
    h = router.snapshot("a")
    assert h.state is CircuitState.CLOSED and h.consecutive_failures == 0
    assert h.error_rate == 0.0 and h.in_flight == 0


def test_single_endpoint_open_circuit_fails_fast_then_allows_one_trial(
    router: Router, clock: FakeClock, make_llm: MakeLlm
) -> None:
    llm = make_llm("solo")
    for _ in range(3):
        fail(router, "solo", err(ErrorKind.SERVER_ERROR))
    plan = router.plan(llm, 500)
    assert plan.candidates == () and plan.stop is StopReason.ALL_UNAVAILABLE
    assert plan.skipped == (("solo", SkipReason.CIRCUIT_OPEN),)
    assert plan.retry_after_s is not None and 0.8 <= plan.retry_after_s <= 1.2
    clock.advance(plan.retry_after_s)
    trial = router.plan(llm, 500)
    assert trial.candidates[0].reason is Reason.HALF_OPEN_TRIAL
    trial_attempt = router.admit("solo")
    assert trial_attempt  # the trial is claimed
    concurrent = router.plan(llm, 500)  # another turn meanwhile
    assert concurrent.candidates == ()
    assert concurrent.skipped == (("solo", SkipReason.TRIAL_IN_FLIGHT),)
    assert concurrent.retry_after_s == 1.0
    assert not router.admit("solo")
    trial_attempt.succeeded()
    assert router.plan(llm, 500).candidates[0].reason is Reason.ONLY_AVAILABLE


def test_a_dead_single_endpoint_never_gets_a_tight_loop(
    router: Router, clock: FakeClock, make_llm: MakeLlm
) -> None:
    """An engine that retries whenever the router lets it, for ten simulated minutes."""
    llm = make_llm("solo")
    attempts, turns = 0, 0
    while clock.monotonic() < 1000.0 + 600.0:
        turns += 1
        plan = router.plan(llm, 500)
        attempted: list[str] = []
        while plan.candidates and (attempt := router.admit(plan.candidates[0].endpoint_id)):
            clock.advance(plan.candidates[0].backoff_s)
            attempts += 1
            attempted.append("solo")
            e = err(ErrorKind.SERVER_ERROR)
            attempt.failed(e)
            plan = router.next_after(llm, 500, "solo", e, attempted)
        assert len(attempted) <= router.config.max_attempts
        clock.advance(0.01)  # a new turn every 10 ms
    # 3 to open, then one trial per cooldown (1, 2, 4, ... 20 s): a few dozen, not 60,000
    assert turns > 50_000
    assert attempts < 50


def test_half_open_endpoints_rank_after_closed_ones_of_their_tier(
    router: Router, clock: FakeClock, make_llm: MakeLlm, serve: Serve
) -> None:
    llm = make_llm("a", "b", "c", priority={"c": 1})
    serve("a", 0.030)
    serve("b", 0.090)
    serve("c", 0.010)
    for _ in range(3):
        fail(router, "a", err(ErrorKind.TIMEOUT))
    clock.advance(2.0)
    plan = router.plan(llm, 500)
    assert plan.endpoint_ids == ("b", "a", "c")
    assert plan.candidates[1].reason is Reason.HALF_OPEN_TRIAL
    assert plan.candidates[1].state is CircuitState.HALF_OPEN


def test_failure_on_a_trial_reopens_the_circuit_for_longer(
    router: Router, clock: FakeClock
) -> None:
    for _ in range(3):
        fail(router, "a", err(ErrorKind.SERVER_ERROR))
    first = router.snapshot("a").open_remaining_s
    clock.advance(first)
    fail(router, "a", err(ErrorKind.SERVER_ERROR))
    h = router.snapshot("a")
    assert h.state is CircuitState.OPEN
    assert h.open_remaining_s > first


def test_a_half_open_trial_waits_for_a_probe_then_goes_to_live_traffic(
    router: Router, clock: FakeClock, make_llm: MakeLlm, serve: Serve
) -> None:
    """Behind its closed peers for ``live_trial_after_s`` (a probe would take the trial), then
    ranked by its latency score, so a recovered fast endpoint rejoins its tier even when no
    session keeps probes running."""
    llm = make_llm("fast", "slow")
    for _ in range(10):
        serve("fast", 0.03)
        serve("slow", 0.09)
    for _ in range(3):
        fail(router, "fast", err(ErrorKind.SERVER_ERROR))
    assert router.plan(llm, 500).endpoint_ids == ("slow",)  # open
    clock.advance(router.snapshot("fast").open_remaining_s)
    first = router.plan(llm, 500).candidates
    assert [c.endpoint_id for c in first] == ["slow", "fast"]
    assert first[1].reason is Reason.HALF_OPEN_TRIAL
    clock.advance(router.config.live_trial_after_s)
    later = router.plan(llm, 500).candidates
    assert [c.endpoint_id for c in later] == ["fast", "slow"]
    assert later[0].reason is Reason.HALF_OPEN_TRIAL
