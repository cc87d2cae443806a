"""Hedge delay, stall timeout and retry backoff."""

from __future__ import annotations

import random

import pytest
from hypothesis import given
from hypothesis import strategies as st

from server.clock import FakeClock
from server.routing.router import Router
from server.routing.timing import TimingConfig, backoff_s

from .conftest import Serve


def test_hedge_delay_defaults_to_2_s_without_data(router: Router) -> None:
    assert router.hedge_delay_s("unknown") == 2.0
    router.first_token("a", 0.1, 500)
    assert router.hedge_delay_s("a") == 2.0  # too few samples for a p95


def test_hedge_delay_is_3x_p95_within_bounds(router: Router, serve: Serve) -> None:
    for _ in range(20):
        serve("fast", 0.030)  # 3 * 30 ms = 90 ms -> lower bound
        serve("typical", 0.400)  # 3 * 400 ms = 1.2 s
        serve("slow", 4.0)  # 12 s -> upper bound
    assert router.hedge_delay_s("fast") == 0.25
    assert router.hedge_delay_s("typical") == pytest.approx(1.2)
    assert router.hedge_delay_s("slow") == 5.0


def test_hedge_delay_uses_the_prompt_size_class(router: Router, serve: Serve) -> None:
    for _ in range(10):
        serve("a", 0.2, prompt_tokens=500)
        serve("a", 1.0, prompt_tokens=50_000)
    assert router.hedge_delay_s("a", 500) == pytest.approx(0.6)
    assert router.hedge_delay_s("a", 50_000) == pytest.approx(3.0)


@given(st.lists(st.floats(0.0, 100.0), min_size=0, max_size=40))
def test_hedge_delay_is_always_within_bounds(ttfts: list[float]) -> None:
    router = Router(FakeClock(), random.Random(0))
    for t in ttfts:
        router.first_token("a", t, 500)
    assert 0.25 <= router.hedge_delay_s("a") <= 5.0


def test_stall_timeout_is_kx_p99_gap_within_bounds(router: Router, serve: Serve) -> None:
    for eid in ("steady", "bursty", "stuttering"):
        serve(eid, 0.1)
    assert router.stall_timeout_s("steady") == 10.0  # no gaps yet: the default
    router.record_gaps("steady", [0.02] * 200)  # 4 * 20 ms -> lower bound 2 s
    router.record_gaps("bursty", [0.05] * 195 + [1.5] * 5)  # p99 1.5 s -> 6 s
    router.record_gaps("stuttering", [20.0] * 50)  # 80 s -> upper bound 30 s
    assert router.stall_timeout_s("steady") == 2.0
    assert router.stall_timeout_s("bursty") == pytest.approx(6.0)
    assert router.stall_timeout_s("stuttering") == 30.0


def test_chunk_gaps_for_unknown_endpoints_are_ignored(router: Router) -> None:
    router.record_gaps("never-started", [1.0])
    assert router.snapshot("never-started").gap_p99_ms is None


def test_backoff_is_jittered_exponential_and_capped() -> None:
    cfg = TimingConfig(backoff_base_s=0.1, backoff_max_s=2.0)
    rng = random.Random(5)
    for attempt, ceiling in ((1, 0.1), (2, 0.2), (3, 0.4), (4, 0.8), (5, 1.6), (6, 2.0), (50, 2.0)):
        values = [backoff_s(cfg, rng, attempt) for _ in range(200)]
        assert all(ceiling / 2 <= v <= ceiling for v in values)
        assert len(set(values)) > 100  # jittered


def test_router_backoff_uses_its_rng(router: Router) -> None:
    assert 0.05 <= router.backoff_s(1) <= 0.1
