"""A circuit breaker per endpoint, and the rate-limit cooldown that sits beside it.

CLOSED: requests flow. It opens after ``consecutive_failures`` failures in a row, or when the
failure share over the last ``window_s`` seconds reaches ``failure_rate`` with at least
``min_requests`` outcomes, or at once when the provider rejects our stored API key.

OPEN: no request at all until the cooldown ends. The cooldown doubles with each consecutive
opening (``base_cooldown_s`` * 2^(n-1), at most ``max_cooldown_s``, ±``jitter``); a rejected
key waits at least ``auth_cooldown_s``.

HALF_OPEN (cooldown over): exactly one trial request may go, a live turn or a probe, whichever
claims it first through ``acquire``. Its success closes the circuit and resets the backoff; its
failure re-opens it with the next, longer cooldown. A trial that never reports back frees its
slot after ``trial_timeout_s``, so a lost callback cannot wedge an endpoint.

Results of requests that started before the circuit opened are ignored while it is open.

Rate limits are not failures: a 429 puts the endpoint in a cooldown (``RateCooldown``) for the
provider's Retry-After, without touching the breaker.
"""

from __future__ import annotations

import enum
import math
import random
from dataclasses import dataclass

from server.providers.base import ErrorKind
from server.routing.window import OutcomeWindow


class CircuitState(enum.StrEnum):
    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half_open"


class HealthVerdict(enum.Enum):
    """What an upstream error says about the endpoint's health."""

    FAILURE = "failure"  # the endpoint is unwell: counts toward opening
    REJECTED_KEY = "rejected_key"  # our stored key is refused: open at once
    RATE_LIMITED = "rate_limited"  # cooldown only
    HEALTHY = "healthy"  # the endpoint answered properly; the request itself was the problem
    NEUTRAL = "neutral"  # says nothing about health (a wrong model name): frees a trial only


_VERDICTS = {
    ErrorKind.AUTHENTICATION: HealthVerdict.REJECTED_KEY,
    ErrorKind.RATE_LIMITED: HealthVerdict.RATE_LIMITED,
    ErrorKind.QUOTA_EXHAUSTED: HealthVerdict.RATE_LIMITED,
    ErrorKind.CONTEXT_LENGTH: HealthVerdict.HEALTHY,
    ErrorKind.CONTENT_FILTERED: HealthVerdict.HEALTHY,
    ErrorKind.BAD_REQUEST: HealthVerdict.HEALTHY,
    ErrorKind.UNSUPPORTED_INPUT: HealthVerdict.HEALTHY,
    # A 4xx other than auth and rate limits is about the request or the configuration, never
    # a sign that the endpoint is down: one misaddressed turn must not take it offline.
    ErrorKind.NOT_FOUND: HealthVerdict.NEUTRAL,
}


def verdict_of(kind: ErrorKind) -> HealthVerdict:
    return _VERDICTS.get(kind, HealthVerdict.FAILURE)


@dataclass(frozen=True, slots=True)
class BreakerConfig:
    consecutive_failures: int = 3
    failure_rate: float = 0.5
    min_requests: int = 10
    window_s: float = 30.0
    base_cooldown_s: float = 1.0
    # Bounded so that an endpoint is retried within 24 s (20 s + jitter) of recovering, however
    # long its outage lasted; the issue promises "back in use within 30 s".
    max_cooldown_s: float = 20.0
    jitter: float = 0.2
    auth_cooldown_s: float = 30.0
    trial_timeout_s: float = 120.0
    # 429 handling (see RateCooldown).
    rate_limit_cooldown_s: float = 1.0  # a 429 without Retry-After
    quota_cooldown_s: float = 60.0  # quota exhausted without Retry-After
    max_rate_cooldown_s: float = 300.0  # cap on any provider-requested wait


