"""What a turn yields, in the order documented on ``ConverseResponse``, and its progress.

One ``Route`` per attempt, then any mix of ``AnswerText``, ``AnswerReasoning``,
``ToolCallDelta``, ``Failover`` and ``Route``, then ``Usage``, then exactly one
``TurnFinished``. Message ids name the answer's messages, so a ``Failover`` can say which to
discard. These are the engine's own values (the upstream's are ``server.chat``'s
``TextDelta``/``ReasoningDelta``/``Finish``); the edges turn them into protos or SSE chunks.
"""

from __future__ import annotations

from dataclasses import dataclass

from server.chat import FinishReason, Message, ToolCallDelta, Usage
from server.registry.llm import Endpoint
from server.routing.route_plan import Reason


@dataclass(frozen=True, slots=True)
class Route:
    endpoint: Endpoint
    reason: Reason
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

@dataclass(slots=True)
class TurnProgress:
    """What a running turn has done so far, for its edge: written by the engine only."""

    attempts: int = 0  # attempts started (hedges and retries included)
    winner: Endpoint | None = None  # whose first token the current answer is (None before)
    finish: FinishReason | None = None  # the upstream's finish reason, once it finished
