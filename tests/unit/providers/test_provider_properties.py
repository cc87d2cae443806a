"""Properties: byte boundaries never change the result; junk never escapes as anything but
``UpstreamError``."""

from __future__ import annotations

import contextlib
import os
from typing import Any

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from server.providers.adapters import adapter_for
from server.providers.base import SseEvent, UpstreamError
from server.providers.sse import SseParser
from server.registry.llm import ApiSpec
from tests.unit.providers._provider_testkit import (
    Outcome,
    decode_fixture,
    decode_pieces,
    fixture_names,
    load_reply,
    spec_of,
)

STREAMS = [n for n in fixture_names() if n.endswith((".sse", ".jsonl"))]
NON_ASCII = [n for n in STREAMS if any(b > 127 for b in load_reply(n).body)]


def normal(o: Outcome) -> tuple[object, ...]:
    err = (o.error.kind, o.error.message) if o.error else None
    return (o.text, o.reasoning, o.tool_calls, o.usage, o.finish, err)


def split(body: bytes, cuts: list[int]) -> list[bytes]:
    points = sorted(set(cuts))
    return [body[a:b] for a, b in zip([0, *points], [*points, len(body)], strict=True)]


def test_non_ascii_fixtures_exist() -> None:
    assert NON_ASCII, "some recorded streams carry multi-byte UTF-8 (emoji, accents)"


@pytest.mark.parametrize("name", STREAMS)
def test_byte_by_byte_equals_whole(name: str) -> None:
    body = load_reply(name).body
    whole = decode_fixture(name)
    assert normal(decode_fixture(name, [body[i : i + 1] for i in range(len(body))])) == normal(
        whole
    )


@pytest.mark.parametrize("name", STREAMS)
@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_any_split_equals_whole(name: str, data: st.DataObject) -> None:
    body = load_reply(name).body
    cuts = data.draw(st.lists(st.integers(0, len(body)), max_size=60), label="cuts")
    assert normal(decode_fixture(name, split(body, cuts))) == normal(decode_fixture(name))


@pytest.mark.parametrize("name", NON_ASCII)
def test_every_multibyte_character_split(name: str) -> None:
    """Cut the stream inside every multi-byte UTF-8 sequence, one cut at a time."""
    body = load_reply(name).body
    whole = normal(decode_fixture(name))
    inside = [i for i in range(1, len(body)) if 0x80 <= body[i] < 0xC0]  # continuation bytes
    for i in inside:
        assert normal(decode_fixture(name, [body[:i], body[i:]])) == whole


# -- fuzz -------------------------------------------------------------------------------------

ADAPTERS = [adapter_for(spec) for spec in ApiSpec]


@settings(max_examples=300, deadline=None)
@given(st.lists(st.binary(max_size=200), max_size=12))
def test_random_bytes_only_raise_upstream_error(chunks: list[bytes]) -> None:
    for adapter in ADAPTERS:
        decode_pieces(adapter, chunks)  # returns an Outcome; any other exception fails


@settings(max_examples=300, deadline=None)
@given(
    st.lists(
        st.sampled_from(
            [
                b"data:",
                b" ",
                b"\n",
                b"\r",
                b":",
                b"event",
                b"{",
                b"\xf0\x9f",
                b"x",
                b"[DONE]",
                b"\xff",
            ]
        ),
        max_size=80,
    )
)
def test_sse_shaped_noise_only_raises_upstream_error(tokens: list[bytes]) -> None:
    body = b"".join(tokens)
    parser = SseParser(max_event_bytes=64)
    with contextlib.suppress(UpstreamError):
        parser.feed(body)
    for adapter in ADAPTERS:
        decode_pieces(adapter, [body])


