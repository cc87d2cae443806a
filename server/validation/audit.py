"""Reads a streamed answer the way a strict client would, and notes every deviation.

``StreamAudit`` is the ``Sink`` of an exchange. It runs the shared SSE parser, inspects each
event's raw JSON against the spec's chunk shape (Chat Completions or Gemini), and records
what it saw: events, first content time, role, text, reasoning and its dialect, tool calls,
finish reasons, usage, the terminator, and problems by kind. It keeps going after a problem,
so one broken rule yields one failed check rather than a cascade.

It also feeds the provider adapter's own ``StreamDecoder`` (what conversations use) and keeps
its first error in ``runtime_error``: a stream the gateway cannot use never validates.
"""

from __future__ import annotations

import re
from typing import Any

import orjson

from server.chat import Usage
from server.providers.adapters import adapter_for
from server.providers.base import SseEvent, StreamDecoder, UpstreamError
from server.providers.errors import classify_error_object
from server.providers.sse import SseParser
from server.registry.llm import ApiSpec
from server.vault.redact import quote

_KNOWN_FIELDS = frozenset({b"data", b"event", b"id", b"retry"})
_LINE_BREAK = re.compile(rb"\r\n|\r|\n")
_FIELD_NAME = re.compile(rb"[A-Za-z][A-Za-z0-9_-]*")  # a raw JSON tail line is not a field
_HEAD_BYTES = 64
MAX_NOTES = 3  # problems kept per kind


def snippet(data: str | bytes, limit: int = 80) -> str:
    """A short, scrubbed, printable quote of wire data."""
    text = data.decode("utf-8", "replace") if isinstance(data, bytes) else data
    text = "".join(ch if ch.isprintable() else "\ufffd" for ch in text[: limit * 2])
    return quote(text, limit)


