"""OpenTelemetry tracing: a span per turn, a child span per upstream attempt.

Built only when ``otlp_endpoint`` is set (or a test injects an exporter); otherwise the module
is never imported and turns run with no tracing code at all. The tracer provider is this
server's own (never the process-global one) and spans carry explicit parents, so nothing
depends on context variables. Attributes follow the GenAI semantic conventions: the turn span
has ``gen_ai.request.model`` = the Switchboard LLM id; an attempt span has the upstream's
model, provider, ``server.address`` (host only), usage and finish reason. No prompt or
completion text, no keys, no URLs.
"""

from __future__ import annotations

import asyncio
import time
from urllib.parse import urlsplit

from opentelemetry import trace
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import (
    BatchSpanProcessor,
    SimpleSpanProcessor,
    SpanExporter,
)
from opentelemetry.trace import Span, SpanKind, Status, StatusCode, Tracer

from server.chat import FinishReason, Usage
from server.providers.base import UpstreamError
from server.registry.llm import Endpoint, Llm
from server.telemetry.metrics import PROVIDER_NAMES
from server.turns.observer import AttemptObserver, TurnObserver

TRACES_PATH = "/v1/traces"


def otlp_traces_url(endpoint: str) -> str:
    """``http://collector:4318`` -> ``http://collector:4318/v1/traces`` (OTLP/HTTP)."""
    base = endpoint.rstrip("/")
    return base if base.endswith(TRACES_PATH) else base + TRACES_PATH


class Tracing:
    """The ``TurnsObserver`` that records spans."""

    def __init__(self, provider: TracerProvider) -> None:
        self._provider = provider
        self._tracer = provider.get_tracer("switchboard")

    @classmethod
    def build(cls, otlp_endpoint: str = "", exporter: SpanExporter | None = None) -> Tracing:
        """Exports to ``exporter`` synchronously (tests) or in batches to the OTLP endpoint."""
        provider = TracerProvider(resource=Resource.create({"service.name": "switchboard"}),
                                  shutdown_on_exit=False)
        if exporter is not None:
            provider.add_span_processor(SimpleSpanProcessor(exporter))
        else:
            from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

            provider.add_span_processor(BatchSpanProcessor(
                OTLPSpanExporter(endpoint=otlp_traces_url(otlp_endpoint), timeout=5.0)))
        return cls(provider)

    def turn_started(self, llm: Llm, turn_id: str, edge: str) -> TurnObserver:
        span = self._tracer.start_span(f"chat {llm.id}", kind=SpanKind.INTERNAL, attributes={
            "gen_ai.operation.name": "chat",
            "gen_ai.request.model": llm.id,
            "switchboard.turn.id": turn_id,
            "switchboard.edge": edge,
        })
        return _TurnSpan(self._tracer, span)

    async def shutdown(self) -> None:
        """Flushes pending spans (the exporter blocks, so off the event loop)."""
        await asyncio.to_thread(self._provider.shutdown)


class _TurnSpan:
    __slots__ = ("_attempts", "_context", "_span", "_tracer")

    def __init__(self, tracer: Tracer, span: Span) -> None:
        self._tracer, self._span = tracer, span
        self._context = trace.set_span_in_context(span)
        self._attempts: list[_AttemptSpan] = []

    def attempt_started(self, endpoint: Endpoint, attempt: int, reason: str) -> AttemptObserver:
        span = self._tracer.start_span(
            f"chat {endpoint.model}", context=self._context, kind=SpanKind.CLIENT, attributes={
                "gen_ai.operation.name": "chat",
                "gen_ai.provider.name": PROVIDER_NAMES.get(endpoint.api_spec, "openai"),
                "gen_ai.request.model": endpoint.model,
                "server.address": urlsplit(endpoint.base_url).hostname or "",
                "switchboard.endpoint.id": endpoint.id,
                "switchboard.attempt": attempt,
                "switchboard.route.reason": reason,
            })
        observer = _AttemptSpan(span)
        self._attempts.append(observer)
        return observer

    def finished(self, outcome: str, error_type: str = "") -> None:
        for attempt in self._attempts:
            if attempt.open:  # its caller left mid-answer
                attempt.cancelled()
        span = self._span
        span.set_attribute("switchboard.outcome", outcome)
        span.set_attribute("switchboard.attempts", len(self._attempts))
        if error_type and outcome != "cancelled":
            span.set_attribute("error.type", error_type)
            span.set_status(Status(StatusCode.ERROR))
        span.end()


class _AttemptSpan:
    __slots__ = ("_span", "_started", "open")

    def __init__(self, span: Span) -> None:
        self._span = span
        self._started = time.monotonic()
        self.open = True

    def first_token(self, ttft_s: float) -> None:
        self._span.set_attribute("gen_ai.response.time_to_first_chunk", ttft_s)

    def succeeded(self, usage: Usage, reason: FinishReason) -> None:
        self.open = False
        span = self._span
        span.set_attribute("gen_ai.usage.input_tokens", usage.input_tokens)
        span.set_attribute("gen_ai.usage.output_tokens",
                           usage.output_tokens + usage.reasoning_tokens)
        span.set_attribute("gen_ai.usage.reasoning.output_tokens", usage.reasoning_tokens)
        span.set_attribute("gen_ai.response.finish_reasons", [reason.value])
        span.end()

    def failed(self, error: UpstreamError) -> None:
        self.open = False
        span = self._span
        span.set_attribute("error.type", error.kind.value)
        if error.status:
            span.set_attribute("http.response.status_code", error.status)
        span.set_status(Status(StatusCode.ERROR, error.message[:200]))
        span.end()

    def cancelled(self) -> None:
        self.open = False
        self._span.set_attribute("switchboard.attempt.cancelled", True)
        self._span.end()
