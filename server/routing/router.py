"""The routing brain: which endpoint serves a turn, what to try next, and the bookkeeping.

``Router`` keeps, per endpoint id, a latency model, a circuit breaker and a rate-limit
cooldown (``ranking.EndpointState``), and turns them into decisions. It performs no I/O and
never awaits. The turn engine asks it for plans and has each request admitted
(``admit``); the returned ``Attempt`` reports the request's life back into these books.
Endpoint ids are assumed unique across LLMs. Ranking rules: ``server.routing.ranking``.

Single endpoint with an open circuit: its plans are empty (stop ALL_UNAVAILABLE, so the turn
fails fast with UNAVAILABLE and ``retry_after_s``) until the cooldown ends; then exactly one
turn or probe gets the half-open trial and concurrent turns get empty plans again. Attempts
per turn are capped by ``max_attempts`` and a retry of an already-tried endpoint waits
``backoff_s``, so there is never a tight loop.
"""

from __future__ import annotations

import math
import random
from collections.abc import Collection, Iterable
from dataclasses import replace

from server.clock import Clock
from server.providers.base import ErrorKind, UpstreamError
from server.registry.llm import Endpoint, Llm
from server.routing import timing
from server.routing.attempt import Attempt
from server.routing.breaker import CircuitState, HealthVerdict, verdict_of
from server.routing.config import RouterConfig
from server.routing.journal import JournalView, RoutingJournal
from server.routing.ranking import EndpointState, Ranker, window_tokens
from server.routing.route_plan import (
    Candidate,
    EndpointHealth,
    ProbeStatus,
    Reason,
    RoutePlan,
    StopReason,
)

# After these, the same endpoint may be retried (after a backoff) when nothing else is left.
_RETRY_SAME = frozenset(
    {
        ErrorKind.SERVER_ERROR,
        ErrorKind.TIMEOUT,
        ErrorKind.CONNECTION,
        ErrorKind.PROTOCOL,
        ErrorKind.STREAM_ERROR,
        ErrorKind.INCOMPLETE,
    }
)


