"""``POST /v1/chat/completions``: one turn through the shared ``TurnRunner``.

Routing headers, on every successful response: ``x-switchboard-turn-id``,
``x-switchboard-endpoint`` (the endpoint id that produced the answer) and
``x-switchboard-attempts`` (upstream attempts started: failovers and hedges included).

Streaming holds the response headers back until the first output (or the finish, for an
empty answer). So an error before any output (all endpoints down, context too long, the
replica's limit...) is a real HTTP error with its status and ``Retry-After``, which the OpenAI
SDKs raise as ``RateLimitError`` / ``InternalServerError``... and retry; failovers and hedges
before the first token are invisible except in the headers, which name the endpoint that won.

Failover after output. An OpenAI client appends every delta it receives and has no way to take
text back, so a streamed answer is never restarted on another endpoint. It is continued where
it can be: when the next endpoint continues partial answers (assistant prefill), it completes
the answer and the caller just receives the rest of the text. Otherwise a stream that breaks
after output ends with an in-band error event (``data: {"error": {..., "code":
"upstream_stream_broken"}}``, no ``[DONE]``), which the SDKs raise as ``APIError``, so a
truncated answer never looks complete. The caller retries the turn. A non-streaming request
buffers the answer anyway, so it keeps the LLM's policy: a broken answer is continued or
restarted on the next endpoint and only the final one is returned. A ``: failover`` comment
is therefore never needed in a stream.
"""

from __future__ import annotations

import asyncio
import dataclasses
import time
from typing import Any

import orjson
import structlog
from aiohttp import web

from server.chat import ChatRequest, ToolCallDelta, Usage
from server.errors import DeadlineExceeded, SwitchboardError
from server.http.errors import error_body
from server.http.request import CompletionRequest, parse
from server.http.response import DONE, Chunks, completion_json, sse_error
from server.registry.llm import Llm
from server.registry.service import RegistryService
from server.turns.events import AnswerReasoning, AnswerText, TurnFinished
from server.turns.runner import RunningTurn, TurnRunner

log = structlog.get_logger("switchboard.http")

BODY_TIMEOUT_S = 30.0  # a request body slower than this is dropped (408)
SSE_HEADERS = {
    "Content-Type": "text/event-stream; charset=utf-8",
    "Cache-Control": "no-cache",
    "X-Accel-Buffering": "no",
}


@dataclasses.dataclass(frozen=True, slots=True)
class CompletionLimits:
    max_messages: int
    max_message_bytes: int


def route_headers(request_id: str, turn: RunningTurn, endpoint_id: str, llm_id: str
                  ) -> dict[str, str]:
    return {"x-request-id": request_id, "x-switchboard-turn-id": turn.id,
            "x-switchboard-llm": llm_id, "x-switchboard-endpoint": endpoint_id,
            "x-switchboard-attempts": str(turn.attempts)}


