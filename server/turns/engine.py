"""The turn engine: one Converse turn, from a route plan to a finished answer.

Reading order for a turn:

1. ``run_turn`` asks the router for a plan (the endpoints, best first, and why).
2. ``_first_token`` starts the best endpoint and waits for its first event. If that is late
   (past the endpoint's hedge delay) it starts the next-best endpoint in parallel; the first
   to produce a token wins and the other is cancelled, closing its HTTP request. If an attempt
   fails before any token, the next endpoint starts at once.
3. ``run_turn`` streams the winner's events to the caller. If the stream breaks after output
   was sent (cut, stall, malformed chunk, error inside the stream) the answer moves to the
   next endpoint, unless a tool call was already streamed or the LLM's policy forbids it. An
   endpoint that continues partial answers (``Endpoint.continues_answers``) gets the request
   with the text so far as a final assistant message: a ``Failover`` with ``continued`` and
   nothing to discard, and its text extends the same message. Otherwise, or when that
   continuation is refused or fails before any output, the answer restarts, announced by a
   ``Failover`` naming the message ids to discard.
4. With nothing left to try, the turn raises a typed error (UNAVAILABLE with a retry hint,
   or the upstream's own non-retryable status); a truncated answer is never a success.

Every upstream request is an ``Attempt`` the router admitted (``Router.admit``); the engine
tells it the first token, the gaps and the outcome once, and the attempt updates the router's
books and the turn's observer (metrics, tracing) from that one call. What the edges need to
know about a running turn (attempts so far, the winner, how it finished) the engine writes into
the caller's ``TurnProgress``.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import time
from collections.abc import AsyncGenerator, AsyncIterator
from dataclasses import dataclass, field

import structlog

from server.chat import (
    ChatRequest,
    Finish,
    FinishReason,
    Message,
    ReasoningDelta,
    Role,
    StreamEvent,
    TextDelta,
    TextPart,
    ToolCall,
    ToolCallDelta,
    Usage,
)
from server.errors import FailedPrecondition, InvalidArgument, SwitchboardError, Unavailable
from server.providers.adapters import adapter_for
from server.providers.base import ErrorKind, UpstreamError
from server.providers.transport import Timeouts, UpstreamClient
from server.registry.llm import Endpoint, Llm
from server.routing import capabilities
from server.routing.attempt import Attempt
from server.routing.plan import Candidate, Reason, RoutePlan, StopReason
from server.routing.router import Router
from server.turns.observer import NO_TURN, TurnObserver
from server.turns.shaping import continuation, estimate_tokens, fit_history

log = structlog.get_logger("switchboard.engine")


# -- events the engine yields, in the order documented on ConverseResponse --------------------


@dataclass(frozen=True, slots=True)
class Route:
    endpoint: Endpoint
    reason: Reason | str
    attempt: int
    expected_ttft_ms: float
    history_omitted: int = 0  # oldest history messages left out to fit this endpoint's window


@dataclass(frozen=True, slots=True)
class AnswerText:
    message_id: str
    delta: str


@dataclass(frozen=True, slots=True)
class AnswerReasoning:
    reasoning_id: str
    delta: str


@dataclass(frozen=True, slots=True)
class Failover:
    from_endpoint_id: str
    to_endpoint_id: str
    cause: str
    discard_message_ids: tuple[str, ...]
    continued: bool = False  # the next endpoint continues the partial answer: nothing to discard


@dataclass(frozen=True, slots=True)
class TurnFinished:
    reason: FinishReason
    complete: bool
    endpoint: Endpoint
    attempts: int
    ttft_s: float
    provider_reason: str
    thought_signature: str
    usage: Usage
    message: Message  # the assembled assistant message, for the session history


TurnEvent = Route | AnswerText | AnswerReasoning | ToolCallDelta | Failover | Usage | TurnFinished

_AnswerEvent = AnswerText | AnswerReasoning | ToolCallDelta | TurnFinished
_OUTPUT = (AnswerText, AnswerReasoning, ToolCallDelta)

HEDGE = "hedge"
FAILOVER = "failover"


@dataclass(slots=True)
class TurnProgress:
    """What a running turn has done so far, for its edge: written by the engine only."""

    attempts: int = 0  # attempts started (hedges and retries included)
    winner: Endpoint | None = None  # whose first token the current answer is (None before)
    finish: FinishReason | None = None  # the upstream's finish reason, once it finished


@dataclass(slots=True)
class _Request:
    """One upstream request of a turn: its stream, and the router's handle on it."""

    endpoint: Endpoint
    attempt: Attempt
    stream: AsyncIterator[StreamEvent]
    started: float
    first: asyncio.Task[StreamEvent] | None = None

    async def close(self) -> None:
        """Cancels the wait for a first event and closes the stream (its HTTP request).

        The cancelled task is awaited through ``asyncio.wait``, which never raises the task's
        own outcome: a CancelledError here is the caller's (its cancellation, its deadline)
        and propagates."""
        first = self.first
        if first is not None and not first.done():
            first.cancel()
            first.add_done_callback(_retrieve)
            await asyncio.wait((first,))
        aclose = getattr(self.stream, "aclose", None)
        if aclose is not None:
            with contextlib.suppress(Exception):
                await aclose()


