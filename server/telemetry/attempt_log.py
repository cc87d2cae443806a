"""The turn's summary log line says why it failed or failed over: one entry per attempt.

``AttemptLog`` is a ``TurnsObserver`` (like metrics and tracing). It writes into the summary of
the request the turn runs in (``server.logs.request_summary``, set by each edge), so the one
JSON line that edge logs per request carries ``attempt_log``: for each attempt its endpoint
(id, label, model), why it was started (``fastest``, ``failover``, ``hedge``...), how it ended
(``ok``, ``cancelled`` or the upstream error kind) and, when it failed, the cause as the caller
would read it (already scrubbed of keys and URLs; the log redactor is the backstop).
"""

from __future__ import annotations

from typing import Any

from server.chat import FinishReason, Usage
from server.logs import request_summary
from server.providers.base import UpstreamError
from server.registry.llm import Endpoint, Llm
from server.turns.observer import NO_TURN, AttemptObserver, TurnObserver

MAX_CAUSE_CHARS = 300


class AttemptLog:
    """Records each attempt of a turn in the summary of the request it runs in."""

    def turn_started(self, llm: Llm, turn_id: str, edge: str) -> TurnObserver:
        summary = request_summary.get()
        if summary is None:
            return NO_TURN
        entries: list[dict[str, Any]] = []
        summary["attempt_log"] = entries
        return _TurnLog(summary, entries)


class _TurnLog:
    __slots__ = ("_entries", "_summary")

    def __init__(self, summary: dict[str, Any], entries: list[dict[str, Any]]) -> None:
        self._summary, self._entries = summary, entries

    def attempt_started(self, endpoint: Endpoint, attempt: int, reason: str) -> AttemptObserver:
        entry: dict[str, Any] = {"attempt": attempt, "endpoint": endpoint.id,
                                 "label": endpoint.label, "model": endpoint.model,
                                 "reason": reason, "outcome": "running"}
        self._entries.append(entry)
        return _AttemptLog(entry)

    def finished(self, outcome: str, error_type: str = "") -> None:
        self._summary["outcome"] = outcome
        if error_type:
            self._summary["error_type"] = error_type


class _AttemptLog:
    __slots__ = ("_entry",)

    def __init__(self, entry: dict[str, Any]) -> None:
        self._entry = entry

    def first_token(self, ttft_s: float) -> None:
        self._entry["ttft_ms"] = round(ttft_s * 1e3, 2)

    def succeeded(self, usage: Usage, reason: FinishReason) -> None:
        self._entry["outcome"] = "ok"

    def failed(self, error: UpstreamError) -> None:
        self._entry["outcome"] = error.kind.value
        self._entry["cause"] = error.message[:MAX_CAUSE_CHARS]

    def cancelled(self) -> None:
        self._entry["outcome"] = "cancelled"
