"""The aiohttp application: routes, request checks and fault dispatch.

Every route serves its own wire format, whatever spec the ``Simulator`` was created with, so
one simulator can stand in for several providers. Checks run in the providers' order:
route (Azure ``api-version``), key, body, model; then the fault, if any.
"""

from __future__ import annotations

import asyncio
import dataclasses
import time
from collections.abc import Awaitable, Callable
from typing import Any

import orjson
from aiohttp import web
from multidict import CIMultiDict

from server.simulator.answer import (
    build_answer,
    last_user_text_gemini,
    last_user_text_openai,
    prefill_text,
    prompt_tokens,
)
from server.simulator.behavior import (
    HTTP_FAULTS,
    PREFILL_REJECTED_MESSAGES,
    Fault,
    FaultKind,
    Prefill,
    Spec,
)
from server.simulator.formats import ErrorContext, Quirks, Reply, WireFormat
from server.simulator.formats.common import HTML_502, garbage_bytes
from server.simulator.log import RecordedRequest
from server.simulator.plan import Ending, Plan, plan_stream, time_to_first_token
from server.simulator.respond import Responder
from server.simulator.state import SimState

Handler = Callable[[web.Request, RecordedRequest], Awaitable[web.StreamResponse]]
_NOT_JSON = (
    "We could not parse the JSON body of your request. (HINT: This likely means you aren't "
    "using your HTTP library correctly. The OpenAI API expects a JSON payload, but what was sent "
    "was not valid JSON.)"
)


def build_app(state: SimState, default_spec: Spec) -> web.Application:
    """Routes for every spec; ``default_spec`` styles 404s for paths no provider has."""
    routes = _Routes(state, default_spec)
    app = web.Application(client_max_size=64 * 1024 * 1024)
    add = app.router.add_route
    add("POST", "/v1/chat/completions", routes.for_spec(Spec.OPENAI, routes.chat))
    add("POST", "/openai/v1/chat/completions", routes.for_spec(Spec.GROQ, routes.chat))
    add(
        "POST",
        "/openai/deployments/{deployment}/chat/completions",
        routes.for_spec(Spec.AZURE_OPENAI, routes.chat),
    )
    add(
        "POST",
        "/v1beta/models/{model}:streamGenerateContent",
        routes.for_spec(Spec.GEMINI, routes.chat),
    )
    add("POST", "/v1beta/models/{model}:generateContent", routes.for_spec(Spec.GEMINI, routes.chat))
    add("GET", "/v1/models", routes.for_spec(Spec.OPENAI, routes.models))
    add("GET", "/openai/v1/models", routes.for_spec(Spec.GROQ, routes.models))
    add("*", "/{tail:.*}", routes.for_spec(None, routes.unknown))
    return app


def spec_of_path(path: str, default: Spec) -> Spec:
    if path.startswith("/openai/deployments/"):
        return Spec.AZURE_OPENAI
    if path.startswith("/openai/"):
        return Spec.GROQ
    if path.startswith("/v1beta/"):
        return Spec.GEMINI
    if path.startswith("/v1/"):
        return Spec.OPENAI
    return default


def presented_key(request: web.Request, spec: Spec) -> str | None:
    """The API key the client sent, where this provider reads it; None if absent."""
    if spec is Spec.GEMINI:
        return request.headers.get("x-goog-api-key") or request.query.get("key")
    if spec is Spec.AZURE_OPENAI and "api-key" in request.headers:
        return request.headers["api-key"]
    auth = request.headers.get("authorization", "")
    return auth[7:].strip() if auth[:7].lower() == "bearer " else None


