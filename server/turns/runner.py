"""What every edge does around ``TurnEngine.run_turn``, in one place.

The gRPC ``Converse`` RPC and the OpenAI-compatible HTTP front door both drive turns through
``TurnRunner.turn``: it enforces the replica's limit of concurrent turns (one count for both
edges), applies the server-wide output cap, names the turn, bounds it by the caller's deadline,
reports it to the observer (metrics, tracing) and closes the engine's stream when the caller
stops reading. The edges only translate requests in and events out.

    async with runner.turn(llm, request, edge="http", deadline_s=30.0) as turn:
        async for event in turn.events:
            ...

The events are the engine's own iterator, not a wrapper: nothing is added per chunk.
"""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import AsyncGenerator, AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

from server.chat import ChatRequest, FinishReason, Generation, Message, Tool, ToolChoice
from server.errors import Aborted, DeadlineExceeded, ResourceExhausted, SwitchboardError
from server.registry.llm import Endpoint, Llm
from server.turns.engine import TurnEngine
from server.turns.events import TurnEvent, TurnProgress
from server.turns.observer import NO_OBSERVER, TurnsObserver


def new_turn_id() -> str:
    return "turn_" + secrets.token_hex(8)


@dataclass(frozen=True, slots=True)
class TurnInput:
    """What a caller sent for one turn, checked by its edge: the new messages, the tools, and
    the generation settings of this request (the most specific layer)."""

    messages: tuple[Message, ...]
    tools: tuple[Tool, ...] = ()
    tool_choice: ToolChoice | None = None
    generation: Generation = field(default_factory=Generation)


@dataclass(slots=True)
class RunningTurn:
    """A running turn: its id and the engine's events."""

    id: str
    events: AsyncGenerator[TurnEvent, None]
    progress: TurnProgress
    scope: asyncio.Timeout | None = None  # the turn's time limit, while it runs
    interrupted: bool = False

    @property
    def attempts(self) -> int:
        """Attempts started so far (hedges and retries included)."""
        return self.progress.attempts

    def interrupt(self) -> None:
        """Stops the turn at once (a newer turn of its session barged in): the block of
        ``TurnRunner.turn`` ends with ABORTED ``TURN_INTERRUPTED``."""
        self.interrupted = True
        if self.scope is not None and not self.scope.expired():
            self.scope.reschedule(asyncio.get_running_loop().time())

    @property
    def winner(self) -> Endpoint | None:
        """The endpoint whose attempt produced the current answer's first token (after a
        failover: the new one); None before the first token."""
        return self.progress.winner


class TurnRunner:
    def __init__(self, engine: TurnEngine, *, max_concurrent: int, max_output_tokens: int = 0,
                 max_turn_s: float | None = None,
                 observer: TurnsObserver = NO_OBSERVER) -> None:
        self._engine = engine
        self._max = max_concurrent
        self._cap = max_output_tokens
        self._max_turn_s = max_turn_s  # turn_timeout_s: bounds turns without a caller deadline
        self._observer = observer
        self.in_flight = 0
        self._idle = asyncio.Event()  # set while no turn is in flight (the drain waits on it)
        self._idle.set()

    async def idle(self) -> None:
        """Returns once no turn is in flight."""
        await self._idle.wait()

    def generation(self, *layers: Generation) -> Generation:
        """The layers merged, most specific first, with the server-wide output cap applied."""
        out = layers[0]
        for layer in layers[1:]:
            out = out.merged_over(layer)
        cap = self._cap
        if cap and (out.max_output_tokens is None or out.max_output_tokens > cap):
            out = Generation(out.temperature, out.top_p, cap, out.stop, out.seed,
                             out.reasoning_effort)
        return out

    def request(self, sent: TurnInput, *layers: Generation,
                history: Sequence[Message] | None = None) -> ChatRequest:
        """The turn's one ``ChatRequest``: a session's ``history`` (fitted to each endpoint's
        window) then the new messages, with ``sent.generation`` merged over ``layers`` (the
        session's, the LLM's) and the server-wide output cap applied."""
        return ChatRequest((*(history or ()), *sent.messages), sent.tools, sent.tool_choice,
                           self.generation(sent.generation, *layers),
                           fit_history=history is not None)

    def time_limit_s(self, deadline_s: float | None) -> float | None:
        """How long a turn may run: the caller's deadline or the server's turn timeout."""
        if self._max_turn_s is not None and (deadline_s is None or self._max_turn_s <= deadline_s):
            return self._max_turn_s
        return deadline_s

    @asynccontextmanager
    async def turn(self, llm: Llm, request: ChatRequest, *, edge: str,
                   deadline_s: float | None, turn_id: str = "") -> AsyncIterator[RunningTurn]:
        """Runs one turn of ``llm``; raises ResourceExhausted at the replica's limit,
        DeadlineExceeded when ``deadline_s`` (None: no deadline) or the server's turn timeout
        passes first, and Aborted when the turn is interrupted."""
        limit, ours = deadline_s, False
        if self._max_turn_s is not None and (limit is None or self._max_turn_s <= limit):
            limit, ours = self._max_turn_s, True
        turn_id = turn_id or new_turn_id()
        observer = self._observer.turn_started(llm, turn_id, edge)
        if self.in_flight >= self._max:
            observer.finished("resource_exhausted", "TOO_MANY_STREAMS")
            raise ResourceExhausted(
                f"this replica is at its limit of {self._max} concurrent streams; retry "
                "shortly or on another replica", reason="TOO_MANY_STREAMS", retry_after_s=0.5)
        progress = TurnProgress()
        turn = RunningTurn(turn_id, self._engine.run_turn(llm, request, turn_id, observer,
                                                          progress), progress)
        outcome, error_type = "cancelled", ""
        self.in_flight += 1
        self._idle.clear()
        try:
            async with asyncio.timeout(limit) as scope:
                turn.scope = scope
                if turn.interrupted:
                    scope.reschedule(asyncio.get_running_loop().time())
                yield turn
            if progress.finish is not None:
                complete = progress.finish in (FinishReason.STOP, FinishReason.TOOL_CALLS)
                outcome = "ok" if complete else "incomplete"
        except TimeoutError:
            if turn.interrupted:
                outcome, error_type = "interrupted", "TURN_INTERRUPTED"
                raise Aborted("a newer turn of this session barged in and interrupted this one",
                              reason="TURN_INTERRUPTED") from None
            outcome = "deadline_exceeded"
            error_type = "TURN_TIMEOUT" if ours else "DEADLINE_EXCEEDED"
            if ours:
                raise DeadlineExceeded(
                    f"the turn did not finish within this server's turn_timeout_s of {limit:g}s; "
                    "retry with a shorter request or a lower max_output_tokens",
                    reason="TURN_TIMEOUT") from None
            raise DeadlineExceeded("the caller's deadline passed before the turn finished",
                                   reason="DEADLINE_EXCEEDED") from None
        except SwitchboardError as exc:
            outcome, error_type = exc.code.lower(), exc.reason
            raise
        except ConnectionError:  # the caller's connection went away
            raise
        except Exception as exc:
            outcome, error_type = "internal", type(exc).__name__
            raise
        finally:
            turn.scope = None
            self.in_flight -= 1
            if not self.in_flight:
                self._idle.set()
            await turn.events.aclose()
            observer.finished(outcome, error_type)