# JSON shaped like real chunks: known keys with values of any type, so every field access in
# the decoders meets the wrong type somewhere.
KEYS = [
    "choices",
    "delta",
    "index",
    "content",
    "reasoning",
    "reasoning_content",
    "refusal",
    "tool_calls",
    "function",
    "name",
    "arguments",
    "id",
    "finish_reason",
    "usage",
    "prompt_tokens",
    "completion_tokens",
    "completion_tokens_details",
    "reasoning_tokens",
    "x_groq",
    "error",
    "message",
    "code",
    "object",
    "text",
    "candidates",
    "parts",
    "thought",
    "thoughtSignature",
    "functionCall",
    "args",
    "willContinue",
    "partialArgs",
    "jsonPath",
    "stringValue",
    "finishReason",
    "usageMetadata",
    "promptTokenCount",
    "candidatesTokenCount",
    "thoughtsTokenCount",
    "promptFeedback",
    "blockReason",
    "responseId",
    "status",
    "details",
]
SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-3, 3),
    st.floats(allow_nan=False),
    st.sampled_from(
        [
            "",
            "stop",
            "STOP",
            "tool_calls",
            "length",
            "$.a",
            "$.a[0]",
            "<think>",
            "</think>",
            "error",
            "{",
            '{"a":1}',
            "MALFORMED_FUNCTION_CALL",
        ]
    ),
    st.text(max_size=5),
)
JSONISH = st.recursive(
    SCALARS,
    lambda inner: st.one_of(
        st.lists(inner, max_size=3), st.dictionaries(st.sampled_from(KEYS), inner, max_size=5)
    ),
    max_leaves=15,
)


@settings(max_examples=500, deadline=None)
@given(
    st.lists(st.tuples(JSONISH, st.sampled_from(["", "error"])), max_size=6), st.binary(max_size=20)
)
def test_chunk_shaped_json_only_raises_upstream_error(
    events: list[tuple[Any, str]], leftover: bytes
) -> None:
    for adapter in ADAPTERS:
        decoder = adapter.new_decoder()
        try:
            for value, name in events:
                decoder.feed(SseEvent(orjson.dumps(value).decode(), name))
            decoder.close(leftover)
        except UpstreamError:
            pass


def _events_of(name: str) -> list[SseEvent]:
    return SseParser().feed(load_reply(name).body)


RECORDED = [(n, _events_of(n)) for n in STREAMS]


def _paths(value: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Every node of a JSON value, as a path of keys/indexes (the root is ``()``)."""
    out = [prefix]
    items = (
        value.items()
        if isinstance(value, dict)
        else (enumerate(value) if isinstance(value, list) else ())
    )
    for k, v in items:
        out.extend(_paths(v, (*prefix, k)))
    return out


def _replace(value: Any, path: tuple[Any, ...], new: Any) -> Any:
    if not path:
        return new
    copy = dict(value) if isinstance(value, dict) else list(value)
    copy[path[0]] = _replace(value[path[0]], path[1:], new)
    return copy


# (fixture, its events, index of one JSON event, that event parsed, every path in it)
TARGETS = [
    (name, events, i, value, _paths(value))
    for name, events in RECORDED
    for i, ev in enumerate(events)
    if ev.data.startswith("{")
    for value in [orjson.loads(ev.data)]
]


@settings(max_examples=int(os.environ.get("FUZZ_EXAMPLES", "400")), deadline=None)
@given(st.sampled_from(TARGETS), st.data())
def test_mutated_recordings_only_raise_upstream_error(
    target: tuple[str, list[SseEvent], int, Any, list[tuple[Any, ...]]], data: st.DataObject
) -> None:
    """Real streams with one node of one event (chosen uniformly) replaced by random JSON:
    reaches deep fields the generator above rarely builds (tool-call pieces, partialArgs,
    usage details). FUZZ_EXAMPLES=20000 for a longer run."""
    name, events, i, value, paths = target
    path = data.draw(st.sampled_from(paths), label="path")
    new = _replace(value, path, data.draw(JSONISH, label="new value"))
    mutated = SseEvent(orjson.dumps(new).decode())
    decoder = adapter_for(spec_of(name)).new_decoder()
    with contextlib.suppress(UpstreamError):
        for ev in [*events[:i], mutated, *events[i + 1 :]]:
            decoder.feed(ev)
        decoder.close(b"")
