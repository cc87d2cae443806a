"""The incremental SSE parser against the WHATWG rules (and its memory bound)."""

from __future__ import annotations

import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from server.providers.base import ErrorKind, SseEvent, UpstreamError
from server.providers.sse import SseParser


def parse(*chunks: bytes) -> list[SseEvent]:
    parser = SseParser()
    out: list[SseEvent] = []
    for c in chunks:
        out.extend(parser.feed(c))
    return out


def bytewise(data: bytes) -> list[SseEvent]:
    return parse(*(data[i : i + 1] for i in range(len(data))))


@pytest.mark.parametrize("eol", [b"\n", b"\r\n", b"\r"])
def test_line_endings(eol: bytes) -> None:
    data = b"data: a" + eol + b"data: b" + eol + eol + b"event: x" + eol + b"data: c" + eol + eol
    want = [SseEvent("a\nb"), SseEvent("c", "x")]
    assert parse(data) == want
    assert bytewise(data) == want


def test_crlf_split_between_reads_is_one_line_ending() -> None:
    # "\r" ends one read and "\n" starts the next: still one line end, not a blank line.
    assert parse(b"data: a\r", b"\ndata: b\r\n\r\n") == [SseEvent("a\nb")]
    assert parse(b"data: a\r", b"\n", b"\r\n") == [SseEvent("a")]


def test_one_optional_space_removed_and_no_space_allowed() -> None:
    assert parse(b"data:x\n\n", b"data:  y\n\n") == [SseEvent("x"), SseEvent(" y")]


def test_comments_unknown_fields_and_events_without_data() -> None:
    data = (
        b": OPENROUTER PROCESSING\n\n"
        b'id: 7\nretry: 100\nerror: {"old llama.cpp"}\ndata: {}\n\n'
        b"event: ping\n\n"
        b"data\n\n"  # a field name without colon: empty data, still an event
    )
    assert parse(data) == [SseEvent("{}"), SseEvent("")]


def test_event_name_resets_after_dispatch() -> None:
    assert parse(b"event: error\ndata: 1\n\ndata: 2\n\n") == [
        SseEvent("1", "error"),
        SseEvent("2"),
    ]


def test_multibyte_utf8_split_across_reads() -> None:
    data = "data: héllo 🧡 wörld\n\n".encode()
    assert bytewise(data) == [SseEvent("héllo 🧡 wörld")]


def test_invalid_utf8_becomes_replacement_character() -> None:
    assert parse(b"data: a\xffb\n\n") == [SseEvent("a\ufffdb")]


def test_bom_is_dropped_even_when_split() -> None:
    assert parse(b"\xef\xbb", b"\xbfdata: x\n\n") == [SseEvent("x")]
    assert parse(b"\xef\xbb\xbfdata: y\n\n") == [SseEvent("y")]


def test_leftover_holds_everything_after_the_last_event() -> None:
    parser = SseParser()
    assert parser.feed(b'data: 1\n\n{\n  "error": {\n    "code": 503') == [SseEvent("1")]
    parser.feed(b"\n  }\n}")
    assert parser.leftover() == b'{\n  "error": {\n    "code": 503\n  }\n}'


def test_leftover_empty_after_clean_end() -> None:
    parser = SseParser()
    parser.feed(b"data: 1\r\n\r\n")
    assert parser.leftover() == b""


def test_incomplete_event_is_not_dispatched() -> None:
    parser = SseParser()
    assert parser.feed(b"data: partial\n") == []
    assert parser.leftover() == b"data: partial\n"


def test_event_size_is_bounded_without_line_end() -> None:
    parser = SseParser(max_event_bytes=1024)
    parser.feed(b"data: " + b"x" * 600)
    with pytest.raises(UpstreamError) as err:
        parser.feed(b"x" * 600)
    assert err.value.kind is ErrorKind.PROTOCOL


def test_event_size_is_bounded_across_many_lines() -> None:
    parser = SseParser(max_event_bytes=1024)
    with pytest.raises(UpstreamError) as err:
        for _ in range(100):
            parser.feed(b"data: " + b"y" * 50 + b"\n")
    assert err.value.kind is ErrorKind.PROTOCOL


def test_many_events_in_one_read_under_the_bound() -> None:
    parser = SseParser(max_event_bytes=1024)
    events = parser.feed(b"data: 0123456789\n\n" * 1000)
    assert len(events) == 1000


def test_large_event_within_the_bound_arrives_whole() -> None:
    payload = b"z" * 3_000_000
    chunks = [b"data: "] + [payload[i : i + 65536] for i in range(0, len(payload), 65536)]
    assert parse(*chunks, b"\n\n") == [SseEvent(payload.decode())]


@pytest.mark.parametrize(
    ("data", "want"),
    [
        (b"data: a\n\n\ndata: b\n\n", ["a", "b"]),
        (b"data: a\r\rdata: b\r\n\ndata: c\n\r\n", ["a", "b", "c"]),
        (b"data: a\n\n\n\n\ndata: b\n\n", ["a", "b"]),
    ],
)
def test_runs_of_line_endings(data: bytes, want: list[str]) -> None:
    assert [e.data for e in parse(data)] == want
    assert [e.data for e in bytewise(data)] == want


def test_bom_fed_byte_by_byte() -> None:
    assert bytewise(b"\xef\xbb\xbfdata: x\n\n") == [SseEvent("x")]
    assert bytewise(b"\xefdata: x\n\n") == []  # not a BOM: the field is "\ufffddata"


def reference(stream: bytes) -> list[SseEvent]:
    """A direct transcription of the WHATWG algorithm over the whole decoded stream."""
    text = stream.decode("utf-8", "replace")
    text = text.removeprefix("\ufeff")
    lines = re.split(r"\r\n|\r|\n", text)[:-1]  # the last piece has no line end yet
    events: list[SseEvent] = []
    data: list[str] = []
    event = ""
    for line in lines:
        if not line:
            if data:
                events.append(SseEvent("\n".join(data), event))
            data, event = [], ""
            continue
        if line.startswith(":"):
            continue
        name, colon, value = line.partition(":")
        if colon and value.startswith(" "):
            value = value[1:]
        if name == "data":
            data.append(value)
        elif name == "event":
            event = value
    return events


TOKENS = st.sampled_from(
    [
        b"data:",
        b"data: ",
        b"data",
        b"event:",
        b"event: error",
        b"id: 1",
        b"retry: 5",
        b":",
        b": ka",
        b"x",
        b"{}",
        b" ",
        "é".encode(),
        "🧡".encode(),
        b"\xff",
        b"\n",
        b"\r",
        b"\r\n",
        b"\n\n",
        b"\xef\xbb\xbf",
    ]
)


@settings(max_examples=400, deadline=None)
@given(st.lists(TOKENS, max_size=40), st.data())
def test_matches_the_reference_algorithm_for_any_split(
    tokens: list[bytes], data: st.DataObject
) -> None:
    stream = b"".join(tokens)
    cuts = sorted(set(data.draw(st.lists(st.integers(0, len(stream)), max_size=8))))
    pieces = [stream[a:b] for a, b in zip([0, *cuts], [*cuts, len(stream)], strict=True)]
    assert parse(*pieces) == reference(stream)
