"""The HTTP port: an OpenAI-compatible front door.

Served on ``Settings.http_port`` (0 = no HTTP port at all). Routes:

- ``POST /v1/chat/completions``: see ``server.http.completions``;
- ``GET /v1/models`` and ``GET /v1/models/{id}``: the caller's LLMs, as OpenAI model objects;

Prometheus ``/metrics`` is not served here: it names every tenant's LLMs and endpoints, so it
has a listener of its own (``server.telemetry.scrape``, ``Settings.metrics_port``).

``/v1`` routes take the same API keys as gRPC (``Authorization: Bearer <key>``). Every response
carries ``x-request-id``; errors use OpenAI's JSON shape (``server.http.errors``). One summary
line is logged per request (status, duration, llm, endpoint, attempts, ttft_ms, tokens), never
the key, prompt or completion. Draining: new requests get 503 (``DRAINING``), in-flight ones
get the grace period, then the rest are cancelled.
"""

from __future__ import annotations

import asyncio
import secrets
import socket
import ssl
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import orjson
import structlog
from aiohttp import web

from server import logs
from server.edge.interceptor import Authenticator
from server.errors import SwitchboardError, Unauthenticated, Unavailable
from server.http.completions import CompletionLimits, Completions
from server.http.errors import error_headers, error_json
from server.registry.llm import Llm
from server.registry.service import MAX_PAGE_SIZE, RegistryService
from server.telemetry.metrics import Metrics
from server.turns.runner import TurnRunner

log = structlog.get_logger("switchboard.http")

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@dataclass(frozen=True, slots=True)
class FrontDoorConfig:
    max_request_bytes: int
    max_messages: int
    max_message_bytes: int
    tls_cert_file: str = ""
    tls_key_file: str = ""
    # Slow headers (slowloris): a connection whose request head is not complete this long
    # after it opened, or after its previous response, is closed.
    header_timeout_s: float = 10.0


# Request line and each header field at most 8 KiB, at most 64 header fields: a caller sends
# a few short headers; anything larger is refused with 400 before it is buffered further.
MAX_HEADER_FIELD_BYTES = 8190
MAX_HEADERS = 64


class Surface(Protocol):
    """Routes that do their own authentication and errors (Connect, the Lab's pages)."""

    prefixes: tuple[str, ...]  # the paths it serves, past the front door's middleware

    def add_to(self, app: web.Application) -> None: ...


@dataclass(slots=True)
class _Call:
    request_id: str
    account_id: str = ""
    summary: dict[str, Any] = field(default_factory=dict)


_CALL_KEY = web.RequestKey("switchboard_call", _Call)
_METHODS = frozenset({"GET", "POST", "HEAD", "OPTIONS", "PUT", "PATCH", "DELETE"})


def _bearer(header: str | None) -> str:
    if not header:
        raise Unauthenticated("missing 'Authorization: Bearer <api key>' header",
                              reason="MISSING_API_KEY")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise Unauthenticated("the Authorization header must be 'Bearer <api key>'",
                              reason="MALFORMED_AUTHORIZATION")
    return token.strip()


def _model(llm: Llm) -> dict[str, Any]:
    created = int(llm.create_time.timestamp()) if llm.create_time else 0
    return {"id": llm.id, "object": "model", "created": created, "owned_by": llm.account_id,
            "display_name": llm.display_name}


