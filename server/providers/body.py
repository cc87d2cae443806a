"""Reading a response body that may be large, slow or broken.

``read_bounded``: at most ``limit`` bytes by a deadline, shared by the turn path (an
upstream's error body, classified by its adapter) and validation (the body it judges), so both
stop at a size and a deadline the same way. ``ReadDeadline``: one moving deadline for all the
reads of a stream. ``not_a_stream``: what a 2xx answer that is not an event stream means.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import aiohttp
import orjson

from server.providers.base import ErrorKind, UpstreamError
from server.providers.errors import classify_error_object


async def read_bounded(resp: aiohttp.ClientResponse, limit: int, deadline: float
                       ) -> tuple[bytes, bool]:
    """At most ``limit`` bytes of ``resp``'s body, read until ``deadline`` (event-loop time),
    and whether the body was read to its end. Whatever arrived is returned when the body is
    cut short by the limit, the deadline or a broken connection."""
    parts: list[bytes] = []
    size = 0
    try:
        async with asyncio.timeout_at(deadline):
            async for chunk in resp.content.iter_any():
                parts.append(chunk)
                size += len(chunk)
                if size >= limit:
                    break
            else:
                return b"".join(parts), True
    except (TimeoutError, aiohttp.ClientError, OSError):
        pass  # judge what arrived
    return b"".join(parts)[:limit], False


def not_a_stream(mime: str, body: bytes, label: str) -> UpstreamError:
    """Why a 2xx answer to ``stream: true`` that is not an event stream cannot be used."""
    if "ndjson" in mime:
        return UpstreamError(
            ErrorKind.PROTOCOL,
            f"{label} returns {mime} (newline-delimited JSON) instead of server-sent events; "
            "this looks like Ollama's native API: register the OpenAI-compatible base_url "
            "ending in /v1",
        )
    if "html" in mime:
        return UpstreamError(
            ErrorKind.PROTOCOL,
            f"{label} returned an HTML page (status 200) instead of an event stream; "
            "check base_url",
        )
    try:
        parsed = orjson.loads(body)
    except orjson.JSONDecodeError:
        parsed = None
    if isinstance(parsed, dict) and parsed.get("error"):
        return classify_error_object(parsed, label=label)
    return UpstreamError(
        ErrorKind.PROTOCOL,
        f"{label} returns {mime} to stream: true; the server does not stream. Check base_url "
        "and that the server supports streaming chat completions",
    )


class ReadDeadline:
    """The deadline of the reads of one response: one timer for the whole stream.

    ``asyncio.timeout_at`` around every read costs a context manager, a task lookup and a timer
    handle (a heap push, then a cancel) per chunk. Here the deadline moves by assignment to
    ``at``; the one timer re-arms itself when it fires before the (moved) deadline. As with
    ``asyncio.timeout_at``, only a read that is waiting is interrupted, with ``TimeoutError``;
    a deadline that passed while the consumer held the events interrupts the next read only
    if it has to wait. The reading task may change from read to read (the engine reads the
    first event in a task of its own), so it is taken at each read.
    """

    __slots__ = ("_armed", "_cancelling", "_expired", "_handle", "_loop", "_task", "at")

    def __init__(self, loop: asyncio.AbstractEventLoop, at: float) -> None:
        self._loop = loop
        self.at = at
        self._task: asyncio.Task[object] | None = None  # the task of the waiting read
        self._cancelling = 0
        self._expired = False
        self._handle: asyncio.TimerHandle | None = None
        self._armed = 0.0  # when the timer fires

    def _arm(self) -> None:
        if self._handle is not None:
            self._handle.cancel()
        self._armed = self.at
        self._handle = self._loop.call_at(self.at, self._fire)

    async def read(self, chunks: AsyncIterator[bytes]) -> bytes:
        task = asyncio.current_task()
        assert task is not None
        self._task, self._cancelling, self._expired = task, task.cancelling(), False
        if self._handle is None or self._armed > self.at:  # none, or set too late
            self._arm()
        try:
            return await chunks.__anext__()
        except asyncio.CancelledError as exc:
            if self._expired and task.uncancel() <= self._cancelling:
                raise TimeoutError from exc  # ours, not the caller's: a timeout
            raise
        finally:
            self._task = None

    def _fire(self) -> None:
        self._handle = None
        if self._task is None:  # no read is waiting: the next one re-arms
            return
        if self._loop.time() < self.at:  # the deadline moved on since the timer was set
            self._arm()
            return
        self._expired = True
        self._task.cancel()

    def close(self) -> None:
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None
