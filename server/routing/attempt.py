"""The attempt handle: one upstream request the router admitted, recording its own life.

``Router.admit(endpoint_id)`` answers ``None`` (do not send: the endpoint's half-open trial is
taken, its circuit is open, it is rate limited) or an ``Attempt``. The holder sends the request
and tells the attempt what happens; the attempt updates the router's books (latency samples,
breaker, cooldown, in-flight counts) and its ``observer`` (metrics, tracing) from the same
call, so nothing is reported twice:

    attempt = router.admit(endpoint.id)
    if attempt is None:
        ...  # try the next candidate
    with attempt:  # leaving without an outcome counts as cancelled
        ...
        attempt.first_token(ttft_s, prompt_tokens)
        attempt.gaps(gaps_s)
        attempt.succeeded(usage, finish_reason)  # or failed(error) / cancelled()

The first outcome (``succeeded`` / ``failed`` / ``cancelled``) finishes the attempt: one fewer
in flight, a half-open trial settled. Later outcomes are ignored, so a caller that is unsure
whether an attempt already ended may end it again safely.
"""

from __future__ import annotations

from types import TracebackType
from typing import TYPE_CHECKING, Protocol

from server.chat import FinishReason, Usage
from server.providers.base import UpstreamError

if TYPE_CHECKING:
    from server.routing.router import Router


class AttemptObserver(Protocol):
    """What metrics and tracing hear about one upstream request of a turn."""

    def first_token(self, ttft_s: float) -> None:
        """The attempt produced its first event ``ttft_s`` after it was sent (it won)."""

    def succeeded(self, usage: Usage, reason: FinishReason) -> None:
        """The stream finished properly; ``usage`` is the upstream's count."""

    def failed(self, error: UpstreamError) -> None:
        """The attempt failed (before or after its first token)."""

    def cancelled(self) -> None:
        """The attempt was stopped: a hedge that lost the race, or its caller went away."""


class _NoAttempt:
    __slots__ = ()

    def first_token(self, ttft_s: float) -> None:
        pass

    def succeeded(self, usage: Usage, reason: FinishReason) -> None:
        pass

    def failed(self, error: UpstreamError) -> None:
        pass

    def cancelled(self) -> None:
        pass


NO_ATTEMPT: AttemptObserver = _NoAttempt()


class Attempt:
    """One admitted upstream request to ``endpoint_id`` (``probe``: a probe, not a live turn).

    ``observer`` receives the same first token and outcome; set it before the request is sent.
    """

    __slots__ = ("_router", "ended", "endpoint_id", "observer", "probe", "saw_first_token")

    def __init__(self, router: Router, endpoint_id: str, probe: bool) -> None:
        self._router = router
        self.endpoint_id = endpoint_id
        self.probe = probe
        self.observer: AttemptObserver = NO_ATTEMPT
        self.saw_first_token = False
        self.ended = False

    def first_token(self, ttft_s: float, prompt_tokens: int) -> None:
        """The first token arrived ``ttft_s`` after the request was sent."""
        if self.ended or self.saw_first_token:
            return
        self.saw_first_token = True
        self._router.first_token(self.endpoint_id, ttft_s, prompt_tokens, is_probe=self.probe)
        self.observer.first_token(ttft_s)

    def first_token_missed(self, waited_s: float, prompt_tokens: int) -> None:
        """The attempt is being stopped after ``waited_s`` without a first token (a hedge that
        lost the race): lets a slowed endpoint's estimate rise even when it never wins."""
        if not self.ended and not self.saw_first_token:
            self._router.first_token_missed(self.endpoint_id, waited_s, prompt_tokens,
                                            is_probe=self.probe)

    def gaps(self, gaps_s: list[float]) -> None:
        """Gaps between streamed chunks (batched: recorded once per stream)."""
        if gaps_s:
            self._router.record_gaps(self.endpoint_id, gaps_s)

    def succeeded(self, usage: Usage | None = None,
                  reason: FinishReason = FinishReason.STOP) -> None:
        """The stream completed properly (a probe: its one token and finish reason came)."""
        if self._end(success=True):
            self.observer.succeeded(usage or Usage(), reason)

    def failed(self, error: UpstreamError) -> None:
        """The attempt failed with ``error``; what that says about the endpoint (breaker,
        cooldown) is the router's rule."""
        if self._end(error=error):
            self.observer.failed(error)

    def cancelled(self) -> None:
        """The attempt was stopped (a hedge loser, the caller went away): not a failure, but
        it frees a half-open trial."""
        if self._end():
            self.observer.cancelled()

    def _end(self, *, success: bool = False, error: UpstreamError | None = None) -> bool:
        """Books the outcome (none: cancelled) and frees the slot, once; False if ended."""
        if self.ended:
            return False
        self.ended = True
        self._router._settle(self.endpoint_id, self.probe, success, error)
        self._router._release(self.endpoint_id, self.probe)
        return True

    def __enter__(self) -> Attempt:
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.cancelled()