class FrontDoor:
    def __init__(self, authenticator: Authenticator, registry: RegistryService,
                 runner: TurnRunner, config: FrontDoorConfig, metrics: Metrics | None,
                 surfaces: Sequence[Surface] = ()) -> None:
        self._auth = authenticator
        self._surfaces = tuple(surfaces)
        self._own_paths = tuple(p for s in surfaces for p in s.prefixes)
        self._registry = registry
        self._config = config
        self._metrics = metrics
        self._completions = Completions(registry, runner, CompletionLimits(
            config.max_messages, config.max_message_bytes))
        self._runner: web.AppRunner | None = None
        self._active: set[asyncio.Task[Any]] = set()
        self.draining = False
        self.port = 0

    def application(self) -> web.Application:
        app = web.Application(client_max_size=self._config.max_request_bytes,
                              middlewares=[self._edge])
        app.router.add_post("/v1/chat/completions", self._chat_completions)
        app.router.add_get("/v1/models", self._list_models)
        app.router.add_get("/v1/models/{model}", self._get_model)
        for surface in self._surfaces:
            surface.add_to(app)
        return app

    async def start(self, host: str, port: int, sock: socket.socket | None = None) -> int:
        """Listens on ``host:port`` (or on ``sock``, already bound); returns the port."""
        # aiohttp's keep-alive timer runs from the connection's start and from each response
        # and closes a connection still waiting for a complete request head: that is the
        # header read timeout (data arriving slowly does not restart it).
        runner = web.AppRunner(self.application(), handler_cancellation=True, access_log=None,
                               shutdown_timeout=0.1,
                               keepalive_timeout=self._config.header_timeout_s,
                               max_line_size=MAX_HEADER_FIELD_BYTES,
                               max_field_size=MAX_HEADER_FIELD_BYTES, max_headers=MAX_HEADERS)
        await runner.setup()
        ctx = None
        if self._config.tls_cert_file:
            ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
            ctx.load_cert_chain(self._config.tls_cert_file, self._config.tls_key_file)
        site: web.BaseSite = (web.SockSite(runner, sock, ssl_context=ctx) if sock is not None
                              else web.TCPSite(runner, host, port, ssl_context=ctx))
        try:
            await site.start()
        except BaseException:
            await runner.cleanup()
            raise
        self._runner = runner
        self.port = int(runner.addresses[0][1])
        return self.port

    async def stop(self, grace_s: float) -> None:
        """Refuses new requests, lets in-flight ones finish within ``grace_s``, then closes."""
        self.draining = True
        if self._active:
            await asyncio.wait(set(self._active), timeout=grace_s)
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    # -- middleware -----------------------------------------------------------------------------

    @web.middleware
    async def _edge(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        resource = request.match_info.route.resource
        route = resource.canonical if resource is not None else "_OTHER"
        if self._own_paths and request.path.startswith(self._own_paths):
            return await handler(request)
        start = time.perf_counter()
        call = _Call(request_id=secrets.token_hex(8))
        logs.request_summary.set(call.summary)
        structlog.contextvars.clear_contextvars()
        structlog.contextvars.bind_contextvars(request_id=call.request_id, http=route)
        task = asyncio.current_task()
        if task is not None:
            self._active.add(task)
        status = 499  # the caller went away
        try:
            response = await self._handle(request, handler, call)
            status = response.status
            return response
        finally:
            if task is not None:
                self._active.discard(task)
            if self._metrics is not None:
                method = request.method if request.method in _METHODS else "_OTHER"
                self._metrics.http_duration.labels(method, route, str(status)).observe(
                    time.perf_counter() - start)
            log.info("http", method=request.method, status=status,
                     duration_ms=round((time.perf_counter() - start) * 1e3, 2), **call.summary)

    async def _handle(self, request: web.Request, handler: Handler, call: _Call
                      ) -> web.StreamResponse:
        try:
            if self.draining:
                raise Unavailable("the server is shutting down; retry on another replica",
                                  reason="DRAINING", retry_after_s=1.0)
            call.account_id = await self._auth.authenticate(
                _bearer(request.headers.get("Authorization")))
            structlog.contextvars.bind_contextvars(account=call.account_id)
            request[_CALL_KEY] = call
            response = await handler(request)
        except SwitchboardError as exc:
            response = self._error(exc, call)
        except web.HTTPException as exc:  # unknown route, wrong method, body too large
            response = self._http_error(exc, call)
        except Exception as exc:
            log.exception("unhandled error", error_type=type(exc).__name__)
            response = self._error(exc, call)
        if not response.prepared:
            response.headers.setdefault("x-request-id", call.request_id)
        return response

    def _error(self, error: BaseException, call: _Call) -> web.Response:
        status, body = error_json(error, call.request_id)
        if isinstance(error, SwitchboardError):
            call.summary["error"] = error.reason
        return web.Response(status=status, body=body, content_type="application/json",
                            headers=error_headers(error))

    def _http_error(self, exc: web.HTTPException, call: _Call) -> web.Response:
        code = {404: "not_found", 405: "method_not_allowed",
                413: "request_too_large"}.get(exc.status, "invalid_request")
        message = {
            404: "unknown path; the front door serves /v1/chat/completions and /v1/models",
            413: f"the request body is over the limit of {self._config.max_request_bytes} "
                 "bytes (max_request_bytes)",
        }.get(exc.status, exc.reason)
        body = {"error": {"message": message, "type": "invalid_request_error", "param": None,
                          "code": code}}
        call.summary["error"] = code
        return web.Response(status=exc.status, body=orjson.dumps(body),
                            content_type="application/json")

    # -- handlers -------------------------------------------------------------------------------

    async def _chat_completions(self, request: web.Request) -> web.StreamResponse:
        call: _Call = request[_CALL_KEY]
        return await self._completions.handle(request, call.account_id, call.request_id,
                                              call.summary)

    async def _list_models(self, request: web.Request) -> web.Response:
        call: _Call = request[_CALL_KEY]
        data: list[dict[str, Any]] = []
        token = ""
        while True:
            page, token = await self._registry.list(call.account_id, MAX_PAGE_SIZE, token)
            data.extend(_model(llm) for llm in page)
            if not token:
                break
        return web.Response(body=orjson.dumps({"object": "list", "data": data}),
                            content_type="application/json")

    async def _get_model(self, request: web.Request) -> web.Response:
        call: _Call = request[_CALL_KEY]
        llm = await self._registry.resolve(call.account_id, request.match_info["model"])
        return web.Response(body=orjson.dumps(_model(llm)), content_type="application/json")
