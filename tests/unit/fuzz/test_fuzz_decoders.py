"""Every provider's stream decoder (``new_decoder()`` of each adapter) under hypothesis.

Inputs: random bytes, SSE-shaped noise, JSON built in the shape of each provider's chunks
(right keys, wrong or missing values), and recorded real streams cut short or corrupted at
random. Properties: nothing but ``UpstreamError`` escapes; a decoder that reports success has
complete tool calls; and a stream cut short is never a success with less content than the
whole stream ("a truncated answer is never a success").

``FUZZ_EXAMPLES=20000`` runs every test here that much longer.
"""

from __future__ import annotations

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from server.chat import StreamEvent, ToolCallDelta
from server.providers.base import SseEvent, UpstreamError
from tests.unit.fuzz.fuzzkit import (
    CHUNKS,
    DECODERS,
    SSE_TOKENS,
    TEXTS,
    Recording,
    decode,
    examples,
    recordings,
    split,
    sse_streams,
)

FAST = settings(deadline=None, suppress_health_check=[HealthCheck.too_slow])
SPECS = sorted(DECODERS)
RECORDINGS = recordings()
WHOLE = {r.name: decode(r.spec.value, [r.body]) for r in RECORDINGS}


def test_there_is_a_decoder_per_spec_and_recordings_for_each() -> None:
    assert SPECS == ["azure_openai", "gemini", "groq", "openai"]
    assert {r.spec.value for r in RECORDINGS} == set(SPECS)
    assert sum(1 for d in WHOLE.values() if d.finish is not None and d.error is None) >= 20


@pytest.mark.parametrize("spec", SPECS)
@settings(FAST, max_examples=examples(400))
@given(pieces=st.lists(st.binary(max_size=200), max_size=12))
def test_random_bytes(spec: str, pieces: list[bytes]) -> None:
    decode(spec, pieces)


@pytest.mark.parametrize("spec", SPECS)
@settings(FAST, max_examples=examples(400))
@given(stream=sse_streams, cuts=st.lists(st.integers(0, 1000), max_size=6))
def test_sse_shaped_noise(spec: str, stream: bytes, cuts: list[int]) -> None:
    decode(spec, split(stream, cuts), max_event_bytes=256)


EVENT_NAMES = st.sampled_from(["", "", "", "error", "message"])


@pytest.mark.parametrize("spec", SPECS)
@settings(FAST, max_examples=examples(200))
@given(data=st.data())
def test_chunk_shaped_json(spec: str, data: st.DataObject) -> None:
    """Chunks with the provider's keys and random values; sometimes [DONE], sometimes a bare
    value, sometimes an unterminated tail at the end."""
    items = data.draw(st.lists(st.one_of(
        st.tuples(CHUNKS[spec].map(lambda c: orjson.dumps(c).decode()), EVENT_NAMES),
        st.tuples(st.sampled_from(["[DONE]", "", "null", "[]", '"x"', "{", "1"]), EVENT_NAMES),
    ), max_size=8), label="events")
    leftover = data.draw(st.one_of(st.just(b""), st.binary(max_size=20), CHUNKS[spec].map(
        lambda c: b"data: " + orjson.dumps(c))), label="leftover")
    decoder = DECODERS[spec]()
    out: list[StreamEvent] = []
    try:
        for text, name in items:
            out.extend(decoder.feed(SseEvent(text, name)))
        out.extend(decoder.close(leftover))
    except UpstreamError:
        return
    if any(type(e).__name__ == "Finish" for e in out):  # a success: its tool calls are whole
        calls: dict[int, list[str]] = {}
        for e in out:
            if isinstance(e, ToolCallDelta):
                call = calls.setdefault(e.index, ["", "", ""])
                call[0] += e.id
                call[1] += e.name
                call[2] += e.arguments_delta
        for tid, name, args in calls.values():
            assert tid and name, calls
            assert isinstance(orjson.loads(args), dict), args


@settings(FAST, max_examples=examples(1500))
@given(recording=st.sampled_from(RECORDINGS), data=st.data())
def test_a_recording_cut_short_is_never_a_success_with_less(recording: Recording,
                                                            data: st.DataObject) -> None:
    body = recording.body
    cut = data.draw(st.integers(0, len(body) - 1), label="cut")
    cuts = data.draw(st.lists(st.integers(0, cut), max_size=4), label="reads")
    prefix = decode(recording.spec.value, split(body[:cut], cuts))
    if prefix.finish is not None and prefix.error is None:
        assert prefix.content() == WHOLE[recording.name].content(), (recording.name, cut)


MUTATIONS = st.lists(st.tuples(st.sampled_from(["flip", "drop", "insert"]),
                               st.integers(0, 1 << 30), st.binary(min_size=1, max_size=4)),
                     min_size=1, max_size=4)


@settings(FAST, max_examples=examples(800))
@given(recording=st.sampled_from(RECORDINGS), mutations=MUTATIONS,
       cuts=st.lists(st.integers(0, 1 << 30), max_size=5))
def test_a_corrupted_recording_only_raises_upstream_error(
        recording: Recording, mutations: list[tuple[str, int, bytes]], cuts: list[int]) -> None:
    body = bytearray(recording.body)
    for op, at, value in mutations:
        at %= len(body) + 1
        if op == "flip" and at < len(body):
            body[at] ^= value[0] or 1
        elif op == "drop":
            del body[at:at + len(value)]
        else:
            body[at:at] = value
    decode(recording.spec.value, split(bytes(body), cuts))


@settings(FAST, max_examples=examples(500))
@given(recording=st.sampled_from(RECORDINGS), junk=st.one_of(
    st.sampled_from(SSE_TOKENS), TEXTS.map(str.encode), st.binary(max_size=30)))
def test_junk_after_a_recording_never_breaks_the_decoder(recording: Recording,
                                                         junk: bytes) -> None:
    decode(recording.spec.value, [recording.body, junk])
