"""What validation detected on one endpoint, as a typed value, and its stored JSON form.

Every field is optional: None means "not recorded" (the endpoint was registered with
``skip_validation``, or the stored row predates the field). The stored form is a JSON object
keyed by field name; ``from_stored`` reads any row ever written (unknown keys and values of the
wrong type are ignored) and ``stored`` writes only the fields that are recorded.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any


@dataclass(frozen=True, slots=True)
class Capabilities:
    reasoning: bool | None = None
    reasoning_dialect: str | None = None  # reasoning_content | reasoning | think_tags | ...
    tool_calling: bool | None = None
    image_input: bool | None = None
    # The window the server itself reported (GET /v1/models, llama.cpp's /props); 0: none.
    reported_context_window_tokens: int | None = None
    continues_partial_answer: bool | None = None
    # How to ask for a continued assistant message: "continue_final_message" (vLLM),
    # "prefix" (DeepSeek); None or "": the final assistant message as it is.
    prefill_dialect: str | None = None

    @property
    def recorded(self) -> bool:
        """Whether anything at all is recorded."""
        return any(getattr(self, f.name) is not None for f in fields(self))

    def stored(self) -> dict[str, Any]:
        """The JSON object the registry stores (recorded fields only)."""
        return {f.name: value for f in fields(self)
                if (value := getattr(self, f.name)) is not None}

    @classmethod
    def from_stored(cls, raw: object) -> Capabilities:
        """Reads a stored JSON object: unknown keys are ignored, missing keys are None."""
        if not isinstance(raw, dict):
            return cls()
        return cls(
            reasoning=_bool(raw.get("reasoning")),
            reasoning_dialect=_str(raw.get("reasoning_dialect")),
            tool_calling=_bool(raw.get("tool_calling")),
            image_input=_bool(raw.get("image_input")),
            reported_context_window_tokens=_int(raw.get("reported_context_window_tokens")),
            continues_partial_answer=_bool(raw.get("continues_partial_answer")),
            prefill_dialect=_str(raw.get("prefill_dialect")),
        )


def _bool(value: object) -> bool | None:
    return value if isinstance(value, bool) else None


def _str(value: object) -> str | None:
    return value if isinstance(value, str) else None


def _int(value: object) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None
