"""The provider-neutral shape of a conversation turn and of what comes back.

These value types are what the gRPC edge translates protos into, what sessions store, what
provider adapters translate into each wire format, and what adapters decode streams back into.
Nothing here knows about gRPC or HTTP.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field


class Role(enum.StrEnum):
    SYSTEM = "system"
    USER = "user"
    ASSISTANT = "assistant"
    TOOL = "tool"


@dataclass(frozen=True, slots=True)
class TextPart:
    text: str


@dataclass(frozen=True, slots=True)
class ImagePart:
    """An image by URL (``url``) or inline (``data`` + ``mime_type``)."""

    mime_type: str = ""
    url: str = ""
    data: bytes = b""


Part = TextPart | ImagePart


@dataclass(frozen=True, slots=True)
class ToolCall:
    """A complete tool call made by the model.

    ``arguments`` is the JSON text exactly as the model produced it. ``thought_signature`` is an
    opaque provider token (Gemini's ``thoughtSignature``) that must be sent back unchanged on
    the same call in later turns.
    """

    id: str
    name: str
    arguments: str
    thought_signature: str = ""


@dataclass(frozen=True, slots=True)
class Message:
    """One message of a conversation.

    - user/system: ``parts``.
    - assistant: ``parts`` (text), ``tool_calls``, ``reasoning`` (kept for the history, never
      sent back upstream), ``thought_signature`` (opaque signature for the text part, Gemini).
    - tool: ``tool_call_id``, ``name`` (the function), ``parts`` (the result as text).

    In a session history, ``turn_id`` names the turn that added the message and
    ``interrupted`` marks an assistant answer the caller cut short; adapters ignore both.
    """

    role: Role
    parts: tuple[Part, ...] = ()
    tool_calls: tuple[ToolCall, ...] = ()
    tool_call_id: str = ""
    name: str = ""
    reasoning: str = ""
    thought_signature: str = ""
    interrupted: bool = False
    turn_id: str = ""

    @property
    def text(self) -> str:
        parts = self.parts
        if len(parts) == 1 and type(parts[0]) is TextPart:  # most messages: one text part
            return parts[0].text
        return "".join(p.text for p in parts if isinstance(p, TextPart))

    def size_bytes(self) -> int:
        n = 0
        for p in self.parts:
            n += len(p.text.encode()) if isinstance(p, TextPart) else len(p.data) + len(p.url)
        for c in self.tool_calls:
            n += len(c.arguments) + len(c.name)
        return n


@dataclass(frozen=True, slots=True)
class Tool:
    """A function the model may call; ``parameters_json`` is a JSON Schema object as text."""

    name: str
    description: str = ""
    parameters_json: str = ""


class ToolChoiceMode(enum.StrEnum):
    AUTO = "auto"
    NONE = "none"
    REQUIRED = "required"
    FUNCTION = "function"


@dataclass(frozen=True, slots=True)
class ToolChoice:
    mode: ToolChoiceMode = ToolChoiceMode.AUTO
    function_name: str = ""


class ReasoningEffort(enum.StrEnum):
    NONE = "none"
    LOW = "low"
    MEDIUM = "medium"
    HIGH = "high"


@dataclass(frozen=True, slots=True)
class Generation:
    """Generation parameters; ``None`` / empty means "provider default"."""

    temperature: float | None = None
    top_p: float | None = None
    max_output_tokens: int | None = None
    stop: tuple[str, ...] = ()
    seed: int | None = None
    reasoning_effort: ReasoningEffort | None = None

    def merged_over(self, base: Generation) -> Generation:
        """This generation's set values, falling back to ``base`` for unset ones."""
        return Generation(
            temperature=self.temperature if self.temperature is not None else base.temperature,
            top_p=self.top_p if self.top_p is not None else base.top_p,
            max_output_tokens=(
                self.max_output_tokens
                if self.max_output_tokens is not None
                else base.max_output_tokens
            ),
            stop=self.stop or base.stop,
            seed=self.seed if self.seed is not None else base.seed,
            reasoning_effort=(
                self.reasoning_effort
                if self.reasoning_effort is not None
                else base.reasoning_effort
            ),
        )


@dataclass(frozen=True, slots=True)
class ChatRequest:
    """Everything an adapter needs to build one upstream request (the full history)."""

    messages: tuple[Message, ...]
    tools: tuple[Tool, ...] = ()
    tool_choice: ToolChoice | None = None
    generation: Generation = field(default_factory=Generation)
    # The last message is a partial assistant answer for the model to continue (prefill).
    continues_answer: bool = False
    # A session's history: may be cut to the oldest messages' expense to fit a window.
    fit_history: bool = False


# ---------------------------------------------------------------------------------------------
# What an adapter's stream decoder yields, in order.


class FinishReason(enum.StrEnum):
    STOP = "stop"
    LENGTH = "length"
    TOOL_CALLS = "tool_calls"
    CONTENT_FILTER = "content_filter"
    ERROR = "error"
    OTHER = "other"


@dataclass(frozen=True, slots=True)
class TextDelta:
    text: str


@dataclass(frozen=True, slots=True)
class ReasoningDelta:
    text: str


@dataclass(frozen=True, slots=True)
class ToolCallDelta:
    """A piece of tool call ``index``: ``id``/``name`` on the first piece, then argument text."""

    index: int
    id: str = ""
    name: str = ""
    arguments_delta: str = ""
    thought_signature: str = ""


@dataclass(frozen=True, slots=True)
class Usage:
    input_tokens: int = 0
    output_tokens: int = 0
    reasoning_tokens: int = 0


@dataclass(frozen=True, slots=True)
class Finish:
    """The upstream's finish. ``thought_signature`` is a text-part signature (Gemini)."""

    reason: FinishReason
    provider_reason: str = ""
    thought_signature: str = ""


StreamEvent = TextDelta | ReasoningDelta | ToolCallDelta | Usage | Finish
