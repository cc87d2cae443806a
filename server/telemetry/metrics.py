"""Prometheus metrics: one ``Metrics`` per server, in its own ``CollectorRegistry``.

The composition root creates ``Metrics`` and hands its ``observer()`` to the turn runner, its
``GrpcMetricsInterceptor`` to the gRPC server and ``render()`` to ``GET /metrics`` on the
metrics listener (``server.telemetry.scrape``). Names follow the OpenTelemetry GenAI and RPC
semantic conventions where one exists (dots become underscores, the unit becomes a suffix),
``switchboard_*`` otherwise. Labels, chosen so that a dashboard can name what it shows without
a lookup table:

- ``switchboard_llm_id`` and ``switchboard_llm``: the LLM's id and display name;
- ``endpoint`` and ``endpoint_label``: the endpoint's id and its label (``eu-west``; never its
  URL or key); ``gen_ai_request_model``: the upstream model the endpoint asks for;
  ``gen_ai_provider_name``: its wire format (``openai``, ``azure.ai.openai``, ``gcp.gemini``,
  ``groq``);
- ``edge``: ``grpc`` or ``http``.

No ``*_created`` series are exported (they double the series count and no dashboard reads
them).

Series are updated per turn and per attempt, never per streamed chunk: output tokens come from
the upstream's usage at the end of an attempt.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator

from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.exposition import CONTENT_TYPE_LATEST, generate_latest
from prometheus_client.metrics_core import CounterMetricFamily, GaugeMetricFamily, Metric

from server.chat import FinishReason, Usage
from server.providers.base import UpstreamError
from server.registry.llm import ApiSpec, Endpoint, Llm
from server.turns.observer import AttemptObserver, TurnObserver

PROVIDER_NAMES = {
    ApiSpec.OPENAI: "openai",
    ApiSpec.AZURE_OPENAI: "azure.ai.openai",
    ApiSpec.GEMINI: "gcp.gemini",
    ApiSpec.GROQ: "groq",
}
CIRCUIT_STATES = ("closed", "half_open", "open")
# Bucket boundaries advised by the GenAI semantic conventions.
TTFT_BUCKETS = (0.001, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0,
                7.5, 10.0)
TPOT_BUCKETS = (0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5, 0.75, 1.0, 2.5)
TOKEN_BUCKETS = (1, 4, 16, 64, 256, 1024, 4096, 16384, 65536, 262144, 1048576, 4194304)
DURATION_BUCKETS = (0.01, 0.02, 0.04, 0.08, 0.16, 0.32, 0.64, 1.28, 2.56, 5.12, 10.24, 20.48,
                    40.96, 81.92)

_LLM = ("switchboard_llm_id", "switchboard_llm")
_ENDPOINT = (*_LLM, "endpoint", "endpoint_label", "gen_ai_request_model", "gen_ai_provider_name")


def endpoint_labels(llm: Llm, endpoint: Endpoint) -> tuple[str, str, str, str, str, str]:
    """The ``_ENDPOINT`` label values of one endpoint of ``llm``."""
    return (llm.id, llm.display_name, endpoint.id, endpoint.label, endpoint.model,
            PROVIDER_NAMES.get(endpoint.api_spec, str(endpoint.api_spec)))


class Metrics:
    """Every series of one server. Pass ``routing(...)`` the live sources for the gauges."""

    def __init__(self) -> None:
        self.registry = r = CollectorRegistry(auto_describe=True)
        self.ttft = Histogram(
            "gen_ai_server_time_to_first_token_seconds",
            "Time from sending an upstream request to its first token, for attempts that won.",
            _ENDPOINT, buckets=TTFT_BUCKETS, registry=r)
        self.tpot = Histogram(
            "gen_ai_server_time_per_output_token_seconds",
            "Time per output token after the first, for attempts that finished (from usage).",
            _ENDPOINT, buckets=TPOT_BUCKETS, registry=r)
        self.tokens = Histogram(
            "gen_ai_client_token_usage", "Tokens per finished upstream attempt, by type "
            "(input; output including reasoning).", (*_ENDPOINT, "gen_ai_token_type"),
            buckets=TOKEN_BUCKETS, registry=r)
        self.turn_duration = Histogram(
            "gen_ai_server_request_duration_seconds",
            "Duration of a turn, from its start to its last event.",
            (*_LLM, "edge", "error_type"), buckets=DURATION_BUCKETS, registry=r)
        self.turn_ttft = Histogram(
            "switchboard_turn_time_to_first_token_seconds",
            "Time from the start of a turn to its first token as the caller sees it "
            "(failovers and hedges included).",
            (*_LLM, "edge"), buckets=TTFT_BUCKETS, registry=r)
        self.turns = Counter(
            "switchboard_turns", "Turns by outcome: ok, incomplete, cancelled, or the "
            "lower-case status code they failed with.",
            (*_LLM, "edge", "outcome"), registry=r)
        self.attempts = Counter(
            "switchboard_attempts", "Upstream attempts by outcome: ok, cancelled, or the "
            "upstream error kind.", (*_ENDPOINT, "outcome"), registry=r)
        self.failovers = Counter(
            "switchboard_failovers", "Failovers away from an endpoint, before or after the "
            "first token of its answer.", (*_ENDPOINT, "phase"), registry=r)
        self.hedges = Counter(
            "switchboard_hedges", "Hedge attempts started on an endpoint because the first "
            "token of another was late.", _ENDPOINT, registry=r)
        self.rpc_duration = Histogram(
            "rpc_server_call_duration_seconds", "gRPC calls served, by method and status code.",
            ("rpc_system_name", "rpc_method", "rpc_response_status_code"),
            buckets=DURATION_BUCKETS, registry=r)
        self.http_duration = Histogram(
            "http_server_request_duration_seconds", "HTTP requests served by the front door.",
            ("http_request_method", "http_route", "http_response_status_code"),
            buckets=DURATION_BUCKETS, registry=r)
        # endpoint id -> its _ENDPOINT labels, for the circuit gauge
        self.known_endpoints: dict[str, tuple[str, ...]] = {}
        self.grpc_streams_in_flight: dict[str, int] = {}  # rpc method -> open streams

    def routing(self, circuit_state: Callable[[str], str], probes_sent: Callable[[], int],
                turns_in_flight: Callable[[], int]) -> None:
        """Registers the gauges read at scrape time from the router, probes and runner."""
        self.registry.register(_LiveCollector(self, circuit_state, probes_sent, turns_in_flight))

    def forget(self, endpoint_id: str) -> None:
        """Stops reporting the circuit of a deleted endpoint."""
        self.known_endpoints.pop(endpoint_id, None)

    def observer(self) -> MetricsObserver:
        return MetricsObserver(self)

    def render(self) -> tuple[bytes, str]:
        """The text exposition (without ``*_created`` series) and its content type."""
        return generate_latest(_WithoutCreated(self.registry)), CONTENT_TYPE_LATEST


class _WithoutCreated:
    """A registry's metrics minus the ``*_created`` samples prometheus_client adds to counters
    and histograms (its switch for that is process-wide)."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self._registry = registry

    def collect(self) -> Iterator[Metric]:
        for metric in self._registry.collect():
            metric.samples = [s for s in metric.samples if not s.name.endswith("_created")]
            yield metric


