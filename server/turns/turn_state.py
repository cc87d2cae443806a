"""What the engine keeps while a turn runs: its requests, its routing state, its answer."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncGenerator
from dataclasses import dataclass, field

from server.chat import (
    Finish,
    FinishReason,
    Message,
    Role,
    StreamEvent,
    TextPart,
    ToolCall,
    ToolCallDelta,
    Usage,
)
from server.providers.base import UpstreamError
from server.registry.llm import Endpoint
from server.routing.attempt import Attempt
from server.routing.route_plan import Candidate
from server.turns.events import AnswerReasoning, AnswerText, TurnFinished, TurnProgress
from server.turns.observer import NO_TURN, TurnObserver


@dataclass(slots=True)
class SentRequest:
    """One upstream request of a turn: its stream, and the router's handle on it."""

    endpoint: Endpoint
    attempt: Attempt
    stream: AsyncGenerator[StreamEvent, None]
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
            first.add_done_callback(retrieve)
            await asyncio.wait((first,))
        with contextlib.suppress(Exception):
            await self.stream.aclose()


@dataclass(slots=True)
class TurnState:
    """Routing state of one turn: what is left to try, what was tried, what went wrong."""

    prompt_tokens: int
    plan: list[Candidate]
    attempted: list[str] = field(default_factory=list)
    errors: list[UpstreamError] = field(default_factory=list)
    observer: TurnObserver = NO_TURN
    broken: list[str] = field(default_factory=list)  # endpoints whose stream broke mid-answer
    relearned: bool = False  # an endpoint's window was learned smaller: the history can shrink
    progress: TurnProgress = field(default_factory=TurnProgress)
    every_endpoint: bool = True  # False: the capabilities the turn needs left some out


@dataclass(slots=True)
class PartialAnswer:
    """What the current attempt has produced so far (reset on failover)."""

    text_id: str
    reasoning_ids: list[str] = field(default_factory=list)
    text: list[str] = field(default_factory=list)
    reasoning: list[str] = field(default_factory=list)
    tool_calls: dict[int, list[str]] = field(default_factory=dict)  # index -> [id, name, args]
    tool_signatures: dict[int, str] = field(default_factory=dict)
    in_reasoning: bool = False
    sent_ids: list[str] = field(default_factory=list)
    usage: Usage = field(default_factory=Usage)  # the upstream's count, when it sent one

    def add_text(self, text: str) -> AnswerText:
        self.in_reasoning = False
        if not self.text:
            self.sent_ids.append(self.text_id)
        self.text.append(text)
        return AnswerText(self.text_id, text)

    def add_reasoning(self, text: str) -> AnswerReasoning:
        if not self.in_reasoning:  # a new reasoning run gets its own id
            self.in_reasoning = True
            rid = f"{self.text_id}.r{len(self.reasoning_ids) + 1}"
            self.reasoning_ids.append(rid)
            self.sent_ids.append(rid)
        self.reasoning.append(text)
        return AnswerReasoning(self.reasoning_ids[-1], text)

    def add_tool_call(self, event: ToolCallDelta) -> ToolCallDelta:
        self.in_reasoning = False
        call = self.tool_calls.setdefault(event.index, ["", "", ""])
        call[0] = call[0] or event.id
        call[1] = call[1] or event.name
        call[2] += event.arguments_delta
        if event.thought_signature:
            self.tool_signatures[event.index] = event.thought_signature
        return event

    def finished(self, finish: Finish, endpoint: Endpoint, attempts: int, ttft_s: float
                 ) -> TurnFinished:
        """The turn's one ``TurnFinished``: a stop after tool calls reads as ``tool_calls``."""
        reason = finish.reason
        if self.tool_calls and reason is FinishReason.STOP:
            reason = FinishReason.TOOL_CALLS
        complete = reason in (FinishReason.STOP, FinishReason.TOOL_CALLS)
        return TurnFinished(reason, complete, endpoint, attempts, ttft_s, finish.provider_reason,
                            finish.thought_signature, self.usage,
                            self.message(finish.thought_signature))

    def message(self, signature: str) -> Message:
        """The assembled assistant message, for the session history."""
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


def retrieve(task: asyncio.Task[StreamEvent]) -> None:
    """Marks a cancelled first-event task's outcome as seen (it is not an error of the turn)."""
    if not task.cancelled():
        task.exception()
