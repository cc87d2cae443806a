"""Split ``<think>...</think>`` reasoning out of streamed answer text.

Open-weight reasoning models served without a reasoning parser (Groq ``reasoning_format=raw``,
vLLM/llama.cpp/Ollama without one, DeepSeek-R1 distills) put their reasoning inside the
content, wrapped in think tags, and the tags can be cut anywhere across chunks.

Only a LEADING think block is reasoning: if the first non-whitespace text of the answer starts
with ``<think>``, everything up to ``</think>`` is reasoning and the whitespace right after it
is dropped. Text that does not start with the tag passes through untouched, so a model talking
about "<think>" mid-answer is not mangled. The output is the same however the input is split.
"""

from __future__ import annotations

from server.chat import ReasoningDelta, TextDelta

_OPEN = "<think>"
_CLOSE = "</think>"

_START, _THINK, _AFTER, _TEXT = range(4)


def _partial_suffix(text: str, tag: str) -> int:
    """Length of the longest suffix of ``text`` that is a proper prefix of ``tag``."""
    for n in range(min(len(tag) - 1, len(text)), 0, -1):
        if text.endswith(tag[:n]):
            return n
    return 0


class ThinkSplitter:
    """Feed content pieces; get text and reasoning deltas out. ``flush`` at end of stream."""

    __slots__ = ("_buf", "_state")

    def __init__(self) -> None:
        self._state = _START
        self._buf = ""

    def feed(self, text: str) -> list[TextDelta | ReasoningDelta]:
        if self._state == _TEXT:  # the hot path once the answer has started
            return [TextDelta(text)] if text else []
        buf = self._buf + text
        self._buf = ""
        out: list[TextDelta | ReasoningDelta] = []
        if self._state == _START:
            stripped = buf.lstrip()
            if not stripped or (len(stripped) < len(_OPEN) and _OPEN.startswith(stripped)):
                self._buf = buf  # cannot decide yet
                return out
            if not stripped.startswith(_OPEN):
                self._state = _TEXT
                out.append(TextDelta(buf))
                return out
            self._state = _THINK
            buf = stripped[len(_OPEN) :]
        if self._state == _THINK:
            end = buf.find(_CLOSE)
            if end < 0:
                keep = _partial_suffix(buf, _CLOSE)
                if len(buf) > keep:
                    out.append(ReasoningDelta(buf[: len(buf) - keep]))
                self._buf = buf[len(buf) - keep :]
                return out
            if end:
                out.append(ReasoningDelta(buf[:end]))
            self._state = _AFTER
            buf = buf[end + len(_CLOSE) :]
        # _AFTER: drop the whitespace between the think block and the answer
        buf = buf.lstrip()
        if buf:
            self._state = _TEXT
            out.append(TextDelta(buf))
        return out

    def flush(self) -> list[TextDelta | ReasoningDelta]:
        """End of content: release anything held back while undecided."""
        buf, self._buf = self._buf, ""
        if not buf:
            return []
        if self._state == _START:
            return [TextDelta(buf)]
        if self._state == _THINK:
            return [ReasoningDelta(buf)]
        return []
