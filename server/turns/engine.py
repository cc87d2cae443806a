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
import time
from collections.abc import AsyncGenerator, AsyncIterator

import structlog

from server.chat import (
    ChatRequest,
    Finish,
    ReasoningDelta,
    StreamEvent,
    TextDelta,
    ToolCallDelta,
    Usage,
)
from server.errors import SwitchboardError
from server.providers.adapters import adapter_for
from server.providers.base import ErrorKind, UpstreamError
from server.providers.transport import UpstreamClient
from server.registry.llm import Llm
from server.routing.attempt import Attempt
from server.routing.route_plan import Candidate, Reason, StopReason
from server.routing.router import Router
from server.timeouts import Timeouts
from server.turns import failures
from server.turns.events import (
    AnswerReasoning,
    AnswerText,
    Failover,
    Route,
    TurnEvent,
    TurnProgress,
)
from server.turns.observer import NO_TURN, TurnObserver
from server.turns.shaping import (
    Windows,
    continuation,
    continuation_llm,
    estimate_tokens,
    fit_history,
)
from server.turns.turn_state import PartialAnswer, SentRequest, TurnState

log = structlog.get_logger("switchboard.engine")

_AnswerEvent = AnswerText | AnswerReasoning | ToolCallDelta | Finish
_OUTPUT = (AnswerText, AnswerReasoning, ToolCallDelta)

MAX_REFITS = 4  # retries of a turn whose history was rejected as too long, each sending less


async def _next(stream: AsyncIterator[StreamEvent]) -> StreamEvent:
    """The stream's next event, as a coroutine: ``ensure_future(anext(stream))`` would try
    it as a future first (a failed hasattr) and wrap it in a coroutine of its own."""
    return await anext(stream)


