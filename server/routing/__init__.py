"""Routing: which upstream endpoint serves a turn, and the bookkeeping behind that choice.

Pure and deterministic: time comes from a ``Clock``, randomness from a ``random.Random``; no
I/O, no awaits, no grpc. The turn engine calls ``Router`` at each step of an attempt and asks
``ProbeScheduler`` which probes are due. ``python -m server.routing.regret`` measures routing
regret on a simulated fleet.
"""

from server.clock import Clock, FakeClock, SystemClock
from server.routing.breaker import BreakerConfig, CircuitState
from server.routing.config import RouterConfig
from server.routing.latency import LatencyConfig
from server.routing.probe_prompt import (
    PROBE_MAX_OUTPUT_TOKENS,
    PROBE_PROMPT,
    PROBE_PROMPT_TOKENS,
    probe_prompt,
)
from server.routing.probe_schedule import ProbeScheduler, ProbeView
from server.routing.route_plan import (
    Candidate,
    EndpointHealth,
    ProbeStatus,
    Reason,
    RoutePlan,
    SkipReason,
    StopReason,
)
from server.routing.router import Router
from server.routing.timing import TimingConfig

__all__ = [
    "PROBE_MAX_OUTPUT_TOKENS",
    "PROBE_PROMPT",
    "PROBE_PROMPT_TOKENS",
    "BreakerConfig",
    "Candidate",
    "CircuitState",
    "Clock",
    "EndpointHealth",
    "FakeClock",
    "LatencyConfig",
    "ProbeScheduler",
    "ProbeStatus",
    "ProbeView",
    "Reason",
    "RoutePlan",
    "Router",
    "RouterConfig",
    "SkipReason",
    "StopReason",
    "SystemClock",
    "TimingConfig",
    "probe_prompt",
]
