"""The one server interceptor: request context, authentication, error mapping, summary line.

Every RPC of ``switchboard.v1`` passes through ``EdgeInterceptor``:
1. binds a request id and the method to the log context;
2. refuses calls while the server drains (UNAVAILABLE) ;
3. authenticates ``authorization: Bearer <api key>`` into an account id (UNAUTHENTICATED);
4. runs the handler, mapping domain errors to rich ``google.rpc.Status`` and anything
   unexpected to INTERNAL with the request id (never UNKNOWN);
5. logs one summary line (status, duration, and what the servicer added: attempts,
   endpoint, ttft_ms, tokens);
6. on the gRPC port, reports the call to ``RpcTimer`` (the gRPC metrics: duration by method
   and status, open streams), so the metrics need no interceptor layer of their own around
   these calls: one async-generator hop per message instead of two (tests/bench/FINDINGS.md).
Health and reflection are served without authentication.
"""

from __future__ import annotations

import gc
import secrets
import time
from collections.abc import AsyncIterator, Callable
from typing import Any, Protocol

import grpc
import structlog

from server import logs
from server.edge import context as rpc
from server.edge.context import Continuation, Handler, ServicerContext
from server.edge.status import to_status
from server.errors import (
    InvalidArgument,
    ResourceExhausted,
    SwitchboardError,
    Unauthenticated,
    Unavailable,
)

log = structlog.get_logger("switchboard.rpc")

OPEN_PREFIXES = ("/grpc.health.", "/grpc.reflection.")


class Authenticator(Protocol):
    async def authenticate(self, api_key: str) -> str:
        """Returns the account id of a valid, unrevoked key; raises Unauthenticated."""
        ...


def _bearer(metadata: tuple[tuple[str, Any], ...] | None) -> str:
    for key, value in metadata or ():
        if key == "authorization":
            text = value.decode() if isinstance(value, bytes) else str(value)
            scheme, _, token = text.partition(" ")
            if scheme.lower() == "bearer" and token.strip():
                return token.strip()
            raise Unauthenticated("the authorization metadata must be 'Bearer <api key>'",
                                  reason="MALFORMED_AUTHORIZATION")
    raise Unauthenticated("missing 'authorization: Bearer <api key>' metadata",
                          reason="MISSING_API_KEY")


def metadata_bytes(metadata: tuple[tuple[str, Any], ...] | None) -> int:
    """The size of a call's metadata as HTTP/2 counts it (names and values)."""
    return sum(len(key) + len(value) for key, value in metadata or ())


# Metadata this large on a refused call: collect garbage at once (see ``intercept_service``).
_COLLECT_ABOVE_BYTES = 256 * 1024


def refusal(exc: SwitchboardError) -> Handler:
    """A handler that ends the call with ``exc`` at once, without reading its request.

    It is a stream-request handler on purpose: for a unary method grpc would first wait for
    the request message, and a call that never sends one would hold its metadata until the
    caller gives up. Cardinality is not on the wire, so any caller gets the status."""
    async def refuse(requests: Any, context: ServicerContext) -> None:
        status = to_status(exc, secrets.token_hex(8), ())
        await context.abort(status.code, status.details, status.trailing_metadata)

    return grpc.stream_unary_rpc_method_handler(refuse)


class Undecodable:
    """What a request that is not a valid message decodes to; the handler refuses it."""

    __slots__ = ("why",)

    def __init__(self, why: str) -> None:
        self.why = why


def tolerant(deserializer: Callable[[bytes], Any] | None) -> Callable[[bytes], Any] | None:
    """``deserializer`` that returns ``Undecodable`` instead of raising: grpc would answer a
    corrupt message (or invalid UTF-8 in a string field) with UNKNOWN; the edge answers
    INVALID_ARGUMENT like any other bad input."""
    if deserializer is None:
        return None

    def decode(data: bytes) -> Any:
        try:
            return deserializer(data)
        except Exception as exc:  # DecodeError, or a UnicodeDecodeError from a string field
            return Undecodable(type(exc).__name__)

    return decode


def _check_decoded(request: Any) -> None:
    if isinstance(request, Undecodable):
        raise InvalidArgument(
            "the request is not a valid protobuf message of this method's request type "
            f"({request.why}: corrupt bytes, or a string field that is not UTF-8)",
            reason="MALFORMED_REQUEST")


class RpcTimer(Protocol):
    """Where the gRPC calls this interceptor wraps are counted (``GrpcMetricsInterceptor``)."""

    def rpc_started(self, method: str, streaming: bool) -> None: ...

    def rpc_finished(self, method: str, streaming: bool, status: str, seconds: float
                     ) -> None: ...


class _NoTimer:
    def rpc_started(self, method: str, streaming: bool) -> None:
        pass

    def rpc_finished(self, method: str, streaming: bool, status: str, seconds: float) -> None:
        pass


