"""Put responses on the wire and record what happened to them.

A write to a client that went away raises ``ConnectionError``; a client that goes away while
the handler waits (ttft, stall, hang) cancels the handler (``handler_cancellation=True``).
Both end up as ``disconnected_at`` on the record.
"""

from __future__ import annotations

import asyncio
import socket
import struct
import time

from aiohttp import web

from server.simulator.formats import Reply
from server.simulator.log import RecordedRequest
from server.simulator.plan import Ending, Plan
from server.simulator.state import SimState


class Responder:
    def __init__(self, state: SimState) -> None:
        self._state = state

    def _headers_sent(self, record: RecordedRequest, status: int) -> None:
        record.status = status
        record.first_byte_at = time.monotonic()

    async def send(
        self, request: web.Request, record: RecordedRequest, reply: Reply, delay_s: float = 0.0
    ) -> web.StreamResponse:
        """A whole response, after ``delay_s``."""
        if delay_s:
            await asyncio.sleep(delay_s)
        headers = {"content-type": reply.content_type, **reply.headers}
        response = web.Response(status=reply.status, body=reply.body, headers=headers)
        try:
            await response.prepare(request)
            self._headers_sent(record, reply.status)
            await response.write_eof()
        except ConnectionError:
            self._state.disconnected(record)
            return response
        self._state.completed(record)
        return response

    async def run(
        self,
        request: web.Request,
        record: RecordedRequest,
        status: int,
        headers: dict[str, str],
        plan: Plan,
    ) -> web.StreamResponse:
        """A streamed response: headers, then each step after its pause, then the ending."""
        response = web.StreamResponse(status=status, headers=headers)
        if plan.header_delay_s:
            await asyncio.sleep(plan.header_delay_s)
        try:
            await response.prepare(request)
            self._headers_sent(record, status)
            for delay, data, chunks in plan.steps:
                if delay:
                    await asyncio.sleep(delay)
                if data:
                    await response.write(data)
                if chunks:
                    record.chunks_sent += chunks
                    if record.first_chunk_at is None:
                        record.first_chunk_at = time.monotonic()
            if plan.ending is Ending.CLOSE:
                self._state.completed(record)
                if request.transport is not None:
                    request.transport.close()
                return response
            await response.write_eof()
        except ConnectionError:
            self._state.disconnected(record)
            return response
        self._state.completed(record)
        return response

    def reset(self, request: web.Request, record: RecordedRequest) -> web.StreamResponse:
        """Abort the connection with a TCP RST before any response byte."""
        self._state.completed(record)
        transport = request.transport
        if transport is not None:
            sock = transport.get_extra_info("socket")
            if sock is not None:
                linger = struct.pack("ii", 1, 0)
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, linger)
            transport.abort()
        return web.StreamResponse()

    async def hang(self) -> web.StreamResponse:
        """Never answer; returns only by cancellation (client gone or simulator closing)."""
        await asyncio.get_running_loop().create_future()
        raise AssertionError("unreachable")
