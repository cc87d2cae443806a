"""An incremental server-sent events parser (WHATWG "Parsing an event stream").

``SseParser.feed(chunk)`` takes bytes exactly as they come off the socket (any split: half a
line, several events, a CRLF or a multi-byte character cut in two) and returns the events that
became complete. ``leftover()`` returns the bytes after the last complete event, for the
decoder to inspect at end of stream (Gemini can append a raw JSON error without SSE framing).

Rules implemented: CRLF, LF and lone CR line endings; a blank line ends an event; ``field:value``
with one optional space after the colon removed; repeated ``data:`` lines joined with ``\\n``;
``:`` comments ignored; ``event:`` names kept; unknown fields (``id``, ``retry``, anything else)
ignored; an event without ``data`` is not dispatched; a leading UTF-8 BOM is dropped.

Text is decoded only from complete lines. CR and LF never occur inside a multi-byte UTF-8
sequence, so a character split across reads is always reassembled before decoding. Invalid
UTF-8 becomes U+FFFD, as the standard says.

Memory is bounded: an event (its raw lines plus any unterminated tail) larger than
``max_event_bytes`` raises ``UpstreamError(PROTOCOL)`` instead of growing without limit.
The work per chunk is a few ``bytes.rfind``/``splitlines`` calls plus one small loop per line;
there is no per-byte Python loop.
"""

from __future__ import annotations

from server.providers.base import ErrorKind, SseEvent, UpstreamError

DEFAULT_MAX_EVENT_BYTES = 8 * 1024 * 1024

_BOM = b"\xef\xbb\xbf"
_CR = 0x0D
_COLON = 0x3A


class SseParser:
    """Incremental WHATWG event-stream parser. One instance per response."""

    __slots__ = (
        "_data",
        "_event",
        "_max",
        "_pending",
        "_pending_size",
        "_skip_lf",
        "_started",
        "_tail",
        "_tail_size",
    )

    def __init__(self, max_event_bytes: int = DEFAULT_MAX_EVENT_BYTES) -> None:
        self._max = max_event_bytes
        self._tail: list[bytes] = []  # bytes after the last line terminator
        self._tail_size = 0
        self._pending: list[bytes] = []  # raw lines of the event being built
        self._pending_size = 0
        self._data: list[bytes] = []  # its data values
        self._event = b""  # its event type
        self._skip_lf = False  # the previous chunk ended with CR: drop a leading LF
        self._started = False  # the BOM check has been done

    def feed(self, chunk: bytes) -> list[SseEvent]:
        """Consume ``chunk``; return the events completed by it (often none or one)."""
        if not chunk:
            return []
        if self._skip_lf:
            self._skip_lf = False
            if chunk[0] == 0x0A:
                chunk = chunk[1:]
                if not chunk:
                    return []
        if not self._started:
            chunk = self._strip_bom(chunk)
            if not chunk:
                return []
        end = max(chunk.rfind(b"\n"), chunk.rfind(b"\r"))
        if end < 0:  # no line ends yet: keep the piece (joined later, so no quadratic copy)
            self._tail.append(chunk)
            self._tail_size += len(chunk)
            self._check_size(self._pending_size + self._tail_size)
            return []
        if self._tail:
            head = b"".join(self._tail)
            end += len(head)
            chunk = head + chunk
            self._tail.clear()
        last = len(chunk) - 1
        if end < last:
            rest = chunk[end + 1 :]
            self._tail.append(rest)
            self._tail_size = len(rest)
        else:
            self._tail_size = 0
            # A CR at the very end may be the first half of a CRLF split across reads.
            self._skip_lf = chunk[last] == _CR
        return self._lines(chunk[: end + 1].splitlines())

    def leftover(self) -> bytes:
        """The bytes after the last complete event: undispatched lines plus the open tail."""
        tail = b"".join(self._tail)
        if not self._pending:
            return tail
        return b"\n".join(self._pending) + b"\n" + tail

    # -- internals ---------------------------------------------------------------------------

    def _strip_bom(self, chunk: bytes) -> bytes:
        buffered = b"".join(self._tail) + chunk
        if len(buffered) < len(_BOM) and _BOM.startswith(buffered):
            self._tail = [chunk] if not self._tail else [*self._tail, chunk]
            self._tail_size = len(buffered)
            return b""
        self._started = True
        self._tail.clear()
        self._tail_size = 0
        return buffered[len(_BOM) :] if buffered.startswith(_BOM) else buffered

    def _lines(self, lines: list[bytes]) -> list[SseEvent]:
        out: list[SseEvent] = []
        data = self._data
        pending = self._pending
        size = self._pending_size
        for line in lines:
            if not line:  # blank line: dispatch
                if data:
                    raw = data[0] if len(data) == 1 else b"\n".join(data)
                    out.append(
                        SseEvent(
                            raw.decode("utf-8", "replace"),
                            self._event.decode("utf-8", "replace") if self._event else "",
                        )
                    )
                    data.clear()
                self._event = b""
                pending.clear()
                size = 0
                continue
            pending.append(line)
            size += len(line) + 1
            if size > self._max:
                self._check_size(size)
            if line.startswith(b"data:"):
                value = line[5:]
                data.append(value[1:] if value[:1] == b" " else value)
            elif line[0] != _COLON:  # not a comment
                name, _, value = line.partition(b":")
                if name == b"event":
                    self._event = value[1:] if value[:1] == b" " else value
                elif name == b"data":  # "data" without a colon: an empty data line
                    data.append(b"")
                # id, retry and unknown fields are ignored
        self._pending_size = size
        self._check_size(size + self._tail_size)
        return out

    def _check_size(self, size: int) -> None:
        if size > self._max:
            raise UpstreamError(
                ErrorKind.PROTOCOL,
                f"upstream sent a server-sent event larger than {self._max // 1024} KiB "
                "without an event boundary; the stream is not valid SSE or the event is too big",
            )
