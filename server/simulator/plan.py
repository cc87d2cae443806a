"""Schedule a pre-encoded stream: what to write, after which pause, and how to end.

Pure: no I/O. The result is a list of ``(delay_s, data, content_chunks)`` steps the server
writes in order, so the per-chunk hot path is one optional sleep and one write.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from server.simulator.behavior import Behavior, Fault, FaultKind
from server.simulator.formats import Encoded

SLOW_DEFAULT_S = 30.0
_POSITIONED = frozenset(
    {
        FaultKind.CUT_AFTER,
        FaultKind.STALL_AFTER,
        FaultKind.MALFORMED_CHUNK_AT,
        FaultKind.MIDSTREAM_ERROR_AT,
    }
)

Step = tuple[float, bytes, int]


class Ending(enum.Enum):
    EOF = "eof"  # end the chunked body properly
    CLOSE = "close"  # close the TCP connection inside the chunked body


@dataclass(frozen=True, slots=True)
class Plan:
    header_delay_s: float
    steps: list[Step]
    ending: Ending


def time_to_first_token(behavior: Behavior, fault: Fault | None) -> float:
    if fault is not None and fault.kind is FaultKind.SLOW:
        return fault.seconds or SLOW_DEFAULT_S
    return behavior.ttft_s


def plan_stream(encoded: Encoded, behavior: Behavior, fault: Fault | None) -> Plan:
    """Steps for ``encoded`` with Behavior's pacing and at most one positioned fault.

    A positioned fault strikes where content chunk ``fault.chunk`` would have gone out, after
    its pause; the role chunk and everything before that chunk have been sent. Positions past
    the end strike before the finish event.
    """
    ttft = time_to_first_token(behavior, fault)
    header_delay = ttft if behavior.headers_after_ttft else 0.0
    first_delay = 0.0 if behavior.headers_after_ttft else ttft
    kind = fault.kind if fault is not None else None
    content = encoded.content
    last = len(content) - 1 if encoded.finish_in_last and content else len(content)
    at = min(fault.chunk, last) if fault is not None and kind in _POSITIONED else -1

    steps: list[Step] = [(0.0, encoded.preamble, 0)] if encoded.preamble else []
    pending = encoded.head
    for index in range(len(content) + 1):
        delay = first_delay if index == 0 else behavior.chunk_gap_s
        if index == at and fault is not None:
            if kind is FaultKind.STALL_AFTER:
                delay += fault.seconds
            elif kind is FaultKind.MALFORMED_CHUNK_AT:
                pending += encoded.malformed
            elif kind is FaultKind.MIDSTREAM_ERROR_AT:
                steps.append((delay, pending + encoded.error_frame, 0))
                return Plan(header_delay, steps, Ending.EOF)
            else:  # CUT_AFTER
                steps.append((delay, pending, 0))
                return Plan(header_delay, steps, Ending.CLOSE if fault.abrupt else Ending.EOF)
        if index < len(content):
            steps.append((delay, pending + content[index], 1))
            pending = b""
        else:
            done = b"" if kind is FaultKind.NO_DONE else encoded.done
            steps.append((delay, pending + encoded.tail + done, 0))
    return Plan(header_delay, steps, Ending.EOF)