class StreamAudit:
    """Spec-neutral bookkeeping; ``ChatAudit`` and ``GeminiAudit`` read the chunks."""

    def __init__(self, spec: ApiSpec, max_event_bytes: int = 1024 * 1024) -> None:
        adapter = adapter_for(spec)
        self.label: str = getattr(adapter, "label", "The endpoint")
        self._parser = SseParser(max_event_bytes)
        self._decoder: StreamDecoder | None = adapter.new_decoder()
        self._line_head = b""
        self.broken = ""  # the parser gave up (an event larger than max_event_bytes)
        self.events = 0  # data events
        self.chunks = 0  # data events holding a JSON object
        self.raw_bytes = 0
        self.first_bytes = b""
        self.first_content_at: float | None = None
        self.unknown_fields: list[str] = []
        self.non_json: list[str] = []
        self.schema: list[str] = []
        self.content_problems: list[str] = []
        self.errors: list[str] = []
        self.errors_after = 0  # content events before the first error event
        self.runtime_error: UpstreamError | None = None
        self.role_checked = False
        self.first_role: str | None = None
        self.text: list[str] = []
        self.dialect = ""
        self.tools: list[str] = []
        self.finish_reasons: list[str] = []
        self.usage_seen = False
        self.usage: Usage | None = None
        self.done = False
        self.after_done = 0
        self.leftover = b""
        self.blocked = ""

    # -- the Sink protocol ---------------------------------------------------------------------

    @property
    def content_seen(self) -> bool:
        return self.first_content_at is not None

    def feed(self, chunk: bytes, now: float) -> None:
        self.raw_bytes += len(chunk)
        if len(self.first_bytes) < _HEAD_BYTES:
            self.first_bytes += chunk[: _HEAD_BYTES - len(self.first_bytes)]
        self._scan_fields(chunk)
        if self.broken:
            return
        try:
            events = self._parser.feed(chunk)
        except UpstreamError as exc:
            self.broken = exc.message
            return
        for event in events:
            self._event(event, now)

    def close(self) -> None:
        """End of the body: inspects what is left after the last complete event."""
        if not self.broken:
            self.leftover = self._parser.leftover()
        tail = self.leftover.strip()
        if tail:
            body = tail[5:].strip() if tail.startswith(b"data:") else tail
            try:
                obj = orjson.loads(body)
            except orjson.JSONDecodeError:
                obj = None
            if isinstance(obj, list) and obj:
                obj = obj[-1]
            if isinstance(obj, dict) and obj.get("error"):
                self._error(obj)
                self.leftover = b""
        if self._decoder is not None and not self.broken:
            try:
                for ev in self._decoder.close(tail):
                    if isinstance(ev, Usage):
                        self.usage = ev
            except UpstreamError as exc:
                self.runtime_error = exc

    # -- what was seen -------------------------------------------------------------------------

    @property
    def answer(self) -> str:
        return "".join(self.text)

    @property
    def reasoning(self) -> bool:
        return bool(self.dialect)

    @property
    def finish_reason(self) -> str:
        return self.finish_reasons[-1] if self.finish_reasons else ""

    # -- internals -----------------------------------------------------------------------------

    def _scan_fields(self, chunk: bytes) -> None:
        """Notes SSE lines whose field the parser would silently drop (``error: {...}``)."""
        lines = _LINE_BREAK.split(self._line_head + chunk)
        self._line_head = lines.pop()[:_HEAD_BYTES]
        for line in lines:
            if not line or line.startswith(b":") or len(self.unknown_fields) >= MAX_NOTES:
                continue
            name = line.split(b":", 1)[0]
            if name not in _KNOWN_FIELDS and _FIELD_NAME.fullmatch(name):
                self.unknown_fields.append(snippet(line[:_HEAD_BYTES], 60))

    def _event(self, event: SseEvent, now: float) -> None:
        self.events += 1
        if self.done:
            self.after_done += 1
            return
        self._run_decoder(event)
        if event.data == "[DONE]" and self.terminator:
            self.done = True
            return
        try:
            obj = orjson.loads(event.data)
        except orjson.JSONDecodeError:
            if event.event == "error":
                self._error({"error": event.data})
            else:
                self._note(self.non_json, f"event {self.events} is not JSON: "
                           f"{snippet(event.data)!r}")
            return
        if not isinstance(obj, dict):
            self._note(self.schema, f"event {self.events} is a JSON {type(obj).__name__}, "
                       "not an object")
            return
        if obj.get("error") or event.event == "error":
            self._error(obj)
            return
        self.chunks += 1
        if self._chunk(obj) and self.first_content_at is None:
            self.first_content_at = now

    def _run_decoder(self, event: SseEvent) -> None:
        if self._decoder is None:
            return
        try:
            for ev in self._decoder.feed(event):
                if isinstance(ev, Usage):
                    self.usage = ev
        except UpstreamError as exc:
            self.runtime_error = exc
            self._decoder = None

    def _error(self, obj: object) -> None:
        if not self.errors:
            self.errors_after = len(self.text) + len(self.tools)
        self._note(self.errors, classify_error_object(obj, label=self.label).message)

    @staticmethod
    def _note(bucket: list[str], text: str) -> None:
        if len(bucket) < MAX_NOTES:
            bucket.append(text)

    def _problem(self, text: str) -> None:
        self._note(self.schema, f"event {self.events}: {text}")

    def _reasoned(self, dialect: str) -> None:
        if not self.dialect:
            self.dialect = dialect

    # -- per spec ------------------------------------------------------------------------------

    terminator = False  # whether ``data: [DONE]`` ends the stream

    def _chunk(self, obj: dict[str, Any]) -> bool:
        """Inspects one JSON chunk; True when it carried content."""
        raise NotImplementedError


