"""Chat Completions streaming shared by OpenAI, Azure OpenAI and Groq.

``ChatCompletionsFormat`` assembles a stream from hooks the three specs override: the chunk
envelope, the role delta, where usage goes, the preamble, headers and JSON serialisation.
"""

from __future__ import annotations

import random
import time
from dataclasses import dataclass, field
from typing import Any

import orjson

from server.simulator.answer import Answer, cut_fragments
from server.simulator.behavior import ReasoningDialect, Spec
from server.simulator.formats.common import Encoded, Quirks, Reply, rand_id

Json = dict[str, Any]
DONE = b"data: [DONE]\n\n"


@dataclass(slots=True)
class Ids:
    """Identifiers that repeat across the chunks of one response."""

    chat_id: str
    created: int
    model: str
    fingerprint: str
    request_id: str
    tool_ids: list[str] = field(default_factory=list)
    pad: str = ""  # random characters to slice per-chunk padding from
    chunks: int = 0

    def padding(self) -> str:
        """Random-looking padding of varying length (OpenAI's ``obfuscation``), cheaply."""
        self.chunks += 1
        start = (self.chunks * 5) % 24
        return self.pad[start : start + 2 + (self.chunks * 7) % 13]


def reasoning_and_text_deltas(answer: Answer, dialect: ReasoningDialect) -> list[Json]:
    """One delta per reasoning piece, then one per text piece, in ``dialect``."""
    out: list[Json] = []
    reasoning, text = answer.reasoning, answer.text
    if reasoning and dialect is ReasoningDialect.THINK_TAGS:
        pieces = ("<think>\n", *reasoning, "\n</think>\n\n")
        out.extend({"content": piece} for piece in pieces)
    elif reasoning and dialect is ReasoningDialect.REASONING_CONTENT:
        out.extend({"content": None, "reasoning_content": piece} for piece in reasoning)
        out.extend({"content": piece, "reasoning_content": None} for piece in text)
        return out
    elif reasoning:
        out.extend({"reasoning": piece} for piece in reasoning)
    out.extend({"content": piece} for piece in text)
    return out


def fragment_tool_deltas(answer: Answer, tool_ids: list[str]) -> list[Json]:
    """OpenAI style: a header fragment per call, then argument slices cut mid-token."""
    out: list[Json] = []
    for index, (call, call_id) in enumerate(zip(answer.tool_calls, tool_ids, strict=True)):
        function = {"name": call.name, "arguments": ""}
        header = {"index": index, "id": call_id, "type": "function", "function": function}
        out.append({"tool_calls": [header]})
        out.extend(
            {"tool_calls": [{"index": index, "function": {"arguments": piece}}]}
            for piece in cut_fragments(call.arguments)
        )
    return out


def whole_tool_deltas(answer: Answer, tool_ids: list[str]) -> list[Json]:
    """Groq style: each call complete in one delta."""
    return [
        {
            "tool_calls": [
                {
                    "id": call_id,
                    "type": "function",
                    "function": {"name": call.name, "arguments": call.arguments},
                    "index": index,
                }
            ]
        }
        for index, (call, call_id) in enumerate(zip(answer.tool_calls, tool_ids, strict=True))
    ]


def role_delta(answer: Answer, dialect: ReasoningDialect) -> Json:
    """The first delta: the role, with ``content`` "" or null as each dialect sends it."""
    thinking = bool(answer.reasoning)
    if thinking and dialect is ReasoningDialect.REASONING_CONTENT:
        return {"role": "assistant", "content": None, "reasoning_content": ""}
    speaks = bool(answer.text) or thinking
    return {"role": "assistant", "content": "" if speaks else None}


def message(answer: Answer, dialect: ReasoningDialect, tool_ids: list[str]) -> Json:
    """The non-streaming ``choices[0].message``."""
    text, reasoning = answer.full_text, answer.full_reasoning
    if reasoning and dialect is ReasoningDialect.THINK_TAGS:
        text = f"<think>\n{reasoning}\n</think>\n\n{text}"
    msg: Json = {"role": "assistant", "content": text or None}
    if reasoning and dialect is ReasoningDialect.REASONING_CONTENT:
        msg["reasoning_content"] = reasoning
    elif reasoning and dialect is ReasoningDialect.REASONING:
        msg["reasoning"] = reasoning
    if answer.tool_calls:
        msg["tool_calls"] = [
            {"id": i, "type": "function", "function": {"name": c.name, "arguments": c.arguments}}
            for c, i in zip(answer.tool_calls, tool_ids, strict=True)
        ]
    return msg


