"""gRPC server metrics: calls by method and status code, open streams.

``GrpcMetricsInterceptor`` goes first in the server's interceptor list. The calls that the
``EdgeInterceptor`` wraps (``timed_by_edge`` prefixes: every ``switchboard.v1`` RPC) are
reported by the edge itself, through ``rpc_started`` / ``rpc_finished`` with the status it
ends them with, so they pass this interceptor unwrapped: one generator layer per streamed
message fewer (tests/bench/FINDINGS.md). The others (health, reflection, unknown methods) are
wrapped here: streaming handlers are re-yielded by one thin generator, and their status is
read from the context (aborts included). Nothing is recorded per message.
"""

from __future__ import annotations

import asyncio
import inspect
import time
from collections.abc import AsyncIterator
from typing import Any

import grpc

from server.edge.context import Continuation, Handler
from server.telemetry.metrics import Metrics

UNKNOWN_METHOD = "_OTHER"


def _code_name(context: Any, error: BaseException | None) -> str:
    """The status the call ended with: the handler's (or abort's) code, OK by default."""
    if isinstance(error, (asyncio.CancelledError, GeneratorExit)):
        return "CANCELLED"
    if error is not None and not isinstance(error, grpc.aio.AbortError):
        return "UNKNOWN"
    code = context.code()
    if code is None:
        return "OK"
    if isinstance(code, grpc.StatusCode):
        return str(code.name)
    return next((c.name for c in grpc.StatusCode if code in (c, c.value, c.value[0])),
                "UNKNOWN")


class GrpcMetricsInterceptor(grpc.aio.ServerInterceptor):
    def __init__(self, metrics: Metrics, timed_by_edge: tuple[str, ...] = ()) -> None:
        self._m = metrics
        self._by_edge = timed_by_edge

    def rpc_started(self, method: str, streaming: bool) -> None:
        """A call the edge interceptor wraps has started (``method``: "package.Service/Rpc")."""
        if streaming:
            in_flight = self._m.grpc_streams_in_flight
            in_flight[method] = in_flight.get(method, 0) + 1

    def rpc_finished(self, method: str, streaming: bool, status: str, seconds: float) -> None:
        """... and has ended with ``status`` (a gRPC status code name)."""
        if streaming:
            self._m.grpc_streams_in_flight[method] -= 1
        self._m.rpc_duration.labels("grpc", method, status).observe(seconds)

    def _record(self, method: str, start: float, context: Any, error: BaseException | None
                ) -> None:
        self._m.rpc_duration.labels("grpc", method, _code_name(context, error)).observe(
            time.perf_counter() - start)

    async def intercept_service(
        self,
        continuation: Continuation,
        details: grpc.HandlerCallDetails,
    ) -> Handler | None:
        handler = await continuation(details)
        if handler is not None and details.method.startswith(self._by_edge):
            return handler  # timed by the edge interceptor (rpc_started / rpc_finished)
        method = str(details.method).lstrip("/")
        if handler is None:
            self._m.rpc_duration.labels("grpc", UNKNOWN_METHOD, "UNIMPLEMENTED").observe(0.0)
            return handler
        for kind, make in (("unary_unary", grpc.unary_unary_rpc_method_handler),
                           ("stream_unary", grpc.stream_unary_rpc_method_handler),
                           ("unary_stream", grpc.unary_stream_rpc_method_handler),
                           ("stream_stream", grpc.stream_stream_rpc_method_handler)):
            behavior = getattr(handler, kind)
            if behavior is not None:
                streaming = kind.endswith("_stream")
                return make(self._wrap(behavior, method, streaming),
                            request_deserializer=handler.request_deserializer,
                            response_serializer=handler.response_serializer)
        return handler

    def _wrap(self, behavior: Any, method: str, streaming: bool) -> Any:
        record = self._record
        in_flight = self._m.grpc_streams_in_flight

        if inspect.isasyncgenfunction(behavior):
            async def stream(request: Any, context: Any) -> AsyncIterator[Any]:
                start = time.perf_counter()
                error: BaseException | None = None
                in_flight[method] = in_flight.get(method, 0) + 1
                try:
                    async for response in behavior(request, context):
                        yield response
                except BaseException as exc:
                    error = exc
                    raise
                finally:
                    in_flight[method] -= 1
                    record(method, start, context, error)

            return stream

        async def call(request: Any, context: Any) -> Any:
            start = time.perf_counter()
            error: BaseException | None = None
            if streaming:  # a coroutine that writes with context.write (health Watch)
                in_flight[method] = in_flight.get(method, 0) + 1
            try:
                return await behavior(request, context)
            except BaseException as exc:
                error = exc
                raise
            finally:
                if streaming:
                    in_flight[method] -= 1
                record(method, start, context, error)

        return call
