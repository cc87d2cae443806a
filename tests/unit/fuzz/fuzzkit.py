"""Shared pieces of the fuzz tests: the decoders under test, recorded streams, a reference
SSE parser, and hypothesis strategies for chunk-shaped JSON.

Imported by the hypothesis tests (pytest puts this directory on ``sys.path``) and by the
atheris targets (``atheris_targets.py`` adds it itself).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hypothesis import strategies as st

from server.chat import Finish, ReasoningDelta, StreamEvent, TextDelta, ToolCallDelta
from server.providers.adapters import adapter_for
from server.providers.base import SseEvent, StreamDecoder, UpstreamError
from server.providers.sse import SseParser
from server.registry.llm import ApiSpec

FIXTURES = Path(__file__).resolve().parents[1] / "providers" / "fixtures"
SPEC_BY_DIR = {
    "openai": ApiSpec.OPENAI, "deepseek": ApiSpec.OPENAI, "openrouter": ApiSpec.OPENAI,
    "vllm": ApiSpec.OPENAI, "tgi": ApiSpec.OPENAI, "ollama": ApiSpec.OPENAI,
    "other-compatible": ApiSpec.OPENAI, "azure": ApiSpec.AZURE_OPENAI,
    "gemini": ApiSpec.GEMINI, "groq": ApiSpec.GROQ,
}
# Every decoder a provider adapter hands out (``new_decoder()``), by spec.
DECODERS: dict[str, Callable[[], StreamDecoder]] = {
    spec.value: adapter_for(spec).new_decoder for spec in ApiSpec
}


def examples(default: int) -> int:
    """``FUZZ_EXAMPLES`` scales every fuzz test (e.g. FUZZ_EXAMPLES=20000 for a long run)."""
    scale = os.environ.get("FUZZ_EXAMPLES")
    return int(scale) if scale else default


# -- recorded streams ------------------------------------------------------------------------


@dataclass(frozen=True)
class Recording:
    name: str
    spec: ApiSpec
    body: bytes


def recordings() -> list[Recording]:
    """Every recorded stream (.sse as is; .jsonl framed as SSE, with [DONE] except Gemini)."""
    out = []
    for path in sorted(FIXTURES.glob("*/*")):
        spec = SPEC_BY_DIR[path.parent.name]
        if path.suffix == ".sse":
            body = path.read_bytes()
        elif path.suffix == ".jsonl":
            lines = [ln for ln in path.read_bytes().splitlines() if ln.strip()]
            body = b"".join(b"data: " + ln + b"\n\n" for ln in lines)
            if spec is not ApiSpec.GEMINI:
                body += b"data: [DONE]\n\n"
        else:
            continue
        out.append(Recording(f"{path.parent.name}/{path.name}", spec, body))
    return out


@dataclass
class Decoded:
    """What a client would hold after a stream: content, and whether it finished or failed."""

    text: str = ""
    reasoning: str = ""
    calls: tuple[tuple[int, str, str, str], ...] = ()
    finish: Finish | None = None
    error: UpstreamError | None = None

    def content(self) -> tuple[str, str, tuple[tuple[int, str, str, str], ...]]:
        return self.text, self.reasoning, self.calls


def decode(spec: str, pieces: Sequence[bytes], max_event_bytes: int = 1 << 20) -> Decoded:
    """Pieces through a fresh parser and decoder, as the transport runs them. Only
    ``UpstreamError`` is caught: anything else escapes and fails the caller."""
    parser = SseParser(max_event_bytes)
    decoder = DECODERS[spec]()
    events: list[StreamEvent] = []
    out = Decoded()
    try:
        for piece in pieces:
            for sse in parser.feed(piece):
                events.extend(decoder.feed(sse))
        events.extend(decoder.close(parser.leftover()))
    except UpstreamError as exc:
        out.error = exc
    text: list[str] = []
    reasoning: list[str] = []
    calls: dict[int, list[str]] = {}
    for ev in events:
        if isinstance(ev, TextDelta):
            text.append(ev.text)
        elif isinstance(ev, ReasoningDelta):
            reasoning.append(ev.text)
        elif isinstance(ev, ToolCallDelta):
            call = calls.setdefault(ev.index, ["", "", ""])
            call[0] += ev.id
            call[1] += ev.name
            call[2] += ev.arguments_delta
        elif isinstance(ev, Finish):
            out.finish = ev
    out.text, out.reasoning = "".join(text), "".join(reasoning)
    out.calls = tuple((i, c[0], c[1], c[2]) for i, c in sorted(calls.items()))
    return out


# -- a reference SSE parser (WHATWG "Parsing an event stream", written for clarity) ----------


def reference_events(stream: bytes) -> list[SseEvent]:
    text = stream.decode("utf-8", "replace")
    if text.startswith("\ufeff"):
        text = text[1:]
    events: list[SseEvent] = []
    data, event_type = "", ""
    lines = text.replace("\r\n", "\n").replace("\r", "\n").split("\n")
    for line in lines[:-1]:  # the last piece has no line end: never processed
        if line == "":
            if data:
                events.append(SseEvent(data[:-1] if data.endswith("\n") else data, event_type))
            data, event_type = "", ""
            continue
        if line.startswith(":"):
            continue
        name, colon, value = line.partition(":")
        if colon and value.startswith(" "):
            value = value[1:]
        if name == "data":
            data += value + "\n"
        elif name == "event":
            event_type = value
    return events


# -- strategies ------------------------------------------------------------------------------


def split(body: bytes, cuts: list[int]) -> list[bytes]:
    points = sorted({c % (len(body) + 1) for c in cuts})
    return [body[a:b] for a, b in zip([0, *points], [*points, len(body)], strict=True)]


SSE_TOKENS = [b"data:", b"data: ", b"event:", b"event: error", b"id: 1", b"retry: 5", b":",
              b": keep-alive", b"\n", b"\r", b"\r\n", b"\n\n", b" ", b"x", b"{", b"}",
              b"[DONE]", b"\xef\xbb\xbf", b"\xf0\x9f\x98", b"\x80", b"\xff", b"data", b"\x00",
              "é".encode()]
sse_streams = st.lists(st.sampled_from(SSE_TOKENS), max_size=60).map(b"".join)

TEXTS = st.one_of(st.text(max_size=8), st.sampled_from(
    ["", " ", "<think>", "</think>", "<think>hm</think>", "\n", "{", '{"a":', "1}", "é😀"]))
SMALL_INTS = st.one_of(st.integers(-2, 3), st.none(), st.text(max_size=2), st.booleans())
FINISH_OPENAI = st.sampled_from([None, "stop", "length", "tool_calls", "content_filter",
                                 "error", "function_call", "weird", ""])
FINISH_GEMINI = st.sampled_from([None, "STOP", "MAX_TOKENS", "SAFETY", "MALFORMED_FUNCTION_CALL",
                                 "OTHER", ""])
ANY_SCALAR = st.one_of(st.none(), st.booleans(), st.integers(-5, 5), st.floats(allow_nan=False),
                       st.text(max_size=4))
ANY_JSON = st.recursive(ANY_SCALAR, lambda inner: st.one_of(
    st.lists(inner, max_size=3), st.dictionaries(st.text(max_size=6), inner, max_size=3)),
    max_leaves=8)


def maybe(strategy: st.SearchStrategy[Any], junk: st.SearchStrategy[Any] = ANY_JSON
          ) -> st.SearchStrategy[Any]:
    """Mostly the well-typed value; sometimes missing-as-None or any JSON at all."""
    return st.one_of(strategy, strategy, strategy, st.none(), junk)


def _drop_none(d: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in d.items() if v is not None}


openai_tool_call = st.builds(lambda index, tid, name, args: _drop_none({
    "index": index, "id": tid, "type": "function",
    "function": _drop_none({"name": name, "arguments": args})}),
    maybe(st.integers(0, 2)), maybe(st.sampled_from(["call_1", "call_2", ""])),
    maybe(st.sampled_from(["get_weather", "lookup", ""])), maybe(TEXTS))
openai_delta = st.builds(lambda role, content, reasoning, rc, refusal, calls: _drop_none({
    "role": role, "content": content, "reasoning": reasoning, "reasoning_content": rc,
    "refusal": refusal, "tool_calls": calls}),
    maybe(st.just("assistant")), maybe(TEXTS), maybe(TEXTS), maybe(TEXTS), maybe(TEXTS),
    maybe(st.lists(openai_tool_call, max_size=2)))
openai_usage = st.builds(lambda p, c, r: {"prompt_tokens": p, "completion_tokens": c,
                                          "completion_tokens_details": {"reasoning_tokens": r}},
                         SMALL_INTS, SMALL_INTS, SMALL_INTS)
openai_choice = st.builds(lambda index, delta, finish: _drop_none({
    "index": index, "delta": delta, "finish_reason": finish}),
    maybe(st.integers(0, 1)), maybe(openai_delta), maybe(FINISH_OPENAI))
openai_chunk = st.builds(lambda choices, usage, error, xg: _drop_none({
    "id": "chatcmpl-1", "object": "chat.completion.chunk", "choices": choices, "usage": usage,
    "error": error, "x_groq": xg}),
    maybe(st.lists(openai_choice, max_size=2)), st.one_of(st.none(), maybe(openai_usage)),
    st.one_of(st.none(), st.none(), st.none(), maybe(st.fixed_dictionaries(
        {"message": TEXTS, "code": SMALL_INTS}))),
    st.one_of(st.none(), st.none(), st.builds(lambda u: {"usage": u}, maybe(openai_usage))))

gemini_part = st.one_of(
    st.builds(lambda t, th, sig: _drop_none({"text": t, "thought": th, "thoughtSignature": sig}),
              maybe(TEXTS), st.one_of(st.none(), st.booleans()),
              st.one_of(st.none(), st.text(max_size=4))),
    st.builds(lambda name, args, fid, sig: _drop_none({"functionCall": _drop_none(
        {"name": name, "args": args, "id": fid}), "thoughtSignature": sig}),
        maybe(st.sampled_from(["get_weather", ""])), maybe(st.dictionaries(
            st.sampled_from(["city", "n"]), ANY_SCALAR, max_size=2)),
        st.one_of(st.none(), st.text(max_size=3)), st.one_of(st.none(), st.text(max_size=3))),
    st.builds(lambda name, will, partial: _drop_none({"functionCall": _drop_none({
        "name": name, "willContinue": will, "partialArgs": partial})}),
        maybe(st.sampled_from(["get_weather", ""])), maybe(st.booleans()),
        maybe(st.lists(st.builds(lambda p, v, w: _drop_none(
            {"jsonPath": p, "stringValue": v, "willContinue": w}),
            maybe(st.sampled_from(["$.city", "$.a[0]", "$['x']", "$", "bad["])), maybe(TEXTS),
            maybe(st.booleans())), max_size=2))),
)
gemini_candidate = st.builds(lambda parts, role, finish, index: _drop_none({
    "content": _drop_none({"parts": parts, "role": role}), "finishReason": finish,
    "index": index}),
    maybe(st.lists(gemini_part, max_size=3)), maybe(st.just("model")), maybe(FINISH_GEMINI),
    st.one_of(st.none(), st.integers(0, 1)))
gemini_chunk = st.builds(lambda cands, usage, feedback, error: _drop_none({
    "candidates": cands, "usageMetadata": usage, "promptFeedback": feedback, "error": error}),
    maybe(st.lists(gemini_candidate, max_size=2)),
    st.one_of(st.none(), maybe(st.fixed_dictionaries({
        "promptTokenCount": SMALL_INTS, "candidatesTokenCount": SMALL_INTS,
        "thoughtsTokenCount": SMALL_INTS}))),
    st.one_of(st.none(), st.none(), st.none(), maybe(st.fixed_dictionaries(
        {"blockReason": st.sampled_from(["SAFETY", "OTHER", ""])}))),
    st.one_of(st.none(), st.none(), st.none(), maybe(st.fixed_dictionaries(
        {"code": SMALL_INTS, "message": TEXTS, "status": st.sampled_from(
            ["UNAVAILABLE", "INVALID_ARGUMENT", ""])}))))

CHUNKS: dict[str, st.SearchStrategy[Any]] = {
    ApiSpec.OPENAI.value: openai_chunk,
    ApiSpec.AZURE_OPENAI.value: openai_chunk,
    ApiSpec.GROQ.value: openai_chunk,
    ApiSpec.GEMINI.value: gemini_chunk,
}
