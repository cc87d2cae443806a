"""Serves gRPC servicers over the Connect protocol (and gRPC-Web) on the aiohttp listener.

``ConnectRoutes`` adds ``POST /<package.Service>/<Method>`` for every unary and
server-streaming method of the services it is given, bound to the SAME servicer objects the
gRPC server runs, wrapped by the SAME ``EdgeInterceptor`` steps (request id, draining,
``authorization: Bearer <api key>``, domain errors -> rich ``google.rpc.Status``, one summary
line). Only the transport differs: the interceptor ends a failed call with
``context.abort(code, message, trailing_metadata)``; ``ConnectContext.abort`` turns that into
the Connect error JSON (``server.connect.protocol``). Requests from another origin's page are
refused (``server.http.origin``). Client-side cancellation (a closed connection) cancels the
handler, hence the turn, as a cancelled gRPC call does.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any, NoReturn

import grpc
import orjson
import structlog
from aiohttp import web
from google.protobuf import message_factory
from google.protobuf.descriptor import ServiceDescriptor
from google.protobuf.message import Message as PbMessage
from google.rpc import status_pb2

from server.connect import grpc_web as gw
from server.connect import protocol as cp
from server.edge.interceptor import EdgeInterceptor
from server.http.origin import cross_origin

log = structlog.get_logger("switchboard.connect")

_MAX_TIMEOUT_DIGITS = 10


class Aborted(Exception):
    """Raised by ``ConnectContext.abort``: the call ends with ``status``."""

    def __init__(self, status: status_pb2.Status) -> None:
        super().__init__(status.message)
        self.status = status


class ConnectContext:
    """What the servicers and the edge interceptor use of ``grpc.aio.ServicerContext``."""

    def __init__(self, metadata: tuple[tuple[str, str], ...], deadline: float | None) -> None:
        self._metadata = metadata
        self._deadline = deadline

    def invocation_metadata(self) -> tuple[tuple[str, str], ...]:
        return self._metadata

    def time_remaining(self) -> float | None:
        if self._deadline is None:
            return None
        return max(0.0, self._deadline - asyncio.get_running_loop().time())

    async def abort(self, code: grpc.StatusCode, details: str = "",
                    trailing_metadata: tuple[tuple[str, Any], ...] = ()) -> NoReturn:
        for key, value in trailing_metadata:
            if key == "grpc-status-details-bin":
                raise Aborted(status_pb2.Status.FromString(value))
        raise Aborted(status_pb2.Status(code=code.value[0], message=details))


@dataclass(frozen=True, slots=True)
class _Method:
    path: str
    streaming: bool
    request_type: type[PbMessage]
    behavior: Callable[..., Any]


def _methods(service: ServiceDescriptor, servicer: object) -> list[_Method]:
    out = []
    for m in service.methods:
        if m.client_streaming:
            continue  # not offered over Connect (none exist in switchboard.v1)
        out.append(_Method(f"/{service.full_name}/{m.name}", m.server_streaming,
                           message_factory.GetMessageClass(m.input_type),
                           getattr(servicer, m.name)))
    return out


def _error_response(error: dict[str, Any]) -> web.Response:
    return web.Response(status=cp.HTTP_STATUS.get(error["code"], 500), body=orjson.dumps(error),
                        content_type="application/json")


def _deadline(request: web.Request) -> float | None:
    header = request.headers.get("Connect-Timeout-Ms")
    if header is None:
        return None
    if not header.isdigit() or len(header) > _MAX_TIMEOUT_DIGITS:
        raise cp.ProtocolError("invalid_argument",
                               "Connect-Timeout-Ms must be a positive integer of at most "
                               "10 digits")
    return asyncio.get_running_loop().time() + int(header) / 1000.0


class ConnectRoutes:
    """The Connect endpoints of ``services`` ({service descriptor: servicer})."""

    def __init__(self, interceptor: EdgeInterceptor,
                 services: Mapping[ServiceDescriptor, object]) -> None:
        self._interceptor = interceptor
        self._methods = [m for service, servicer in services.items()
                         for m in _methods(service, servicer)]
        self.prefixes = tuple(f"/{service.full_name}/" for service in services)

    def add_to(self, app: web.Application) -> None:
        for method in self._methods:
            app.router.add_post(method.path, self._handler(method))

    def _handler(self, method: _Method) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
        async def handle(request: web.Request) -> web.StreamResponse:
            refused = cross_origin(request)
            if refused:
                return _error_response(cp.plain_error("permission_denied", refused))
            if gw.is_grpc_web(request.headers.get("Content-Type", "")):
                return await self._grpc_web(request, method)
            try:
                shape = cp.shape_of(request.headers.get("Content-Type", ""))
                if shape.streaming != method.streaming:
                    kind = "server-streaming" if method.streaming else "unary"
                    raise cp.ProtocolError("unimplemented",
                                           f"{method.path} is {kind}; send "
                                           + ("application/connect+json or +proto"
                                              if method.streaming
                                              else "application/json or application/proto"))
                version = request.headers.get("Connect-Protocol-Version")
                if version not in (None, "1"):
                    raise cp.ProtocolError("invalid_argument",
                                           "Connect-Protocol-Version must be 1")
                deadline = _deadline(request)
                body = await request.read()
                if shape.streaming:
                    payload = cp.single_envelope(
                        body, request.headers.get("Connect-Content-Encoding", "identity"))
                else:
                    payload = cp.decompress(body, request.headers.get("Content-Encoding", ""))
            except cp.ProtocolError as exc:
                return _error_response(cp.plain_error(exc.code, exc.message))
            metadata = tuple((k.lower(), v) for k, v in request.headers.items())
            context = ConnectContext(metadata, deadline)
            if shape.streaming:
                return await self._stream(request, method, shape, payload, metadata, context)
            return await self._unary(method, shape, payload, metadata, context)

        return handle

    def _decoding(self, method: _Method, codec: cp.Codec) -> Callable[..., Any]:
        """The servicer method, taking the request's bytes: a body that does not parse is
        INVALID_ARGUMENT after authentication, like any other bad request."""
        def decoded(payload: bytes) -> PbMessage:
            message = method.request_type()
            codec.decode(payload, message)
            return message

        if method.streaming:
            def stream(payload: bytes, context: ConnectContext) -> AsyncIterator[Any]:
                return method.behavior(decoded(payload), context)  # type: ignore[no-any-return]
            return stream

        async def unary(payload: bytes, context: ConnectContext) -> Any:
            return await method.behavior(decoded(payload), context)
        return unary

    async def _unary(self, method: _Method, shape: cp.CallShape, payload: bytes,
                     metadata: tuple[tuple[str, str], ...], context: ConnectContext
                     ) -> web.StreamResponse:
        call = self._interceptor.wrap_unary(self._decoding(method, shape.codec), method.path,
                                            metadata)
        remaining = context.time_remaining()
        try:
            async with asyncio.timeout(remaining):
                result = await call(payload, context)
        except Aborted as exc:
            return _error_response(cp.error_json(exc.status))
        except TimeoutError:
            return _error_response(cp.plain_error("deadline_exceeded",
                                                  "the call's Connect-Timeout-Ms passed"))
        return web.Response(body=shape.codec.encode(result), content_type=shape.content_type)

    async def _stream(self, request: web.Request, method: _Method, shape: cp.CallShape,
                      payload: bytes, metadata: tuple[tuple[str, str], ...],
                      context: ConnectContext) -> web.StreamResponse:
        call = self._interceptor.wrap_stream(self._decoding(method, shape.codec), method.path,
                                             metadata)
        response = web.StreamResponse(status=200, headers={"Content-Type": shape.content_type})
        await response.prepare(request)  # headers now: the browser's fetch resolves at once
        error: dict[str, Any] | None = None
        try:
            async with asyncio.timeout(context.time_remaining()):
                async for message in call(payload, context):
                    await response.write(cp.envelope(shape.codec.encode(message)))
        except Aborted as exc:
            error = cp.error_json(exc.status)
        except TimeoutError:
            error = cp.plain_error("deadline_exceeded", "the call's Connect-Timeout-Ms passed")
        await response.write(cp.end_stream(error))
        await response.write_eof()
        return response

    async def _grpc_web(self, request: web.Request, method: _Method) -> web.StreamResponse:
        """The same call over gRPC-Web: unary and streaming alike are message envelopes and a
        trailer envelope, always with HTTP 200 (``server.connect.grpc_web``)."""
        content_type = request.headers.get("Content-Type", "")
        shape = gw.WebShape(cp.Codec("proto"), False, "application/grpc-web+proto")
        status = status_pb2.Status()
        try:
            shape = gw.shape_of(content_type)
            timeout = gw.timeout_s(request.headers.get("grpc-timeout"))
            payload = shape.request_message(await request.read(),
                                            request.headers.get("grpc-encoding", "identity"))
        except cp.ProtocolError as exc:
            payload, status = b"", gw.status_of(exc)
        response = web.StreamResponse(status=200, headers={"Content-Type": shape.content_type})
        await response.prepare(request)
        if status.code == 0:
            metadata = tuple((k.lower(), v) for k, v in request.headers.items())
            loop = asyncio.get_running_loop()
            context = ConnectContext(metadata, None if timeout is None else loop.time() + timeout)
            decoding = self._decoding(method, shape.codec)
            try:
                async with asyncio.timeout(timeout):
                    if method.streaming:
                        call = self._interceptor.wrap_stream(decoding, method.path, metadata)
                        async for message in call(payload, context):
                            await response.write(shape.frame(shape.codec.encode(message)))
                    else:
                        unary = self._interceptor.wrap_unary(decoding, method.path, metadata)
                        result = await unary(payload, context)
                        await response.write(shape.frame(shape.codec.encode(result)))
            except Aborted as exc:
                status = exc.status
            except TimeoutError:
                status = status_pb2.Status(code=grpc.StatusCode.DEADLINE_EXCEEDED.value[0],
                                           message="the call's grpc-timeout passed")
        await response.write(shape.trailers(status))
        await response.write_eof()
        return response
