"""Circuit breaker transitions and the rate-limit cooldown."""

from __future__ import annotations

import random
from dataclasses import replace
from typing import Any

import pytest

from server.providers.base import ErrorKind
from server.routing.breaker import (
    BreakerConfig,
    CircuitBreaker,
    CircuitState,
    HealthVerdict,
    RateCooldown,
    verdict_of,
)

CLOSED, OPEN, HALF_OPEN = CircuitState.CLOSED, CircuitState.OPEN, CircuitState.HALF_OPEN


def breaker(**kw: Any) -> CircuitBreaker:
    return CircuitBreaker(replace(BreakerConfig(), **kw), random.Random(7))


def test_opens_after_three_consecutive_failures() -> None:
    b = breaker()
    b.record_failure(0.0)
    b.record_failure(0.1)
    assert b.state(0.1) is CLOSED
    b.record_failure(0.2)
    assert b.state(0.2) is OPEN
    assert not b.acquire(0.2)


def test_a_success_resets_the_consecutive_count() -> None:
    b = breaker()
    for t in range(10):
        b.record_failure(t * 1.0)
        b.record_failure(t * 1.0 + 0.1)
        b.record_success(t * 1.0 + 0.2)
        b.record_success(t * 1.0 + 0.3)
        b.record_success(t * 1.0 + 0.4)
    assert b.state(10.0) is CLOSED


def test_opens_on_failure_rate_once_the_minimum_count_is_reached() -> None:
    b = breaker(min_requests=10, failure_rate=0.5, window_s=30.0)
    t = 0.0
    # fail, fail, succeed, ...: never three in a row, but two thirds fail
    for i in range(9):
        if i % 3 == 2:
            b.record_success(t)
        else:
            b.record_failure(t)
        t += 0.5
        assert b.state(t) is CLOSED, i  # fewer than 10 outcomes
    b.record_failure(t)  # 10th outcome, 7/10 failed
    assert b.state(t) is OPEN


def test_failure_rate_only_counts_the_window() -> None:
    b = breaker(min_requests=10, failure_rate=0.5, window_s=30.0)
    for i in range(8):
        (b.record_failure if i % 2 else b.record_success)(float(i))
    # 40 s later the old outcomes are gone: two failures among few outcomes do not open
    b.record_failure(48.0)
    b.record_success(48.5)
    b.record_failure(49.0)
    assert b.state(49.0) is CLOSED


def test_rejected_key_opens_at_once_for_at_least_the_auth_cooldown() -> None:
    b = breaker(auth_cooldown_s=30.0)
    b.record_rejected_key(0.0)
    assert b.state(0.0) is OPEN
    assert b.open_remaining_s(0.0) >= 30.0
    assert b.state(29.9) is OPEN


def test_half_open_allows_exactly_one_trial_and_success_closes() -> None:
    b = breaker(jitter=0.0)
    for _ in range(3):
        b.record_failure(0.0)
    assert b.state(0.99) is OPEN
    assert b.state(1.0) is HALF_OPEN
    assert b.trial_available(1.0)
    assert b.acquire(1.0)
    assert not b.acquire(1.0)
    assert not b.trial_available(1.5)
    b.record_success(1.5)
    assert b.state(1.5) is CLOSED
    assert b.acquire(1.5) and b.acquire(1.5)
    assert b.consecutive_failures == 0


def test_failed_trial_reopens_with_a_longer_cooldown() -> None:
    b = breaker(jitter=0.0, base_cooldown_s=1.0, max_cooldown_s=60.0)
    for _ in range(3):
        b.record_failure(0.0)
    now, cooldowns = 0.0, [b.open_remaining_s(0.0)]
    for _ in range(8):
        now += cooldowns[-1]
        assert b.acquire(now)
        b.record_failure(now)
        assert b.state(now) is OPEN
        cooldowns.append(b.open_remaining_s(now))
    assert cooldowns == [1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 60.0, 60.0, 60.0]


def test_cooldown_is_jittered_within_bounds() -> None:
    seen = set()
    for seed in range(20):
        b = CircuitBreaker(BreakerConfig(jitter=0.2), random.Random(seed))
        b.trip(0.0)
        c = b.open_remaining_s(0.0)
        assert 0.8 <= c <= 1.2
        seen.add(round(c, 6))
    assert len(seen) > 10


def test_success_after_closing_resets_the_backoff() -> None:
    b = breaker(jitter=0.0)
    b.trip(0.0)
    b.trip(0.0)  # second opening: 2 s
    assert b.open_remaining_s(0.0) == 2.0
    assert b.acquire(2.0)
    b.record_success(2.0)
    b.trip(3.0)
    assert b.open_remaining_s(3.0) == 1.0


def test_results_from_before_the_opening_are_ignored_while_open() -> None:
    b = breaker(jitter=0.0)
    b.trip(0.0)
    b.record_success(0.5)
    assert b.state(0.5) is OPEN
    b.record_failure(0.6)
    assert b.open_remaining_s(0.6) == pytest.approx(0.4)


def test_a_cancelled_trial_frees_the_slot() -> None:
    b = breaker(jitter=0.0)
    b.trip(0.0)
    assert b.acquire(1.0)
    b.release()
    assert b.trial_available(1.0)
    assert b.acquire(1.0)


def test_a_lost_trial_frees_its_slot_after_the_trial_timeout() -> None:
    b = breaker(jitter=0.0, trial_timeout_s=120.0)
    b.trip(0.0)
    assert b.acquire(1.0)
    assert not b.acquire(100.0)
    assert b.acquire(121.0)


def test_verdicts() -> None:
    assert verdict_of(ErrorKind.SERVER_ERROR) is HealthVerdict.FAILURE
    assert verdict_of(ErrorKind.TIMEOUT) is HealthVerdict.FAILURE
    assert verdict_of(ErrorKind.NOT_FOUND) is HealthVerdict.NEUTRAL  # a 4xx: not its health
    assert verdict_of(ErrorKind.UNSUPPORTED_INPUT) is HealthVerdict.HEALTHY
    assert verdict_of(ErrorKind.AUTHENTICATION) is HealthVerdict.REJECTED_KEY
    assert verdict_of(ErrorKind.RATE_LIMITED) is HealthVerdict.RATE_LIMITED
    assert verdict_of(ErrorKind.QUOTA_EXHAUSTED) is HealthVerdict.RATE_LIMITED
    assert verdict_of(ErrorKind.CONTENT_FILTERED) is HealthVerdict.HEALTHY
    assert verdict_of(ErrorKind.CONTEXT_LENGTH) is HealthVerdict.HEALTHY


def test_rate_cooldown_uses_retry_after_default_and_cap() -> None:
    c = RateCooldown(BreakerConfig())
    c.apply(0.0, ErrorKind.RATE_LIMITED, 2.0)
    assert c.remaining_s(0.0) == 2.0
    assert c.remaining_s(2.0) == 0.0
    c.apply(10.0, ErrorKind.RATE_LIMITED, None)
    assert c.remaining_s(10.0) == 1.0
    c.apply(20.0, ErrorKind.QUOTA_EXHAUSTED, None)
    assert c.remaining_s(20.0) == 60.0
    c.apply(100.0, ErrorKind.RATE_LIMITED, 86_400.0)
    assert c.remaining_s(100.0) == 300.0
    c.apply(100.0, ErrorKind.RATE_LIMITED, float("nan"))  # garbage header: default, no shrink
    assert c.remaining_s(100.0) == 300.0
