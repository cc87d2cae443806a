"""Helpers shared by the provider tests: fixture loading, event merging, endpoints.

Fixture files live in ``fixtures/`` (copied from ../shared/fixtures/upstream, see its README for
sources and licences). How each kind becomes an HTTP response:

* ``*.sse``: the body exactly as recorded; status and headers from the ``.headers.json``
  sidecar when there is one, else 200 ``text/event-stream``.
* ``*.jsonl``: the recorder kept only the parsed ``data:`` payloads, so each line is re-framed
  as ``data: <line>\\n\\n``, plus ``data: [DONE]\\n\\n`` for OpenAI-family providers (Gemini sends
  no terminator).
* ``*.ndjson``: the raw body with ``application/x-ndjson`` (Ollama's native API).
* ``*.json``: ``{"status","headers","body"}`` envelopes, served with the recorded status and
  headers and the body re-serialised; ``gemini/stream-no-alt-sse.json`` is a raw body
  (``application/json``).
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path

from aiohttp import web

from server.chat import (
    Finish,
    ReasoningDelta,
    StreamEvent,
    TextDelta,
    ToolCallDelta,
    Usage,
)
from server.providers.adapters import adapter_for
from server.providers.base import ProviderAdapter, UpstreamError
from server.providers.sse import SseParser
from server.registry.llm import ApiSpec, Endpoint
from server.secret import Secret

FIXTURES = Path(__file__).parent / "fixtures"

# Response headers that describe the recorded transfer, not the content: the replay server
# computes its own.
HOP_BY_HOP = {"content-length", "transfer-encoding", "connection", "content-encoding", "keep-alive"}

SPEC_BY_DIR = {
    "openai": ApiSpec.OPENAI,
    "deepseek": ApiSpec.OPENAI,
    "openrouter": ApiSpec.OPENAI,
    "vllm": ApiSpec.OPENAI,
    "tgi": ApiSpec.OPENAI,
    "ollama": ApiSpec.OPENAI,
    "other-compatible": ApiSpec.OPENAI,
    "azure": ApiSpec.AZURE_OPENAI,
    "gemini": ApiSpec.GEMINI,
    "groq": ApiSpec.GROQ,
}


@dataclass(frozen=True)
class Reply:
    """A canned HTTP response."""

    status: int
    headers: dict[str, str]
    body: bytes


Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@dataclass
class Recorded:
    method: str
    path_qs: str
    headers: dict[str, str]
    body: bytes


@dataclass
class ReplayServer:
    """Serves ``reply`` (or runs ``handler``) for any POST; records every request."""

    url: str = ""
    reply: Reply = field(default_factory=lambda: Reply(200, {}, b""))
    handler: Handler | None = None
    chunk_size: int = 0  # 0: write the body in one piece
    requests: list[Recorded] = field(default_factory=list)
    peers: list[object] = field(default_factory=list)
    disconnected: asyncio.Event = field(default_factory=asyncio.Event)

    async def handle(self, request: web.Request) -> web.StreamResponse:
        self.requests.append(
            Recorded(request.method, request.path_qs, dict(request.headers), await request.read())
        )
        self.peers.append(
            request.transport.get_extra_info("peername") if request.transport else None
        )
        try:
            if self.handler is not None:
                return await self.handler(request)
            return await self._replay(request)
        except asyncio.CancelledError:  # aiohttp cancels the handler when the client leaves
            self.disconnected.set()
            raise

    async def _replay(self, request: web.Request) -> web.StreamResponse:
        resp = web.StreamResponse(status=self.reply.status, headers=self.reply.headers)
        await resp.prepare(request)
        body = self.reply.body
        step = self.chunk_size or max(len(body), 1)
        for i in range(0, len(body), step):
            await resp.write(body[i : i + step])
        await resp.write_eof()
        return resp


def fixture_names() -> list[str]:
    """Every response fixture (sidecars excluded), as ``provider/file``."""
    names = []
    for path in sorted(FIXTURES.glob("*/*")):
        if path.name.endswith(".headers.json"):
            continue
        names.append(f"{path.parent.name}/{path.name}")
    return names


def spec_of(name: str) -> ApiSpec:
    return SPEC_BY_DIR[name.split("/", 1)[0]]


def _clean(headers: dict[str, str] | None) -> dict[str, str]:
    return {k: v for k, v in (headers or {}).items() if k.lower() not in HOP_BY_HOP}


def load_reply(name: str) -> Reply:
    path = FIXTURES / name
    raw = path.read_bytes()
    if path.suffix == ".sse":
        sidecar = path.with_suffix(".headers.json")
        if sidecar.exists():
            meta = json.loads(sidecar.read_text())
            return Reply(meta["status"], _clean(meta["headers"]), raw)
        return Reply(200, {"content-type": "text/event-stream"}, raw)
    if path.suffix == ".jsonl":
        return Reply(200, {"content-type": "text/event-stream"}, reframe_jsonl(name))
    if path.suffix == ".ndjson":
        return Reply(200, {"content-type": "application/x-ndjson"}, raw)
    if name == "gemini/stream-no-alt-sse.json":  # a raw body, not an envelope
        return Reply(200, {"content-type": "application/json"}, raw)
    env = json.loads(raw)
    headers = _clean(env["headers"]) or {"content-type": "application/json"}
    return Reply(env["status"], headers, json.dumps(env["body"]).encode())


def reframe_jsonl(name: str) -> bytes:
    lines = [ln for ln in (FIXTURES / name).read_bytes().splitlines() if ln.strip()]
    body = b"".join(b"data: " + ln + b"\n\n" for ln in lines)
    if spec_of(name) is not ApiSpec.GEMINI:
        body += b"data: [DONE]\n\n"
    return body


def endpoint_for(spec: ApiSpec, base_url: str, **kw: object) -> Endpoint:
    defaults: dict[str, object] = {
        "id": "ep-1",
        "api_spec": spec,
        "base_url": base_url,
        "model": "test-model",
        "api_key": Secret("sk-test-key-0123456789"),
    }
    if spec is ApiSpec.AZURE_OPENAI:
        defaults["api_version"] = "2024-10-21"
    defaults.update(kw)
    return Endpoint(**defaults)  # type: ignore[arg-type]


@dataclass
class Outcome:
    """The merged result of a stream: what a client would end up with."""

    text: str = ""
    reasoning: str = ""
    tool_calls: list[dict[str, str]] = field(default_factory=list)
    usage: Usage | None = None
    finish: Finish | None = None
    error: UpstreamError | None = None
    order: list[str] = field(default_factory=list)  # event kinds in order, repeats collapsed

    def calls(self) -> list[tuple[str, object]]:
        return [(c["name"], json.loads(c["arguments"])) for c in self.tool_calls]


def merge(events: list[StreamEvent], error: UpstreamError | None = None) -> Outcome:
    out = Outcome(error=error)
    text: list[str] = []
    reasoning: list[str] = []
    for ev in events:
        kind = type(ev).__name__
        if not out.order or out.order[-1] != kind:
            out.order.append(kind)
        if isinstance(ev, TextDelta):
            text.append(ev.text)
        elif isinstance(ev, ReasoningDelta):
            reasoning.append(ev.text)
        elif isinstance(ev, ToolCallDelta):
            while len(out.tool_calls) <= ev.index:
                out.tool_calls.append({"id": "", "name": "", "arguments": "", "sig": ""})
            call = out.tool_calls[ev.index]
            call["id"] += ev.id
            call["name"] += ev.name
            call["arguments"] += ev.arguments_delta
            call["sig"] += ev.thought_signature
        elif isinstance(ev, Usage):
            out.usage = ev
        elif isinstance(ev, Finish):
            out.finish = ev
    out.text = "".join(text)
    out.reasoning = "".join(reasoning)
    return out


def decode_pieces(adapter: ProviderAdapter, pieces: list[bytes]) -> Outcome:
    """Run ``pieces`` through a fresh SSE parser and decoder, as the transport does."""
    parser = SseParser()
    decoder = adapter.new_decoder()
    events: list[StreamEvent] = []
    try:
        for piece in pieces:
            for sse in parser.feed(piece):
                events.extend(decoder.feed(sse))
        events.extend(decoder.close(parser.leftover()))
    except UpstreamError as err:
        return merge(events, err)
    return merge(events)


def decode_fixture(name: str, pieces: list[bytes] | None = None) -> Outcome:
    reply = load_reply(name)
    return decode_pieces(adapter_for(spec_of(name)), pieces or [reply.body])
