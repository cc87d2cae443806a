"""One turn against each target, timed the same way.

* ``HttpSseDriver``: an aiohttp streaming client doing the same parsing work as Switchboard's
  upstream transport (the same request body and headers from ``OpenAIAdapter``, the same
  ``SseParser`` and ``OpenAIChatDecoder``). Pointed at the simulator it is the honest baseline
  ("direct"); pointed at the LiteLLM proxy it measures LiteLLM.
  Pointed at Switchboard's HTTP port it measures the OpenAI-compatible front door.
* ``SwitchboardDriver``: ``Conversations.Converse`` over gRPC, stateless (``llm_id`` +
  messages) or session turns (a session is reused for a few turns, then replaced, so the
  history stays the size of a short conversation; creating it is not timed), or stateless
  turns carrying that same conversation (``history=True``: the client keeps the system
  prompt, its questions and the answers, and resends them all with each turn, starting over
  every ``TURNS_PER_SESSION`` turns: what a stateless caller does to hold the conversation a
  session holds for it).
* ``ConnectDriver``: the same ``Conversations.Converse`` over the Connect protocol
  (``application/connect+proto`` envelopes) on Switchboard's aiohttp listener: the gRPC
  edge's servicers and interceptor, the HTTP edge's transport.
* ``TensorZeroDriver``: TensorZero's embedded gateway (PyPI ``tensorzero``, its Rust core
  inside this process: no network hop between caller and gateway), one OpenAI-compatible
  provider pointed at the simulator, observability off. Its CPU is the load generator's.

A turn's clock starts when the request is sent (closed loop) or when it was scheduled (open
loop, so a late sender counts against the target). ``first`` is the arrival of the first text
delta; ``marks`` are the arrival times of every text delta, for the gaps.
"""

from __future__ import annotations

import itertools
import struct
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import aiohttp
import grpc
from switchboard.v1 import conversations_pb2 as cpb
from switchboard.v1 import conversations_pb2_grpc as cgrpc

from server.chat import ChatRequest, Finish, Message, Role, TextDelta, TextPart
from server.providers.base import HttpRequest
from server.providers.openai import OpenAIAdapter
from server.providers.sse import SseParser
from server.registry.llm import ApiSpec, Endpoint
from server.secret import Secret

PROMPT = "What is the weather like in Lisbon today? Answer in one sentence."
SYSTEM_PROMPT = "Be brief."
TURNS_PER_SESSION = 8


@dataclass(slots=True)
class TurnResult:
    start: float
    first: float = 0.0
    end: float = 0.0
    marks: list[float] = field(default_factory=list)
    error: str = ""


class Driver(Protocol):
    name: str

    def worker(self) -> Worker:
        """A per-worker turn function (session turns keep a session per worker)."""
        ...

    async def close(self) -> None: ...


class Worker(Protocol):
    async def turn(self, scheduled: float | None = None) -> TurnResult: ...


# -- HTTP (direct, LiteLLM) ---------------------------------------------------------------------


def chat_request(base_url: str, model: str, api_key: str) -> HttpRequest:
    """The streaming chat request for ``PROMPT`` (URL, headers, body) as Switchboard's
    ``OpenAIAdapter`` builds it; the relay floor (``tests.bench.relay_floor``) sends it too."""
    endpoint = Endpoint(id="bench", api_spec=ApiSpec.OPENAI, base_url=base_url, model=model,
                        api_key=Secret(api_key))
    request = ChatRequest(messages=(Message(Role.USER, (TextPart(PROMPT),)),))
    return OpenAIAdapter().build_request(endpoint, request)


class HttpSseDriver:
    """POSTs an OpenAI streaming chat request and parses the answer like Switchboard does."""

    def __init__(self, name: str, base_url: str, model: str, api_key: str) -> None:
        self.name = name
        self._adapter = OpenAIAdapter()
        self._http = chat_request(base_url, model, api_key)
        self._session: aiohttp.ClientSession | None = None

    def session(self) -> aiohttp.ClientSession:
        if self._session is None:
            self._session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(limit=0, keepalive_timeout=60),
                timeout=aiohttp.ClientTimeout(total=120))
        return self._session

    def worker(self) -> HttpSseDriver:
        return self

    async def turn(self, scheduled: float | None = None) -> TurnResult:
        http = self._http
        result = TurnResult(scheduled if scheduled is not None else time.perf_counter())
        marks = result.marks
        try:
            async with self.session().post(http.url, data=http.body,
                                           headers=http.headers) as resp:
                if resp.status != 200:
                    result.error = f"HTTP {resp.status}"
                    return result
                parser = SseParser()
                decoder = self._adapter.new_decoder()
                finished = False
                async for chunk in resp.content.iter_any():
                    for sse in parser.feed(chunk):
                        for ev in decoder.feed(sse):
                            if type(ev) is TextDelta:
                                marks.append(time.perf_counter())
                            elif type(ev) is Finish:
                                finished = True
                for ev in decoder.close(parser.leftover()):
                    finished = finished or type(ev) is Finish
                if not finished:
                    result.error = "no finish"
        except Exception as exc:
            result.error = type(exc).__name__
        result.end = time.perf_counter()
        if marks:
            result.first = marks[0]
        return result

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()