class EdgeInterceptor(grpc.aio.ServerInterceptor):
    def __init__(self, authenticator: Authenticator, timer: RpcTimer | None = None,
                 max_metadata_bytes: int = 16384) -> None:
        self._auth = authenticator
        self._timer = timer
        self._max_metadata_bytes = max_metadata_bytes
        self.draining = False
        self.refused_oversized = 0  # calls refused for their metadata size (see ``refusal``)

    async def intercept_service(
        self,
        continuation: Continuation,
        details: grpc.HandlerCallDetails,
    ) -> Handler | None:
        size = metadata_bytes(details.invocation_metadata)
        if size > self._max_metadata_bytes:
            # Before any other work: no handler, no authentication, no request read.
            self.refused_oversized += 1
            if size >= _COLLECT_ABOVE_BYTES:
                # grpc's call objects are freed by the cyclic collector, which a flood of few,
                # huge calls does not trigger (few allocations): collected now, the refused
                # calls' metadata does not pile up (tests/security/test_metadata_flood.py).
                gc.collect()
            return refusal(ResourceExhausted(
                f"the request metadata is {size} bytes, over the limit of "
                f"{self._max_metadata_bytes} bytes (max_metadata_bytes)",
                reason="METADATA_TOO_LARGE"))
        handler = await continuation(details)
        method: str = details.method
        if handler is None or method.startswith(OPEN_PREFIXES):
            return handler
        metadata = details.invocation_metadata
        timer = self._timer
        if handler.unary_unary is not None:
            return grpc.unary_unary_rpc_method_handler(
                self.wrap_unary(handler.unary_unary, method, metadata, timer),
                request_deserializer=tolerant(handler.request_deserializer),
                response_serializer=handler.response_serializer,
            )
        if handler.unary_stream is not None:
            return grpc.unary_stream_rpc_method_handler(
                self.wrap_stream(handler.unary_stream, method, metadata, timer),
                request_deserializer=tolerant(handler.request_deserializer),
                response_serializer=handler.response_serializer,
            )
        return handler

    async def _begin(self, method: str, metadata: Any) -> rpc.Call:
        call = rpc.Call(request_id=secrets.token_hex(8), method=method.rsplit("/", 1)[-1])
        rpc.current.set(call)
        logs.request_summary.set(call.summary)
        structlog.contextvars.clear_contextvars()
        structlog.contextvars.bind_contextvars(request_id=call.request_id, rpc=call.method)
        if self.draining:
            raise Unavailable("the server is shutting down; retry on another replica",
                              reason="DRAINING", retry_after_s=1.0)
        call.account_id = await self._auth.authenticate(_bearer(metadata))
        structlog.contextvars.bind_contextvars(account=call.account_id)
        return call

    def wrap_unary(self, behavior: Any, method: str, metadata: Any,
                   timer: RpcTimer | None = None) -> Any:
        """``behavior`` (a unary handler) with steps 1-5 (6 with ``timer``) around it; the
        Connect transport (``server.connect``) wraps the same servicers with it, so both edges
        share them."""
        name, timed = method.lstrip("/"), timer or _NoTimer()

        async def handle(request: Any, context: ServicerContext) -> Any:
            start = time.perf_counter()
            status = "CANCELLED"
            call: rpc.Call | None = None
            timed.rpc_started(name, False)
            try:
                call = await self._begin(method, metadata)
                _check_decoded(request)
                result = await behavior(request, context)
                status = "OK"
                return result
            except Exception as exc:
                status = exc.code if isinstance(exc, SwitchboardError) else "INTERNAL"
                await self._abort(context, exc, call)
            finally:
                seconds = self._summary(call, status, start)
                timed.rpc_finished(name, False, status, seconds)

        return handle

    def wrap_stream(self, behavior: Any, method: str, metadata: Any,
                    timer: RpcTimer | None = None) -> Any:
        """``behavior`` (a server-streaming handler) with steps 1-5 (6 with ``timer``)."""
        name, timed = method.lstrip("/"), timer or _NoTimer()

        async def handle(request: Any, context: ServicerContext) -> AsyncIterator[Any]:
            start = time.perf_counter()
            status = "CANCELLED"
            call: rpc.Call | None = None
            timed.rpc_started(name, True)
            try:
                call = await self._begin(method, metadata)
                _check_decoded(request)
                async for response in behavior(request, context):
                    yield response
                status = "OK"
            except Exception as exc:
                status = exc.code if isinstance(exc, SwitchboardError) else "INTERNAL"
                await self._abort(context, exc, call)
            finally:
                seconds = self._summary(call, status, start)
                timed.rpc_finished(name, True, status, seconds)

        return handle

    @staticmethod
    async def _abort(context: ServicerContext, exc: Exception, call: rpc.Call | None
                     ) -> None:
        """Ends the call with ``exc`` as a rich status (unexpected errors: INTERNAL, logged)."""
        if not isinstance(exc, SwitchboardError):
            log.exception("unhandled error", error_type=type(exc).__name__)
        request_id = call.request_id if call else rpc.current.get().request_id
        extra = call.error_details if call else ()
        status = to_status(exc, request_id, extra)
        await context.abort(status.code, status.details, status.trailing_metadata)

    @staticmethod
    def _summary(call: rpc.Call | None, status: str, start: float) -> float:
        """Logs the summary line; returns the call's duration in seconds."""
        seconds = time.perf_counter() - start
        fields = call.summary if call else {}
        log.info("rpc", status=status, duration_ms=round(seconds * 1e3, 2), **fields)
        return seconds
