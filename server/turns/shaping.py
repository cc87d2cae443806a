"""What a turn sends to one endpoint: the history fitted to its window, or a continuation.

``fit_history``: a session's history that does not fit the endpoint's known context window
(declared, or learned by ``Windows`` when the endpoint rejected a history as too long) is
sent as the most recent complete exchanges that fit. The system prompt is always kept, the
history is only ever cut where a user message starts an exchange (so a tool call is never
separated from its result), and the newest exchange is always sent, even alone.

``continuation``: after an answer broke, the request again with the partial answer as a final
assistant message, for an endpoint that continues it (assistant prefill).
"""

from __future__ import annotations

import dataclasses

import structlog

from server.chat import ChatRequest, Message, Role, TextPart
from server.registry.llm import Endpoint, Llm

log = structlog.get_logger("switchboard.engine")


def estimate_tokens(request: ChatRequest) -> int:
    """A cheap prompt size estimate (about 4 characters a token) for routing by size class."""
    return sum(m.size_bytes() for m in request.messages) // 4 + 8 * len(request.messages)


def _fits(request: ChatRequest, window_tokens: int) -> bool:
    reserve = request.generation.max_output_tokens or 0
    return estimate_tokens(request) + reserve <= window_tokens


def fit_history(request: ChatRequest, window_tokens: int) -> tuple[ChatRequest, int]:
    """The request cut to fit ``window_tokens`` (0: unknown, no cut) and how many messages
    were left out."""
    if not request.fit_history or window_tokens <= 0 or _fits(request, window_tokens):
        return request, 0
    messages = request.messages
    head = 0
    while head < len(messages) and messages[head].role is Role.SYSTEM:
        head += 1
    system, rest = messages[:head], messages[head:]
    users = [i for i, m in enumerate(rest) if m.role is Role.USER]
    if not users:
        return request, 0
    for cut in users:  # oldest cut first: keep as much as fits
        if cut == 0:
            continue
        shorter = dataclasses.replace(request, messages=(*system, *rest[cut:]))
        if _fits(shorter, window_tokens):
            return shorter, cut
    newest = users[-1]
    return dataclasses.replace(request, messages=(*system, *rest[newest:])), newest


class Windows:
    """Each endpoint's context window: declared, else learned when it rejected a history as too
    long (three quarters of what was sent), else 0 (unknown). Per replica."""

    def __init__(self) -> None:
        self._learned: dict[str, int] = {}  # endpoint id -> tokens

    def of(self, endpoint: Endpoint) -> int:
        return endpoint.context_window_tokens or self._learned.get(endpoint.id, 0)

    def learn(self, endpoint: Endpoint, request: ChatRequest) -> bool:
        """``request`` was rejected as too long: True when the learned window lets its
        history shrink (a retry can fit)."""
        if endpoint.context_window_tokens:
            return False  # declared: trust it (the newest exchange alone is too long)
        sent, omitted = fit_history(request, self.of(endpoint))
        learned = estimate_tokens(sent) * 3 // 4
        self._learned[endpoint.id] = learned
        log.info("context window learned", endpoint=endpoint.id, tokens=learned)
        return fit_history(request, learned)[1] > omitted


def continuation(request: ChatRequest, partial_text: str) -> ChatRequest:
    """The request with ``partial_text`` as the assistant message to continue."""
    prefill = Message(Role.ASSISTANT, (TextPart(partial_text),))
    return dataclasses.replace(request, messages=(*request.messages, prefill),
                               continues_answer=True)


def continuation_llm(llm: Llm) -> Llm:
    """A continuation goes to one endpoint that continues answers: no hedge elsewhere."""
    if not llm.policy.hedging_enabled:
        return llm
    return dataclasses.replace(llm, policy=dataclasses.replace(llm.policy,
                                                               hedging_enabled=False))
