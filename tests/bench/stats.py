"""Summaries of one measured point: throughput, latency percentiles, CPU and memory."""

from __future__ import annotations

import collections
import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from tests.bench.drivers import gaps
from tests.bench.load import Run


def percentile(values: Sequence[float], q: float) -> float:
    """The ``q`` quantile (0..1) by the nearest-rank method; NaN for no values."""
    if not values:
        return math.nan
    ordered = sorted(values)
    rank = max(1, math.ceil(q * len(ordered)))
    return ordered[min(rank, len(ordered)) - 1]


@dataclass(slots=True)
class Usage:
    """CPU seconds and RSS of one process over a window."""

    cpu_s: float = 0.0
    rss_kb: int = 0


@dataclass(slots=True)
class Point:
    target: str  # direct | switchboard | session | litellm
    shape: str  # "closed" or "open"
    load: float  # concurrency (closed) or arrival rate per second (open)
    seconds: float
    turns: int  # completed inside the window
    turns_per_s: float
    ttft_p50_ms: float
    ttft_p99_ms: float
    gap_p50_ms: float
    gap_p99_ms: float
    errors: int
    error_kinds: dict[str, int] = field(default_factory=dict)
    proxy_cpu_s_per_1k: float = math.nan  # the process under test (Switchboard or LiteLLM)
    proxy_rss_mb: float = math.nan
    upstream_cpu_s_per_1k: float = math.nan
    loadgen_cpu_s_per_1k: float = math.nan
    other_cpu_cores: float = math.nan  # busy CPU of processes outside the bench (a shared host)
    deltas_per_turn: float = math.nan  # text messages a turn arrived in (fewer: coalesced)

    def to_json(self) -> dict[str, Any]:
        return {k: (None if isinstance(v, float) and math.isnan(v) else v)
                for k, v in asdict(self).items()}


def summarise(target: str, shape: str, load: float, run: Run, *, proxy: Usage | None,
              upstream: Usage, loadgen: Usage, other_cpu_s: float) -> Point:
    ok = [r for r in run.results if not r.error and r.first]
    kinds = collections.Counter(r.error for r in run.results if r.error)
    ttfts = [(r.first - r.start) * 1e3 for r in ok]
    gap_ms = [g * 1e3 for g in gaps(ok)]
    seconds = run.seconds or math.nan
    per_1k = 1000.0 / run.completed if run.completed else math.nan
    return Point(
        target=target, shape=shape, load=load, seconds=round(seconds, 3), turns=run.completed,
        turns_per_s=run.completed / seconds,
        ttft_p50_ms=percentile(ttfts, 0.50), ttft_p99_ms=percentile(ttfts, 0.99),
        gap_p50_ms=percentile(gap_ms, 0.50), gap_p99_ms=percentile(gap_ms, 0.99),
        errors=sum(kinds.values()), error_kinds=dict(kinds),
        proxy_cpu_s_per_1k=proxy.cpu_s * per_1k if proxy else math.nan,
        proxy_rss_mb=proxy.rss_kb / 1024 if proxy else math.nan,
        upstream_cpu_s_per_1k=upstream.cpu_s * per_1k,
        loadgen_cpu_s_per_1k=loadgen.cpu_s * per_1k,
        # host busy time minus the bench's processes, both read in clock ticks: a quiet host
        # can come out a tick below zero, which means idle
        other_cpu_cores=max(0.0, other_cpu_s / seconds),
        deltas_per_turn=sum(len(r.marks) for r in ok) / len(ok) if ok else math.nan,
    )
