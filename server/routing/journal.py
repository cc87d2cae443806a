"""What the router saw lately, per endpoint: the raw material of ``GetRoutingState``.

The latency model keeps estimates; people debugging a route also want the events behind
them: the recent first-token times (live and probe), the last probes and their outcome, and
the failovers away from the endpoint with their cause. ``RoutingJournal`` keeps a few of
each in bounded deques (appends per attempt, never per chunk), read back with their age in
seconds so that the caller can stamp wall-clock times; it holds ids, numbers and error kinds
only, never prompts, URLs or keys.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field

MAX_TTFTS = 60
MAX_PROBES = 10
MAX_FAILOVERS = 10


@dataclass(frozen=True, slots=True)
class TtftSample:
    age_s: float
    ttft_ms: float
    probe: bool


@dataclass(frozen=True, slots=True)
class ProbeOutcome:
    age_s: float
    ok: bool
    ttft_ms: float | None
    error: str  # the error kind (``server_error``...), "" when ok


@dataclass(frozen=True, slots=True)
class FailoverRecord:
    age_s: float
    from_endpoint_id: str
    to_endpoint_id: str  # "" when nothing was left to try
    cause: str  # the error kind and, when known, the upstream HTTP status


@dataclass(frozen=True, slots=True)
class JournalView:
    """Oldest first for TTFTs (a chart's order), newest first for probes and failovers."""

    ttfts: tuple[TtftSample, ...] = ()
    probes: tuple[ProbeOutcome, ...] = ()
    failovers: tuple[FailoverRecord, ...] = ()


@dataclass(slots=True)
class _Entries:
    ttfts: deque[tuple[float, float, bool]] = field(default_factory=lambda: deque(
        maxlen=MAX_TTFTS))
    probes: deque[tuple[float, bool, float | None, str]] = field(
        default_factory=lambda: deque(maxlen=MAX_PROBES))
    failovers: deque[tuple[float, str, str, str]] = field(
        default_factory=lambda: deque(maxlen=MAX_FAILOVERS))
    probe_ttft_ms: float | None = None


class RoutingJournal:
    """Bounded recent history per endpoint id; times are the router clock's readings."""

    def __init__(self) -> None:
        self._by_endpoint: dict[str, _Entries] = {}

    def _get(self, endpoint_id: str) -> _Entries:
        entries = self._by_endpoint.get(endpoint_id)
        if entries is None:
            entries = self._by_endpoint[endpoint_id] = _Entries()
        return entries

    def first_token(self, endpoint_id: str, now: float, ttft_s: float, probe: bool) -> None:
        entries = self._get(endpoint_id)
        entries.ttfts.append((now, ttft_s * 1e3, probe))
        if probe:
            entries.probe_ttft_ms = ttft_s * 1e3

    def probe_finished(self, endpoint_id: str, now: float, error: str) -> None:
        """A probe ended: ``error`` is "" on success, else its error kind."""
        entries = self._get(endpoint_id)
        entries.probes.append((now, not error, entries.probe_ttft_ms, error))
        entries.probe_ttft_ms = None

    def failover(self, now: float, from_endpoint_id: str, to_endpoint_id: str,
                 cause: str) -> None:
        self._get(from_endpoint_id).failovers.append(
            (now, from_endpoint_id, to_endpoint_id, cause))

    def forget(self, endpoint_id: str) -> None:
        self._by_endpoint.pop(endpoint_id, None)

    def view(self, endpoint_id: str, now: float) -> JournalView:
        entries = self._by_endpoint.get(endpoint_id)
        if entries is None:
            return JournalView()
        return JournalView(
            ttfts=tuple(TtftSample(now - at, ms, probe) for at, ms, probe in entries.ttfts),
            probes=tuple(ProbeOutcome(now - at, ok, ms, error)
                         for at, ok, ms, error in reversed(entries.probes)),
            failovers=tuple(FailoverRecord(now - at, src, dst, cause)
                            for at, src, dst, cause in reversed(entries.failovers)),
        )
