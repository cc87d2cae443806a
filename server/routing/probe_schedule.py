"""When to send a probe: a tiny real request that keeps an endpoint's estimate fresh.

Probes run only for active LLMs: with a live session (``touch`` with the session's idle
deadline at session create and on each turn, ``release`` when it ends) or with turns in the
last few minutes (stateless traffic too, so that a recovered endpoint is found by a probe
rather than by a caller's turn); with nothing active, nothing is probed. For an active LLM,
each endpoint is probed:

- at once when the LLM becomes active and the endpoint has no recent sample (warm-up);
- then every ``3600 / max_per_hour`` s ± ``jitter``, counted from the later of its last probe
  and its last sample (live traffic refreshes an estimate as well as a probe does);
- never more than ``max_per_hour`` times in any rolling hour;
- never while a probe to it is still out, while it is blocked (open circuit in its cooldown,
  rate-limit cooldown, half-open trial taken), or while it serves live requests, unless the
  probe is overdue by more than ``max_defer_s`` (probes never take a live turn's slot; the
  engine also runs them on separate capacity).

An endpoint whose circuit is past its cooldown (half-open, trial free) gets its trial as a probe
right away, outside the hourly budget: the breaker's exponential cooldown (1 s to 60 s) already
paces those, and it lets a recovered endpoint rejoin without risking a live turn.

``due`` returns the probes to send now and books them as sent; ``server.turns.probe_runner``
sends each one the router admits (``Router.admit(..., probe=True)``; a refused probe is not
sent) and reports it through the returned ``Attempt``.
"""

from __future__ import annotations

import random
from collections import deque
from collections.abc import Iterable
from typing import Protocol

from server.clock import Clock
from server.registry.llm import Llm
from server.routing.route_plan import ProbeStatus

_HOUR_S = 3600.0


class ProbeView(Protocol):
    """The router's side of probing (``Router`` implements it)."""

    def probe_status(self, endpoint_id: str) -> ProbeStatus: ...


class _Probes:
    """Probe history of one endpoint."""

    __slots__ = ("first_seen", "interval_s", "last_sent", "sent")

    def __init__(self, first_seen: float, interval_s: float) -> None:
        self.first_seen = first_seen
        self.sent: deque[float] = deque()  # budgeted probes within the last hour
        self.last_sent: float | None = None
        self.interval_s = interval_s


class ProbeScheduler:
    def __init__(
        self,
        clock: Clock,
        rng: random.Random,
        max_per_hour: int = 4,
        *,
        view: ProbeView,
        jitter: float = 0.2,
        max_defer_s: float | None = None,
    ) -> None:
        if max_per_hour < 1:
            raise ValueError("max_per_hour must be at least 1")
        self._clock = clock
        self._rng = rng
        self._max = max_per_hour
        self._view = view
        self._jitter = jitter
        self._base_interval_s = _HOUR_S / max_per_hour
        self._max_defer_s = self._base_interval_s if max_defer_s is None else max_defer_s
        self._active_until: dict[str, float] = {}
        # Who keeps each LLM active until when: its sessions (by id) and its recent turns.
        self._holders: dict[str, dict[str, float]] = {}
        self._endpoints: dict[str, _Probes] = {}

    # -- activity ----------------------------------------------------------------------------

    def touch(self, llm_id: str, active_until: float, holder: str = "") -> None:
        """``llm_id`` stays active until ``active_until`` (clock time) for ``holder`` (a
        session id, or ``turns`` for recent traffic); the LLM is active while any holder is."""
        holders = self._holders.setdefault(llm_id, {})
        if active_until > holders.get(holder, float("-inf")):
            holders[holder] = active_until
        self._active_until[llm_id] = max(holders.values())

    def keep_alive(self, llm_id: str, ttl_s: float, holder: str = "") -> None:
        """``touch`` for ``ttl_s`` seconds from now."""
        self.touch(llm_id, self._clock.monotonic() + ttl_s, holder)

    def release(self, llm_id: str, holder: str) -> None:
        """``holder`` no longer keeps ``llm_id`` active (its session ended): with no holder
        left, probing stops now rather than at the session's idle deadline."""
        holders = self._holders.get(llm_id)
        if holders is None:
            return
        holders.pop(holder, None)
        if holders:
            self._active_until[llm_id] = max(holders.values())
        else:
            self.forget_llm(llm_id)

    def is_active(self, llm_id: str, now: float | None = None) -> bool:
        t = self._clock.monotonic() if now is None else now
        return self._active_until.get(llm_id, float("-inf")) > t

    def forget_llm(self, llm_id: str) -> None:
        self._active_until.pop(llm_id, None)
        self._holders.pop(llm_id, None)

    # -- scheduling --------------------------------------------------------------------------

    def due(self, now: float, llms: Iterable[Llm]) -> list[tuple[str, str]]:
        """(llm id, endpoint id) of each probe to send now; they are booked as sent."""
        self._expire(now)
        if not self._active_until:
            return []
        out: list[tuple[str, str]] = []
        for llm in llms:
            if self._active_until.get(llm.id, float("-inf")) <= now:
                continue
            for ep in llm.endpoints:
                if self._take(ep.id, now):
                    out.append((llm.id, ep.id))
        return out

    def _take(self, endpoint_id: str, now: float) -> bool:
        """Whether to probe ``endpoint_id`` now; if so, book it."""
        status = self._view.probe_status(endpoint_id)
        if status.probes_in_flight > 0 or status.blocked:
            return False
        rec = self._endpoints.get(endpoint_id)
        if rec is None:
            rec = self._endpoints[endpoint_id] = _Probes(now, self._next_interval())
        if status.trial_available:
            rec.last_sent = now
            return True
        sent = rec.sent
        while sent and sent[0] <= now - _HOUR_S:
            sent.popleft()
        if len(sent) >= self._max:
            return False
        overdue = self._overdue_s(rec, status, now)
        if overdue < 0:
            return False
        if status.live_in_flight > 0 and overdue <= self._max_defer_s:
            return False
        sent.append(now)
        rec.last_sent = now
        rec.interval_s = self._next_interval()
        return True

    def _overdue_s(self, rec: _Probes, status: ProbeStatus, now: float) -> float:
        """How long ago the next probe became due (negative: not yet). With neither a probe
        nor a sample on record, a probe is due since the endpoint was first seen (warm-up)."""
        refreshed = rec.last_sent
        if status.last_sample_age_s is not None:
            sampled = now - status.last_sample_age_s
            refreshed = sampled if refreshed is None else max(refreshed, sampled)
        if refreshed is None:
            return now - rec.first_seen
        return now - (refreshed + rec.interval_s)

    def _next_interval(self) -> float:
        j = self._jitter
        return self._base_interval_s * self._rng.uniform(1.0 - j, 1.0 + j)

    def _expire(self, now: float) -> None:
        stale = [k for k, until in self._active_until.items() if until <= now]
        for k in stale:
            del self._active_until[k]
            self._holders.pop(k, None)
