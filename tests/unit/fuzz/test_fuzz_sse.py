"""The SSE parser under hypothesis: it agrees with a reference implementation of the WHATWG
algorithm whatever the read boundaries, its buffer never outgrows ``max_event_bytes``, and
nothing but ``UpstreamError`` ever escapes it.

``FUZZ_EXAMPLES=20000`` runs every test here that much longer.
"""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from server.providers.base import SseEvent, UpstreamError
from server.providers.sse import SseParser
from tests.unit.fuzz.fuzzkit import SSE_TOKENS, examples, reference_events, split, sse_streams

FAST = settings(deadline=None, suppress_health_check=[HealthCheck.too_slow])


def feed_all(pieces: list[bytes], max_event_bytes: int = 1 << 20) -> list[SseEvent]:
    parser = SseParser(max_event_bytes)
    return [event for piece in pieces for event in parser.feed(piece)]


@settings(FAST, max_examples=examples(1000))
@given(sse_streams, st.lists(st.integers(0, 10_000), max_size=12))
def test_matches_the_reference_parser_at_any_read_boundaries(stream: bytes,
                                                             cuts: list[int]) -> None:
    assert feed_all(split(stream, cuts)) == reference_events(stream)


@settings(FAST, max_examples=examples(1000))
@given(st.lists(st.one_of(st.binary(max_size=40), st.sampled_from(SSE_TOKENS)), max_size=40),
       st.lists(st.integers(0, 10_000), max_size=12))
def test_read_boundaries_never_change_the_result_even_at_the_size_limit(
        parts: list[bytes], cuts: list[int]) -> None:
    """With a 64-byte limit: whole and chunked reads both fail, or give the same events.

    The parser measures an event with up to two of the line ends around it, depending on
    where the reads split a run of line ends, so an event within 2 bytes of the limit may
    pass or fail by read boundaries (harmless: the bound on memory holds either way)."""
    stream = b"".join(parts)

    def run(pieces: list[bytes], limit: int) -> list[SseEvent] | str:
        try:
            return feed_all(pieces, max_event_bytes=limit)
        except UpstreamError as exc:
            return exc.kind.value

    whole = run([stream], 64)
    if run([stream], 62) == run([stream], 66):  # no event within 2 bytes of the limit
        assert run(split(stream, cuts), 64) == whole


@settings(FAST, max_examples=examples(1000))
@given(st.lists(st.one_of(st.binary(max_size=300), st.sampled_from(SSE_TOKENS),
                          st.builds(lambda n: b"x" * n, st.integers(0, 600))), max_size=30),
       st.sampled_from([16, 64, 256]))
def test_buffered_bytes_never_exceed_the_limit(pieces: list[bytes], limit: int) -> None:
    """After every accepted read the parser holds at most ``limit`` bytes of the open event,
    and no dispatched event is larger: a 100 MB line costs one error, not 100 MB."""
    parser = SseParser(limit)
    for piece in pieces:
        try:
            events = parser.feed(piece)
        except UpstreamError as exc:
            assert "larger than" in exc.message
            return
        assert len(parser.leftover()) <= limit + 1
        for event in events:
            assert len(event.data.encode()) <= limit


@settings(FAST, max_examples=examples(1500))
@given(st.lists(st.binary(max_size=120), max_size=20))
def test_random_bytes_only_raise_upstream_error(pieces: list[bytes]) -> None:
    parser = SseParser(128)
    try:
        for piece in pieces:
            parser.feed(piece)
        parser.leftover()
    except UpstreamError:
        pass
