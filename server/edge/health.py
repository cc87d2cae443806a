"""Fills each endpoint's output-only health from the router's live view (GetLlm, ListLlms)."""

from __future__ import annotations

from collections.abc import Callable

from switchboard.v1 import llm_pb2 as lpb

from server.routing.breaker import CircuitState
from server.routing.router import Router

_STATE = {
    CircuitState.CLOSED: lpb.CIRCUIT_STATE_CLOSED,
    CircuitState.OPEN: lpb.CIRCUIT_STATE_OPEN,
    CircuitState.HALF_OPEN: lpb.CIRCUIT_STATE_HALF_OPEN,
}


def _ms(value: float | None) -> float:
    return round(value, 3) if value is not None else 0.0


def fill_health(router: Router) -> Callable[[str, lpb.Endpoint], None]:
    def fill(endpoint_id: str, out: lpb.Endpoint) -> None:
        h = router.snapshot(endpoint_id)
        out.health.circuit_state = _STATE[h.state]
        out.health.ttft_estimate_ms = _ms(h.ttft_ewma_ms)
        out.health.ttft_p50_ms = _ms(h.ttft_p50_ms)
        out.health.ttft_p95_ms = _ms(h.ttft_p95_ms)
        out.health.chunk_gap_p99_ms = _ms(h.gap_p99_ms)
        out.health.in_flight = h.in_flight
        out.health.error_rate = h.error_rate
        out.health.samples = h.samples
        out.health.last_sample_age_seconds = (h.last_sample_age_s
                                              if h.last_sample_age_s is not None else -1.0)
        out.health.cooldown_remaining_seconds = max(h.cooldown_remaining_s, h.open_remaining_s)
        out.health.consecutive_failures = h.consecutive_failures

    return fill