class ChatAudit(StreamAudit):
    """Chat Completions chunks (OpenAI, Azure OpenAI, Groq, OpenAI-compatible servers)."""

    terminator = True

    def _chunk(self, obj: dict[str, Any]) -> bool:
        kind = obj.get("object")
        if kind in ("chat.completion", "text_completion"):
            what = ("a complete (non-streaming) chat.completion object" if kind ==
                    "chat.completion" else "a legacy /v1/completions text_completion chunk")
            self._problem(f"{what} instead of a chat.completion.chunk")
            return False
        if isinstance(obj.get("usage"), dict):
            self.usage_seen = True
        groq = obj.get("x_groq")
        if isinstance(groq, dict) and isinstance(groq.get("usage"), dict):
            self.usage_seen = True
        choices = obj.get("choices")
        if choices is None:
            if not self.usage_seen:
                self._problem("no `choices` array")
            return False
        if not isinstance(choices, list):
            self._problem(f"`choices` is a {type(choices).__name__}, not an array")
            return False
        content = False
        for choice in choices:
            if not isinstance(choice, dict):
                self._problem("an item of `choices` is not an object")
                continue
            index = choice.get("index", 0)
            if not isinstance(index, int) or isinstance(index, bool):
                self._problem("`choices[].index` is not an integer")
            elif index == 0:
                content |= self._choice(choice)
        return content

    def _choice(self, choice: dict[str, Any]) -> bool:
        reason = choice.get("finish_reason")
        if isinstance(reason, str) and reason:
            self.finish_reasons.append(reason)
        elif reason is not None and not isinstance(reason, str):
            self._problem("`finish_reason` is neither a string nor null")
        if "delta" not in choice:
            if "text" in choice:
                self._problem("`choices[].text` (legacy completions) instead of `delta`")
            elif "message" in choice:
                self._problem("`choices[].message` (a non-streaming response) instead of "
                              "`delta`")
            elif reason is None:
                self._problem("a choice without `delta`")
            return False
        delta = choice["delta"]
        if not isinstance(delta, dict):
            self._problem("`delta` is not an object")
            return False
        if not self.role_checked and delta:
            self.role_checked = True
            role = delta.get("role")
            self.first_role = role if isinstance(role, str) else None
        return self._delta(delta)

    def _delta(self, delta: dict[str, Any]) -> bool:
        content = False
        text = delta.get("content")
        if isinstance(text, str):
            if text:
                content = True
                self.text.append(text)
                if self.answer.lstrip().startswith("<think>"):
                    self._reasoned("think_tags")
        elif text is not None:
            self._note(self.content_problems, f"event {self.events}: delta.content is a "
                       f"{type(text).__name__}, not a string")
        for key in ("reasoning_content", "reasoning"):
            value = delta.get(key)
            if isinstance(value, str) and value:
                self._reasoned(key)
                content = True
        refusal = delta.get("refusal")
        if isinstance(refusal, str) and refusal:
            self.text.append(refusal)
            content = True
        calls = delta.get("tool_calls")
        if isinstance(calls, list):
            for call in calls:
                fn = call.get("function") if isinstance(call, dict) else None
                if not isinstance(fn, dict):
                    self._note(self.content_problems, f"event {self.events}: a tool_calls "
                               "item without a `function` object")
                    continue
                content = True
                if isinstance(fn.get("name"), str) and fn["name"]:
                    self.tools.append(fn["name"])
        elif calls is not None:
            self._note(self.content_problems, f"event {self.events}: delta.tool_calls is not "
                       "an array")
        return content


class GeminiAudit(StreamAudit):
    """Gemini ``GenerateContentResponse`` events."""

    def _chunk(self, obj: dict[str, Any]) -> bool:
        if isinstance(obj.get("usageMetadata"), dict):
            self.usage_seen = True
        candidates = obj.get("candidates")
        if candidates is None:
            feedback = obj.get("promptFeedback")
            if isinstance(feedback, dict) and feedback.get("blockReason"):
                self.blocked = snippet(str(feedback["blockReason"]), 40)
            elif not isinstance(feedback, dict) and not self.usage_seen:
                self._problem("neither `candidates` nor `promptFeedback`")
            return False
        if not isinstance(candidates, list) or not candidates:
            self._problem("`candidates` is not a non-empty array")
            return False
        cand = candidates[0]
        if not isinstance(cand, dict):
            self._problem("`candidates[0]` is not an object")
            return False
        reason = cand.get("finishReason")
        if isinstance(reason, str) and reason:
            self.finish_reasons.append(reason)
        body = cand.get("content")
        if body is None:
            return False
        if not isinstance(body, dict):
            self._problem("`content` is not an object")
            return False
        parts = body.get("parts")
        if parts is None:
            return False
        if not isinstance(parts, list):
            self._problem("`content.parts` is not an array")
            return False
        if not self.role_checked and parts:
            self.role_checked = True
            role = body.get("role")
            self.first_role = role if isinstance(role, str) else None
        return any([self._part(part) for part in parts])

    def _part(self, part: object) -> bool:
        if not isinstance(part, dict):
            self._problem("an item of `parts` is not an object")
            return False
        call = part.get("functionCall")
        if isinstance(call, dict):
            if isinstance(call.get("name"), str):
                self.tools.append(call["name"])
            return True
        text = part.get("text")
        if text is None:
            return False
        if not isinstance(text, str):
            self._note(self.content_problems, f"event {self.events}: a part's `text` is a "
                       f"{type(text).__name__}, not a string")
            return False
        if not text:
            return False
        if part.get("thought") is True:
            self._reasoned("thought_parts")
        else:
            self.text.append(text)
        return True


def new_audit(spec: ApiSpec) -> StreamAudit:
    return GeminiAudit(spec) if spec is ApiSpec.GEMINI else ChatAudit(spec)