class Router:
    def __init__(
        self, clock: Clock, rng: random.Random, config: RouterConfig | None = None
    ) -> None:
        self._clock = clock
        self._rng = rng
        self._config = config or RouterConfig()
        self._endpoints: dict[str, EndpointState] = {}
        self._ranker = Ranker(self._config, rng, self._get)
        self._journal = RoutingJournal()  # recent samples, probes, failovers (GetRoutingState)

    @property
    def config(self) -> RouterConfig:
        return self._config

    # -- decisions ---------------------------------------------------------------------------

    def plan(
        self, llm: Llm, prompt_tokens: int, exclude: Collection[str] = frozenset()
    ) -> RoutePlan:
        """The ordered candidates for a turn of ``llm`` with a prompt of ``prompt_tokens``."""
        now = self._clock.monotonic()
        return self._ranker.rank(llm, prompt_tokens, exclude, now, explore=True)

    def next_after(
        self,
        llm: Llm,
        prompt_tokens: int,
        failed_endpoint_id: str,
        error: UpstreamError,
        attempted: Collection[str],
    ) -> RoutePlan:
        """What to try after ``failed_endpoint_id`` failed with ``error``.

        ``attempted``: the endpoint id of every attempt of this turn so far, hedges and
        repeats included (a list); its length counts toward ``max_attempts``. End the
        attempt first (``Attempt.failed``) so the failure is already in the books.

        Context length exceeded: only endpoints with a larger known window than the failed one
        (or than the prompt, if the failed window is unknown), else stop
        NO_LARGER_CONTEXT_WINDOW. Errors another endpoint cannot fix (content filtered, bad
        request): stop NOT_RETRYABLE. Rejected key: that circuit opens; continue with the
        others. Nothing untried left after a transient error: the same endpoint again, with
        reason RETRY and a jittered ``backoff_s``, if it is still eligible.
        """
        plan = self._next_after(llm, prompt_tokens, failed_endpoint_id, error, attempted)
        cause = error.kind.value + (f" (HTTP {error.status})" if error.status else "")
        if not plan.candidates and plan.stop is not None:
            cause += f"; nothing left to try: {plan.stop.value}"
        self._journal.failover(self._clock.monotonic(), failed_endpoint_id,
                               plan.candidates[0].endpoint_id if plan.candidates else "", cause)
        return plan

    def _next_after(
        self,
        llm: Llm,
        prompt_tokens: int,
        failed_endpoint_id: str,
        error: UpstreamError,
        attempted: Collection[str],
    ) -> RoutePlan:
        if len(attempted) >= self._config.max_attempts:
            return RoutePlan((), stop=StopReason.ATTEMPTS_EXHAUSTED)
        now = self._clock.monotonic()
        tried = {*attempted, failed_endpoint_id}
        rank = self._ranker.rank
        if error.kind is ErrorKind.CONTEXT_LENGTH:
            return self._larger_window(llm, prompt_tokens, failed_endpoint_id, tried, now)
        if not error.failover_helps:
            return RoutePlan((), stop=StopReason.NOT_RETRYABLE)
        if error.kind is ErrorKind.UNSUPPORTED_INPUT:  # another endpoint, never this one again
            plan = rank(llm, prompt_tokens, tried, now, explore=False)
            return plan if plan.candidates else RoutePlan((), plan.skipped,
                                                           StopReason.NOT_RETRYABLE)
        if error.kind is ErrorKind.AUTHENTICATION:  # idempotent if Attempt.failed did it
            self._get(failed_endpoint_id).breaker.record_rejected_key(now)
        plan = rank(llm, prompt_tokens, tried, now, explore=False)
        if plan.candidates or error.kind not in _RETRY_SAME:
            return plan
        backoff = self.backoff_s(len(attempted))
        retry = rank(
            llm, prompt_tokens, (), now, explore=False, reason=Reason.RETRY, backoff_s=backoff
        )
        return retry if retry.candidates else plan

    def _larger_window(
        self, llm: Llm, prompt_tokens: int, failed_id: str, tried: set[str], now: float
    ) -> RoutePlan:
        failed = llm.endpoint(failed_id)
        window = window_tokens(failed, self._endpoints.get(failed_id)) if failed else 0
        plan = self._ranker.rank(
            llm,
            prompt_tokens,
            tried,
            now,
            explore=False,
            larger_than=window or prompt_tokens,
            reason=Reason.LARGER_CONTEXT_WINDOW,
        )
        if plan.candidates:  # a known larger window before an unknown one, else by rank
            def unknown(c: Candidate) -> bool:
                ep = llm.endpoint(c.endpoint_id)
                return ep is None or not window_tokens(ep, self._endpoints.get(c.endpoint_id))

            return replace(plan, candidates=tuple(sorted(plan.candidates, key=unknown)))
        if plan.stop is StopReason.ALL_UNAVAILABLE:
            return plan
        return RoutePlan((), plan.skipped, StopReason.NO_LARGER_CONTEXT_WINDOW)

    def context_window_tokens(self, endpoint: Endpoint) -> int:
        """The endpoint's window as best known (learned, declared, reported); 0: unknown."""
        return window_tokens(endpoint, self._endpoints.get(endpoint.id))

    def hedge_delay_s(self, endpoint_id: str, prompt_tokens: int | None = None) -> float:
        """How long to wait for a first token from ``endpoint_id`` before hedging."""
        st = self._endpoints.get(endpoint_id)
        stats = None if st is None else st.latency
        return timing.hedge_delay_s(self._config.timing, stats, prompt_tokens)

    def stall_timeout_s(self, endpoint_id: str) -> float:
        """How long a gap between chunks may last before the stream counts as stalled."""
        st = self._endpoints.get(endpoint_id)
        return timing.stall_timeout_s(self._config.timing, None if st is None else st.latency)

    def backoff_s(self, attempt: int) -> float:
        """The jittered wait before retry number ``attempt`` (1-based) of a turn."""
        return timing.backoff_s(self._config.timing, self._rng, attempt)

    # -- bookkeeping -------------------------------------------------------------------------

    def admit(self, endpoint_id: str, probe: bool = False) -> Attempt | None:
        """Admits an attempt just before it is sent; None: not eligible now (its half-open
        trial is taken, its circuit opened, it is rate-limited), so do not send it. The
        ``Attempt`` records the rest of its life (``server.routing.attempt``)."""
        st = self._get(endpoint_id)
        now = self._clock.monotonic()
        if st.cooldown.remaining_s(now) > 0 or not st.breaker.acquire(now):
            return None
        if probe:
            st.latency.probes_in_flight += 1
        else:
            st.latency.live_in_flight += 1
        return Attempt(self, endpoint_id, probe)

    def first_token(
        self, endpoint_id: str, ttft_s: float, prompt_tokens: int, is_probe: bool = False
    ) -> None:
        """The first token arrived ``ttft_s`` after the request was sent. Call it then."""
        if math.isfinite(ttft_s) and ttft_s >= 0:
            now = self._clock.monotonic()
            self._get(endpoint_id).latency.record_ttft(now, ttft_s, prompt_tokens, is_probe)
            self._journal.first_token(endpoint_id, now, ttft_s, is_probe)

    def first_token_missed(
        self, endpoint_id: str, waited_s: float, prompt_tokens: int, is_probe: bool = False
    ) -> None:
        """The attempt ended after ``waited_s`` with no first token (hedge loser, first-token
        timeout). Lets a slowed endpoint's estimate rise even when it never wins."""
        if math.isfinite(waited_s) and waited_s >= 0:
            now = self._clock.monotonic()
            self._get(endpoint_id).latency.record_missed(now, waited_s, prompt_tokens, is_probe)

    def record_gaps(self, endpoint_id: str, gaps_s: Iterable[float]) -> None:
        """Gaps between streamed chunks, batched (once per stream); O(1) per gap."""
        st = self._endpoints.get(endpoint_id)
        if st is not None:
            st.latency.record_gaps(gaps_s)

    def _settle(self, endpoint_id: str, probe: bool, success: bool,
                error: UpstreamError | None) -> None:
        """An attempt's outcome, called by ``Attempt`` once: success, ``error``, or neither
        (cancelled: a hedge loser, the client went away), which is not a failure but frees a
        half-open trial. Errors caused by the request (context length, content filter, bad
        request, unsupported input) show the endpoint is up; a wrong model or path (not found)
        says nothing either way; rate limits start a cooldown of the provider's Retry-After
        and are not breaker failures."""
        st = self._get(endpoint_id)
        now = self._clock.monotonic()
        if success:
            st.breaker.record_success(now)
            st.latency.record_outcome(now, False)
            if probe:
                self._journal.probe_finished(endpoint_id, now, "")
            return
        if probe:
            self._journal.probe_finished(endpoint_id, now, error.kind.value if error else
                                         "cancelled")
        if error is None:
            st.breaker.release()
            return
        if error.kind is ErrorKind.CONTEXT_LENGTH and error.context_window_tokens > 0:
            st.learned_window_tokens = error.context_window_tokens  # the server's own word
        verdict = verdict_of(error.kind)
        if verdict is HealthVerdict.NEUTRAL:
            st.breaker.release()
            return
        if verdict is HealthVerdict.HEALTHY:
            st.breaker.record_success(now)
            st.latency.record_outcome(now, False)
            return
        st.latency.record_outcome(now, True)
        if verdict is HealthVerdict.RATE_LIMITED:
            st.cooldown.apply(now, error.kind, error.retry_after_s)
            st.breaker.release()
        elif verdict is HealthVerdict.REJECTED_KEY:
            st.breaker.record_rejected_key(now)
        else:
            st.breaker.record_failure(now)

    def _release(self, endpoint_id: str, probe: bool) -> None:
        """An attempt is over (after its outcome was booked): one fewer in flight."""
        st = self._endpoints.get(endpoint_id)
        if st is None:
            return
        lat = st.latency
        if probe:
            lat.probes_in_flight = max(0, lat.probes_in_flight - 1)
        else:
            lat.live_in_flight = max(0, lat.live_in_flight - 1)

    def forget(self, endpoint_id: str) -> None:
        """Drop everything about an endpoint (deleted, or its key replaced)."""
        self._endpoints.pop(endpoint_id, None)
        self._journal.forget(endpoint_id)

    # -- reading -----------------------------------------------------------------------------

    def snapshot(self, endpoint_id: str) -> EndpointHealth:
        """Health of one endpoint; an unknown id reads as a fresh, closed endpoint."""
        st = self._endpoints.get(endpoint_id) or EndpointState(self._config, self._rng)
        now = self._clock.monotonic()
        lat = st.latency
        return EndpointHealth(
            state=st.breaker.state(now),
            ttft_ewma_ms=_ms(lat.ttft_ewma_s()),
            ttft_p50_ms=_ms(lat.ttft_quantile_s(0.5)),
            ttft_p95_ms=_ms(lat.ttft_quantile_s(0.95)),
            gap_p99_ms=_ms(lat.gap_quantile_s(0.99)),
            in_flight=lat.live_in_flight,
            probes_in_flight=lat.probes_in_flight,
            error_rate=lat.error_rate(now),
            samples=lat.samples,
            last_sample_age_s=lat.sample_age_s(now),
            cooldown_remaining_s=st.cooldown.remaining_s(now),
            open_remaining_s=st.breaker.open_remaining_s(now),
            consecutive_failures=st.breaker.consecutive_failures,
        )

    def journal(self, endpoint_id: str) -> JournalView:
        """Recent first-token times, probes and failovers away from ``endpoint_id``, with
        their age in seconds."""
        return self._journal.view(endpoint_id, self._clock.monotonic())

    def preview(self, llm: Llm) -> RoutePlan:
        """The order a short turn of ``llm`` would try its endpoints in now (no exploration,
        nothing reserved): for reading, not for sending."""
        return self._ranker.rank(llm, 0, (), self._clock.monotonic(), explore=False)

    def probe_status(self, endpoint_id: str) -> ProbeStatus:
        """What ``ProbeScheduler`` needs (the router is its ``ProbeView``)."""
        st = self._get(endpoint_id)
        now = self._clock.monotonic()
        b = st.breaker
        state = b.state(now)
        blocked = (
            st.cooldown.remaining_s(now) > 0
            or state is CircuitState.OPEN
            or (state is CircuitState.HALF_OPEN and b.trial_in_flight(now))
        )
        return ProbeStatus(
            live_in_flight=st.latency.live_in_flight,
            probes_in_flight=st.latency.probes_in_flight,
            blocked=blocked,
            trial_available=not blocked and state is CircuitState.HALF_OPEN,
            last_sample_age_s=st.latency.sample_age_s(now),
        )

    def _get(self, endpoint_id: str) -> EndpointState:
        st = self._endpoints.get(endpoint_id)
        if st is None:
            st = self._endpoints[endpoint_id] = EndpointState(self._config, self._rng)
        return st


def _ms(seconds: float | None) -> float | None:
    return None if seconds is None else seconds * 1000.0