@dataclass(slots=True)
class _TurnState:
    """Routing state of one turn: what is left to try, what was tried, what went wrong."""

    prompt_tokens: int
    plan: list[Candidate]
    attempted: list[str] = field(default_factory=list)
    errors: list[UpstreamError] = field(default_factory=list)
    observer: TurnObserver = NO_TURN
    broken: list[str] = field(default_factory=list)  # endpoints whose stream broke mid-answer
    progress: TurnProgress = field(default_factory=TurnProgress)


@dataclass(slots=True)
class _Answer:
    """What the current attempt has produced so far (reset on failover)."""

    text_id: str
    reasoning_ids: list[str] = field(default_factory=list)
    text: list[str] = field(default_factory=list)
    reasoning: list[str] = field(default_factory=list)
    tool_calls: dict[int, list[str]] = field(default_factory=dict)  # index -> [id, name, args]
    tool_signatures: dict[int, str] = field(default_factory=dict)
    in_reasoning: bool = False
    sent_ids: list[str] = field(default_factory=list)

    def message(self, signature: str) -> Message:
        calls = tuple(
            ToolCall(c[0], c[1], c[2], self.tool_signatures.get(i, ""))
            for i, c in sorted(self.tool_calls.items())
        )
        text = "".join(self.text)
        return Message(
            role=Role.ASSISTANT,
            parts=(TextPart(text),) if text else (),
            tool_calls=calls,
            reasoning="".join(self.reasoning),
            thought_signature=signature,
        )


def _retrieve(task: asyncio.Task[StreamEvent]) -> None:
    """Marks a cancelled first-event task's outcome as seen (it is not an error of the turn)."""
    if not task.cancelled():
        task.exception()


