"""Pure parts: text splitting, argument fragments, stream schedules, value validation."""

from __future__ import annotations

import pytest

from server.registry.llm import ApiSpec
from server.simulator import Behavior, Fault, FaultKind, Spec
from server.simulator.answer import cut_fragments, split_text
from server.simulator.formats import Encoded
from server.simulator.plan import Ending, plan_stream


def encoded(content: int = 3, *, finish_in_last: bool = False) -> Encoded:
    return Encoded(
        status=200,
        headers={},
        preamble=b"P",
        head=b"H",
        content=[f"C{i}".encode() for i in range(content)],
        tail=b"T",
        done=b"D",
        error_frame=b"E",
        malformed=b"M",
        finish_in_last=finish_in_last,
    )


@pytest.mark.parametrize(
    ("text", "chunks", "expected"),
    [
        ("The capital is Paris.", None, ("The", " capital", " is", " Paris.")),
        ("  lead and trail  ", None, ("  lead", " and", " trail  ")),
        ("a b c d e", 2, ("a b c", " d e")),
        ("abc", 10, ("a", "b", "c")),
        ("", 4, ()),
    ],
)
def test_split_text(text: str, chunks: int | None, expected: tuple[str, ...]) -> None:
    assert split_text(text, chunks) == expected
    assert "".join(expected) == text


def test_cut_fragments_cuts_mid_token() -> None:
    pieces = cut_fragments('{"location": "San Francisco, CA"}')
    assert pieces[0] == '{"lo' and "".join(pieces) == '{"location": "San Francisco, CA"}'


def test_healthy_plan_paces_content_and_sends_role_with_first_chunk() -> None:
    plan = plan_stream(encoded(), Behavior(ttft_s=0.5, chunk_gap_s=0.1), None)
    assert plan.header_delay_s == 0.0 and plan.ending is Ending.EOF
    assert plan.steps == [
        (0.0, b"P", 0),
        (0.5, b"HC0", 1),
        (0.1, b"C1", 1),
        (0.1, b"C2", 1),
        (0.1, b"TD", 0),
    ]


def test_headers_after_ttft_moves_the_wait_before_the_headers() -> None:
    plan = plan_stream(encoded(1), Behavior(ttft_s=0.5, headers_after_ttft=True), None)
    assert plan.header_delay_s == 0.5 and plan.steps[1] == (0.0, b"HC0", 1)


@pytest.mark.parametrize(
    ("fault", "steps", "ending"),
    [
        (Fault(FaultKind.CUT_AFTER, chunk=1), [b"P", b"HC0", b""], Ending.CLOSE),
        (Fault(FaultKind.CUT_AFTER, chunk=0, abrupt=False), [b"P", b"H"], Ending.EOF),
        (Fault(FaultKind.MIDSTREAM_ERROR_AT, chunk=2), [b"P", b"HC0", b"C1", b"E"], Ending.EOF),
        (
            Fault(FaultKind.MALFORMED_CHUNK_AT, chunk=1),
            [b"P", b"HC0", b"MC1", b"C2", b"TD"],
            Ending.EOF,
        ),
        (Fault(FaultKind.NO_DONE), [b"P", b"HC0", b"C1", b"C2", b"T"], Ending.EOF),
        (Fault(FaultKind.CUT_AFTER, chunk=99), [b"P", b"HC0", b"C1", b"C2", b""], Ending.CLOSE),
    ],
)
def test_positioned_faults(fault: Fault, steps: list[bytes], ending: Ending) -> None:
    plan = plan_stream(encoded(), Behavior(), fault)
    assert [data for _, data, _ in plan.steps] == steps and plan.ending is ending


def test_stall_adds_to_the_pause_before_its_chunk() -> None:
    plan = plan_stream(
        encoded(), Behavior(chunk_gap_s=0.1), Fault(FaultKind.STALL_AFTER, chunk=2, seconds=5)
    )
    assert [delay for delay, _, _ in plan.steps] == [0.0, 0.0, 0.1, 5.1, 0.1]


def test_fault_past_the_end_strikes_before_a_finish_carried_by_the_last_chunk() -> None:
    plan = plan_stream(
        encoded(finish_in_last=True), Behavior(), Fault(FaultKind.CUT_AFTER, chunk=9)
    )
    assert [data for _, data, _ in plan.steps] == [b"P", b"HC0", b"C1", b""]


def test_slow_replaces_the_time_to_first_token() -> None:
    plan = plan_stream(encoded(1), Behavior(ttft_s=0.1), Fault(FaultKind.SLOW))
    assert plan.steps[1][0] == 30.0


def test_behavior_validation() -> None:
    assert Behavior(tool_calls=[("f", '{"a": 1}')]).calls[0].arguments == '{"a": 1}'
    with pytest.raises(ValueError, match="JSON object"):
        Behavior(tool_calls=[("f", "[1]")])
    with pytest.raises(ValueError, match="not JSON"):
        Behavior(tool_calls=[("f", "{nope")])
    with pytest.raises(ValueError, match="chunks"):
        Behavior(chunks=0)
    with pytest.raises(ValueError, match="status"):
        Fault(FaultKind.HTTP_STATUS, status=200)


def test_text_defaults() -> None:
    assert Behavior().answer_text("hi") != ""
    assert Behavior(tool_calls=[("f", "{}")]).answer_text("hi") == ""
    assert Behavior(echo=True, text="ignored").answer_text("hi") == "hi"


@pytest.mark.parametrize("value", [ApiSpec.AZURE_OPENAI, "azure", "AZURE_OPENAI", "azure-openai"])
def test_spec_accepts_the_registry_enum_and_aliases(value: str) -> None:
    assert Spec.parse(value) is Spec.AZURE_OPENAI
