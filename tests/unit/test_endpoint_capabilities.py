"""Issue 13: an endpoint's detected capabilities are a typed value; the stored JSON written
before the type existed stays readable (unknown keys ignored, missing keys None)."""

from __future__ import annotations

from server.registry.endpoint_capabilities import Capabilities

# What validation stored before the type existed, plus a hand-written key and a future key.
OLD_ROW = {"reasoning": True, "reasoning_dialect": "reasoning_content", "tool_calling": False,
           "image_input": True, "reported_context_window_tokens": 4096,
           "continues_partial_answer": False, "prefill_dialect": "prefix",
           "some_future_key": {"nested": 1}}


def test_a_stored_row_reads_into_typed_fields_and_unknown_keys_are_ignored() -> None:
    caps = Capabilities.from_stored(OLD_ROW)
    assert caps == Capabilities(
        reasoning=True, reasoning_dialect="reasoning_content", tool_calling=False,
        image_input=True, reported_context_window_tokens=4096,
        continues_partial_answer=False, prefill_dialect="prefix")
    assert caps.stored() == {k: v for k, v in OLD_ROW.items() if k != "some_future_key"}


def test_missing_keys_and_rows_are_none_and_not_recorded() -> None:
    assert Capabilities.from_stored({"image_input": False}) == Capabilities(image_input=False)
    raws: tuple[object, ...] = (None, {}, [], "x")
    for raw in raws:
        caps = Capabilities.from_stored(raw)
        assert caps == Capabilities() and not caps.recorded and caps.stored() == {}


def test_values_of_the_wrong_type_are_not_recorded() -> None:
    caps = Capabilities.from_stored({"image_input": 0, "tool_calling": "yes",
                                     "reported_context_window_tokens": True,
                                     "reasoning_dialect": 3})
    assert caps == Capabilities() and not caps.recorded


def test_a_recorded_false_survives_the_round_trip() -> None:
    caps = Capabilities(image_input=False, reported_context_window_tokens=0)
    assert caps.recorded
    assert Capabilities.from_stored(caps.stored()) == caps