class TurnEngine:
    def __init__(self, router: Router, client: UpstreamClient, timeouts: Timeouts) -> None:
        """Attempts per turn are capped by the router (``RouterConfig.max_attempts``)."""
        self._router = router
        self._client = client
        self._timeouts = timeouts
        self._refuses_prefill: set[str] = set()  # endpoint ids that rejected a continuation

    # -- attempts --------------------------------------------------------------------------------

    def _start(self, route: Route, attempt: Attempt, request: ChatRequest, turn: _TurnState
               ) -> _Request:
        """Sends an admitted attempt's request and starts waiting for its first event."""
        endpoint = route.endpoint
        t = self._timeouts
        stall = min(t.between_chunks_s, self._router.stall_timeout_s(endpoint.id))
        timeouts = Timeouts(t.connect_s, t.first_token_s, stall, t.total_s)
        attempt.observer = turn.observer.attempt_started(endpoint, route.attempt,
                                                         str(route.reason))
        turn.progress.attempts = route.attempt
        fitted, _ = fit_history(request, endpoint.context_window_tokens)
        stream = self._client.stream(adapter_for(endpoint.api_spec), endpoint, fitted,
                                     timeouts=timeouts)
        sent = _Request(endpoint, attempt, stream, time.monotonic())
        sent.first = asyncio.ensure_future(anext(stream))
        return sent

    def _take(self, plan: list[Candidate]) -> tuple[Candidate, Attempt] | None:
        """Pops the first candidate the router admits now (half-open trials are exclusive)."""
        while plan:
            candidate = plan.pop(0)
            attempt = self._router.admit(candidate.endpoint_id)
            if attempt is not None:
                return candidate, attempt
        return None

    def _route(self, llm: Llm, candidate: Candidate, turn: _TurnState, hedge: bool,
               request: ChatRequest) -> Route:
        turn.attempted.append(candidate.endpoint_id)
        reason: Reason | str = candidate.reason
        if hedge:
            reason = HEDGE
        elif turn.errors and reason not in (Reason.LARGER_CONTEXT_WINDOW,
                                            Reason.HALF_OPEN_TRIAL, Reason.RETRY):
            reason = FAILOVER  # another endpoint; the same one again stays RETRY
        endpoint = llm.endpoint(candidate.endpoint_id)
        assert endpoint is not None
        _, omitted = fit_history(request, endpoint.context_window_tokens)
        return Route(endpoint, reason, len(turn.attempted), candidate.expected_ttft_ms or 0.0,
                     omitted)

    def _after_failure(self, llm: Llm, turn: _TurnState, endpoint_id: str, error: UpstreamError
                       ) -> None:
        """Replaces the turn's plan with what the router says to try after this failure."""
        turn.errors.append(error)
        nxt = self._router.next_after(llm, turn.prompt_tokens, endpoint_id, error,
                                      turn.attempted)
        turn.plan = list(nxt.candidates)
        if not turn.plan and nxt.stop in (StopReason.NOT_RETRYABLE,
                                          StopReason.NO_LARGER_CONTEXT_WINDOW):
            raise _terminal(error)

    async def _first_token(self, llm: Llm, request: ChatRequest, turn: _TurnState
                           ) -> AsyncIterator[Route | tuple[_Request, StreamEvent]]:
        """Yields Route events, then one (winning request, its first event) unless every
        attempt failed."""
        running: list[_Request] = []
        hedged = not llm.policy.hedging_enabled
        try:
            while True:
                if not running:
                    taken = self._take(turn.plan)
                    if taken is None:
                        return
                    candidate, admitted = taken
                    if candidate.backoff_s:
                        try:
                            await asyncio.sleep(candidate.backoff_s)
                        except BaseException:
                            admitted.cancelled()
                            raise
                    route = self._route(llm, candidate, turn, hedge=False, request=request)
                    # Sent before the route is told: one loop pass lets the request leave,
                    # so the upstream's time to first token runs while the caller is written
                    # to (and a caller gone at the yield has the attempt closed below).
                    running.append(self._start(route, admitted, request, turn))
                    await asyncio.sleep(0)
                    yield route
                timeout = None
                if not hedged and len(running) == 1:
                    delay = self._router.hedge_delay_s(running[0].endpoint.id, turn.prompt_tokens)
                    timeout = max(0.0, delay - (time.monotonic() - running[0].started))
                tasks = {a.first for a in running if a.first is not None}
                done, _ = await asyncio.wait(tasks, timeout=timeout,
                                             return_when=asyncio.FIRST_COMPLETED)
                if not done:  # the first token is late: hedge on the next-best endpoint
                    hedged = True
                    if not turn.plan:
                        turn.plan = list(self._router.plan(
                            llm, turn.prompt_tokens, exclude=turn.attempted).candidates)
                    taken = self._take(turn.plan)
                    if taken is not None:
                        route = self._route(llm, taken[0], turn, hedge=True, request=request)
                        running.append(self._start(route, taken[1], request, turn))
                        yield route
                    continue
                for sent in [r for r in running if r.first in done]:
                    assert sent.first is not None
                    running.remove(sent)
                    try:
                        event = sent.first.result()
                    except SwitchboardError as exc:  # ours, not the upstream's: e.g. a vault error
                        log.error("attempt failed inside switchboard", endpoint=sent.endpoint.id,
                                  error=exc.reason)
                        sent.attempt.cancelled()
                        await sent.close()
                        raise
                    except (UpstreamError, StopAsyncIteration) as exc:
                        error = exc if isinstance(exc, UpstreamError) else UpstreamError(
                            ErrorKind.INCOMPLETE, "the stream ended before any output")
                        sent.attempt.failed(error)
                        await sent.close()
                        if not running and request.continues_answer:
                            turn.errors.append(error)  # the caller restarts the answer instead
                            return
                        if not running:
                            self._after_failure(llm, turn, sent.endpoint.id, error)
                        else:  # one of two racers failed: the other gets a hedge of its own
                            turn.errors.append(error)
                            hedged = not llm.policy.hedging_enabled
                        continue
                    sent.first = None
                    sent.attempt.first_token(time.monotonic() - sent.started, turn.prompt_tokens)
                    turn.progress.winner = sent.endpoint
                    for loser in running:
                        await self._cancel(loser, turn.prompt_tokens)
                    running.clear()
                    yield sent, event
                    return
        finally:
            for sent in running:
                await self._cancel(sent, turn.prompt_tokens)

    async def _cancel(self, sent: _Request, prompt_tokens: int) -> None:
        """Stops a request that lost a race or whose caller left: not a failure."""
        sent.attempt.first_token_missed(time.monotonic() - sent.started, prompt_tokens)
        sent.attempt.cancelled()
        await sent.close()

    # -- the turn --------------------------------------------------------------------------------

    async def run_turn(self, llm: Llm, request: ChatRequest, turn_id: str,
                       observer: TurnObserver = NO_TURN,
                       progress: TurnProgress | None = None) -> AsyncGenerator[TurnEvent, None]:
        """The turn's events; ``progress`` (if given) is kept up to date as it runs."""
        llm = _capable(llm, request)
        prompt_tokens = estimate_tokens(request)
        route_plan = self._router.plan(llm, prompt_tokens)
        if not route_plan.candidates:
            raise _no_plan(route_plan)
        turn = _TurnState(prompt_tokens, list(route_plan.candidates), observer=observer,
                          progress=progress or TurnProgress())
        answer = _Answer(text_id=f"{turn_id}.m1")
        ttft_s = 0.0
        turn_start = time.monotonic()
        broke: UpstreamError | None = None  # why the answer moved, if it did
        sending, sending_llm = request, llm  # a continuation sends the partial answer too
        while True:
            winner: _Request | None = None
            first: StreamEvent | None = None
            try:
                async for item in self._first_token(sending_llm, sending, turn):
                    if isinstance(item, Route):
                        yield item
                    else:
                        winner, first = item
            except SwitchboardError as exc:  # e.g. the fallback refused the restarted turn
                if broke is None:
                    raise
                if not sending.continues_answer:
                    raise _restart_failed(broke, exc) from None
            if (winner is None or first is None) and sending.continues_answer:
                # The continuation was refused (prefill not supported) or failed before any
                # output: never the turn's error, the answer restarts instead.
                self._refused_continuation(turn)
                turn.plan = list(self._router.plan(llm, prompt_tokens,
                                                   exclude=turn.broken).candidates)
                if not turn.plan or llm.policy.continue_only_after_output:
                    raise _after_output(broke or turn.errors[-1], False)
                cause = turn.errors[-1].message if turn.errors else "the continuation failed"
                yield Failover(turn.attempted[-1], turn.plan[0].endpoint_id,
                               f"the continuation was refused: {cause}", tuple(answer.sent_ids))
                answer = _Answer(text_id=f"{turn_id}.m{len(turn.attempted) + 1}")
                sending, sending_llm = request, llm
                continue
            if winner is None or first is None:
                raise self._exhausted(llm, turn)
            try:
                async for event in self._stream(winner, first, answer, turn):
                    if not ttft_s and isinstance(event, _OUTPUT):
                        ttft_s = time.monotonic() - turn_start
                    if isinstance(event, TurnFinished):
                        yield event.usage
                        yield TurnFinished(event.reason, event.complete, winner.endpoint,
                                       len(turn.attempted), ttft_s, event.provider_reason,
                                       event.thought_signature, event.usage, event.message)
                        return
                    yield event
            except UpstreamError as exc:
                winner.attempt.failed(exc)
                await winner.close()
                turn.broken.append(winner.endpoint.id)
                if answer.tool_calls or not llm.policy.failover_after_first_token:
                    raise _after_output(exc, bool(answer.tool_calls)) from None
                self._after_failure(llm, turn, winner.endpoint.id, exc)
                if not turn.plan:
                    raise _after_output(exc, False) from None
                broke = exc
                nxt = self._continuer(llm, turn, answer)
                if nxt is not None:  # the next endpoint continues the answer: nothing to discard
                    turn.plan = [nxt]
                    yield Failover(winner.endpoint.id, nxt.endpoint_id, exc.message, (),
                                   continued=True)
                    answer.in_reasoning = False
                    sending = continuation(request, "".join(answer.text))
                    sending_llm = _without_hedging(llm)
                    continue
                if llm.policy.continue_only_after_output:
                    raise _after_output(exc, False) from None
                yield Failover(winner.endpoint.id, turn.plan[0].endpoint_id, exc.message,
                               tuple(answer.sent_ids))
                answer = _Answer(text_id=f"{turn_id}.m{len(turn.attempted) + 1}")
                sending, sending_llm = request, llm
            except BaseException:  # the caller went away mid-answer: end and free the attempt
                if not winner.attempt.ended:
                    winner.attempt.cancelled()
                    await winner.close()
                raise

    def _continuer(self, llm: Llm, turn: _TurnState, answer: _Answer) -> Candidate | None:
        """The first candidate left that can continue this partial answer, if any."""
        if not answer.text or answer.tool_calls:
            return None
        for candidate in turn.plan:
            endpoint = llm.endpoint(candidate.endpoint_id)
            if endpoint is not None and endpoint.continues_answers and \
                    endpoint.id not in self._refuses_prefill:
                return candidate
        return None

    def _refused_continuation(self, turn: _TurnState) -> None:
        """An endpoint that rejected a continuation as a bad request is not asked again by this
        replica (its declaration or validation was wrong)."""
        if turn.errors and turn.errors[-1].kind is ErrorKind.BAD_REQUEST and turn.attempted:
            self._refuses_prefill.add(turn.attempted[-1])
            log.warning("endpoint refused an answer continuation", endpoint=turn.attempted[-1])

    async def _stream(self, sent: _Request, first: StreamEvent, answer: _Answer, turn: _TurnState
                      ) -> AsyncIterator[_AnswerEvent]:
        """The winning request's events, with message ids; records gaps and the outcome."""
        attempt = sent.attempt
        last = time.monotonic()
        gaps: list[float] = []
        event: StreamEvent | None = first
        stream = sent.stream
        usage = Usage()
        try:
            while True:
                if event is None:
                    try:
                        event = await anext(stream)
                    except StopAsyncIteration:
                        raise UpstreamError(ErrorKind.INCOMPLETE,
                                            "the stream ended without a finish reason") from None
                    now = time.monotonic()
                    gaps.append(now - last)
                    last = now
                if isinstance(event, TextDelta):
                    answer.in_reasoning = False
                    if not answer.text:
                        answer.sent_ids.append(answer.text_id)
                    answer.text.append(event.text)
                    yield AnswerText(answer.text_id, event.text)
                elif isinstance(event, ReasoningDelta):
                    if not answer.in_reasoning:
                        answer.in_reasoning = True
                        rid = f"{answer.text_id}.r{len(answer.reasoning_ids) + 1}"
                        answer.reasoning_ids.append(rid)
                        answer.sent_ids.append(rid)
                    answer.reasoning.append(event.text)
                    yield AnswerReasoning(answer.reasoning_ids[-1], event.text)
                elif isinstance(event, ToolCallDelta):
                    answer.in_reasoning = False
                    call = answer.tool_calls.setdefault(event.index, ["", "", ""])
                    call[0] = call[0] or event.id
                    call[1] = call[1] or event.name
                    call[2] += event.arguments_delta
                    if event.thought_signature:
                        answer.tool_signatures[event.index] = event.thought_signature
                    yield event
                elif isinstance(event, Usage):
                    usage = event
                elif isinstance(event, Finish):
                    attempt.gaps(gaps)
                    gaps = []
                    turn.progress.finish = event.reason
                    attempt.succeeded(usage, event.reason)
                    reason = event.reason
                    if answer.tool_calls and reason is FinishReason.STOP:
                        reason = FinishReason.TOOL_CALLS
                    complete = reason in (FinishReason.STOP, FinishReason.TOOL_CALLS)
                    yield TurnFinished(reason, complete, sent.endpoint, 0, 0.0,
                                   event.provider_reason, event.thought_signature, usage,
                                   answer.message(event.thought_signature))
                    await sent.close()
                    return
                event = None
        finally:
            if event is not None:  # the caller stopped reading mid-answer
                attempt.gaps(gaps)

    def _exhausted(self, llm: Llm, turn: _TurnState) -> SwitchboardError:
        errors = turn.errors
        if not errors:
            return _no_plan(self._router.plan(llm, turn.prompt_tokens, exclude=turn.attempted))
        last = errors[-1]
        if all(e.kind is ErrorKind.AUTHENTICATION for e in errors):
            return FailedPrecondition(
                f"every endpoint tried rejected its stored provider API key ({last.message}); "
                "update the LLM's api_key", reason="UPSTREAM_KEY_REJECTED")
        retry = max((e.retry_after_s or 0.0 for e in errors), default=0.0) or 1.0
        causes = "; ".join(dict.fromkeys(e.message for e in errors))
        return Unavailable(f"no endpoint could answer after {len(turn.attempted)} attempt(s): "
                           f"{causes}", reason="UPSTREAM_UNAVAILABLE", retry_after_s=retry)


