"""The observer seam: how turns and upstream attempts report to metrics and tracing.

Domain code (the turn engine, the turn runner, an ``Attempt``) calls these protocols and never
imports Prometheus or OpenTelemetry; the composition root plugs in implementations
(``server.telemetry``). Calls happen per turn and per attempt, never per streamed chunk, so an
observer costs nothing on the hot path. The defaults do nothing.

Order for one turn: ``TurnsObserver.turn_started`` -> any number of
``TurnObserver.attempt_started`` (each followed by at most one ``first_token`` and exactly one of
``succeeded`` / ``failed`` / ``cancelled``, reported by the attempt handle
``server.routing.attempt.Attempt``) -> ``TurnObserver.finished`` exactly once.
"""

from __future__ import annotations

from typing import Protocol

from server.chat import FinishReason, Usage
from server.providers.base import UpstreamError
from server.registry.llm import Endpoint, Llm
from server.routing.attempt import NO_ATTEMPT, AttemptObserver

__all__ = ["NO_ATTEMPT", "NO_OBSERVER", "NO_TURN", "AttemptObserver", "TurnObserver",
           "TurnsObserver", "fan_out"]


class TurnObserver(Protocol):
    """One turn."""

    def attempt_started(self, endpoint: Endpoint, attempt: int, reason: str) -> AttemptObserver:
        """Attempt number ``attempt`` (1-based) was sent to ``endpoint`` for ``reason`` (a route
        reason: ``fastest``, ``failover``, ``hedge``...)."""
        ...

    def finished(self, outcome: str, error_type: str = "") -> None:
        """The turn is over. ``outcome``: ``ok`` (complete answer), ``incomplete`` (finished,
        but cut by a length limit or filter), ``cancelled`` (the caller went away), or the
        lower-case status code of the error it ended with (``unavailable``...); ``error_type``
        is that error's reason (``UPSTREAM_UNAVAILABLE``)."""


class TurnsObserver(Protocol):
    """Creates one ``TurnObserver`` per turn; ``edge`` is ``grpc`` or ``http``."""

    def turn_started(self, llm: Llm, turn_id: str, edge: str) -> TurnObserver:
        ...


class _NoTurn:
    __slots__ = ()

    def attempt_started(self, endpoint: Endpoint, attempt: int, reason: str) -> AttemptObserver:
        return NO_ATTEMPT

    def finished(self, outcome: str, error_type: str = "") -> None:
        pass


class _NoTurns:
    __slots__ = ()

    def turn_started(self, llm: Llm, turn_id: str, edge: str) -> TurnObserver:
        return NO_TURN


NO_TURN: TurnObserver = _NoTurn()
NO_OBSERVER: TurnsObserver = _NoTurns()


class _FanOutAttempt:
    __slots__ = ("_each",)

    def __init__(self, each: tuple[AttemptObserver, ...]) -> None:
        self._each = each

    def first_token(self, ttft_s: float) -> None:
        for o in self._each:
            o.first_token(ttft_s)

    def succeeded(self, usage: Usage, reason: FinishReason) -> None:
        for o in self._each:
            o.succeeded(usage, reason)

    def failed(self, error: UpstreamError) -> None:
        for o in self._each:
            o.failed(error)

    def cancelled(self) -> None:
        for o in self._each:
            o.cancelled()


class _FanOutTurn:
    __slots__ = ("_each",)

    def __init__(self, each: tuple[TurnObserver, ...]) -> None:
        self._each = each

    def attempt_started(self, endpoint: Endpoint, attempt: int, reason: str) -> AttemptObserver:
        return _FanOutAttempt(tuple(o.attempt_started(endpoint, attempt, reason)
                                    for o in self._each))

    def finished(self, outcome: str, error_type: str = "") -> None:
        for o in self._each:
            o.finished(outcome, error_type)


class _FanOut:
    __slots__ = ("_each",)

    def __init__(self, each: tuple[TurnsObserver, ...]) -> None:
        self._each = each

    def turn_started(self, llm: Llm, turn_id: str, edge: str) -> TurnObserver:
        return _FanOutTurn(tuple(o.turn_started(llm, turn_id, edge) for o in self._each))


def fan_out(*observers: TurnsObserver | None) -> TurnsObserver:
    """One observer that reports to each of ``observers`` (None entries are skipped)."""
    each = tuple(o for o in observers if o is not None)
    if not each:
        return NO_OBSERVER
    return each[0] if len(each) == 1 else _FanOut(each)
