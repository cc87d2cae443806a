"""Ranking the endpoints of an LLM for one turn.

Eligible endpoints only: circuit closed, or half-open with its single trial free; not in a
rate-limit cooldown. Order:

1. endpoints whose known context window is smaller than the prompt go last (the token count
   is an estimate, so they are not dropped);
2. best priority tier first (lower number; no priority = tier 0);
3. within a tier, closed circuits before a half-open trial (for ``live_trial_after_s``, so a
   probe can take it; after that the trial ranks by its score like any endpoint);
4. lowest score = expected TTFT * (1 + in_flight_alpha * live requests in flight); an
   endpoint without samples gets an optimistic prior so it is tried soon.

Exploration: with probability ``exploration_rate``, and only when another closed endpoint of
the winning tier has an estimate older than ``explore_after_s`` (and not hopelessly slower,
``explore_max_ratio``), the stalest such endpoint goes first to refresh its estimate.

Cost: O(endpoints) plus a sort of a handful of items; one random draw at most.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable, Collection

from server.registry.llm import Endpoint, Llm
from server.routing.breaker import CircuitBreaker, CircuitState, RateCooldown
from server.routing.config import RouterConfig
from server.routing.latency import LatencyModel
from server.routing.route_plan import Candidate, Reason, RoutePlan, SkipReason, StopReason


class EndpointState:
    """Everything the router keeps about one endpoint."""

    __slots__ = ("breaker", "cooldown", "latency", "learned_window_tokens")

    def __init__(self, config: RouterConfig, rng: random.Random) -> None:
        self.latency = LatencyModel(config.latency)
        self.breaker = CircuitBreaker(config.breaker, rng)
        self.cooldown = RateCooldown(config.breaker)
        self.learned_window_tokens = 0  # stated by the endpoint's own context-length error


def window_tokens(ep: Endpoint, st: EndpointState | None) -> int:
    """The endpoint's context window as best known (0: unknown): what its own error stated,
    else the declared ``context_window_tokens``, else what the server reported at
    validation (``GET /v1/models``, llama.cpp's ``/props``)."""
    learned = st.learned_window_tokens if st is not None else 0
    reported = ep.capabilities.reported_context_window_tokens or 0
    return learned or ep.context_window_tokens or reported


# Skips that mean "tried already / cannot take it", not "unavailable for a while".
_PASSIVE_SKIPS = frozenset({SkipReason.EXCLUDED, SkipReason.CONTEXT_WINDOW_TOO_SMALL})


class _Ranked:
    __slots__ = ("deferred", "endpoint", "expected", "explored", "fits", "score", "state", "stats")

    def __init__(
        self,
        endpoint: Endpoint,
        stats: LatencyModel,
        state: CircuitState,
        fits: bool,
        expected: float | None,
    ) -> None:
        self.endpoint = endpoint
        self.stats = stats
        self.state = state
        self.fits = fits
        self.expected = expected
        self.score = 0.0
        self.explored = False
        self.deferred = state is not CircuitState.CLOSED  # a trial waits behind closed peers

    def key(self) -> tuple[bool, int, bool, float]:
        return (
            not self.fits,
            self.endpoint.priority,
            self.deferred,
            self.score,
        )


class Ranker:
    def __init__(
        self,
        config: RouterConfig,
        rng: random.Random,
        state_of: Callable[[str], EndpointState],
    ) -> None:
        self._config = config
        self._rng = rng
        self._state_of = state_of

    def rank(
        self,
        llm: Llm,
        prompt_tokens: int,
        exclude: Collection[str],
        now: float,
        *,
        explore: bool,
        larger_than: int | None = None,
        reason: Reason | None = None,
        backoff_s: float = 0.0,
    ) -> RoutePlan:
        """The plan; ``larger_than`` keeps only windows above it, ``reason`` overrides the
        reason of closed candidates, ``backoff_s`` is stamped on RETRY candidates."""
        if not llm.endpoints:
            return RoutePlan((), stop=StopReason.NO_ENDPOINTS)
        ranked: list[_Ranked] = []
        skipped: list[tuple[str, SkipReason]] = []
        retry_after = math.inf
        for ep in llm.endpoints:
            skip, wait = self._admit(ep, prompt_tokens, exclude, larger_than, now, ranked)
            if skip is not None:
                skipped.append((ep.id, skip))
                retry_after = min(retry_after, wait)
        if not ranked:
            passive = all(s in _PASSIVE_SKIPS for _, s in skipped)
            stop = StopReason.ALL_TRIED if passive else StopReason.ALL_UNAVAILABLE
            hint = None if math.isinf(retry_after) else retry_after
            return RoutePlan((), tuple(skipped), stop, hint)
        self._score(ranked)
        ranked.sort(key=_Ranked.key)
        if explore and len(ranked) > 1:
            self._maybe_explore(ranked, now)
        return RoutePlan(_candidates(ranked, reason, backoff_s), tuple(skipped))

    def _admit(
        self,
        ep: Endpoint,
        prompt_tokens: int,
        exclude: Collection[str],
        larger_than: int | None,
        now: float,
        ranked: list[_Ranked],
    ) -> tuple[SkipReason | None, float]:
        """Append ``ep`` to ``ranked`` if eligible; else why not and how long until it may be."""
        st = self._state_of(ep.id)
        window = window_tokens(ep, st)
        # An unknown window may be the larger one: it is a candidate after a context failure.
        if larger_than is not None and 0 < window <= larger_than:
            return SkipReason.CONTEXT_WINDOW_TOO_SMALL, math.inf
        breaker = st.breaker
        cooling = st.cooldown.remaining_s(now)
        if cooling > 0:
            return SkipReason.COOLING_DOWN, max(cooling, breaker.open_remaining_s(now))
        state = breaker.state(now)
        if state is CircuitState.OPEN:
            return SkipReason.CIRCUIT_OPEN, breaker.open_remaining_s(now)
        if state is CircuitState.HALF_OPEN and breaker.trial_in_flight(now):
            return SkipReason.TRIAL_IN_FLIGHT, self._config.trial_busy_retry_after_s
        if ep.id in exclude:  # after the checks above, so a plan says when it could retry
            return SkipReason.EXCLUDED, math.inf
        fits = window <= 0 or prompt_tokens <= window
        expected = st.latency.expected_ttft_s(prompt_tokens)
        entry = _Ranked(ep, st.latency, state, fits, expected)
        if state is CircuitState.HALF_OPEN:
            # A probe normally takes the trial within a second; if none has (no active
            # session, probes off), live traffic takes it in latency order so that a
            # recovered endpoint rejoins its tier.
            entry.deferred = breaker.half_open_for_s(now) < self._config.live_trial_after_s
        ranked.append(entry)
        return None, math.inf

    def _score(self, ranked: list[_Ranked]) -> None:
        c = self._config
        best = min((r.expected for r in ranked if r.expected is not None), default=None)
        prior = c.prior_ttft_s if best is None else best * c.prior_factor
        for r in ranked:
            base = prior if r.expected is None else r.expected
            r.score = base * (1.0 + c.in_flight_alpha * r.stats.live_in_flight)

    def _maybe_explore(self, ranked: list[_Ranked], now: float) -> None:
        c = self._config
        head = ranked[0]
        if head.state is not CircuitState.CLOSED or c.exploration_rate <= 0:
            return
        pick: _Ranked | None = None
        oldest = c.explore_after_s
        limit = math.inf if head.expected is None else head.expected * c.explore_max_ratio
        for r in ranked[1:]:
            if r.fits != head.fits or r.endpoint.priority != head.endpoint.priority:
                break
            if r.state is not CircuitState.CLOSED:
                continue
            if r.expected is not None and r.expected > limit:
                continue
            age = r.stats.sample_age_s(now)
            age = math.inf if age is None else age
            if age > oldest:
                pick, oldest = r, age
        if pick is not None and self._rng.random() < c.exploration_rate:
            ranked.remove(pick)
            ranked.insert(0, pick)
            pick.explored = True


def _candidates(
    ranked: list[_Ranked], reason: Reason | None, backoff_s: float
) -> tuple[Candidate, ...]:
    only = len(ranked) == 1
    out: list[Candidate] = []
    fastest_given = False
    for r in ranked:
        if r.state is not CircuitState.CLOSED:
            why = Reason.HALF_OPEN_TRIAL
        elif reason is not None:
            why = reason
        elif r.explored:
            why = Reason.EXPLORATION
        elif only:
            why = Reason.ONLY_AVAILABLE
        elif not fastest_given:
            why, fastest_given = Reason.FASTEST, True
        else:
            why = Reason.NEXT_FASTEST
        out.append(
            Candidate(
                endpoint_id=r.endpoint.id,
                reason=why,
                tier=r.endpoint.priority,
                state=r.state,
                expected_ttft_ms=None if r.expected is None else r.expected * 1000.0,
                score_ms=r.score * 1000.0,
                in_flight=r.stats.live_in_flight,
                fits_context=r.fits,
                backoff_s=backoff_s if why is Reason.RETRY else 0.0,
            )
        )
    return tuple(out)