def _without_hedging(llm: Llm) -> Llm:
    """A continuation goes to one endpoint that continues answers: no hedge elsewhere."""
    if not llm.policy.hedging_enabled:
        return llm
    return dataclasses.replace(llm, policy=dataclasses.replace(llm.policy,
                                                               hedging_enabled=False))


def _capable(llm: Llm, request: ChatRequest) -> Llm:
    """``llm`` with only the endpoints whose recorded capabilities allow ``request``."""
    capable, missing = capabilities.restrict(llm, capabilities.required_by(request))
    if missing:
        what = capabilities.describe(missing)
        raise InvalidArgument(
            f"this turn needs {what}, and no endpoint of this LLM supports it (as validation "
            f"recorded); leave that part out, or add an endpoint that has {what}",
            reason="CAPABILITY_UNAVAILABLE", metadata={"capability": missing})
    return capable


def _terminal(error: UpstreamError) -> SwitchboardError:
    if error.kind is ErrorKind.CONTEXT_LENGTH:
        return InvalidArgument(f"the conversation is too long for every endpoint of this LLM: "
                               f"{error.message}", reason="CONTEXT_LENGTH_EXCEEDED")
    if error.kind is ErrorKind.CONTENT_FILTERED:
        return FailedPrecondition(f"the provider's content filter refused: {error.message}",
                                  reason="CONTENT_FILTERED")
    if error.kind is ErrorKind.BAD_REQUEST:
        return InvalidArgument(f"the provider rejected the request: {error.message}",
                               reason="UPSTREAM_BAD_REQUEST")
    if error.kind is ErrorKind.UNSUPPORTED_INPUT:
        return InvalidArgument(f"no endpoint of this LLM could take this request: "
                               f"{error.message}", reason="UNSUPPORTED_INPUT")
    return Unavailable(error.message, reason="UPSTREAM_UNAVAILABLE",
                       retry_after_s=error.retry_after_s or 1.0)