class _LiveCollector:
    """Gauges computed at scrape time; nothing is updated on the hot path for them."""

    def __init__(self, metrics: Metrics, circuit_state: Callable[[str], str],
                 probes_sent: Callable[[], int], turns_in_flight: Callable[[], int]) -> None:
        self._m = metrics
        self._state = circuit_state
        self._probes = probes_sent
        self._turns = turns_in_flight

    def collect(self) -> Iterator[Metric]:
        circuit = GaugeMetricFamily(
            "switchboard_circuit_state", "Circuit breaker state per endpoint that has served "
            "traffic: 1 for the current state, 0 for the others.",
            labels=[*_ENDPOINT, "state"])
        for endpoint_id, labels in list(self._m.known_endpoints.items()):
            current = self._state(endpoint_id)
            for state in CIRCUIT_STATES:
                circuit.add_metric([*labels, state], 1.0 if state == current else 0.0)
        yield circuit
        yield CounterMetricFamily("switchboard_probes_sent", "Latency probes sent upstream.",
                                  value=self._probes())
        yield GaugeMetricFamily("switchboard_turns_in_flight", "Turns running on this replica "
                                "(both edges).", value=self._turns())
        streams = GaugeMetricFamily("switchboard_grpc_server_streams_in_flight",
                                    "Open gRPC server streams.", labels=["rpc_method"])
        for method, n in list(self._m.grpc_streams_in_flight.items()):
            streams.add_metric([method], n)
        yield streams


