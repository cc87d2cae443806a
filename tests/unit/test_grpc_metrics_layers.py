"""The gRPC metrics add no interceptor layer around the calls the edge interceptor wraps.

Every streamed ``Converse`` message passes each layer's async generator, so the edge
interceptor reports its calls to the metrics itself (``RpcTimer``) and the metrics
interceptor hands those handlers on untouched; calls the edge does not wrap (health) are
still wrapped and timed by the metrics interceptor.
"""

from __future__ import annotations

from typing import Any

import grpc

from server.app import EDGE_PREFIXES
from server.telemetry.grpc_metrics import GrpcMetricsInterceptor
from server.telemetry.metrics import Metrics


class _Details:
    def __init__(self, method: str) -> None:
        self.method = method
        self.invocation_metadata: tuple[Any, ...] = ()


async def _stream(request: Any, context: Any) -> Any:
    yield request


async def test_edge_wrapped_methods_pass_the_metrics_interceptor_untouched() -> None:
    metrics = Metrics()
    interceptor = GrpcMetricsInterceptor(metrics, timed_by_edge=EDGE_PREFIXES)
    handler: grpc.RpcMethodHandler[Any, Any] = grpc.unary_stream_rpc_method_handler(_stream)

    async def continuation(details: Any) -> grpc.RpcMethodHandler[Any, Any] | None:
        return handler

    converse = await interceptor.intercept_service(
        continuation, _Details("/switchboard.v1.Conversations/Converse"))
    assert converse is handler
    health = await interceptor.intercept_service(continuation,
                                                 _Details("/grpc.health.v1.Health/Watch"))
    assert health is not None and health is not handler and health.unary_stream is not _stream


def test_the_edge_reports_its_calls_to_the_same_metrics() -> None:
    metrics = Metrics()
    timer = GrpcMetricsInterceptor(metrics, timed_by_edge=EDGE_PREFIXES)
    method = "switchboard.v1.Conversations/Converse"
    timer.rpc_started(method, True)
    assert metrics.grpc_streams_in_flight[method] == 1
    timer.rpc_finished(method, True, "NOT_FOUND", 0.01)
    assert metrics.grpc_streams_in_flight[method] == 0
    sample = metrics.rpc_duration.labels("grpc", method, "NOT_FOUND")
    assert sample._sum.get() > 0