class Completions:
    def __init__(self, registry: RegistryService, runner: TurnRunner, limits: CompletionLimits
                 ) -> None:
        self._registry = registry
        self._runner = runner
        self._limits = limits

    async def handle(self, request: web.Request, account_id: str, request_id: str,
                     summary: dict[str, Any]) -> web.StreamResponse:
        lim = self._limits
        try:
            async with asyncio.timeout(BODY_TIMEOUT_S):
                raw = await request.read()
        except TimeoutError:
            raise DeadlineExceeded(f"the request body did not arrive within {BODY_TIMEOUT_S:g} s",
                                   reason="REQUEST_TIMEOUT") from None
        req = parse(raw, lim.max_messages, lim.max_message_bytes)
        llm = await self._registry.resolve(account_id, req.llm_id)
        chat = self._runner.request(req.chat, llm.generation)
        summary.update(llm_id=llm.id, stream=req.stream)
        if req.stream:
            llm = dataclasses.replace(llm, policy=dataclasses.replace(
                llm.policy, continue_only_after_output=True))
            return await self._stream(request, request_id, llm, chat, req, summary)
        return await self._complete(request_id, llm, chat, summary)

    async def _complete(self, request_id: str, llm: Llm, chat: ChatRequest,
                        summary: dict[str, Any]) -> web.Response:
        created = int(time.time())
        finished: TurnFinished | None = None
        async with self._runner.turn(llm, chat, edge="http", deadline_s=None) as turn:
            summary["turn_id"] = turn.id
            async for event in turn.events:
                if isinstance(event, TurnFinished):  # Failover: the engine restarts the answer
                    finished = event
        assert finished is not None
        _summarize(summary, finished)
        # ``model`` names who answered (the serving endpoint's model), as an OpenAI SDK caller
        # reads it; the LLM id is in x-switchboard-llm.
        body = completion_json(_completion_id(turn), created, finished.endpoint.model,
                               finished.message, finished.reason, finished.usage)
        return web.Response(body=orjson.dumps(body), content_type="application/json",
                            headers=route_headers(request_id, turn, finished.endpoint.id,
                                                  llm.id))

    async def _stream(self, request: web.Request, request_id: str, llm: Llm, chat: ChatRequest,
                      req: CompletionRequest, summary: dict[str, Any]) -> web.StreamResponse:
        response: web.StreamResponse | None = None
        try:
            # HTTP callers send no deadline: the runner bounds the turn by turn_timeout_s.
            async with self._runner.turn(llm, chat, edge="http", deadline_s=None) as turn:
                summary["turn_id"] = turn.id
                created = int(time.time())
                chunks: Chunks | None = None
                model = ""  # the serving endpoint's model, in every chunk's ``model``
                async for event in turn.events:
                    serving = turn.winner
                    if chunks is None or (serving is not None and serving.model != model):
                        model = serving.model if serving is not None else llm.id
                        chunks = Chunks(_completion_id(turn), created, model,
                                        req.include_usage)
                    if isinstance(event, AnswerText):
                        data = chunks.text(event.delta)
                    elif isinstance(event, AnswerReasoning):
                        data = chunks.reasoning(event.delta)
                    elif isinstance(event, ToolCallDelta):
                        data = chunks.tool_call(event)
                    elif isinstance(event, TurnFinished):
                        _summarize(summary, event)
                        data = chunks.finish(event.reason)
                        if req.include_usage:
                            data += chunks.usage(event.usage)
                        data += DONE
                    else:  # Route, Usage (sent with the finish), a continuing Failover
                        continue
                    if response is None:
                        endpoint = turn.winner.id if turn.winner else ""
                        response = web.StreamResponse(headers={
                            **SSE_HEADERS, **route_headers(request_id, turn, endpoint, llm.id)})
                        await response.prepare(request)
                        await response.write(chunks.role())
                    await response.write(data)
        except SwitchboardError as exc:
            if response is None:
                raise  # nothing sent yet: a real HTTP error
            served = turn.winner.id if turn.winner else ""
            summary.update(stream_error=exc.reason, endpoint=served, attempts=turn.attempts)
            await response.write(sse_error(error_body(exc, request_id)[1]))
        except ConnectionResetError:  # the caller left; the runner closed the turn
            if response is None:
                raise
            return response
        except Exception as exc:  # a bug, after the headers went out: end the stream visibly
            if response is None:
                raise
            log.exception("unhandled error in a stream", error_type=type(exc).__name__)
            summary.update(stream_error="INTERNAL")
            await response.write(sse_error(error_body(exc, request_id)[1]))
        assert response is not None
        await response.write_eof()
        return response


def _completion_id(turn: RunningTurn) -> str:
    return "chatcmpl-" + turn.id.removeprefix("turn_")


def _summarize(summary: dict[str, Any], finished: TurnFinished) -> None:
    usage: Usage = finished.usage
    summary.update(endpoint=finished.endpoint.id, attempts=finished.attempts,
                   ttft_ms=round(finished.ttft_s * 1e3, 2), tokens_in=usage.input_tokens,
                   tokens_out=usage.output_tokens, tokens_reasoning=usage.reasoning_tokens,
                   finish=finished.reason.value)