# -- Switchboard over Connect ---------------------------------------------------------------------


_ENVELOPE = struct.Struct(">BI")


class ConnectDriver:
    """``Converse`` as a Connect server stream: one request envelope, response envelopes
    parsed as they arrive (flag 0x02 ends the stream, with an error JSON if it failed)."""

    def __init__(self, name: str, root_url: str, api_key: str, llm_id: str) -> None:
        self.name = name
        self._url = root_url + "/switchboard.v1.Conversations/Converse"
        message = cpb.Message(role=cpb.ROLE_USER, parts=[cpb.ContentPart(text=PROMPT)])
        body = cpb.ConverseRequest(llm_id=llm_id, messages=[message]).SerializeToString()
        self._body = _ENVELOPE.pack(0, len(body)) + body
        self._headers = {"Authorization": f"Bearer {api_key}", "Connect-Protocol-Version": "1",
                         "Content-Type": "application/connect+proto"}
        self._http = HttpSseDriver(name, root_url, "", api_key)  # for its connection pool

    def worker(self) -> ConnectDriver:
        return self

    async def turn(self, scheduled: float | None = None) -> TurnResult:
        result = TurnResult(scheduled if scheduled is not None else time.perf_counter())
        marks = result.marks
        complete = False
        try:
            async with self._http.session().post(self._url, data=self._body,
                                                 headers=self._headers) as resp:
                if resp.status != 200:
                    result.error = f"HTTP {resp.status}"
                    return result
                buf = b""
                async for chunk in resp.content.iter_any():
                    buf += chunk
                    while len(buf) >= 5:
                        flags, size = _ENVELOPE.unpack_from(buf)
                        if len(buf) < 5 + size:
                            break
                        payload, buf = buf[5:5 + size], buf[5 + size:]
                        if flags & 0x02:
                            if b'"error"' in payload:
                                result.error = "connect error"
                            continue
                        response = cpb.ConverseResponse.FromString(payload)
                        kind = response.WhichOneof("event")
                        if kind == "text":
                            marks.append(time.perf_counter())
                        elif kind == "finished":
                            complete = response.finished.complete
            if not complete and not result.error:
                result.error = "incomplete"
        except Exception as exc:
            result.error = type(exc).__name__
        result.end = time.perf_counter()
        if marks:
            result.first = marks[0]
        return result

    async def close(self) -> None:
        await self._http.close()


# -- TensorZero (embedded) ----------------------------------------------------------------------


TENSORZERO_MODEL = "sim"
TENSORZERO_KEY_ENV = "BENCH_TENSORZERO_UPSTREAM_KEY"


def tensorzero_config(upstream_base_url: str, model: str) -> str:
    """The gateway's whole config: one model, one OpenAI-compatible provider, no database."""
    return ("[gateway]\nobservability.enabled = false\n\n"
            f"[models.{TENSORZERO_MODEL}]\nrouting = [\"upstream\"]\n\n"
            f"[models.{TENSORZERO_MODEL}.providers.upstream]\ntype = \"openai\"\n"
            f"api_base = \"{upstream_base_url}\"\nmodel_name = \"{model}\"\n"
            f"api_key_location = \"env::{TENSORZERO_KEY_ENV}\"\n")


class TensorZeroDriver:
    """A streamed inference through ``AsyncTensorZeroGateway.build_embedded``."""

    def __init__(self, name: str, config_file: str) -> None:
        self.name = name
        self._config_file = config_file
        self._gateway: Any = None
        self._input = {"messages": [{"role": "user", "content": PROMPT}]}

    async def start(self) -> None:
        from tensorzero import AsyncTensorZeroGateway  # the bench's extra, not the server's

        self._gateway = await AsyncTensorZeroGateway.build_embedded(  # type: ignore[misc, unused-ignore]
            config_file=self._config_file)

    def worker(self) -> TensorZeroDriver:
        return self

    async def turn(self, scheduled: float | None = None) -> TurnResult:
        result = TurnResult(scheduled if scheduled is not None else time.perf_counter())
        marks = result.marks
        finished = False
        try:
            stream = await self._gateway.inference(model_name=TENSORZERO_MODEL,
                                                   input=self._input, stream=True)
            async for chunk in stream:
                if any(getattr(c, "text", "") for c in chunk.content):
                    marks.append(time.perf_counter())
                if chunk.finish_reason is not None:
                    finished = True
            if not finished:
                result.error = "no finish"
        except Exception as exc:
            result.error = type(exc).__name__
        result.end = time.perf_counter()
        if marks:
            result.first = marks[0]
        return result

    async def close(self) -> None:
        if self._gateway is not None:
            closer = getattr(self._gateway, "__aexit__", None)
            if closer is not None:
                await closer(None, None, None)
            self._gateway = None


