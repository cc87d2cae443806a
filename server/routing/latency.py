"""What one endpoint's real traffic says about its speed.

Per endpoint: time to first token (TTFT) as an EWMA and as quantiles over a bounded sliding
window, both kept overall and per prompt-size class (a 30k-token prompt is slower to start than a
500-token one); the gap between streamed chunks (bounded window, for stall timeouts); requests
in flight; the share of attempts that failed over a time window; and when the last sample came.

The first token is recorded when it arrives, not at stream end. Probe samples carry a lower
weight than live ones (``probe_weight``): a probe's 1-token answer under no load is a weaker
signal than a real turn.

Bounded influence: a sample moves the EWMA as if it were at most ``outlier_factor`` times the
current estimate (the quantile windows keep the raw value). TTFT is measured on the wall clock
from here, so a busy host makes one first token late, and a hedge that the other endpoint wins
books the whole wait; at full weight such a blip (0.29 s against 12 ms) raised a fast
endpoint's estimate above its slower peer's in one step, the ranking then sent it no traffic,
and no live sample could bring the estimate back. With the bound, a single blip costs little
and a real slowdown still shows: each late sample raises the estimate by up to
``ewma_alpha * (outlier_factor - 1)`` (30 % with the defaults), a 4x slower peer is passed
after five of them.
"""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Iterable
from dataclasses import dataclass

from server.routing.window import Ewma, OutcomeWindow, SampleWindow


@dataclass(frozen=True, slots=True)
class LatencyConfig:
    """Knobs of the latency model.

    ``size_class_bounds`` splits prompts into classes by token count: the defaults give small
    (< 2k), medium (< 16k) and large. A class's own estimate is used once it has
    ``min_class_samples`` samples; until then the overall estimate stands in. A sample moves
    the EWMA as if it were at most ``outlier_factor`` times the current estimate.
    """

    ewma_alpha: float = 0.3
    ttft_window: int = 128
    gap_window: int = 512
    size_class_bounds: tuple[int, ...] = (2_000, 16_000)
    min_class_samples: int = 5
    probe_weight: float = 0.3
    error_window_s: float = 60.0
    outlier_factor: float = 2.0

    def __post_init__(self) -> None:
        if self.outlier_factor <= 1.0:
            raise ValueError("outlier_factor must be above 1")


class _TtftStats:
    __slots__ = ("_outlier_factor", "ewma", "window")

    def __init__(self, config: LatencyConfig) -> None:
        self.ewma = Ewma(config.ewma_alpha)
        self.window = SampleWindow(config.ttft_window)
        self._outlier_factor = config.outlier_factor

    def add(self, ttft_s: float, weight: float) -> None:
        self.add_lower_bound(ttft_s, weight)
        self.window.add(ttft_s, weight)

    def add_lower_bound(self, ttft_s: float, weight: float) -> None:
        """The EWMA only: a wait without a first token is not a quantile sample."""
        current = self.ewma.value
        bounded = ttft_s if current is None else min(ttft_s, self._outlier_factor * current)
        self.ewma.add(bounded, weight)


class LatencyModel:
    """One endpoint's latency, load and error statistics. Times in seconds."""

    __slots__ = (
        "_classes",
        "_config",
        "_errors",
        "_gaps",
        "_overall",
        "last_sample_at",
        "live_in_flight",
        "probes_in_flight",
    )

    def __init__(self, config: LatencyConfig) -> None:
        self._config = config
        self._overall = _TtftStats(config)
        self._classes = tuple(_TtftStats(config) for _ in range(len(config.size_class_bounds) + 1))
        self._gaps = SampleWindow(config.gap_window)
        self._errors = OutcomeWindow(config.error_window_s)
        self.live_in_flight = 0
        self.probes_in_flight = 0
        self.last_sample_at: float | None = None

    # -- recording ---------------------------------------------------------------------------

    def record_ttft(self, now: float, ttft_s: float, prompt_tokens: int, is_probe: bool) -> None:
        weight = self._config.probe_weight if is_probe else 1.0
        self._overall.add(ttft_s, weight)
        self._classes[self._class_of(prompt_tokens)].add(ttft_s, weight)
        self.last_sample_at = now

    def record_missed(
        self, now: float, waited_s: float, prompt_tokens: int, is_probe: bool
    ) -> None:
        """An attempt ended after ``waited_s`` without a first token (timeout, hedge loser).

        The true TTFT is at least ``waited_s``; that is news only when it exceeds the current
        estimate, and then it moves the EWMA so a slowed endpoint stops looking fast (bounded
        like any sample: one lost hedge is not yet a slowdown). It stays out of the quantile
        windows: the hedge delay is 3x their p95, and a lost hedge's wait is that delay plus
        the winner's TTFT, so each loss would triple the next turn's hedge delay.
        """
        expected = self.expected_ttft_s(prompt_tokens)
        if expected is not None and waited_s > expected:
            weight = self._config.probe_weight if is_probe else 1.0
            self._overall.add_lower_bound(waited_s, weight)
            self._classes[self._class_of(prompt_tokens)].add_lower_bound(waited_s, weight)
            self.last_sample_at = now

    def record_gaps(self, gaps_s: Iterable[float]) -> None:
        add = self._gaps.add
        for g in gaps_s:
            add(g)

    def record_outcome(self, now: float, failed: bool) -> None:
        self._errors.add(now, failed)

    # -- reading -----------------------------------------------------------------------------

    @property
    def samples(self) -> int:
        return self._overall.ewma.count

    def expected_ttft_s(self, prompt_tokens: int) -> float | None:
        """The EWMA TTFT for this prompt size, or overall if its class has too few samples."""
        stats = self._classes[self._class_of(prompt_tokens)]
        if stats.ewma.count >= self._config.min_class_samples:
            return stats.ewma.value
        return self._overall.ewma.value

    def ttft_ewma_s(self) -> float | None:
        return self._overall.ewma.value

    def ttft_quantile_s(self, q: float, prompt_tokens: int | None = None) -> float | None:
        """A TTFT quantile for this prompt size (overall if its class has too few samples)."""
        if prompt_tokens is not None:
            stats = self._classes[self._class_of(prompt_tokens)]
            if len(stats.window) >= self._config.min_class_samples:
                return stats.window.quantile(q)
        return self._overall.window.quantile(q)

    def ttft_window_len(self, prompt_tokens: int | None = None) -> int:
        if prompt_tokens is not None:
            n = len(self._classes[self._class_of(prompt_tokens)].window)
            if n >= self._config.min_class_samples:
                return n
        return len(self._overall.window)

    def gap_quantile_s(self, q: float) -> float | None:
        return self._gaps.quantile(q)

    def gap_samples(self) -> int:
        return len(self._gaps)

    def error_rate(self, now: float) -> float:
        return self._errors.rate(now)

    def sample_age_s(self, now: float) -> float | None:
        return None if self.last_sample_at is None else now - self.last_sample_at

    def _class_of(self, prompt_tokens: int) -> int:
        return bisect_right(self._config.size_class_bounds, prompt_tokens)