class TurnEngine:
    def __init__(self, router: Router, client: UpstreamClient, timeouts: Timeouts) -> None:
        """Attempts per turn are capped by the router (``RouterConfig.max_attempts``)."""
        self._router = router
        self._client = client
        self._timeouts = timeouts
        self._refuses_prefill: set[str] = set()  # endpoint ids that rejected a continuation
        self._windows = Windows()  # declared, or learned from rejections

    # -- attempts --------------------------------------------------------------------------------

    def _start(self, route: Route, attempt: Attempt, request: ChatRequest, turn: TurnState
               ) -> SentRequest:
        """Sends an admitted attempt's request and starts waiting for its first event."""
        endpoint = route.endpoint
        t = self._timeouts
        stall = min(t.between_chunks_s, self._router.stall_timeout_s(endpoint.id))
        timeouts = Timeouts(t.connect_s, t.first_token_s, stall, t.total_s)
        attempt.observer = turn.observer.attempt_started(endpoint, route.attempt,
                                                         str(route.reason))
        turn.progress.attempts = route.attempt
        fitted, _ = fit_history(request, self._windows.of(endpoint))
        stream = self._client.stream(adapter_for(endpoint.api_spec), endpoint, fitted,
                                     timeouts=timeouts)
        sent = SentRequest(endpoint, attempt, stream, time.monotonic())
        sent.first = asyncio.create_task(_next(stream))
        return sent

    def _take(self, plan: list[Candidate]) -> tuple[Candidate, Attempt] | None:
        """Pops the first candidate the router admits now (half-open trials are exclusive)."""
        while plan:
            candidate = plan.pop(0)
            attempt = self._router.admit(candidate.endpoint_id)
            if attempt is not None:
                return candidate, attempt
        return None

    def _route(self, llm: Llm, candidate: Candidate, turn: TurnState, hedge: bool,
               request: ChatRequest) -> Route:
        turn.attempted.append(candidate.endpoint_id)
        reason = candidate.reason
        if hedge:
            reason = Reason.HEDGE
        elif turn.errors and reason not in (Reason.LARGER_CONTEXT_WINDOW,
                                            Reason.HALF_OPEN_TRIAL, Reason.RETRY):
            reason = Reason.FAILOVER  # another endpoint; the same one again stays RETRY
        endpoint = llm.endpoint(candidate.endpoint_id)
        assert endpoint is not None
        _, omitted = fit_history(request, self._windows.of(endpoint))
        return Route(endpoint, reason, len(turn.attempted), candidate.expected_ttft_ms or 0.0,
                     omitted)

    def _after_failure(self, llm: Llm, turn: TurnState, endpoint_id: str, error: UpstreamError
                       ) -> None:
        """Replaces the turn's plan with what the router says to try after this failure."""
        turn.errors.append(error)
        nxt = self._router.next_after(llm, turn.prompt_tokens, endpoint_id, error,
                                      turn.attempted)
        turn.plan = list(nxt.candidates)
        if not turn.plan and nxt.stop in (StopReason.NOT_RETRYABLE,
                                          StopReason.NO_LARGER_CONTEXT_WINDOW):
            raise failures.terminal(error, turn.every_endpoint)

    async def _first_token(self, llm: Llm, request: ChatRequest, turn: TurnState
                           ) -> AsyncIterator[Route | tuple[SentRequest, StreamEvent]]:
        """Yields Route events, then one (winning request, its first event) unless every
        attempt failed."""
        running: list[SentRequest] = []
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
                        if error.kind is ErrorKind.CONTEXT_LENGTH and request.fit_history:
                            turn.relearned |= self._windows.learn(sent.endpoint, request)
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

    async def _cancel(self, sent: SentRequest, prompt_tokens: int) -> None:
        """Stops a request that lost a race or whose caller left: not a failure."""
        sent.attempt.first_token_missed(time.monotonic() - sent.started, prompt_tokens)
        sent.attempt.cancelled()
        await sent.close()

    # -- the turn --------------------------------------------------------------------------------

    async def run_turn(self, llm: Llm, request: ChatRequest, turn_id: str,
                       observer: TurnObserver = NO_TURN,
                       progress: TurnProgress | None = None) -> AsyncGenerator[TurnEvent, None]:
        """The turn's events; ``progress`` (if given) is kept up to date as it runs."""
        capable = failures.capable_llm(llm, request)
        every = len(capable.endpoints) == len(llm.endpoints)
        llm = capable
        prompt_tokens = estimate_tokens(request)
        route_plan = self._router.plan(llm, prompt_tokens)
        if not route_plan.candidates:
            raise failures.no_plan(route_plan)
        turn = TurnState(prompt_tokens, list(route_plan.candidates), observer=observer,
                          progress=progress or TurnProgress(), every_endpoint=every)
        answer = PartialAnswer(text_id=f"{turn_id}.m1")
        ttft_s = 0.0
        turn_start = time.monotonic()
        broke: UpstreamError | None = None  # why the answer moved, if it did
        sending, sending_llm = request, llm  # a continuation sends the partial answer too
        refits = 0
        while True:
            winner: SentRequest | None = None
            first: StreamEvent | None = None
            try:
                async for item in self._first_token(sending_llm, sending, turn):
                    if isinstance(item, Route):
                        yield item
                    else:
                        winner, first = item
            except SwitchboardError as exc:  # e.g. the fallback refused the restarted turn
                if broke is None and exc.reason == "CONTEXT_LENGTH_EXCEEDED" and \
                        turn.relearned and refits < MAX_REFITS:
                    # The history was too long for a window now learned: send less of it.
                    refits, turn.relearned = refits + 1, False
                    turn.plan = list(self._router.plan(llm, prompt_tokens).candidates)
                    continue
                if broke is None:
                    raise
                if not sending.continues_answer:
                    raise failures.restart_failed(broke, exc) from None
            if (winner is None or first is None) and sending.continues_answer:
                # The continuation was refused (prefill not supported) or failed before any
                # output: never the turn's error, the answer restarts instead.
                self._refused_continuation(turn)
                turn.plan = list(self._router.plan(llm, prompt_tokens,
                                                   exclude=turn.broken).candidates)
                if not turn.plan or llm.policy.continue_only_after_output:
                    why = failures.NO_TAKE_BACK if turn.plan else failures.NOTHING_LEFT
                    raise failures.after_output(broke or turn.errors[-1], why)
                cause = turn.errors[-1].message if turn.errors else "the continuation failed"
                yield Failover(turn.attempted[-1], turn.plan[0].endpoint_id,
                               f"the continuation was refused: {cause}", tuple(answer.sent_ids))
                answer = PartialAnswer(text_id=f"{turn_id}.m{len(turn.attempted) + 1}")
                sending, sending_llm = request, llm
                continue
            if winner is None or first is None:
                raise failures.exhausted(turn, lambda: self._router.plan(
                    llm, turn.prompt_tokens, exclude=turn.attempted))
            try:
                async for event in self._stream(winner, first, answer, turn):
                    if not ttft_s and isinstance(event, _OUTPUT):
                        ttft_s = time.monotonic() - turn_start
                    if isinstance(event, Finish):  # the one TurnFinished of the turn
                        yield answer.usage
                        yield answer.finished(event, winner.endpoint, len(turn.attempted),
                                              ttft_s)
                        return
                    yield event
            except UpstreamError as exc:
                winner.attempt.failed(exc)
                await winner.close()
                turn.broken.append(winner.endpoint.id)
                if answer.tool_calls or not llm.policy.failover_after_first_token:
                    raise failures.after_output(exc, failures.TOOL_CALL_SENT if answer.tool_calls
                                        else failures.POLICY_NO_RESTART) from None
                self._after_failure(llm, turn, winner.endpoint.id, exc)
                if not turn.plan:
                    raise failures.after_output(exc, failures.NOTHING_LEFT) from None
                broke = exc
                nxt = self._continuer(llm, turn, answer)
                if nxt is not None:  # the next endpoint continues the answer: nothing to discard
                    turn.plan = [nxt]
                    yield Failover(winner.endpoint.id, nxt.endpoint_id, exc.message, (),
                                   continued=True)
                    answer.in_reasoning = False
                    sending = continuation(request, "".join(answer.text))
                    sending_llm = continuation_llm(llm)
                    continue
                if llm.policy.continue_only_after_output:
                    raise failures.after_output(exc, failures.NO_TAKE_BACK) from None
                yield Failover(winner.endpoint.id, turn.plan[0].endpoint_id, exc.message,
                               tuple(answer.sent_ids))
                answer = PartialAnswer(text_id=f"{turn_id}.m{len(turn.attempted) + 1}")
                sending, sending_llm = request, llm
            except BaseException:  # the caller went away mid-answer: end and free the attempt
                if not winner.attempt.ended:
                    winner.attempt.cancelled()
                    await winner.close()
                raise

    def _continuer(self, llm: Llm, turn: TurnState, answer: PartialAnswer) -> Candidate | None:
        """The first candidate left that can continue this partial answer, if any."""
        if not answer.text or answer.tool_calls:
            return None
        for candidate in turn.plan:
            endpoint = llm.endpoint(candidate.endpoint_id)
            if endpoint is not None and endpoint.continues_answers and \
                    endpoint.id not in self._refuses_prefill:
                return candidate
        return None

    def _refused_continuation(self, turn: TurnState) -> None:
        """An endpoint that rejected a continuation as a bad request is not asked again by this
        replica (its declaration or validation was wrong)."""
        if turn.errors and turn.errors[-1].kind is ErrorKind.BAD_REQUEST and turn.attempted:
            self._refuses_prefill.add(turn.attempted[-1])
            log.warning("endpoint refused an answer continuation", endpoint=turn.attempted[-1])

    async def _stream(self, sent: SentRequest, first: StreamEvent, answer: PartialAnswer,
                      turn: TurnState) -> AsyncIterator[_AnswerEvent]:
        """The winning request's events, with message ids; records gaps and the outcome."""
        attempt = sent.attempt
        last = time.monotonic()
        gaps: list[float] = []
        event: StreamEvent | None = first
        stream = sent.stream
        answer.usage = Usage()  # this stream's count (a continuation's stream sends its own)
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
                    yield answer.add_text(event.text)
                elif isinstance(event, ReasoningDelta):
                    yield answer.add_reasoning(event.text)
                elif isinstance(event, ToolCallDelta):
                    yield answer.add_tool_call(event)
                elif isinstance(event, Usage):
                    answer.usage = event
                elif isinstance(event, Finish):
                    attempt.gaps(gaps)
                    gaps = []
                    turn.progress.finish = event.reason
                    attempt.succeeded(answer.usage, event.reason)
                    yield event
                    await sent.close()
                    return
                event = None
        finally:
            if event is not None:  # the caller stopped reading mid-answer
                attempt.gaps(gaps)
