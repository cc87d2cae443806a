"""Decoder for Gemini ``streamGenerateContent?alt=sse`` streams.

* Each event is a full ``GenerateContentResponse`` whose ``parts`` are NEW parts only, while
  ``usageMetadata`` is cumulative: ``Usage`` is emitted once, at the end, from the last values
  (input = prompt + tool-use prompt tokens, output = candidate tokens, reasoning = thought
  tokens; output excludes reasoning, as for every adapter).
* Parts with ``thought: true`` are reasoning. ``functionCall`` parts arrive whole and become
  one ``ToolCallDelta`` each (args JSON-serialised, ``id`` from Gemini or generated, and the
  part's ``thoughtSignature``). Vertex's opt-in streamed arguments (``willContinue`` and
  ``partialArgs``) are assembled and emitted when the call closes.
* A signature on a text part (including the trailing ``{"text":"","thoughtSignature":…}``)
  is the text's signature: ``Finish.thought_signature``.
* There is no ``[DONE]``: success needs a ``finishReason`` before the connection closes. A
  ``STOP`` after function calls is reported as ``TOOL_CALLS``.
* Errors: ``{"error":…}`` in an event, a raw JSON error appended at EOF (``close(leftover)``),
  a prompt blocked by ``promptFeedback.blockReason``.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

import orjson

from server.chat import (
    Finish,
    FinishReason,
    ReasoningDelta,
    StreamEvent,
    TextDelta,
    ToolCallDelta,
    Usage,
)
from server.providers._common import json_text
from server.providers.base import ErrorKind, SseEvent, UpstreamError
from server.providers.errors import classify_error_object
from server.providers.gemini_request import GENERATED_ID_PREFIX
from server.vault.redact import quote

_LABEL = "Gemini"

_FINISH = {
    "STOP": FinishReason.STOP,
    "MAX_TOKENS": FinishReason.LENGTH,
    "SAFETY": FinishReason.CONTENT_FILTER,
    "RECITATION": FinishReason.CONTENT_FILTER,
    "BLOCKLIST": FinishReason.CONTENT_FILTER,
    "PROHIBITED_CONTENT": FinishReason.CONTENT_FILTER,
    "SPII": FinishReason.CONTENT_FILTER,
    "IMAGE_SAFETY": FinishReason.CONTENT_FILTER,
    "IMAGE_PROHIBITED_CONTENT": FinishReason.CONTENT_FILTER,
    "IMAGE_RECITATION": FinishReason.CONTENT_FILTER,
}
# Finish reasons that mean the model failed to produce a usable turn: retrying may help.
_FAILED = frozenset({"MALFORMED_FUNCTION_CALL", "UNEXPECTED_TOOL_CALL"})

_MAX_INDEX = 10_000  # a jsonPath index beyond this is not a real argument list
_PATH_TOKEN = re.compile(r"\.([^.\[\]]+)|\[(\d+)\]|\['([^']*)'\]")


def _int(value: object) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) else 0


def normalise_usage(meta: dict[str, Any]) -> Usage:
    return Usage(
        input_tokens=_int(meta.get("promptTokenCount")) + _int(meta.get("toolUsePromptTokenCount")),
        output_tokens=_int(meta.get("candidatesTokenCount")),
        reasoning_tokens=_int(meta.get("thoughtsTokenCount")),
    )


def _protocol(what: str) -> UpstreamError:
    return UpstreamError(ErrorKind.PROTOCOL, f"{_LABEL} sent {what}")


def _path_tokens(path: str) -> list[str | int]:
    tokens: list[str | int] = []
    pos = 1 if path.startswith("$") else 0
    for m in _PATH_TOKEN.finditer(path, pos):
        if m.start() != pos:
            break
        tokens.append(int(m.group(2)) if m.group(2) is not None else (m.group(1) or m.group(3)))
        pos = m.end()
    if not tokens or pos != len(path):
        raise _protocol(f"a streamed function-call argument with an unsupported path {path!r}")
    return tokens


def _set_path(root: dict[str, Any], path: str, value: object, append: bool) -> None:
    """Set ``value`` at a JSONPath like ``$.a.b[0]`` in ``root`` (string pieces append)."""
    tokens = _path_tokens(path)
    node: Any = root
    for i, tok in enumerate(tokens):
        if isinstance(tok, int):
            if not isinstance(node, list) or tok > _MAX_INDEX:
                raise _protocol(f"conflicting streamed function-call arguments at {path!r}")
            node.extend([None] * (tok + 1 - len(node)))
            current = node[tok]
        elif isinstance(node, dict):
            current = node.get(tok)
        else:
            raise _protocol(f"conflicting streamed function-call arguments at {path!r}")
        if i == len(tokens) - 1:
            joined = append and isinstance(current, str) and isinstance(value, str)
            node[tok] = f"{current}{value}" if joined else value
        elif current is None:
            node[tok] = current = [] if isinstance(tokens[i + 1], int) else {}
        node = current


class _Partial:
    __slots__ = ("args", "id", "name", "ordinal")

    def __init__(self, ordinal: int, call_id: str, name: str) -> None:
        self.ordinal = ordinal
        self.id = call_id
        self.name = name
        self.args: dict[str, Any] = {}


class GeminiDecoder:
    """``StreamDecoder`` for Gemini SSE. One instance per upstream attempt."""

    __slots__ = ("_calls", "_finish", "_partial", "_signature", "_usage")

    def __init__(self) -> None:
        self._calls = 0
        self._partial: _Partial | None = None
        self._signature = ""
        self._usage: dict[str, Any] | None = None
        self._finish: str | None = None

    def feed(self, event: SseEvent) -> Sequence[StreamEvent]:
        try:
            obj = orjson.loads(event.data)
        except orjson.JSONDecodeError:
            raise _protocol("an event whose data is not JSON") from None
        if not isinstance(obj, dict):
            raise _protocol("an event whose data is not a JSON object")
        if obj.get("error"):
            raise classify_error_object(obj, label=_LABEL)
        if isinstance(meta := obj.get("usageMetadata"), dict):
            self._usage = meta
        candidates = obj.get("candidates")
        if not candidates or not isinstance(candidates, list):
            self._check_blocked(obj)
            return ()
        cand = candidates[0]
        if not isinstance(cand, dict):
            raise _protocol("a candidate that is not a JSON object")
        out: list[StreamEvent] = []
        content = cand.get("content")
        parts = content.get("parts") if isinstance(content, dict) else None
        if isinstance(parts, list):
            response_id = obj.get("responseId")
            rid = response_id if isinstance(response_id, str) else ""
            for part in parts:
                if isinstance(part, dict):
                    self._part(part, rid, out)
        reason = cand.get("finishReason")
        if reason and isinstance(reason, str):
            self._finish = reason
        return out

    def close(self, leftover: bytes) -> Sequence[StreamEvent]:
        tail = leftover.strip()
        if tail:
            self._raise_if_error_tail(tail)
        if self._partial is not None:
            raise _protocol(f"a streamed function call {self._partial.name!r} that never closed")
        if self._finish is None:
            if tail:
                raise _protocol(
                    f"{len(tail)} bytes that are not a complete server-sent event, then closed "
                    "the stream before a finishReason"
                )
            raise UpstreamError(
                ErrorKind.INCOMPLETE,
                f"{_LABEL} closed the stream before sending a finishReason; the answer is "
                "truncated",
            )
        if self._finish in _FAILED:
            raise UpstreamError(
                ErrorKind.STREAM_ERROR,
                f"{_LABEL} could not produce a valid tool call (finishReason {self._finish})",
            )
        out: list[StreamEvent] = []
        if self._usage is not None:
            out.append(normalise_usage(self._usage))
        reason = _FINISH.get(self._finish, FinishReason.OTHER)
        if reason is FinishReason.STOP and self._calls:
            reason = FinishReason.TOOL_CALLS  # Gemini has no tool finish reason
        out.append(Finish(reason, provider_reason=self._finish, thought_signature=self._signature))
        return out

    # -- internals ---------------------------------------------------------------------------

    def _part(self, part: dict[str, Any], rid: str, out: list[StreamEvent]) -> None:
        signature = part.get("thoughtSignature")
        signature = signature if isinstance(signature, str) else ""
        if "functionCall" in part:
            self._function_call(part["functionCall"], signature, rid, out)
            return
        text = part.get("text")
        if text and isinstance(text, str):
            out.append(ReasoningDelta(text) if part.get("thought") else TextDelta(text))
        if signature and not self._signature:
            self._signature = signature

    def _new_id(self, fc: dict[str, Any], rid: str) -> str:
        given = fc.get("id")
        if isinstance(given, str) and given:
            return given
        return (
            f"{GENERATED_ID_PREFIX}{rid}-{self._calls}"
            if rid
            else (f"{GENERATED_ID_PREFIX}{self._calls}")
        )

    def _function_call(self, fc: object, signature: str, rid: str, out: list[StreamEvent]) -> None:
        if not isinstance(fc, dict):
            raise _protocol("a functionCall that is not a JSON object")
        if self._partial is not None or fc.get("willContinue") or "partialArgs" in fc:
            self._streamed_call(fc, signature, rid, out)
            return
        name = fc.get("name")
        if not name or not isinstance(name, str):
            raise _protocol("a functionCall without a name")
        args = fc.get("args")
        text = json_text(args if isinstance(args, dict) else {})
        if text is None:
            raise _protocol("functionCall args nested too deeply")
        out.append(ToolCallDelta(self._calls, self._new_id(fc, rid), name, text, signature))
        self._calls += 1

    def _streamed_call(
        self, fc: dict[str, Any], signature: str, rid: str, out: list[StreamEvent]
    ) -> None:
        """Vertex ``streamFunctionCallArguments``: a named opener, ``partialArgs`` pieces, and
        an empty ``functionCall`` that closes the call."""
        name = fc.get("name")
        if name and isinstance(name, str):
            if self._partial is not None:
                raise _protocol(f"a new function call before {self._partial.name!r} closed")
            self._partial = _Partial(self._calls, self._new_id(fc, rid), name)
            self._calls += 1
            out.append(ToolCallDelta(self._partial.ordinal, self._partial.id, name, "", signature))
        call = self._partial
        if call is None:
            raise _protocol("streamed function-call arguments without an opening functionCall")
        pieces = fc.get("partialArgs") or []
        if not isinstance(pieces, list):
            raise _protocol("a partialArgs value that is not a list")
        for piece in pieces:
            if not isinstance(piece, dict) or not isinstance(piece.get("jsonPath"), str):
                raise _protocol("a partialArgs entry without a jsonPath")
            self._apply_piece(call, piece)
        if not fc.get("willContinue") and not name:
            text = json_text(call.args)
            if text is None:
                raise _protocol("streamed function-call arguments nested too deeply")
            out.append(ToolCallDelta(call.ordinal, arguments_delta=text))
            self._partial = None

    @staticmethod
    def _apply_piece(call: _Partial, piece: dict[str, Any]) -> None:
        path = piece["jsonPath"]
        if "stringValue" in piece:
            _set_path(call.args, path, str(piece["stringValue"]), append=True)
        elif "numberValue" in piece:
            _set_path(call.args, path, piece["numberValue"], append=False)
        elif "boolValue" in piece:
            _set_path(call.args, path, bool(piece["boolValue"]), append=False)
        elif "nullValue" in piece:
            _set_path(call.args, path, None, append=False)

    @staticmethod
    def _check_blocked(obj: dict[str, Any]) -> None:
        feedback = obj.get("promptFeedback")
        reason = feedback.get("blockReason") if isinstance(feedback, dict) else None
        if reason:
            raise UpstreamError(
                ErrorKind.CONTENT_FILTERED,
                f"{_LABEL} blocked the prompt (blockReason {quote(str(reason), 64)}); rephrase "
                "the request or adjust the safety settings",
                provider_code=quote(str(reason), 64),
            )

    @staticmethod
    def _raise_if_error_tail(tail: bytes) -> None:
        """Gemini can append a raw (pretty-printed) JSON error with no SSE framing."""
        body = tail[5:].strip() if tail.startswith(b"data:") else tail
        try:
            obj = orjson.loads(body)
        except orjson.JSONDecodeError:
            return
        if isinstance(obj, list) and obj:  # the non-SSE array form: [{"error": …}]
            obj = obj[-1]
        if isinstance(obj, dict) and obj.get("error"):
            raise classify_error_object(obj, label=_LABEL)