class _Routes:
    def __init__(self, state: SimState, default_spec: Spec) -> None:
        self.state = state
        self.respond = Responder(state)
        self.default_spec = default_spec

    def for_spec(
        self,
        spec: Spec | None,
        handler: Callable[[web.Request, RecordedRequest, Spec], Awaitable[web.StreamResponse]],
    ) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
        async def route(request: web.Request) -> web.StreamResponse:
            resolved = spec or spec_of_path(request.path, self.default_spec)
            return await self.recorded(request, resolved, handler)

        return route

    async def recorded(
        self,
        request: web.Request,
        spec: Spec,
        handler: Callable[[web.Request, RecordedRequest, Spec], Awaitable[web.StreamResponse]],
    ) -> web.StreamResponse:
        """Log the request, run ``handler``, and note a client that left before the end."""
        received = time.monotonic()
        task = asyncio.current_task()
        assert task is not None
        self.state.tasks.add(task)
        record: RecordedRequest | None = None
        try:
            raw = await request.read()
            record = RecordedRequest(
                spec=spec,
                method=request.method,
                path=request.path,
                query=dict(request.query),
                headers=CIMultiDict(request.headers),
                body=_parse_json(raw),
                raw_body=raw,
                received_at=received,
            )
            self.state.log.append(record)
            return await handler(request, record, spec)
        finally:
            self.state.tasks.discard(task)
            if record is not None and task.cancelling():
                self.state.disconnected(record)

    async def models(
        self, request: web.Request, record: RecordedRequest, spec: Spec
    ) -> web.StreamResponse:
        fmt = self.state.formats[spec]
        reply = self._auth(request, spec, fmt, ErrorContext(path=request.path))
        if reply is None:
            served = {"gpt-4o-mini", "gpt-4o", *self.state.served_models}
            names = sorted(self.state.known_models or served)
            data = [
                {"id": n, "object": "model", "created": 1715367049, "owned_by": "system"}
                for n in names
            ]
            reply = Reply(200, orjson.dumps({"object": "list", "data": data}))
        return await self.respond.send(request, record, reply)

    async def unknown(
        self, request: web.Request, record: RecordedRequest, spec: Spec
    ) -> web.StreamResponse:
        ctx = ErrorContext(method=request.method, path=request.path, gemini_sse=False)
        return await self.respond.send(request, record, self.state.formats[spec].unknown_path(ctx))

    async def chat(
        self, request: web.Request, record: RecordedRequest, spec: Spec
    ) -> web.StreamResponse:
        fmt = self.state.formats[spec]
        body = record.body if isinstance(record.body, dict) else None
        stream_route = request.path.endswith(":streamGenerateContent")
        sse = stream_route and request.query.get("alt") == "sse"
        model = request.match_info.get("deployment") or request.match_info.get("model")
        model = model or (str(body.get("model", "")) if body else "")
        ctx = ErrorContext(
            model=model,
            method=request.method,
            path=request.path,
            api_key=presented_key(request, spec) or "",
            gemini_sse=sse,
        )
        reply = self._check(request, spec, fmt, body, ctx)
        if reply is not None:
            return await self.respond.send(request, record, reply)
        assert body is not None
        if self.state.known_models is None and model:
            self.state.served_models.add(model)
        streaming = stream_route if spec is Spec.GEMINI else body.get("stream") is True
        fault = self.state.take_fault(streaming)
        record.fault = fault.kind if fault is not None else None
        if fault is not None and (
            early := await self._early_fault(request, record, fmt, fault, ctx)
        ):
            return early
        return await self._answer(request, record, spec, fmt, body, model, streaming, sse, fault)

    def _check(
        self,
        request: web.Request,
        spec: Spec,
        fmt: WireFormat,
        body: dict[str, Any] | None,
        ctx: ErrorContext,
    ) -> Reply | None:
        if spec is Spec.AZURE_OPENAI and "api-version" not in request.query:
            return fmt.unknown_path(ctx)
        reply = self._auth(request, spec, fmt, ctx)
        if reply is not None:
            return reply
        problem = _body_problem(spec, body)
        if problem is None and self.state.behavior.prefill is Prefill.REJECT and \
                prefill_text(body) is not None:
            problem = PREFILL_REJECTED_MESSAGES[spec.value], "messages"
        if problem is not None:
            message, param = problem
            return fmt.bad_request(
                ErrorContext(message=message, param=param, gemini_sse=ctx.gemini_sse)
            )
        window = self.state.behavior.context_window_tokens
        if window is not None and body is not None and prompt_tokens(body) > window:
            return fmt.http_error(FaultKind.CONTEXT_LENGTH, ctx)
        known = self.state.known_models
        if known is not None and ctx.model not in known:
            return fmt.http_error(FaultKind.NOT_FOUND, ctx)
        return None

    def _auth(
        self, request: web.Request, spec: Spec, fmt: WireFormat, ctx: ErrorContext
    ) -> Reply | None:
        expected = self.state.api_key
        if expected is None:
            return None
        presented = presented_key(request, spec)
        if not presented:
            return fmt.missing_key(ctx)
        if presented != expected:
            return fmt.http_error(FaultKind.UNAUTHORIZED, ctx)
        return None

    async def _early_fault(
        self,
        request: web.Request,
        record: RecordedRequest,
        fmt: WireFormat,
        fault: Fault,
        ctx: ErrorContext,
    ) -> web.StreamResponse | None:
        """Faults that replace the answer entirely; None for faults that shape the answer."""
        kind = fault.kind
        if kind in HTTP_FAULTS:
            error_ctx = ErrorContext(
                model=ctx.model,
                method=ctx.method,
                path=ctx.path,
                retry_after_s=fault.retry_after_s,
                status=fault.status,
                api_key=ctx.api_key,
                gemini_sse=ctx.gemini_sse,
            )
            return await self.respond.send(request, record, fmt.http_error(kind, error_ctx))
        if kind is FaultKind.RESET_BEFORE_HEADERS:
            return self.respond.reset(request, record)
        if kind is FaultKind.HANG:
            return await self.respond.hang()
        if kind is FaultKind.HTML_ERROR_PAGE:
            page = Reply(502, HTML_502, "text/html", {"server": "cloudflare"})
            return await self.respond.send(request, record, page)
        if kind is FaultKind.GARBAGE:
            behavior = self.state.behavior
            steps = [(behavior.ttft_s, garbage_bytes(self.state.rng), 0)]
            plan = Plan(0.0, steps, Ending.EOF)
            headers = {"content-type": "text/event-stream"}
            return await self.respond.run(request, record, 200, headers, plan)
        return None

    async def _answer(
        self,
        request: web.Request,
        record: RecordedRequest,
        spec: Spec,
        fmt: WireFormat,
        body: dict[str, Any],
        model: str,
        streaming: bool,
        sse: bool,
        fault: Fault | None,
    ) -> web.StreamResponse:
        behavior = self.state.behavior
        kind = fault.kind if fault is not None else None
        prompt = last_user_text_gemini(body) if spec is Spec.GEMINI else last_user_text_openai(body)
        prefix = prefill_text(body)
        if prefix and behavior.prefill is Prefill.IGNORE:  # starts over, repeating the prefix
            behavior = dataclasses.replace(
                behavior, text=f"{prefix} {behavior.answer_text(prompt)}", echo=False)
            prefix = None
        answer = build_answer(behavior, body, model, prompt, prefix or "")
        record.answer_text = answer.full_text
        options = body.get("stream_options")
        quirks = Quirks(
            include_usage=isinstance(options, dict) and options.get("include_usage") is True,
            no_role=kind is FaultKind.NO_ROLE,
            no_usage=kind is FaultKind.NO_USAGE,
            sse=sse,
            raw_tail=fault is not None and fault.raw_tail,
        )
        if not streaming or kind is FaultKind.NON_STREAMING_ONLY:
            pieces = len(answer.reasoning) + len(answer.text) + len(answer.tool_calls)
            delay = time_to_first_token(behavior, fault) + behavior.chunk_gap_s * pieces
            reply = fmt.completion(answer, quirks, self.state.rng)
            return await self.respond.send(request, record, reply, delay)
        encoded = fmt.stream(answer, quirks, self.state.rng)
        if kind is FaultKind.WRONG_CONTENT_TYPE:
            encoded.headers["content-type"] = "text/plain; charset=utf-8"
        plan = plan_stream(encoded, behavior, fault)
        return await self.respond.run(request, record, encoded.status, encoded.headers, plan)


def _parse_json(raw: bytes) -> Any:
    try:
        return orjson.loads(raw) if raw else None
    except orjson.JSONDecodeError:
        return None


def _body_problem(spec: Spec, body: dict[str, Any] | None) -> tuple[str, str | None] | None:
    """What the provider would reject in the body: (message, param), or None."""
    if spec is Spec.GEMINI:
        if body is None:
            return "Invalid JSON payload received. Unexpected token.", None
        if not isinstance(body.get("contents"), list) or not body["contents"]:
            return "* GenerateContentRequest.contents: contents is not specified\n", None
        return None
    if body is None:
        return _NOT_JSON, None
    if spec is not Spec.AZURE_OPENAI and not body.get("model"):
        return "you must provide a model parameter", None
    if not isinstance(body.get("messages"), list) or not body["messages"]:
        return "Missing required parameter: 'messages'.", "messages"
    return None
