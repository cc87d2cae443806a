"""Small bounded statistics: a weighted EWMA, a sliding quantile window, an outcome window.

All three are O(1) to update. Quantiles are computed lazily (one sort of the window) and cached
until the next sample, so a caller that records per chunk and reads per attempt pays one sort
per attempt at most.
"""

from __future__ import annotations

from bisect import bisect_left
from collections import deque
from itertools import accumulate


class Ewma:
    """An exponentially weighted moving average where a sample can count for less than one.

    A sample of weight ``w`` moves the estimate as ``w`` full samples would:
    ``alpha_w = 1 - (1 - alpha) ** w``. The first sample sets the estimate.
    """

    __slots__ = ("_alpha", "_value", "count")

    def __init__(self, alpha: float) -> None:
        if not 0.0 < alpha <= 1.0:
            raise ValueError("alpha must be in (0, 1]")
        self._alpha = alpha
        self._value = 0.0
        self.count = 0

    @property
    def value(self) -> float | None:
        return self._value if self.count else None

    def add(self, sample: float, weight: float = 1.0) -> None:
        if self.count == 0:
            self._value = sample
        else:
            a = self._alpha if weight == 1.0 else 1.0 - (1.0 - self._alpha) ** weight
            self._value += a * (sample - self._value)
        self.count += 1


class SampleWindow:
    """The last ``size`` samples, each with a weight, and weighted quantiles over them."""

    __slots__ = ("_cum", "_dirty", "_sorted", "_values", "_weights")

    def __init__(self, size: int) -> None:
        if size < 1:
            raise ValueError("size must be at least 1")
        self._values: deque[float] = deque(maxlen=size)
        self._weights: deque[float] = deque(maxlen=size)
        self._sorted: list[float] = []
        self._cum: list[float] = []
        self._dirty = False

    def __len__(self) -> int:
        return len(self._values)

    def add(self, value: float, weight: float = 1.0) -> None:
        self._values.append(value)
        self._weights.append(weight)
        self._dirty = True

    def quantile(self, q: float) -> float | None:
        """The smallest sample at or above the ``q`` share of the total weight; None if empty."""
        if not self._values:
            return None
        if self._dirty:
            pairs = sorted(zip(self._values, self._weights, strict=True))
            self._sorted = [v for v, _ in pairs]
            self._cum = list(accumulate(w for _, w in pairs))
            self._dirty = False
        target = q * self._cum[-1]
        i = bisect_left(self._cum, target - 1e-12)
        return self._sorted[min(i, len(self._sorted) - 1)]


class OutcomeWindow:
    """Successes and failures over the last ``horizon_s`` seconds (at most ``cap`` outcomes)."""

    __slots__ = ("_cap", "_events", "_failures", "_horizon")

    def __init__(self, horizon_s: float, cap: int = 1024) -> None:
        self._horizon = horizon_s
        self._cap = cap
        self._events: deque[tuple[float, bool]] = deque()
        self._failures = 0

    def add(self, now: float, failed: bool) -> None:
        if len(self._events) >= self._cap:
            self._drop_oldest()
        self._events.append((now, failed))
        self._failures += failed
        self._expire(now)

    def counts(self, now: float) -> tuple[int, int]:
        """(attempts, failures) within the horizon."""
        self._expire(now)
        return len(self._events), self._failures

    def rate(self, now: float) -> float:
        total, failures = self.counts(now)
        return failures / total if total else 0.0

    def clear(self) -> None:
        self._events.clear()
        self._failures = 0

    def _expire(self, now: float) -> None:
        cutoff = now - self._horizon
        while self._events and self._events[0][0] <= cutoff:
            self._drop_oldest()

    def _drop_oldest(self) -> None:
        _, failed = self._events.popleft()
        self._failures -= failed


def clamp(value: float, lower: float, upper: float) -> float:
    return lower if value < lower else upper if value > upper else value
