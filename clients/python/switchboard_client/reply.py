"""``Reply``: assembles a Converse stream into the answer a caller acts on.

It keeps the text, the reasoning history (every reasoning message so far, in order), tool
calls with their complete arguments, usage and the finish, and applies ``failover`` events:
FAILOVER_MODE_CONTINUE keeps everything (the next endpoint continues the same message),
FAILOVER_MODE_RESTART discards the messages it names, so ``reply.text`` is always the one
answer being served.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from switchboard.v1 import conversations_pb2 as cpb

Event = (
    cpb.TurnStarted | cpb.RouteDecision | cpb.TextDelta | cpb.ReasoningDelta | cpb.ToolCallDelta
    | cpb.Failover | cpb.Usage | cpb.TurnFinished
)


@dataclass(slots=True)
class ToolCallState:
    index: int
    id: str = ""
    name: str = ""
    arguments_json: str = ""
    thought_signature: str = ""


@dataclass(slots=True)
class Reply:
    turn_id: str = ""
    routes: list[cpb.RouteDecision] = field(default_factory=list)
    failovers: list[cpb.Failover] = field(default_factory=list)
    tool_calls: dict[int, ToolCallState] = field(default_factory=dict)
    usage: cpb.Usage | None = None
    finished: cpb.TurnFinished | None = None
    _text: dict[str, list[str]] = field(default_factory=dict)
    _reasoning: dict[str, list[str]] = field(default_factory=dict)

    def apply(self, event: Event) -> None:
        if isinstance(event, cpb.TextDelta):
            self._text.setdefault(event.message_id, []).append(event.delta)
        elif isinstance(event, cpb.ReasoningDelta):
            self._reasoning.setdefault(event.reasoning_id, []).append(event.delta)
        elif isinstance(event, cpb.ToolCallDelta):
            call = self.tool_calls.setdefault(event.index, ToolCallState(event.index))
            call.id = call.id or event.id
            call.name = call.name or event.name
            call.arguments_json += event.arguments_delta
            call.thought_signature = call.thought_signature or event.thought_signature
        elif isinstance(event, cpb.Failover):
            self.failovers.append(event)
            if event.mode == cpb.FAILOVER_MODE_CONTINUE:
                return
            for message_id in event.discard_message_ids:
                self._text.pop(message_id, None)
                self._reasoning.pop(message_id, None)
        elif isinstance(event, cpb.RouteDecision):
            self.routes.append(event)
        elif isinstance(event, cpb.Usage):
            self.usage = event
        elif isinstance(event, cpb.TurnFinished):
            self.finished = event
        elif isinstance(event, cpb.TurnStarted):
            self.turn_id = event.turn_id

    @property
    def text(self) -> str:
        return "".join("".join(parts) for parts in self._text.values())

    @property
    def reasoning_history(self) -> list[str]:
        """Every reasoning message of the answer, oldest first."""
        return ["".join(parts) for parts in self._reasoning.values()]

    @property
    def reasoning(self) -> str:
        return "\n\n".join(self.reasoning_history)

    @property
    def complete(self) -> bool:
        return self.finished is not None and self.finished.complete

    @property
    def endpoint_id(self) -> str:
        return self.finished.endpoint_id if self.finished else ""