# -- Switchboard ----------------------------------------------------------------------------------


class SwitchboardDriver:
    """Converse over ``channels`` gRPC channels (workers are spread over them)."""

    def __init__(self, name: str, target: str, api_key: str, llm_id: str, *,
                 channels: int = 1, sessions: bool = False, history: bool = False,
                 deadline_s: float = 60.0) -> None:
        if sessions and history:
            raise ValueError("session turns keep their history on the server: pick one")
        self.name = name
        self._channels = [grpc.aio.insecure_channel(target) for _ in range(max(1, channels))]
        self._stubs = [cgrpc.ConversationsStub(c) for c in self._channels]
        self._next = itertools.cycle(self._stubs)
        self._metadata = (("authorization", f"Bearer {api_key}"),)
        self._llm_id = llm_id
        self._sessions = sessions
        self._history = history
        self._deadline_s = deadline_s
        self._message = cpb.Message(role=cpb.ROLE_USER, parts=[cpb.ContentPart(text=PROMPT)])
        self._system = cpb.Message(role=cpb.ROLE_SYSTEM,
                                   parts=[cpb.ContentPart(text=SYSTEM_PROMPT)])

    def worker(self) -> _SwitchboardWorker:
        return _SwitchboardWorker(self, next(self._next))

    async def close(self) -> None:
        for channel in self._channels:
            await channel.close()


class _SwitchboardWorker:
    def __init__(self, driver: SwitchboardDriver, stub: cgrpc.ConversationsAsyncStub) -> None:
        self._d = driver
        self._stub = stub
        self._session_id = ""
        self._turns = 0
        self._request = cpb.ConverseRequest(llm_id=driver._llm_id, messages=[driver._message])

    async def _ensure_session(self) -> None:
        if self._session_id and self._turns < TURNS_PER_SESSION:
            return
        d = self._d
        if self._session_id:
            await self._stub.EndSession(cpb.EndSessionRequest(session_id=self._session_id),
                                        metadata=d._metadata)
        created = await self._stub.CreateSession(
            cpb.CreateSessionRequest(llm_id=d._llm_id, system_prompt=SYSTEM_PROMPT),
            metadata=d._metadata)
        self._session_id = created.session.id
        self._turns = 0
        self._request = cpb.ConverseRequest(session_id=self._session_id,
                                            messages=[d._message])

    def _with_history(self) -> None:
        """The next stateless request: the conversation so far plus the new question (the
        previous turn's answer was appended when it finished); a new one every
        ``TURNS_PER_SESSION`` turns, as session turns get a new session."""
        d = self._d
        messages = self._request.messages
        if self._turns >= TURNS_PER_SESSION or not messages or messages[0].role != cpb.ROLE_SYSTEM:
            del messages[:]
            messages.append(d._system)
            self._turns = 0
        messages.append(d._message)

    async def turn(self, scheduled: float | None = None) -> TurnResult:
        d = self._d
        if d._sessions:
            try:
                await self._ensure_session()
            except grpc.aio.AioRpcError as exc:
                return TurnResult(time.perf_counter(), error=f"session {exc.code().name}")
            self._turns += 1
        elif d._history:
            self._with_history()
            self._turns += 1
        result = TurnResult(scheduled if scheduled is not None else time.perf_counter())
        marks = result.marks
        complete = False
        answer: list[str] = []
        try:
            call = self._stub.Converse(self._request, metadata=d._metadata,
                                       timeout=d._deadline_s)
            async for response in call:
                kind = response.WhichOneof("event")
                if kind == "text":
                    marks.append(time.perf_counter())
                    if d._history:
                        answer.append(response.text.delta)
                elif kind == "finished":
                    complete = response.finished.complete
            if not complete:
                result.error = "incomplete"
            elif d._history:  # the answer joins the conversation, as a session records it
                self._request.messages.append(cpb.Message(
                    role=cpb.ROLE_ASSISTANT, parts=[cpb.ContentPart(text="".join(answer))]))
        except grpc.aio.AioRpcError as exc:
            result.error = exc.code().name
        except Exception as exc:
            result.error = type(exc).__name__
        if d._history and result.error:  # unanswered: the question leaves the conversation
            del self._request.messages[-1]
        result.end = time.perf_counter()
        if marks:
            result.first = marks[0]
        return result


def gaps(results: Sequence[TurnResult]) -> list[float]:
    """Every gap between consecutive text deltas of the successful turns, in seconds."""
    out: list[float] = []
    for r in results:
        if not r.error:
            marks = r.marks
            out.extend(b - a for a, b in itertools.pairwise(marks))
    return out
