"""The gRPC-Web wire format (https://github.com/grpc/grpc/blob/master/doc/PROTOCOL-WEB.md).

What this module knows:

- ``POST /<service>/<method>`` with ``Content-Type: application/grpc-web`` (``+proto`` or
  ``+json``), or ``application/grpc-web-text`` (``+proto``), whose whole body is base64.
- The request body is one message envelope (flags byte, 4-byte big-endian length, payload;
  flag ``0x01``: compressed with ``grpc-encoding``); the deadline is ``grpc-timeout``
  (``<digits><H|M|S|m|u|n>``).
- The response is ``200``, the message envelopes, then one trailer envelope (flag ``0x80``)
  holding ``grpc-status``, a percent-encoded ``grpc-message`` and, for a failed call,
  ``grpc-status-details-bin`` (the rich ``google.rpc.Status``, base64), as HTTP/1 header lines.
  In text mode each written piece is base64 by itself (clients decode piece by piece).
"""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass

from google.rpc import code_pb2, status_pb2

from server.connect.protocol import Codec, ProtocolError, envelope, single_envelope

TRAILERS = 0x80
_UNITS = {"H": 3600.0, "M": 60.0, "S": 1.0, "m": 1e-3, "u": 1e-6, "n": 1e-9}
_MAX_TIMEOUT_DIGITS = 8  # as the gRPC spec bounds TimeoutValue


def is_grpc_web(content_type: str) -> bool:
    return content_type.split(";", 1)[0].strip().lower().startswith("application/grpc-web")


@dataclass(frozen=True, slots=True)
class WebShape:
    """A gRPC-Web call's codec and whether its body is base64 (``grpc-web-text``)."""

    codec: Codec
    text: bool
    content_type: str

    def frame(self, payload: bytes, flags: int = 0) -> bytes:
        out = envelope(payload, flags)
        return base64.b64encode(out) if self.text else out

    def trailers(self, status: status_pb2.Status) -> bytes:
        lines = [f"grpc-status: {status.code}",
                 f"grpc-message: {_percent_encoded(status.message)}"]
        if status.code != code_pb2.OK:
            details = base64.b64encode(status.SerializeToString()).decode().rstrip("=")
            lines.append(f"grpc-status-details-bin: {details}")
        return self.frame(("\r\n".join(lines) + "\r\n").encode(), TRAILERS)

    def request_message(self, body: bytes, encoding: str) -> bytes:
        if self.text:
            try:
                body = base64.b64decode(body, validate=False)
            except (binascii.Error, ValueError):
                raise ProtocolError("invalid_argument",
                                    "the grpc-web-text body is not base64") from None
        return single_envelope(body, encoding)


def _percent_encoded(message: str) -> str:
    """``grpc-message`` as the gRPC spec writes it: bytes outside 0x20-0x7E, and ``%``, as %XX."""
    return "".join(c if " " <= c <= "~" and c != "%" else
                   "".join(f"%{b:02X}" for b in c.encode()) for c in message)


def shape_of(content_type: str) -> WebShape:
    media = content_type.split(";", 1)[0].strip().lower()
    text = media.startswith("application/grpc-web-text")
    suffix = media.removeprefix("application/grpc-web-text" if text else "application/grpc-web")
    name = {"": "proto", "+proto": "proto", "+json": "json"}.get(suffix)
    if name is None or (text and name == "json"):
        raise ProtocolError("unimplemented",
                            f"unsupported content type {content_type!r}: use "
                            "application/grpc-web(+proto|+json) or application/grpc-web-text")
    return WebShape(Codec(name), text, media)


def timeout_s(header: str | None) -> float | None:
    """The seconds of a ``grpc-timeout`` header, None when absent."""
    if header is None:
        return None
    value, unit = header[:-1], header[-1:]
    if not value.isdigit() or len(value) > _MAX_TIMEOUT_DIGITS or unit not in _UNITS:
        raise ProtocolError("invalid_argument",
                            f"grpc-timeout {header[:20]!r} is not <1-8 digits><H|M|S|m|u|n>")
    return int(value) * _UNITS[unit]


def status_of(error: ProtocolError) -> status_pb2.Status:
    """The ``google.rpc.Status`` of a protocol error (its code is a Connect code name)."""
    name = "CANCELLED" if error.code == "canceled" else error.code.upper()
    return status_pb2.Status(code=code_pb2.Code.Value(name), message=error.message)
