"""Test helpers: talk to a Simulator with plain aiohttp and parse its bytes as a client would.

The SSE parser follows the WHATWG rules (CRLF, LF or CR line ends; one optional space after
the colon; comments ignored) and keeps the raw bytes so tests can check framing too.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import orjson
from multidict import CIMultiDictProxy

from server.simulator import Simulator, Spec


@dataclass
class SseEvent:
    data: str
    event: str | None = None

    def json(self) -> Any:
        return orjson.loads(self.data)


@dataclass
class Streamed:
    """A whole response as read with ``iter_any``; ``error`` if the body broke off."""

    status: int
    headers: CIMultiDictProxy[str]
    raw: bytes
    pieces: list[tuple[float, bytes]] = field(default_factory=list)
    error: BaseException | None = None

    @property
    def events(self) -> list[SseEvent]:
        return parse_sse(self.raw)

    @property
    def payloads(self) -> list[Any]:
        """The JSON of every data event except ``[DONE]``."""
        return [e.json() for e in self.events if e.data != "[DONE]"]

    def json(self) -> Any:
        return orjson.loads(self.raw)


def parse_sse(raw: bytes) -> list[SseEvent]:
    """Complete events only: a trailing event without its blank line is dropped."""
    text = raw.decode().replace("\r\n", "\n").replace("\r", "\n")
    events: list[SseEvent] = []
    for block in text.split("\n\n")[:-1]:
        data: list[str] = []
        name: str | None = None
        for line in block.split("\n"):
            if not line or line.startswith(":"):
                continue
            key, _, value = line.partition(":")
            value = value[1:] if value.startswith(" ") else value
            if key == "data":
                data.append(value)
            elif key == "event":
                name = value
        if data:
            events.append(SseEvent("\n".join(data), name))
    return events


def chat_request(
    sim: Simulator,
    spec: Spec | str,
    *,
    prompt: str = "What is the capital of France?",
    stream: bool = True,
    include_usage: bool = False,
    model: str = "test-model",
    key: str | None = None,
    alt_sse: bool = True,
) -> tuple[str, dict[str, str], dict[str, Any]]:
    """URL, headers and body of a chat request in ``spec``'s own shape."""
    spec = Spec.parse(spec)
    base = sim.base_url_for(spec)
    headers: dict[str, str] = {}
    if spec is Spec.GEMINI:
        method = "streamGenerateContent" if stream else "generateContent"
        url = f"{base}/models/{model}:{method}" + ("?alt=sse" if stream and alt_sse else "")
        if key is not None:
            headers["x-goog-api-key"] = key
        body: dict[str, Any] = {"contents": [{"role": "user", "parts": [{"text": prompt}]}]}
        return url, headers, body
    if spec is Spec.AZURE_OPENAI:
        url = f"{base}/openai/deployments/{model}/chat/completions?api-version=2024-10-21"
        if key is not None:
            headers["api-key"] = key
    else:
        url = f"{base}/chat/completions"
        if key is not None:
            headers["Authorization"] = f"Bearer {key}"
    body = {"model": model, "messages": [{"role": "user", "content": prompt}], "stream": stream}
    if include_usage:
        body["stream_options"] = {"include_usage": True}
    return url, headers, body


async def read_body(response: aiohttp.ClientResponse) -> Streamed:
    pieces: list[tuple[float, bytes]] = []
    error: BaseException | None = None
    try:
        async for piece in response.content.iter_any():
            pieces.append((time.monotonic(), piece))
    except aiohttp.ClientPayloadError as exc:
        error = exc
    raw = b"".join(p for _, p in pieces)
    return Streamed(response.status, response.headers, raw, pieces, error)


async def chat(
    session: aiohttp.ClientSession, sim: Simulator, spec: Spec | str, **kwargs: Any
) -> Streamed:
    url, headers, body = chat_request(sim, spec, **kwargs)
    async with session.post(url, json=body, headers=headers) as response:
        return await read_body(response)


def openai_text(payloads: list[Any], key: str = "content") -> str:
    """Concatenate ``delta[key]`` over all chunks that have choices."""
    out = []
    for chunk in payloads:
        for choice in chunk.get("choices") or []:
            value = choice.get("delta", {}).get(key)
            if isinstance(value, str):
                out.append(value)
    return "".join(out)


def gemini_text(payloads: list[Any], thought: bool = False) -> str:
    out = []
    for event in payloads:
        for part in event["candidates"][0]["content"].get("parts", []):
            if "text" in part and bool(part.get("thought")) == thought:
                out.append(part["text"])
    return "".join(out)
