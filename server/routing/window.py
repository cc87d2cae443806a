"""Small bounded statistics: a weighted EWMA, a sliding quantile window, an outcome window.

All three are O(1) to update. Quantiles are computed lazily (one sort of the window) and cached
until the next sample, so a caller that records per chunk and reads per attempt pays one sort
per attempt at most.
"""

from __future__ import annotations

from bisect import bisect_left, insort
from collections import deque
from math import fsum


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
    """The last ``size`` samples, each with a weight, and weighted quantiles over them.

    Kept sorted incrementally (``insort`` and one deletion per add: two memmoves of at most
    ``size`` pointers), so reading a quantile after every turn never re-sorts the window; a
    quantile walks from the nearer end, a few dozen steps for the tails the router reads.
    """

    __slots__ = ("_adds", "_fifo", "_sorted", "_total")

    def __init__(self, size: int) -> None:
        if size < 1:
            raise ValueError("size must be at least 1")
        self._fifo: deque[tuple[float, float]] = deque(maxlen=size)
        self._sorted: list[tuple[float, float]] = []
        self._total = 0.0
        self._adds = 0

    def __len__(self) -> int:
        return len(self._fifo)

    def add(self, value: float, weight: float = 1.0) -> None:
        pair = (value, weight)
        fifo = self._fifo
        if len(fifo) == fifo.maxlen:
            old = fifo[0]
            del self._sorted[bisect_left(self._sorted, old)]
            self._total -= old[1]
        fifo.append(pair)
        insort(self._sorted, pair)
        self._total += weight
        self._adds += 1
        if self._adds % 4096 == 0:  # bound floating-point drift of the running total
            self._total = fsum(w for _, w in self._sorted)

    def quantile(self, q: float) -> float | None:
        """The smallest sample at or above the ``q`` share of the total weight; None if empty."""
        pairs = self._sorted
        if not pairs:
            return None
        target = q * self._total - 1e-12
        if q < 0.5:
            cum = 0.0
            for value, weight in pairs:
                cum += weight
                if cum >= target:
                    return value
            return pairs[-1][0]
        i = len(pairs) - 1
        cum = self._total
        while i > 0:
            below = cum - pairs[i][1]
            if below < target:
                break
            cum = below
            i -= 1
        return pairs[i][0]


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
