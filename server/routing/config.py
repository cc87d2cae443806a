"""Every routing knob in one frozen value, with the defaults production runs with."""

from __future__ import annotations

from dataclasses import dataclass, field

from server.routing.breaker import BreakerConfig
from server.routing.latency import LatencyConfig
from server.routing.timing import TimingConfig


@dataclass(frozen=True, slots=True)
class RouterConfig:
    """Ranking knobs (see ``server.routing.ranking``) plus each part's own config.

    ``in_flight_alpha``: each live request in flight makes an endpoint look this much slower
    (score = expected TTFT * (1 + alpha * in_flight)). ``prior_factor``: an endpoint without
    samples is assumed this fraction of the best sampled estimate (optimistic, so it gets
    tried), or ``prior_ttft_s`` when no endpoint has samples. ``exploration_rate``: the share
    of turns, at most, that go to a stale endpoint instead of the fastest; only endpoints whose
    last sample is older than ``explore_after_s`` and whose estimate is within
    ``explore_max_ratio`` of the best qualify. ``max_attempts``: attempts per turn, hedges and
    retries included.
    """

    latency: LatencyConfig = field(default_factory=LatencyConfig)
    breaker: BreakerConfig = field(default_factory=BreakerConfig)
    timing: TimingConfig = field(default_factory=TimingConfig)
    in_flight_alpha: float = 0.25
    prior_factor: float = 0.5
    prior_ttft_s: float = 0.5
    exploration_rate: float = 0.02
    explore_after_s: float = 30.0
    explore_max_ratio: float = 4.0
    max_attempts: int = 4
    trial_busy_retry_after_s: float = 1.0  # retry hint while a half-open trial is out
    live_trial_after_s: float = 5.0  # a half-open trial no probe took goes to live traffic

    def __post_init__(self) -> None:
        if not 0.0 <= self.exploration_rate <= 0.05:
            raise ValueError("exploration_rate must be within [0, 0.05]")
        if self.max_attempts < 1:
            raise ValueError("max_attempts must be at least 1")
