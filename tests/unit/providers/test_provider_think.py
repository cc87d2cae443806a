"""The ``<think>`` splitter: only a leading think block is reasoning, split anywhere."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from server.chat import ReasoningDelta, TextDelta
from server.providers.think import ThinkSplitter


def run(*pieces: str) -> tuple[str, str]:
    splitter = ThinkSplitter()
    events = [ev for p in pieces for ev in splitter.feed(p)] + splitter.flush()
    text = "".join(e.text for e in events if isinstance(e, TextDelta))
    reasoning = "".join(e.text for e in events if isinstance(e, ReasoningDelta))
    return text, reasoning


@pytest.mark.parametrize(
    ("pieces", "want"),
    [
        (("<think>", "\nhmm", "</think>", "\n\n", "Answer"), ("Answer", "\nhmm")),
        (("<thi", "nk>a</th", "ink>b"), ("b", "a")),
        (("  \n<think>x</think>  y",), ("y", "x")),
        (("Hello <think>not reasoning</think>",), ("Hello <think>not reasoning</think>", "")),
        (("<th", "is is text"), ("<this is text", "")),
        (("<think>never closed",), ("", "never closed")),
        (("<think>ends with partial </thi",), ("", "ends with partial </thi")),
        (("  ",), ("  ", "")),
        (("<thi",), ("<thi", "")),
        (("<think></think>",), ("", "")),
    ],
)
def test_split(pieces: tuple[str, ...], want: tuple[str, str]) -> None:
    assert run(*pieces) == want


def test_text_after_the_block_is_passed_through_fast() -> None:
    splitter = ThinkSplitter()
    splitter.feed("plain")
    assert splitter.feed("more") == [TextDelta("more")]


_ALPHABET = st.sampled_from(["<", ">", "/", "think", "<think>", "</think>", " ", "\n", "a", "é"])


@given(st.lists(_ALPHABET, max_size=30), st.data())
def test_any_split_gives_the_same_result(tokens: list[str], data: st.DataObject) -> None:
    whole = "".join(tokens)
    cuts = sorted(data.draw(st.sets(st.integers(0, len(whole)), max_size=10)))
    pieces = [whole[a:b] for a, b in zip([0, *cuts], [*cuts, len(whole)], strict=True)]
    assert run(*pieces) == run(whole)
