"""Time for the routing modules: a seam so tests never sleep.

Everything in ``server.routing`` reads time from a ``Clock``. Production uses ``SystemClock``
(``time.monotonic``); tests and the regret simulation use ``FakeClock`` and move it forward
explicitly with ``advance``.
"""

from __future__ import annotations

import time
from typing import Protocol


class Clock(Protocol):
    """A monotonic clock in seconds. Only differences between readings are meaningful."""

    def monotonic(self) -> float: ...


class SystemClock:
    """The process's monotonic clock."""

    __slots__ = ()

    def monotonic(self) -> float:
        return time.monotonic()


class FakeClock:
    """A clock that only moves when told to."""

    __slots__ = ("_now",)

    def __init__(self, start: float = 1000.0) -> None:
        self._now = start

    def monotonic(self) -> float:
        return self._now

    def advance(self, seconds: float) -> None:
        if seconds < 0:
            raise ValueError("a monotonic clock cannot go backwards")
        self._now += seconds
