"""One raw HTTP exchange with an endpoint, recorded for the checks to judge.

The request is exactly what a conversation sends (the provider adapter builds it); the
response is kept as raw as possible: status, headers, a bounded error body, or the stream's
bytes fed as they arrive to a ``Sink`` (the stream audit) with their arrival times. Nothing
here decides pass or fail; a transport problem is recorded as a ``Failure`` naming its phase.

Deadlines are phases, as in ``server.providers.transport``: ``connect``; ``first_token`` from
the request start until the sink has seen content (the status line must arrive within it
too); ``between_chunks`` after that; ``total`` over everything. aiohttp's default total
timeout is never used.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Protocol

import aiohttp

from server.providers.base import HttpRequest
from server.providers.body import read_bounded
from server.timeouts import Timeouts

MAX_BODY_BYTES = 64 * 1024
MAX_STREAM_BYTES = 4 * 1024 * 1024
_NOT_STREAMS = ("json", "html", "ndjson")


class Sink(Protocol):
    """Receives the body of a 2xx stream as it arrives."""

    @property
    def content_seen(self) -> bool: ...

    def feed(self, chunk: bytes, now: float) -> None: ...


@dataclass(frozen=True, slots=True)
class Failure:
    """A transport problem: ``phase`` is connect, headers, first_token, between_chunks, total
    or body (the connection broke, or the body was too big)."""

    phase: str
    message: str
    timed_out: bool = False


@dataclass(slots=True)
class Exchange:
    sent_at: float
    status: int = 0
    mime: str = ""  # the Content-Type's media type, lower case, without parameters
    content_type: str = ""  # the header as sent
    headers: dict[str, str] = field(default_factory=dict)  # lower-case names
    body: bytes = b""  # a non-stream body (errors, JSON, HTML), at most MAX_BODY_BYTES
    streamed: bool = False  # the body went to the sink
    bytes_read: int = 0
    headers_at: float | None = None
    ended_at: float = 0.0
    failure: Failure | None = None

    @property
    def duration_s(self) -> float:
        return max(0.0, self.ended_at - self.sent_at)

    @property
    def ok(self) -> bool:
        return 200 <= self.status < 300


def is_stream_mime(mime: str) -> bool:
    """Whether a 2xx body with this media type is read as an event stream."""
    return not any(word in mime for word in _NOT_STREAMS)


async def run(session: aiohttp.ClientSession, http: HttpRequest, phases: Timeouts,
              sink: Sink) -> Exchange:
    loop = asyncio.get_running_loop()
    ex = Exchange(sent_at=loop.time())
    total_at = ex.sent_at + phases.total_s
    first_at = min(ex.sent_at + phases.first_token_s, total_at)
    timeout = aiohttp.ClientTimeout(total=None, connect=phases.connect_s,
                                    sock_connect=phases.connect_s)
    try:
        async with asyncio.timeout_at(first_at):
            resp = await session.request(http.method, http.url, data=http.body,
                                         headers=dict(http.headers), timeout=timeout,
                                         allow_redirects=False)
    except (TimeoutError, aiohttp.ClientError, OSError) as exc:
        ex.failure = _send_failure(exc, phases)
        ex.ended_at = loop.time()
        return ex
    complete = False
    try:
        ex.headers_at = loop.time()
        ex.status = resp.status
        ex.headers = {k.lower(): v for k, v in resp.headers.items()}
        ex.content_type = ex.headers.get("content-type", "")
        ex.mime = ex.content_type.split(";", 1)[0].strip().lower()
        if ex.ok and is_stream_mime(ex.mime):
            ex.streamed = True
            complete = await _stream(resp, ex, sink, phases, first_at, total_at)
        else:
            complete = await _body(resp, ex, phases, total_at)
    finally:
        ex.ended_at = loop.time()
        if complete:
            resp.release()
        else:
            resp.close()
    return ex


def _send_failure(exc: BaseException, phases: Timeouts) -> Failure:
    if isinstance(exc, aiohttp.ConnectionTimeoutError):
        return Failure("connect", f"no connection within {phases.connect_s:g}s", True)
    if isinstance(exc, TimeoutError):
        return Failure("headers", f"no response within {phases.first_token_s:g}s", True)
    if isinstance(exc, aiohttp.ClientConnectorError):
        return Failure("connect", f"could not connect: {exc.os_error.strerror or exc}")
    if isinstance(exc, aiohttp.ServerDisconnectedError):
        return Failure("headers", "the server closed the connection without answering")
    if isinstance(exc, aiohttp.ClientResponseError):
        return Failure("headers", "the server sent a malformed HTTP response")
    if isinstance(exc, OSError):
        return Failure("headers", f"the connection failed: {exc.strerror or type(exc).__name__}")
    return Failure("headers", f"the request failed ({type(exc).__name__})")


async def _stream(resp: aiohttp.ClientResponse, ex: Exchange, sink: Sink, phases: Timeouts,
                  first_at: float, total_at: float) -> bool:
    """Feeds the body to ``sink``; True when it was read to its end."""
    loop = asyncio.get_running_loop()
    chunks = resp.content.iter_any()
    deadline = first_at
    while True:
        try:
            async with asyncio.timeout_at(deadline):
                chunk = await chunks.__anext__()
        except StopAsyncIteration:
            return True
        except TimeoutError:
            if deadline >= total_at:
                ex.failure = Failure("total", f"the stream did not end within "
                                     f"{phases.total_s:g}s", True)
            elif sink.content_seen:
                ex.failure = Failure("between_chunks", f"nothing arrived for "
                                     f"{phases.between_chunks_s:g}s in the middle of the "
                                     "stream", True)
            else:
                ex.failure = Failure("first_token", f"no token within "
                                     f"{phases.first_token_s:g}s", True)
            return False
        except (aiohttp.ClientError, OSError):
            ex.failure = Failure("body", "the server closed the connection in the middle of "
                                 "the stream")
            return False
        now = loop.time()
        ex.bytes_read += len(chunk)
        if ex.bytes_read > MAX_STREAM_BYTES:
            ex.failure = Failure("body", f"the answer to a one-word prompt was larger than "
                                 f"{MAX_STREAM_BYTES // (1024 * 1024)} MiB")
            return False
        sink.feed(chunk, now)
        if sink.content_seen:
            deadline = min(now + phases.between_chunks_s, total_at)


async def _body(resp: aiohttp.ClientResponse, ex: Exchange, phases: Timeouts,
                total_at: float) -> bool:
    """Reads at most ``MAX_BODY_BYTES`` into ``ex.body``; True when it was read to its end."""
    deadline = min(asyncio.get_running_loop().time() + phases.between_chunks_s, total_at)
    ex.body, complete = await read_bounded(resp, MAX_BODY_BYTES, deadline)
    return complete
