"""The router's journal (issue 17): what GetRoutingState shows of recent samples, probes and
failovers, with ages read from the router's clock."""

from __future__ import annotations

from switchboard.v1 import llm_pb2 as lpb

from server.clock import FakeClock
from server.edge.health import fill_health
from server.edge.routing_state import routing_reader
from server.providers.base import ErrorKind, UpstreamError
from server.routing.journal import MAX_TTFTS
from server.routing.router import Router

from .conftest import MakeLlm, Serve


def test_live_and_probe_first_tokens_are_kept_oldest_first_and_bounded(
        router: Router, clock: FakeClock, serve: Serve) -> None:
    for i in range(MAX_TTFTS + 5):
        serve("a", 0.010 + i / 1000, probe=i % 2 == 1)
        clock.advance(1.0)
    view = router.journal("a")
    assert len(view.ttfts) == MAX_TTFTS
    assert [round(s.ttft_ms) for s in view.ttfts[:2]] == [15, 16]
    assert view.ttfts[0].probe and not view.ttfts[1].probe
    assert view.ttfts[-1].age_s == 1.0 and view.ttfts[0].age_s == MAX_TTFTS


def test_probes_record_their_outcome_and_first_token(router: Router, clock: FakeClock) -> None:
    probe = router.admit("a", probe=True)
    assert probe
    probe.first_token(0.042, 1500)
    probe.succeeded()
    clock.advance(3.0)
    probe = router.admit("a", probe=True)
    assert probe
    probe.failed(UpstreamError(ErrorKind.TIMEOUT, "slow"))
    newest, oldest = router.journal("a").probes
    assert (newest.ok, newest.ttft_ms, newest.error, newest.age_s) == (False, None, "timeout", 0)
    assert (oldest.ok, round(oldest.ttft_ms or 0), oldest.error, oldest.age_s) == (
        True, 42, "", 3.0)


def test_a_failover_is_recorded_on_the_failed_endpoint_with_its_cause(
        router: Router, clock: FakeClock, make_llm: MakeLlm) -> None:
    llm = make_llm("a", "b", priority={"b": 1})
    error = UpstreamError(ErrorKind.SERVER_ERROR, "boom", status=500)
    attempt = router.admit("a")
    assert attempt
    attempt.failed(error)
    plan = router.next_after(llm, 100, "a", error, ["a"])
    assert plan.endpoint_ids[0] == "b"
    (record,) = router.journal("a").failovers
    assert (record.from_endpoint_id, record.to_endpoint_id) == ("a", "b")
    assert record.cause == "server_error (HTTP 500)"
    assert router.journal("b").failovers == ()
    router.next_after(llm, 100, "b", error, ["a", "b"] * router.config.max_attempts)
    (last,) = router.journal("b").failovers
    assert last.to_endpoint_id == "" and "nothing left to try: attempts_exhausted" in last.cause
    router.forget("a")
    assert router.journal("a").failovers == ()


def test_the_state_proto_orders_by_rank_and_stamps_reopen_time(
        router: Router, clock: FakeClock, make_llm: MakeLlm, serve: Serve) -> None:
    llm = make_llm("a", "b")
    serve("a", 0.050)
    serve("b", 0.020)
    for _ in range(10):  # enough consecutive failures to open a's circuit
        if attempt := router.admit("a"):
            attempt.failed(UpstreamError(ErrorKind.CONNECTION, "refused"))
    wall = 1_800_000_000.0
    state = routing_reader(router, fill_health(router), wall=lambda: wall)(llm)
    first, second = state.endpoints
    assert (first.endpoint_id, first.rank, first.skip_reason) == ("b", 1, "")
    assert second.endpoint_id == "a" and second.rank == 0 and second.skip_reason == "circuit_open"
    assert second.health.circuit_state == lpb.CIRCUIT_STATE_OPEN
    reopen = second.reopen_time.ToNanoseconds() / 1e9
    assert wall < reopen <= wall + second.health.cooldown_remaining_seconds + 1e-6
    assert not first.HasField("reopen_time")
    assert [round(s.ttft_ms) for s in first.recent_ttfts] == [20]
    assert abs(state.read_time.ToNanoseconds() / 1e9 - wall) < 1e-3