def openai_usage(answer: Answer) -> Json:
    u = answer.usage
    completion = u.output_tokens + u.reasoning_tokens
    return {
        "prompt_tokens": u.input_tokens,
        "completion_tokens": completion,
        "total_tokens": u.input_tokens + completion,
        "prompt_tokens_details": {"cached_tokens": 0, "audio_tokens": 0},
        "completion_tokens_details": {
            "reasoning_tokens": u.reasoning_tokens,
            "audio_tokens": 0,
            "accepted_prediction_tokens": 0,
            "rejected_prediction_tokens": 0,
        },
    }


class ChatCompletionsFormat:
    """The common stream assembly; subclasses override the hooks below."""

    spec: Spec = Spec.OPENAI
    content_type = "text/event-stream; charset=utf-8"
    whole_tool_calls = False

    # Hooks -------------------------------------------------------------------------------
    def dumps(self, obj: Any) -> bytes:
        return orjson.dumps(obj)

    def new_ids(self, answer: Answer, rng: random.Random) -> Ids:
        return Ids(
            chat_id="chatcmpl-" + rand_id(rng, 29),
            created=int(time.time()),
            model=answer.model,
            fingerprint="fp_" + f"{rng.getrandbits(40):010x}",
            request_id="req_" + f"{rng.getrandbits(128):032x}",
            tool_ids=["call_" + rand_id(rng, 24) for _ in answer.tool_calls],
            pad=rand_id(rng, 40),
        )

    def dialect(self, answer: Answer) -> ReasoningDialect:
        return answer.dialect

    def chunk(
        self, ids: Ids, delta: Json, finish: str | None, quirks: Quirks, rng: random.Random
    ) -> Json:
        raise NotImplementedError

    def first_chunk(self, chunk: Json, ids: Ids) -> Json:
        return chunk

    def tail(self, ids: Ids, answer: Answer, quirks: Quirks, rng: random.Random) -> bytes:
        raise NotImplementedError

    def preamble(self) -> bytes:
        return b""

    def headers(self, ids: Ids, rng: random.Random) -> dict[str, str]:
        return {}

    def midstream_error(self) -> bytes:
        raise NotImplementedError

    # Assembly ----------------------------------------------------------------------------
    def frame(self, obj: Any) -> bytes:
        return b"data: " + self.dumps(obj) + b"\n\n"

    def stream(self, answer: Answer, quirks: Quirks, rng: random.Random) -> Encoded:
        ids = self.new_ids(answer, rng)
        dialect = self.dialect(answer)
        deltas = reasoning_and_text_deltas(answer, dialect)
        tools = whole_tool_deltas if self.whole_tool_calls else fragment_tool_deltas
        deltas += tools(answer, ids.tool_ids)
        first = role_delta(answer, dialect)
        if quirks.no_role:
            first.pop("role")
        head = self.first_chunk(self.chunk(ids, first, None, quirks, rng), ids)
        content = [self.frame(self.chunk(ids, d, None, quirks, rng)) for d in deltas]
        example = self.frame(self.chunk(ids, {"content": "tru"}, None, quirks, rng))
        headers = {"content-type": self.content_type, **self.headers(ids, rng)}
        return Encoded(
            status=200,
            headers=headers,
            preamble=self.preamble(),
            head=self.frame(head),
            content=content,
            tail=self.tail(ids, answer, quirks, rng),
            done=DONE,
            error_frame=self.midstream_error(),
            malformed=example[: len(example) * 2 // 3].rstrip(b"\n") + b"\n\n",
        )

    def reply(self, status: int, body: Json, headers: dict[str, str] | None = None) -> Reply:
        return Reply(status=status, body=self.dumps(body), headers=headers or {})
