"""Clock, EWMA, quantile and outcome windows, and the per-endpoint latency model."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from server.clock import FakeClock, SystemClock
from server.routing.latency import LatencyConfig, LatencyModel
from server.routing.window import Ewma, OutcomeWindow, SampleWindow


def test_fake_clock_moves_only_when_told() -> None:
    clock = FakeClock(5.0)
    assert clock.monotonic() == 5.0
    clock.advance(1.5)
    assert clock.monotonic() == 6.5
    with pytest.raises(ValueError):
        clock.advance(-1)


def test_system_clock_is_monotonic() -> None:
    clock = SystemClock()
    assert clock.monotonic() <= clock.monotonic()


def test_ewma_first_sample_sets_the_estimate_and_weight_scales_the_step() -> None:
    full, light = Ewma(0.3), Ewma(0.3)
    for e in (full, light):
        e.add(0.1)
    full.add(1.1)
    light.add(1.1, weight=0.3)
    assert full.value == pytest.approx(0.1 + 0.3 * 1.0)
    assert light.value is not None and full.value is not None
    assert 0.1 < light.value < full.value
    assert light.value == pytest.approx(0.1 + (1 - 0.7**0.3) * 1.0)


def test_window_quantiles_are_over_the_last_samples_only() -> None:
    w = SampleWindow(100)
    for v in range(1000, 1100):  # will be pushed out
        w.add(float(v))
    for v in range(1, 101):
        w.add(float(v))
    assert len(w) == 100
    assert w.quantile(0.5) == 50.0
    assert w.quantile(0.95) == 95.0
    assert w.quantile(0.0) == 1.0
    assert w.quantile(1.0) == 100.0


def test_window_quantiles_respect_weights() -> None:
    w = SampleWindow(10)
    w.add(1.0, weight=1.0)
    w.add(100.0, weight=0.3)  # a probe
    assert w.quantile(0.5) == 1.0
    assert w.quantile(0.95) == 100.0


@given(st.lists(st.floats(0, 100), min_size=1, max_size=60), st.floats(0, 1), st.floats(0, 1))
def test_window_quantile_is_monotone(values: list[float], q1: float, q2: float) -> None:
    w = SampleWindow(32)
    for v in values:
        w.add(v)
    lo, hi = sorted((q1, q2))
    a, b = w.quantile(lo), w.quantile(hi)
    assert a is not None and b is not None
    assert a <= b
    assert a in values[-32:] and b in values[-32:]


def test_outcome_window_forgets_old_outcomes() -> None:
    w = OutcomeWindow(horizon_s=10.0)
    w.add(0.0, True)
    w.add(5.0, False)
    assert w.counts(5.0) == (2, 1)
    assert w.rate(5.0) == 0.5
    assert w.counts(10.5) == (1, 0)
    assert w.rate(100.0) == 0.0


def test_outcome_window_is_bounded() -> None:
    w = OutcomeWindow(horizon_s=1e9, cap=10)
    for i in range(25):
        w.add(float(i), i % 2 == 0)
    total, failures = w.counts(25.0)
    assert total == 10 and failures == 5


def test_latency_classes_fall_back_to_overall_until_they_have_samples() -> None:
    m = LatencyModel(LatencyConfig(min_class_samples=5))
    for _ in range(10):
        m.record_ttft(0.0, 0.2, prompt_tokens=500, is_probe=False)  # small
    # the large class has no samples yet: the overall estimate stands in
    assert m.expected_ttft_s(50_000) == pytest.approx(0.2)
    for _ in range(4):
        m.record_ttft(0.0, 2.0, prompt_tokens=50_000, is_probe=False)
    assert m.expected_ttft_s(50_000) == m.ttft_ewma_s()  # still fewer than 5
    m.record_ttft(0.0, 2.0, prompt_tokens=50_000, is_probe=False)
    assert m.expected_ttft_s(50_000) == pytest.approx(2.0)
    assert m.expected_ttft_s(500) == pytest.approx(0.2)
    assert m.ttft_quantile_s(0.5, 50_000) == pytest.approx(2.0)
    assert m.ttft_quantile_s(0.5, 500) == pytest.approx(0.2)


def test_prompt_size_class_boundaries() -> None:
    m = LatencyModel(LatencyConfig(min_class_samples=1))
    m.record_ttft(0.0, 0.1, prompt_tokens=1_999, is_probe=False)
    m.record_ttft(0.0, 0.5, prompt_tokens=2_000, is_probe=False)
    m.record_ttft(0.0, 0.9, prompt_tokens=16_000, is_probe=False)
    assert m.expected_ttft_s(0) == pytest.approx(0.1)
    assert m.expected_ttft_s(15_999) == pytest.approx(0.5)
    assert m.expected_ttft_s(1_000_000) == pytest.approx(0.9)


def test_probe_samples_count_less_than_live_ones() -> None:
    live, probed = LatencyModel(LatencyConfig()), LatencyModel(LatencyConfig())
    for m in (live, probed):
        m.record_ttft(0.0, 0.1, 500, is_probe=False)
    live.record_ttft(1.0, 1.0, 500, is_probe=False)
    probed.record_ttft(1.0, 1.0, 500, is_probe=True)
    assert (probed.expected_ttft_s(500) or 0) < (live.expected_ttft_s(500) or 0)
    assert probed.last_sample_at == 1.0


def test_a_missed_first_token_raises_the_estimate_only_when_it_is_news() -> None:
    m = LatencyModel(LatencyConfig())
    m.record_missed(0.0, 5.0, 500, is_probe=False)  # no estimate yet: nothing to compare
    assert m.samples == 0
    m.record_ttft(0.0, 0.1, 500, is_probe=False)
    m.record_missed(1.0, 0.05, 500, is_probe=False)  # failed fast: no news about speed
    assert m.expected_ttft_s(500) == pytest.approx(0.1)
    m.record_missed(2.0, 2.0, 500, is_probe=False)  # waited 2 s in vain: it is slower
    assert m.expected_ttft_s(500) == pytest.approx(0.13)  # by at most 30 % at a time
    assert m.last_sample_at == 2.0
    # a lower bound, not a first-token time: the hedge delay's quantile never sees it
    assert m.ttft_window_len() == 1 and m.ttft_quantile_s(0.95) == pytest.approx(0.1)
    for t in range(3, 8):
        m.record_missed(float(t), 2.0, 500, is_probe=False)
    assert (m.expected_ttft_s(500) or 0) > 0.4  # it keeps waiting in vain: a slowdown


def test_one_outlier_moves_the_estimate_by_a_bounded_step() -> None:
    """A first token 30x late (a busy host) moves the EWMA as a 2x sample would; the quantile
    window keeps the raw value, and a lasting change still shows within a few samples."""
    m = LatencyModel(LatencyConfig())
    for t in range(5):
        m.record_ttft(float(t), 0.01, 500, is_probe=False)
    m.record_ttft(5.0, 0.3, 500, is_probe=False)
    assert m.expected_ttft_s(500) == pytest.approx(0.013)
    assert m.ttft_quantile_s(0.95) == pytest.approx(0.3)
    for t in range(6, 11):
        m.record_ttft(float(t), 0.3, 500, is_probe=False)
    assert (m.expected_ttft_s(500) or 0) > 0.04
    m.record_ttft(11.0, 0.001, 500, is_probe=False)  # faster is never bounded
    assert (m.expected_ttft_s(500) or 1) < 0.035
    with pytest.raises(ValueError):
        LatencyConfig(outlier_factor=1.0)


def test_gaps_keep_a_bounded_window() -> None:
    m = LatencyModel(LatencyConfig(gap_window=100))
    m.record_gaps([10.0] * 100)
    m.record_gaps([0.01] * 100)
    for _ in range(50):
        m.record_gaps([0.02])
    assert m.gap_samples() == 100
    assert m.gap_quantile_s(0.99) == pytest.approx(0.02)