class CircuitBreaker:
    __slots__ = (
        "_config",
        "_open_until",
        "_openings",
        "_outcomes",
        "_rng",
        "_trial_started_at",
        "consecutive_failures",
    )

    def __init__(self, config: BreakerConfig, rng: random.Random) -> None:
        self._config = config
        self._rng = rng
        self._outcomes = OutcomeWindow(config.window_s)
        self._open_until: float | None = None
        self._openings = 0
        self._trial_started_at: float | None = None
        self.consecutive_failures = 0

    def state(self, now: float) -> CircuitState:
        if self._open_until is None:
            return CircuitState.CLOSED
        return CircuitState.OPEN if now < self._open_until else CircuitState.HALF_OPEN

    def half_open_for_s(self, now: float) -> float:
        """How long the circuit has been half open (0 when it is not)."""
        if self._open_until is None or now < self._open_until:
            return 0.0
        return now - self._open_until

    def open_remaining_s(self, now: float) -> float:
        return 0.0 if self._open_until is None else max(0.0, self._open_until - now)

    def trial_in_flight(self, now: float) -> bool:
        started = self._trial_started_at
        return started is not None and now - started < self._config.trial_timeout_s

    def trial_available(self, now: float) -> bool:
        return self.state(now) is CircuitState.HALF_OPEN and not self.trial_in_flight(now)

    def acquire(self, now: float) -> bool:
        """May a request be sent now? In HALF_OPEN this claims the single trial."""
        state = self.state(now)
        if state is CircuitState.CLOSED:
            return True
        if state is CircuitState.OPEN or self.trial_in_flight(now):
            return False
        self._trial_started_at = now
        return True

    def release(self) -> None:
        """An attempt ended without a verdict (cancelled, rate-limited): free the trial slot."""
        self._trial_started_at = None

    def record_success(self, now: float) -> None:
        state = self.state(now)
        if state is CircuitState.OPEN:
            return  # a request from before the circuit opened
        if state is CircuitState.HALF_OPEN:
            self._close()
            return
        self.consecutive_failures = 0
        self._outcomes.add(now, False)

    def record_failure(self, now: float) -> None:
        state = self.state(now)
        if state is CircuitState.OPEN:
            return
        if state is CircuitState.HALF_OPEN:
            if self._trial_started_at is not None:
                self.consecutive_failures += 1
                self.trip(now)
            return
        self.consecutive_failures += 1
        self._outcomes.add(now, True)
        total, failures = self._outcomes.counts(now)
        too_many_in_a_row = self.consecutive_failures >= self._config.consecutive_failures
        too_high_a_rate = (
            total >= self._config.min_requests and failures >= self._config.failure_rate * total
        )
        if too_many_in_a_row or too_high_a_rate:
            self.trip(now)

    def record_rejected_key(self, now: float) -> None:
        if self.state(now) is not CircuitState.OPEN:
            self.consecutive_failures += 1
            self.trip(now, min_cooldown_s=self._config.auth_cooldown_s)

    def trip(self, now: float, min_cooldown_s: float = 0.0) -> None:
        """Open the circuit with the next cooldown of the exponential schedule."""
        c = self._config
        self._openings += 1
        raw = min(c.max_cooldown_s, c.base_cooldown_s * 2.0 ** min(self._openings - 1, 30))
        jittered = raw * self._rng.uniform(1.0 - c.jitter, 1.0 + c.jitter)
        self._open_until = now + max(min(jittered, c.max_cooldown_s), min_cooldown_s)
        self._trial_started_at = None

    def failure_rate(self, now: float) -> float:
        return self._outcomes.rate(now)

    def _close(self) -> None:
        self._open_until = None
        self._openings = 0
        self._trial_started_at = None
        self.consecutive_failures = 0
        self._outcomes.clear()


class RateCooldown:
    """Not before ``until``: set by 429s from the provider's Retry-After (or a default)."""

    __slots__ = ("_config", "until")

    def __init__(self, config: BreakerConfig) -> None:
        self._config = config
        self.until = 0.0

    def remaining_s(self, now: float) -> float:
        return max(0.0, self.until - now)

    def apply(self, now: float, kind: ErrorKind, retry_after_s: float | None) -> None:
        c = self._config
        if retry_after_s is not None and math.isfinite(retry_after_s) and retry_after_s >= 0:
            wait = retry_after_s
        elif kind is ErrorKind.QUOTA_EXHAUSTED:
            wait = c.quota_cooldown_s
        else:
            wait = c.rate_limit_cooldown_s
        self.until = max(self.until, now + min(wait, c.max_rate_cooldown_s))