def _after_output(error: UpstreamError, tool_call_sent: bool) -> SwitchboardError:
    why = ("a tool call was already streamed and is never replayed" if tool_call_sent
           else "no other endpoint is left to restart the answer")
    return Unavailable(f"the answer broke after output was streamed ({error.message}) and "
                       f"{why}; discard the partial answer and retry the turn",
                       reason="UPSTREAM_STREAM_BROKEN", retry_after_s=1.0)


def _restart_failed(broke: UpstreamError, refused: SwitchboardError) -> SwitchboardError:
    """After a failover, the restart hit an error another endpoint would not fix (the
    fallback rejected it): the request itself was fine where it began, so this is not the
    caller's INVALID_ARGUMENT but a broken answer to retry."""
    return Unavailable(f"the answer broke after output was streamed ({broke.message}) and its "
                       f"restart on another endpoint failed ({refused.message}); discard the "
                       "partial answer and retry the turn", reason="UPSTREAM_STREAM_BROKEN",
                       retry_after_s=1.0)


def _no_plan(plan: RoutePlan) -> SwitchboardError:
    if plan.stop is StopReason.NO_ENDPOINTS:
        return FailedPrecondition("this LLM has no endpoints", reason="NO_ENDPOINTS")
    wait = plan.retry_after_s or 1.0
    return Unavailable(f"no endpoint of this LLM can take traffic now ({plan.stop}); "
                       f"retry in {wait:.1f}s", reason="NO_ENDPOINT_AVAILABLE",
                       retry_after_s=wait)
