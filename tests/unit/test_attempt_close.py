"""Issue 19: closing a hedge loser never swallows the caller's cancellation or deadline.

``SentRequest.close`` cancels the loser's wait for its first event and waits for it. It used to
await that task inside ``suppress(BaseException)``, so a CancelledError aimed at the caller
(the caller went away, or the turn's deadline fired) during that wait was swallowed and the
turn went on. The loser here takes its time to finish cancelling (as an HTTP request being torn
down does), and the caller is cancelled, or its deadline fires, exactly then.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncGenerator

import pytest

from server.chat import StreamEvent, TextDelta
from server.clock import FakeClock
from server.registry.llm import ApiSpec, Endpoint
from server.routing.attempt import Attempt
from server.routing.router import Router
from server.secret import Secret
from server.turns.turn_state import SentRequest

ENDPOINT = Endpoint(id="ep", api_spec=ApiSpec.OPENAI, base_url="http://127.0.0.1:9/v1",
                    model="m", api_key=Secret("sk-test-0000"))


class _SlowToCancel:
    """A first-event wait that, once cancelled, finishes only when released or cancelled
    again (as a caller's cancellation forwarded through ``await task`` does)."""

    def __init__(self) -> None:
        self.waiting = asyncio.Event()
        self.cancelling = asyncio.Event()
        self.release = asyncio.Event()

    async def first(self) -> StreamEvent:
        self.waiting.set()
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            self.cancelling.set()
            await self.release.wait()
            raise
        return TextDelta("never")


async def _stream() -> AsyncGenerator[StreamEvent, None]:
    yield TextDelta("never")


def _attempt(slow: _SlowToCancel) -> SentRequest:
    attempt = Attempt(Router(FakeClock(), random.Random(19)), ENDPOINT.id, probe=False)
    return SentRequest(ENDPOINT, attempt, _stream(), 0.0, first=asyncio.ensure_future(slow.first()))


async def test_the_callers_cancellation_during_a_losers_close_propagates() -> None:
    slow = _SlowToCancel()
    attempt = _attempt(slow)
    await slow.waiting.wait()
    after_close = asyncio.Event()

    async def caller() -> None:
        await attempt.close()
        after_close.set()  # the turn would go on here

    task = asyncio.ensure_future(caller())
    await slow.cancelling.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert task.cancelled() and not after_close.is_set()
    await _finish(slow, attempt)


async def test_the_turn_deadline_firing_during_a_losers_close_is_not_swallowed() -> None:
    slow = _SlowToCancel()
    attempt = _attempt(slow)
    await slow.waiting.wait()
    after_close = False

    async def watch() -> None:
        await slow.cancelling.wait()
        deadline.reschedule(asyncio.get_running_loop().time())  # the deadline fires now

    with pytest.raises(TimeoutError):
        async with asyncio.timeout(None) as deadline:
            watcher = asyncio.ensure_future(watch())
            await attempt.close()
            after_close = True
    await watcher
    assert not after_close
    await _finish(slow, attempt)


async def _finish(slow: _SlowToCancel, attempt: SentRequest) -> None:
    slow.release.set()
    assert attempt.first is not None
    await asyncio.wait((attempt.first,))
    assert attempt.first.cancelled()
