"""The request log: what reached the simulator and what happened to each response.

Times are ``time.monotonic()`` values, comparable with the test's own monotonic clock. Tests
wait on the log (``wait_until``) instead of sleeping.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from multidict import CIMultiDict

from server.simulator.behavior import FaultKind, Spec


@dataclass(slots=True, eq=False)
class RecordedRequest:
    """One HTTP request and the fate of its response.

    ``headers`` are as received, keys included (this is a test tool); lookups are
    case-insensitive. ``body`` is the parsed JSON body, or None when it was not JSON
    (``raw_body`` has the bytes). ``spec`` is the wire format of the route that was hit.

    ``first_byte_at``: the status line and headers went out. ``first_chunk_at``: the first
    content chunk went out. ``chunks_sent``: content chunks written. ``completed_at``: the
    simulator finished the response, including on purpose by a fault (cut, reset).
    ``disconnected_at``: the client went away before that.
    """

    spec: Spec
    method: str
    path: str
    query: dict[str, str]
    headers: CIMultiDict[str]
    body: Any
    raw_body: bytes
    received_at: float
    status: int | None = None
    fault: FaultKind | None = None
    answer_text: str = ""
    first_byte_at: float | None = None
    first_chunk_at: float | None = None
    chunks_sent: int = 0
    completed_at: float | None = None
    disconnected_at: float | None = None

    @property
    def disconnected(self) -> bool:
        return self.disconnected_at is not None

    @property
    def ended(self) -> bool:
        """The response is over: completed by the simulator or abandoned by the client."""
        return self.completed_at is not None or self.disconnected_at is not None


@dataclass(slots=True)
class RequestLog:
    """Recorded requests in arrival order, with change notification for waiters."""

    requests: list[RecordedRequest] = field(default_factory=list)
    _waiters: list[asyncio.Future[None]] = field(default_factory=list)

    def append(self, record: RecordedRequest) -> None:
        self.requests.append(record)
        self.notify()

    def notify(self) -> None:
        """Wake every waiter; call after any change to a record."""
        waiters, self._waiters = self._waiters, []
        for waiter in waiters:
            if not waiter.done():
                waiter.set_result(None)

    async def wait_until(self, predicate: Callable[[], bool], timeout_s: float, what: str) -> None:
        """Return once ``predicate()`` holds; raise ``TimeoutError`` after ``timeout_s``."""
        try:
            async with asyncio.timeout(timeout_s):
                while not predicate():
                    waiter = asyncio.get_running_loop().create_future()
                    self._waiters.append(waiter)
                    await waiter
        except TimeoutError:
            raise TimeoutError(f"simulator: {what} did not happen within {timeout_s} s") from None

    def get(self, index: int) -> RecordedRequest | None:
        try:
            return self.requests[index]
        except IndexError:
            return None