class MetricsObserver:
    """The ``TurnsObserver`` that feeds ``Metrics``."""

    def __init__(self, metrics: Metrics) -> None:
        self._m = metrics

    def turn_started(self, llm: Llm, turn_id: str, edge: str) -> TurnObserver:
        return _TurnMetrics(self._m, llm, edge)


class _TurnMetrics:
    __slots__ = ("_attempts", "_edge", "_first_token", "_last_failed", "_llm", "_m", "_started")

    def __init__(self, metrics: Metrics, llm: Llm, edge: str) -> None:
        self._m, self._llm, self._edge = metrics, llm, edge
        self._started = time.monotonic()
        self._first_token = False
        self._last_failed: tuple[tuple[str, ...], bool] | None = None  # (labels, had output)
        self._attempts: list[_AttemptMetrics] = []

    def attempt_started(self, endpoint: Endpoint, attempt: int, reason: str) -> AttemptObserver:
        m = self._m
        labels = endpoint_labels(self._llm, endpoint)
        m.known_endpoints[endpoint.id] = labels
        if reason == "hedge":
            m.hedges.labels(*labels).inc()
        elif self._last_failed is not None:
            failed, had_output = self._last_failed
            phase = "after_first_token" if had_output else "before_first_token"
            m.failovers.labels(*failed, phase).inc()
        self._last_failed = None
        observer = _AttemptMetrics(self, labels)
        self._attempts.append(observer)
        return observer

    def first_token(self) -> None:
        if not self._first_token:
            self._first_token = True
            self._m.turn_ttft.labels(self._llm.id, self._llm.display_name, self._edge).observe(
                time.monotonic() - self._started)

    def attempt_failed(self, labels: tuple[str, ...], had_output: bool) -> None:
        self._last_failed = (labels, had_output)

    def finished(self, outcome: str, error_type: str = "") -> None:
        for attempt in self._attempts:
            if not attempt.ended:  # its caller left mid-answer
                attempt.cancelled()
        m = self._m
        llm = (self._llm.id, self._llm.display_name)
        m.turns.labels(*llm, self._edge, outcome).inc()
        m.turn_duration.labels(*llm, self._edge, error_type).observe(
            time.monotonic() - self._started)


class _AttemptMetrics:
    __slots__ = ("_first_at", "_labels", "_turn", "ended")

    def __init__(self, turn: _TurnMetrics, labels: tuple[str, ...]) -> None:
        self._turn, self._labels = turn, labels
        self._first_at = 0.0
        self.ended = False

    def first_token(self, ttft_s: float) -> None:
        self._first_at = time.monotonic()
        self._turn._m.ttft.labels(*self._labels).observe(ttft_s)
        self._turn.first_token()

    def succeeded(self, usage: Usage, reason: FinishReason) -> None:
        self.ended = True
        m = self._turn._m
        m.attempts.labels(*self._labels, "ok").inc()
        output = usage.output_tokens + usage.reasoning_tokens
        m.tokens.labels(*self._labels, "input").observe(usage.input_tokens)
        m.tokens.labels(*self._labels, "output").observe(output)
        if output > 1 and self._first_at:
            m.tpot.labels(*self._labels).observe(
                (time.monotonic() - self._first_at) / (output - 1))

    def failed(self, error: UpstreamError) -> None:
        self.ended = True
        self._turn._m.attempts.labels(*self._labels, error.kind.value).inc()
        self._turn.attempt_failed(self._labels, bool(self._first_at))

    def cancelled(self) -> None:
        self.ended = True
        self._turn._m.attempts.labels(*self._labels, "cancelled").inc()
