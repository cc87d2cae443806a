"""The Connect protocol's wire format: codecs, envelopes, error JSON.

What this module knows (https://connectrpc.com/docs/protocol, version 1):

- Unary: ``POST /<service>/<method>`` with ``Content-Type: application/json`` or
  ``application/proto``; the body is the message; the response is ``200`` and the message, or
  an HTTP status mapped from the code and the error JSON.
- Server streaming: ``application/connect+json`` or ``application/connect+proto``; the
  request body is one envelope, the response is always ``200`` and a sequence of envelopes
  (flags byte, 4-byte big-endian length, payload) ending with an end-stream envelope (flag
  ``0x02``) whose JSON holds ``error`` when the call failed.
- Errors: ``{"code": "not_found", "message": ..., "details": [{"type", "value", "debug"}]}``
  where each detail is a ``google.rpc`` message, ``value`` its binary form in unpadded
  base64 and ``debug`` its JSON form (connect-es and ``buf curl`` read ``type`` + ``value``).

Compression: ``gzip`` and ``identity`` are accepted on requests; responses are identity.
"""

from __future__ import annotations

import base64
import gzip
import struct
from dataclasses import dataclass
from typing import Any

import orjson
from google.protobuf import json_format
from google.protobuf.message import DecodeError
from google.protobuf.message import Message as PbMessage
from google.rpc import code_pb2, status_pb2

from server.errors import InvalidArgument

# Flags of an envelope.
COMPRESSED = 0x01
END_STREAM = 0x02
_HEADER = struct.Struct(">BI")

# Google's mapping of codes to HTTP statuses, as the Connect spec gives it.
HTTP_STATUS = {
    "canceled": 499, "unknown": 500, "invalid_argument": 400, "deadline_exceeded": 504,
    "not_found": 404, "already_exists": 409, "permission_denied": 403,
    "resource_exhausted": 429, "failed_precondition": 400, "aborted": 409,
    "out_of_range": 400, "unimplemented": 501, "internal": 500, "unavailable": 503,
    "data_loss": 500, "unauthenticated": 401,
}
ENCODINGS = ("identity", "gzip")


class ProtocolError(Exception):
    """A request that breaks the protocol; ``code`` is the Connect code to answer with."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


@dataclass(frozen=True, slots=True)
class Codec:
    """``json`` or ``proto``: how messages are written on this call."""

    name: str

    def decode(self, data: bytes, message: PbMessage) -> None:
        try:
            if self.name == "proto":
                message.ParseFromString(data)
            else:
                json_format.Parse(data or b"{}", message, ignore_unknown_fields=True)
        except (DecodeError, json_format.ParseError, UnicodeDecodeError):
            # The parser's text may quote a value (a key): name the message type only.
            raise InvalidArgument(f"the request body is not a valid {self.name} "
                                  f"{message.DESCRIPTOR.full_name}",
                                  reason="MALFORMED_REQUEST") from None

    def encode(self, message: PbMessage) -> bytes:
        if self.name == "proto":
            return message.SerializeToString()
        return json_format.MessageToJson(message, indent=None).encode()


@dataclass(frozen=True, slots=True)
class CallShape:
    """What the request headers say about the call: streaming or not, and its codec."""

    streaming: bool
    codec: Codec

    @property
    def content_type(self) -> str:
        prefix = "application/connect+" if self.streaming else "application/"
        return prefix + self.codec.name


def shape_of(content_type: str) -> CallShape:
    """The call shape of a ``Content-Type`` (parameters such as ``charset`` are ignored)."""
    media = content_type.split(";", 1)[0].strip().lower()
    streaming = media.startswith("application/connect+")
    name = media.removeprefix("application/connect+" if streaming else "application/")
    if name not in ("json", "proto") or not media.startswith("application/"):
        raise ProtocolError("unimplemented",
                            f"unsupported content type {content_type!r}: use application/json, "
                            "application/proto, application/connect+json or "
                            "application/connect+proto")
    return CallShape(streaming, Codec(name))


def decompress(data: bytes, encoding: str) -> bytes:
    encoding = (encoding or "identity").lower()
    if encoding == "identity":
        return data
    if encoding == "gzip":
        try:
            return gzip.decompress(data)
        except (OSError, EOFError) as exc:
            raise ProtocolError("invalid_argument", f"bad gzip body: {exc}") from None
    raise ProtocolError("unimplemented",
                        f"unsupported compression {encoding!r}; accepted: identity, gzip")


def envelope(payload: bytes, flags: int = 0) -> bytes:
    return _HEADER.pack(flags, len(payload)) + payload


def single_envelope(body: bytes, encoding: str) -> bytes:
    """The payload of the one request envelope of a server-streaming call."""
    if len(body) < _HEADER.size:
        raise ProtocolError("invalid_argument", "the streaming request has no envelope")
    flags, size = _HEADER.unpack_from(body)
    payload = body[_HEADER.size:]
    if len(payload) != size:
        raise ProtocolError("invalid_argument",
                            "a server-streaming request carries exactly one message envelope")
    if flags & COMPRESSED:
        return decompress(payload, encoding)
    return payload


def code_name(code: int) -> str:
    """The Connect name of a ``google.rpc.Code`` number (``canceled`` with one l)."""
    name = code_pb2.Code.Name(code).lower() if code in code_pb2.Code.values() else "unknown"
    return "canceled" if name == "cancelled" else name


def _detail(any_pb: Any) -> dict[str, Any]:
    type_name = any_pb.type_url.rsplit("/", 1)[-1]
    out: dict[str, Any] = {"type": type_name,
                           "value": base64.b64encode(any_pb.value).decode().rstrip("=")}
    try:
        out["debug"] = orjson.loads(json_format.MessageToJson(any_pb, indent=None))
        out["debug"].pop("@type", None)
    except (TypeError, json_format.Error):  # a type this process does not know: value only
        pass
    return out


def error_json(status: status_pb2.Status) -> dict[str, Any]:
    """The Connect error object of a rich ``google.rpc.Status``."""
    out: dict[str, Any] = {"code": code_name(status.code), "message": status.message}
    if status.details:
        out["details"] = [_detail(d) for d in status.details]
    return out


def plain_error(code: str, message: str) -> dict[str, Any]:
    return {"code": code, "message": message}


def end_stream(error: dict[str, Any] | None) -> bytes:
    body: dict[str, Any] = {} if error is None else {"error": error}
    return envelope(orjson.dumps(body), END_STREAM)
