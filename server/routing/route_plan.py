"""The values the router hands out: route plans, their reasons, endpoint health."""

from __future__ import annotations

import enum
from dataclasses import dataclass

from server.routing.breaker import CircuitState


class Reason(enum.StrEnum):
    """Why an endpoint is in a plan at its place (for logs and the ``route`` event)."""

    FASTEST = "fastest"  # lowest expected TTFT (adjusted for load) in the best tier
    NEXT_FASTEST = "next_fastest"  # a fallback, in order of tier and expected TTFT
    EXPLORATION = "exploration"  # a stale estimate being refreshed with a live turn
    ONLY_AVAILABLE = "only_available"  # nothing else is eligible
    HALF_OPEN_TRIAL = "half_open_trial"  # the single trial of a recovering circuit
    LARGER_CONTEXT_WINDOW = "larger_context_window"  # after a context-length failure
    RETRY = "retry"  # an endpoint already tried this turn, after ``backoff_s``
    # Given by the engine, not the ranker:
    HEDGE = "hedge"  # started alongside a running attempt whose first token is late
    FAILOVER = "failover"  # another endpoint, after this turn's attempt failed


class SkipReason(enum.StrEnum):
    """Why an endpoint of the LLM is not in a plan."""

    EXCLUDED = "excluded"  # already tried this turn (or excluded by the caller)
    CIRCUIT_OPEN = "circuit_open"
    TRIAL_IN_FLIGHT = "trial_in_flight"  # half-open and its one trial is taken
    COOLING_DOWN = "cooling_down"  # rate limited: not before the provider's Retry-After
    CONTEXT_WINDOW_TOO_SMALL = "context_window_too_small"


class StopReason(enum.StrEnum):
    """Why a plan is empty, which decides the status the turn ends with.

    ``NOT_RETRYABLE`` and ``NO_LARGER_CONTEXT_WINDOW``: the upstream error's own status
    (INVALID_ARGUMENT / FAILED_PRECONDITION). The others: UNAVAILABLE, with ``retry_after_s``
    as RetryInfo when the plan has one.
    """

    NO_ENDPOINTS = "no_endpoints"
    ALL_UNAVAILABLE = "all_unavailable"
    ALL_TRIED = "all_tried"
    NOT_RETRYABLE = "not_retryable"
    NO_LARGER_CONTEXT_WINDOW = "no_larger_context_window"
    ATTEMPTS_EXHAUSTED = "attempts_exhausted"


@dataclass(frozen=True, slots=True)
class Candidate:
    """One endpoint to try, with the numbers behind its place.

    ``expected_ttft_ms`` is None when the endpoint has no samples (an optimistic prior was
    used); ``score_ms`` is what was ranked: expected (or prior) * (1 + alpha * in_flight).
    ``fits_context`` is False when the endpoint's known window is smaller than the prompt; such
    endpoints go last. ``backoff_s`` is the wait before sending (non-zero only for RETRY).
    """

    endpoint_id: str
    reason: Reason
    tier: int
    state: CircuitState
    expected_ttft_ms: float | None
    score_ms: float
    in_flight: int
    fits_context: bool = True
    backoff_s: float = 0.0


@dataclass(frozen=True, slots=True)
class RoutePlan:
    """Candidates for a turn, best first. Empty plans say why (``stop``) and, when the wait is
    known, how long until an endpoint becomes eligible again (``retry_after_s``)."""

    candidates: tuple[Candidate, ...]
    skipped: tuple[tuple[str, SkipReason], ...] = ()
    stop: StopReason | None = None
    retry_after_s: float | None = None

    @property
    def first(self) -> Candidate | None:
        return self.candidates[0] if self.candidates else None

    @property
    def endpoint_ids(self) -> tuple[str, ...]:
        return tuple(c.endpoint_id for c in self.candidates)


@dataclass(frozen=True, slots=True)
class EndpointHealth:
    """What the router knows about one endpoint, for GetLlm and logs. Times in ms unless
    named ``_s``; None where there are no samples."""

    state: CircuitState
    ttft_ewma_ms: float | None
    ttft_p50_ms: float | None
    ttft_p95_ms: float | None
    gap_p99_ms: float | None
    in_flight: int
    probes_in_flight: int
    error_rate: float
    samples: int
    last_sample_age_s: float | None
    cooldown_remaining_s: float
    open_remaining_s: float
    consecutive_failures: int


@dataclass(frozen=True, slots=True)
class ProbeStatus:
    """What the probe scheduler needs to know about an endpoint.

    ``blocked``: no request may go now (open circuit before its cooldown ends, a rate-limit
    cooldown, or a half-open trial already in flight). ``trial_available``: half-open with its
    trial free, so a probe can be the trial.
    """

    live_in_flight: int
    probes_in_flight: int
    blocked: bool
    trial_available: bool
    last_sample_age_s: float | None
