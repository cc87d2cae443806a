"""Types and helpers shared by the wire formats."""

from __future__ import annotations

import math
import random
import string
from dataclasses import dataclass, field
from typing import Protocol

from server.simulator.answer import Answer
from server.simulator.behavior import FaultKind, Spec

_ALNUM = string.ascii_letters + string.digits
_LOWER_ALNUM = string.ascii_lowercase + string.digits

HTML_502 = (
    b"<html>\r\n<head><title>502 Bad Gateway</title></head>\r\n<body>\r\n"
    b"<center><h1>502 Bad Gateway</h1></center>\r\n<hr><center>cloudflare</center>\r\n"
    b"</body>\r\n</html>\r\n"
)


@dataclass(frozen=True, slots=True)
class Reply:
    """A complete, non-streamed HTTP response."""

    status: int
    body: bytes
    content_type: str = "application/json"
    headers: dict[str, str] = field(default_factory=dict)


@dataclass(slots=True)
class Encoded:
    """The bytes of one streamed answer, pre-encoded, cut where faults can strike.

    The body is ``preamble`` (goes out with the headers), ``head`` (the role chunk, written
    together with the first content chunk), ``content`` (one frame per content chunk),
    ``tail`` (finish and usage events) and ``done`` (the terminator). ``error_frame`` is the
    in-band error a MIDSTREAM_ERROR_AT fault sends instead of the rest; ``malformed`` is a
    data line that is not JSON. If ``finish_in_last`` the last content frame carries the
    finish reason (Gemini), so faults aimed "after the end" strike before it.
    """

    status: int
    headers: dict[str, str]
    preamble: bytes
    head: bytes
    content: list[bytes]
    tail: bytes
    done: bytes
    error_frame: bytes
    malformed: bytes
    finish_in_last: bool = False


@dataclass(frozen=True, slots=True)
class Quirks:
    """Request options and fault switches that change how an answer is framed."""

    include_usage: bool = False  # OpenAI stream_options.include_usage
    no_role: bool = False
    no_usage: bool = False
    sse: bool = True  # Gemini ?alt=sse; False streams a JSON array
    raw_tail: bool = False  # Gemini mid-stream error as a raw JSON tail


@dataclass(frozen=True, slots=True)
class ErrorContext:
    """What an error body may mention."""

    model: str = ""
    method: str = "POST"
    path: str = ""
    retry_after_s: float | None = None
    status: int = 0
    api_key: str = ""
    message: str = ""
    param: str | None = None
    gemini_sse: bool = True  # Gemini labels errors on ?alt=sse requests text/event-stream


class WireFormat(Protocol):
    """One provider's framing of answers and errors."""

    spec: Spec

    def stream(self, answer: Answer, quirks: Quirks, rng: random.Random) -> Encoded: ...

    def completion(self, answer: Answer, quirks: Quirks, rng: random.Random) -> Reply: ...

    def http_error(self, kind: FaultKind, ctx: ErrorContext) -> Reply: ...

    def missing_key(self, ctx: ErrorContext) -> Reply: ...

    def bad_request(self, ctx: ErrorContext) -> Reply: ...

    def unknown_path(self, ctx: ErrorContext) -> Reply: ...


def rand_id(rng: random.Random, length: int, alphabet: str = _ALNUM) -> str:
    return "".join(rng.choices(alphabet, k=length))


def rand_lower(rng: random.Random, length: int) -> str:
    return rand_id(rng, length, _LOWER_ALNUM)


def rand_hex(rng: random.Random, length: int) -> str:
    return f"{rng.getrandbits(length * 4):0{length}x}"


def rand_uuid(rng: random.Random) -> str:
    h = rand_hex(rng, 32)
    return f"{h[:8]}-{h[8:12]}-4{h[13:16]}-a{h[17:20]}-{h[20:]}"


def retry_headers(retry_after_s: float | None, *, with_ms: bool) -> dict[str, str]:
    """``retry-after`` in whole seconds (rounded up), plus ``retry-after-ms`` if asked."""
    if retry_after_s is None:
        return {}
    headers = {"retry-after": str(math.ceil(retry_after_s))}
    if with_ms:
        headers["retry-after-ms"] = str(round(retry_after_s * 1000))
    return headers


def finish_reason(answer: Answer) -> str:
    """The OpenAI-family finish reason."""
    if answer.finish_reason:
        return answer.finish_reason
    return "tool_calls" if answer.tool_calls else "stop"


def garbage_bytes(rng: random.Random, size: int = 2048) -> bytes:
    """Random bytes that are not SSE: no ``data:`` field, no blank-line event boundary."""
    raw = bytearray(rng.getrandbits(8) for _ in range(size))
    return bytes(raw).replace(b"\n", b"\x00").replace(b"\r", b"\x01")
