"""How long to wait: before hedging, before calling a stream stalled, before retrying.

Hedge delay: ``clamp(hedge_k * p95 TTFT, hedge_min_s, hedge_max_s)``; a turn whose first token
is later than three times the usual tail is worth a second request elsewhere.
Stall timeout: ``clamp(stall_k * p99 chunk gap, stall_min_s, stall_max_s)``.
Both use a default until the endpoint has enough samples for the quantile to mean something.
Retry backoff: exponential with "equal jitter" (half fixed, half random), so retries of many
turns against one recovering endpoint spread out.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from server.routing.latency import LatencyModel
from server.routing.window import clamp


@dataclass(frozen=True, slots=True)
class TimingConfig:
    hedge_k: float = 3.0
    hedge_quantile: float = 0.95
    hedge_min_s: float = 0.25
    hedge_max_s: float = 5.0
    hedge_default_s: float = 2.0
    hedge_min_samples: int = 3
    stall_k: float = 4.0
    stall_quantile: float = 0.99
    stall_min_s: float = 2.0
    stall_max_s: float = 30.0
    stall_default_s: float = 10.0
    stall_min_samples: int = 10
    backoff_base_s: float = 0.1
    backoff_max_s: float = 2.0


def hedge_delay_s(
    config: TimingConfig, stats: LatencyModel | None, prompt_tokens: int | None
) -> float:
    if stats is None or stats.ttft_window_len(prompt_tokens) < config.hedge_min_samples:
        return config.hedge_default_s
    q = stats.ttft_quantile_s(config.hedge_quantile, prompt_tokens)
    if q is None:
        return config.hedge_default_s
    return clamp(config.hedge_k * q, config.hedge_min_s, config.hedge_max_s)


def stall_timeout_s(config: TimingConfig, stats: LatencyModel | None) -> float:
    if stats is None or stats.gap_samples() < config.stall_min_samples:
        return config.stall_default_s
    q = stats.gap_quantile_s(config.stall_quantile)
    if q is None:
        return config.stall_default_s
    return clamp(config.stall_k * q, config.stall_min_s, config.stall_max_s)


def backoff_s(config: TimingConfig, rng: random.Random, attempt: int) -> float:
    """The wait before retry number ``attempt`` (1 = the first retry)."""
    n = max(1, attempt)
    ceiling = min(config.backoff_max_s, config.backoff_base_s * 2.0 ** min(n - 1, 30))
    half = ceiling / 2.0
    return half + rng.uniform(0.0, half)
