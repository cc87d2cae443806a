"""``switchboard.v1.Conversations``: sessions and the streaming ``Converse`` RPC."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass

from switchboard.v1 import conversations_pb2 as cpb
from switchboard.v1 import conversations_pb2_grpc

from server.chat import ChatRequest, ToolCallDelta, Usage
from server.edge import context as rpc
from server.edge.context import ServicerContext
from server.edge.convert import (
    FINISH_TO_PB,
    duration,
    generation_from_pb,
    messages_from_pb,
    session_to_pb,
    tool_choice_from_pb,
    tools_from_pb,
)
from server.errors import SwitchboardError, Violations
from server.registry.drafts import check_generation
from server.registry.llm import Llm
from server.registry.service import RegistryService
from server.routing.route_plan import Reason
from server.session_state import SessionTurn
from server.sessions import SessionService
from server.turns.events import (
    AnswerReasoning,
    AnswerText,
    Failover,
    Route,
    TurnEvent,
    TurnFinished,
)
from server.turns.runner import TurnInput, TurnRunner, new_turn_id

_REASON_TO_PB: dict[Reason, cpb.RouteReason.ValueType] = {
    Reason.FASTEST: cpb.ROUTE_REASON_FASTEST,
    Reason.NEXT_FASTEST: cpb.ROUTE_REASON_FAILOVER,
    Reason.EXPLORATION: cpb.ROUTE_REASON_EXPLORATION,
    Reason.ONLY_AVAILABLE: cpb.ROUTE_REASON_ONLY_AVAILABLE,
    Reason.HALF_OPEN_TRIAL: cpb.ROUTE_REASON_HALF_OPEN_TRIAL,
    Reason.LARGER_CONTEXT_WINDOW: cpb.ROUTE_REASON_LARGER_CONTEXT_WINDOW,
    Reason.RETRY: cpb.ROUTE_REASON_RETRY,
    Reason.FAILOVER: cpb.ROUTE_REASON_FAILOVER,
    Reason.HEDGE: cpb.ROUTE_REASON_HEDGE,
}


DEFAULT_HOLD_S = 300.0  # how long a session turn holds its session without any time limit


@dataclass(slots=True)
class _Stale:
    """Set when a session turn found its cached session out of date, before any output."""

    found: bool = False


@dataclass(frozen=True, slots=True)
class MessageLimits:
    max_message_bytes: int
    max_messages: int


class ConversationsServicer(conversations_pb2_grpc.ConversationsServicer):
    def __init__(self, registry: RegistryService, sessions: SessionService,
                 turns: TurnRunner, limits: MessageLimits) -> None:
        self._registry = registry
        self._sessions = sessions
        self._turns = turns  # the concurrency limit, output cap and deadline live there
        self._limits = limits

    async def CreateSession(self, request: cpb.CreateSessionRequest, context: ServicerContext
                            ) -> cpb.CreateSessionResponse:
        ttl = request.idle_ttl.ToTimedelta().total_seconds() if request.HasField("idle_ttl") \
            else None
        session = await self._sessions.create(
            rpc.call().account_id, request.llm_id, request.system_prompt,
            generation_from_pb(request.generation), ttl)
        return cpb.CreateSessionResponse(session=session_to_pb(session))

    async def GetSession(self, request: cpb.GetSessionRequest, context: ServicerContext
                         ) -> cpb.GetSessionResponse:
        session = await self._sessions.get(rpc.call().account_id, request.session_id)
        return cpb.GetSessionResponse(session=session_to_pb(session))

    async def EndSession(self, request: cpb.EndSessionRequest, context: ServicerContext
                         ) -> cpb.EndSessionResponse:
        await self._sessions.end(rpc.call().account_id, request.session_id)
        return cpb.EndSessionResponse()

    async def UpdateSession(self, request: cpb.UpdateSessionRequest, context: ServicerContext
                            ) -> cpb.UpdateSessionResponse:
        v = Violations()
        body = request.session
        messages = messages_from_pb(body.messages, "session.messages", v,
                                    self._limits.max_message_bytes, history=True)
        v.raise_if_any()
        ttl = body.idle_ttl.ToTimedelta().total_seconds() if body.HasField("idle_ttl") else None
        session = await self._sessions.update(
            rpc.call().account_id, request.session_id, set(request.update_mask.paths),
            body.system_prompt, generation_from_pb(body.generation), ttl, tuple(messages))
        return cpb.UpdateSessionResponse(session=session_to_pb(session))

    async def TruncateTurn(self, request: cpb.TruncateTurnRequest, context: ServicerContext
                           ) -> cpb.TruncateTurnResponse:
        session = await self._sessions.truncate_turn(
            rpc.call().account_id, request.session_id, request.turn_id, request.heard_text_chars)
        return cpb.TruncateTurnResponse(session=session_to_pb(session))

    def _check(self, request: cpb.ConverseRequest) -> TurnInput:
        v = Violations()
        target = request.WhichOneof("target")
        if target is None or not (request.session_id or request.llm_id):
            v.add("target", "set session_id (server-kept history) or llm_id (stateless)")
        if not request.messages:
            v.add("messages", "at least one message is required")
        elif len(request.messages) > self._limits.max_messages:
            v.add("messages", f"{len(request.messages)} messages is over the limit of "
                  f"{self._limits.max_messages}")
        new = messages_from_pb(request.messages, "messages", v, self._limits.max_message_bytes)
        tools = tools_from_pb(request.tools, v)
        choice = tool_choice_from_pb(request.tool_choice, request.HasField("tool_choice"))
        if choice is not None and choice.function_name and not any(
                t.name == choice.function_name for t in tools):
            v.add("tool_choice.function_name", "must name one of the request's tools")
        gen = generation_from_pb(request.generation)
        check_generation(gen, "generation", v)  # the same bounds as registration and HTTP
        v.raise_if_any()
        return TurnInput(tuple(new), tools, choice, gen)

    async def Converse(self, request: cpb.ConverseRequest, context: ServicerContext
                       ) -> AsyncIterator[cpb.ConverseResponse]:
        call = rpc.call()
        sent = self._check(request)
        if not request.session_id:
            llm = await self._registry.resolve(call.account_id, request.llm_id)
            chat = self._turns.request(sent, llm.generation)
            async for out in self._run(llm, chat, None, new_turn_id(), context):
                yield out
            return
        turn_id = new_turn_id()
        hold_s = self._turns.time_limit_s(context.time_remaining()) or DEFAULT_HOLD_S
        async with self._sessions.turn(call.account_id, request.session_id, turn_id,
                                       list(sent.messages), barge_in=request.barge_in,
                                       hold_s=hold_s) as held:
            llm = await self._registry.resolve(call.account_id, held.session.llm_id)
            while True:
                # held.session: read after the claim (a barged-in turn's answer is in it), or
                # this replica's cached copy while the claim runs (confirmed before output).
                s = held.session
                turn_chat = self._turns.request(sent, s.generation, llm.generation,
                                                history=s.history())
                stale = _Stale()
                async for out in self._run(llm, turn_chat, held, turn_id, context, stale):
                    yield out
                if not stale.found:
                    return

    async def _run(self, llm: Llm, chat: ChatRequest, held: SessionTurn | None, turn_id: str,
                   context: ServicerContext, stale: _Stale | None = None
                   ) -> AsyncIterator[cpb.ConverseResponse]:
        """One turn. A session turn sends nothing before its claim is confirmed; a cached
        session found stale ends the turn at once (its upstream request is closed) with
        ``stale.found`` set, for the caller to start it again from ``held.session``."""
        call = rpc.call()
        call.summary["llm_id"] = llm.id
        async with self._turns.turn(llm, chat, edge="grpc", deadline_s=context.time_remaining(),
                                    turn_id=turn_id) as turn:
            if held is not None:
                held.on_stop(turn.interrupt)
            call.summary["turn_id"] = turn.id
            started = cpb.ConverseResponse(started=cpb.TurnStarted(
                turn_id=turn.id, session_id=held.session.id if held else "", llm_id=llm.id))
            # The engine's first event (a route) sends the upstream request: take it before
            # writing `started`, so the upstream's time to first token runs meanwhile.
            try:
                first = await anext(turn.events, None)
            except SwitchboardError:
                if held is not None:
                    await self._sessions.confirm(held)  # a busy session's error comes first
                yield started  # no endpoint could take the turn: it still started, then failed
                raise
            if held is not None and not await self._sessions.confirm(held):
                assert stale is not None
                stale.found = True  # leaving the block closes the turn and its request
                return
            if isinstance(first, Route):
                started.started.history_messages_omitted = first.history_omitted
            yield started
            if first is not None:
                if held is not None:
                    await self._record(first, held)
                yield self._event(first, call)
            if held is None:  # stateless: nothing to record, no await per event
                async for event in turn.events:
                    yield self._event(event, call)
                return
            async for event in turn.events:
                if type(event) is AnswerText:
                    held.streamed(event.message_id, event.delta)
                else:
                    await self._record(event, held)
                yield self._event(event, call)

    async def _record(self, event: TurnEvent, held: SessionTurn) -> None:
        """What the session's history needs to know of an event before it is sent."""
        if isinstance(event, AnswerText):
            held.streamed(event.message_id, event.delta)
        elif isinstance(event, Failover) and event.discard_message_ids:
            held.restarted()
        elif isinstance(event, TurnFinished):
            await self._sessions.finish_turn(held, event.message)

    @staticmethod
    def _event(event: object, call: rpc.Call) -> cpb.ConverseResponse:
        # The deltas (nearly every message) are filled in place: a nested constructor builds
        # the inner message, then copies it into the outer one (about 1 us more a message).
        if isinstance(event, AnswerText):
            out = cpb.ConverseResponse()
            text = out.text
            text.message_id = event.message_id
            text.delta = event.delta
            return out
        if isinstance(event, AnswerReasoning):
            out = cpb.ConverseResponse()
            reasoning = out.reasoning
            reasoning.reasoning_id = event.reasoning_id
            reasoning.delta = event.delta
            return out
        if isinstance(event, ToolCallDelta):
            return cpb.ConverseResponse(tool_call=cpb.ToolCallDelta(
                index=event.index, id=event.id, name=event.name,
                arguments_delta=event.arguments_delta,
                thought_signature=event.thought_signature))
        if isinstance(event, Route):
            call.summary["endpoint"] = event.endpoint.id
            return cpb.ConverseResponse(route=cpb.RouteDecision(
                endpoint_id=event.endpoint.id, endpoint_label=event.endpoint.label,
                model=event.endpoint.model,
                reason=_REASON_TO_PB.get(event.reason, cpb.ROUTE_REASON_UNSPECIFIED),
                attempt=event.attempt, expected_ttft_ms=event.expected_ttft_ms))
        if isinstance(event, Failover):
            return cpb.ConverseResponse(failover=cpb.Failover(
                from_endpoint_id=event.from_endpoint_id, to_endpoint_id=event.to_endpoint_id,
                cause=event.cause, discard_message_ids=event.discard_message_ids,
                mode=cpb.FAILOVER_MODE_CONTINUE if event.continued else cpb.FAILOVER_MODE_RESTART))
        if isinstance(event, Usage):
            return cpb.ConverseResponse(usage=cpb.Usage(
                input_tokens=event.input_tokens, output_tokens=event.output_tokens,
                reasoning_tokens=event.reasoning_tokens))
        assert isinstance(event, TurnFinished)
        call.summary.update(attempts=event.attempts, ttft_ms=round(event.ttft_s * 1e3, 2),
                            tokens_in=event.usage.input_tokens,
                            tokens_out=event.usage.output_tokens,
                            tokens_reasoning=event.usage.reasoning_tokens,
                            finish=event.reason.value)
        return cpb.ConverseResponse(finished=cpb.TurnFinished(
            finish_reason=FINISH_TO_PB[event.reason], complete=event.complete,
            endpoint_id=event.endpoint.id, model=event.endpoint.model,
            attempts=event.attempts, time_to_first_token=duration(event.ttft_s),
            provider_finish_reason=event.provider_reason,
            thought_signature=event.thought_signature))
