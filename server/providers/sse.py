"""An incremental server-sent events parser (WHATWG "Parsing an event stream").

``SseParser.feed(chunk)`` takes bytes exactly as they come off the socket (any split: half a
line, several events, a CRLF or a multi-byte character cut in two) and returns the events that
became complete. ``leftover()`` returns the bytes after the last complete event, for the
decoder to inspect at end of stream (Gemini can append a raw JSON error without SSE framing).

Rules implemented: CRLF, LF and lone CR line endings; a blank line ends an event; ``field:value``
with one optional space after the colon removed; repeated ``data:`` lines joined with ``\\n``;
``:`` comments ignored; ``event:`` names kept; unknown fields (``id``, ``retry``, anything else)
ignored; an event without ``data`` is not dispatched; a leading UTF-8 BOM is dropped.

How: line endings are normalised to LF as bytes arrive (a CRLF split across reads is handled),
so an event boundary is always ``\\n\\n``. Bytes after the last boundary stay buffered, raw,
until their boundary arrives; only then is the event split into lines and decoded. CR and LF
never occur inside a multi-byte UTF-8 sequence, so a character split across reads is always
whole when decoded. Invalid UTF-8 becomes U+FFFD, as the standard says.

Cost: per read, one ``rfind`` over the new bytes (never over the buffered ones, so a large
event arriving in many reads stays linear), and per event a ``split`` and a few slices. There
is no per-byte Python loop. Memory: an event larger than ``max_event_bytes`` raises
``UpstreamError(PROTOCOL)`` instead of growing the buffer without limit.
"""

from __future__ import annotations

from server.providers.base import ErrorKind, SseEvent, UpstreamError

DEFAULT_MAX_EVENT_BYTES = 8 * 1024 * 1024

_BOM = b"\xef\xbb\xbf"
_LF = 0x0A
_CR = 0x0D
_COLON = 0x3A


class SseParser:
    """Incremental WHATWG event-stream parser. One instance per response."""

    __slots__ = ("_max", "_skip_lf", "_started", "_tail", "_tail_size")

    def __init__(self, max_event_bytes: int = DEFAULT_MAX_EVENT_BYTES) -> None:
        self._max = max_event_bytes
        self._tail: list[bytes] = []  # normalised bytes after the last event boundary
        self._tail_size = 0
        self._skip_lf = False  # the previous read ended with CR: drop a leading LF
        self._started = False  # the BOM check is done

    def feed(self, chunk: bytes) -> list[SseEvent]:
        """Consume ``chunk``; return the events it completed (often none or one)."""
        if self._skip_lf and chunk:
            self._skip_lf = False
            if chunk[0] == _LF:
                chunk = chunk[1:]
        if not chunk:
            return []
        if not self._started:
            chunk = self._strip_bom(chunk)
            if not chunk:
                return []
        # bytes.find, not `in`: Python 3.11's `bytes in bytes` first tries the operand as an
        # int and raises (and clears) a formatted TypeError, about 2,000 instructions a test.
        if chunk.find(b"\r") >= 0:
            self._skip_lf = chunk[-1] == _CR
            chunk = chunk.replace(b"\r\n", b"\n").replace(b"\r", b"\n")
        tail = self._tail
        end = chunk.rfind(b"\n\n")
        if end >= 0:
            if tail:
                end += self._tail_size
                tail.append(chunk)
                chunk = b"".join(tail)
        elif tail and chunk[0] == _LF and tail[-1][-1] == _LF:
            end = self._tail_size - 1  # the boundary straddles the two reads
            tail.append(chunk)
            chunk = b"".join(tail)
        else:
            tail.append(chunk)
            self._tail_size += len(chunk)
            if self._tail_size > self._max:
                raise self._too_big()
            return []
        rest = chunk[end + 2 :]
        self._tail = [rest] if rest else []
        self._tail_size = len(rest)
        if self._tail_size > self._max:
            raise self._too_big()
        return self._events(chunk[:end])

    def leftover(self) -> bytes:
        """The bytes after the last complete event (line endings normalised to LF)."""
        return b"".join(self._tail)

    # -- internals ---------------------------------------------------------------------------

    def _strip_bom(self, chunk: bytes) -> bytes:
        if self._tail:  # the first bytes were too few to tell
            chunk = self._tail.pop() + chunk
        if len(chunk) < len(_BOM) and _BOM.startswith(chunk):
            self._tail.append(chunk)
            return b""
        self._started = True
        return chunk[len(_BOM) :] if chunk.startswith(_BOM) else chunk

    def _events(self, complete: bytes) -> list[SseEvent]:
        out: list[SseEvent] = []
        for block in complete.split(b"\n\n"):
            if len(block) > self._max:
                raise self._too_big()
            if block.startswith(b"data:") and block.find(b"\n") < 0:  # the common case
                value = block[5:]
                if value[:1] == b" ":
                    value = value[1:]
                out.append(SseEvent(value.decode("utf-8", "replace")))
            elif block:
                self._block(block, out)
        return out

    @staticmethod
    def _block(block: bytes, out: list[SseEvent]) -> None:
        data: list[bytes] = []
        event = b""
        for line in block.split(b"\n"):
            if not line:  # a blank line inside the block (a run of 3+ line ends)
                if data:
                    out.append(_event(data, event))
                data, event = [], b""
                continue
            if line[0] == _COLON:  # comment / keep-alive
                continue
            name, colon, value = line.partition(b":")
            if colon and value[:1] == b" ":
                value = value[1:]
            if name == b"data":
                data.append(value)
            elif name == b"event":
                event = value
            # id, retry and unknown fields are ignored
        if data:
            out.append(_event(data, event))

    def _too_big(self) -> UpstreamError:
        return UpstreamError(
            ErrorKind.PROTOCOL,
            f"upstream sent a server-sent event larger than {self._max // 1024} KiB; the "
            "stream is not valid SSE or the event is too big",
        )


def _event(data: list[bytes], event: bytes) -> SseEvent:
    raw = data[0] if len(data) == 1 else b"\n".join(data)
    return SseEvent(
        raw.decode("utf-8", "replace"), event.decode("utf-8", "replace") if event else ""
    )
