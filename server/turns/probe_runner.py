"""Sends the probes the scheduler asks for, and reports them to the router.

A probe is a real, tiny turn: the ~1,500-token probe prompt with a one-token output limit,
with a fresh first line every time (``probe_prompt(nonce)``: a server's prompt cache would
answer a repeated prompt from memory, 5 ms instead of 158 ms on llama.cpp) and cut to fit the
endpoint's context window when one is known. It runs on its own small concurrency budget
(never a live turn's slot), only for active LLMs (a live session, or turns within the last
``RECENT_TURNS_S``), and its first-token time updates the router with less weight than live
traffic.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import random
import time

import structlog

from server.chat import ChatRequest, Finish, Generation, Message, Role, TextPart
from server.clock import Clock
from server.providers.adapters import adapter_for
from server.providers.base import UpstreamError
from server.providers.transport import UpstreamClient
from server.registry.llm import Endpoint, Llm
from server.registry.service import RegistryService
from server.routing.probe_prompt import PROBE_MAX_OUTPUT_TOKENS, probe_prompt
from server.routing.probe_schedule import ProbeScheduler
from server.routing.router import Router
from server.timeouts import Timeouts
from server.turns.observer import NO_TURN, TurnObserver

log = structlog.get_logger("switchboard.probes")

TICK_S = 1.0
MAX_CONCURRENT_PROBES = 4
RECENT_TURNS_S = 300.0  # an LLM with a turn (stateless or not) this recent is active
TURNS = "turns"  # the activity holder of recent turns (sessions hold by their id)


def probe_request(nonce: int, window_tokens: int = 0) -> tuple[ChatRequest, int]:
    """The probe for ``nonce`` and its prompt size estimate; with a known window, the prompt
    takes at most half of it (the chat template and the answer need room too)."""
    prompt = probe_prompt(nonce, max_tokens=window_tokens // 2 if window_tokens else 0)
    request = ChatRequest(
        messages=(Message(Role.USER, (TextPart(prompt),)),),
        generation=Generation(max_output_tokens=PROBE_MAX_OUTPUT_TOKENS, temperature=0.0))
    return request, len(prompt) // 4


class ProbeRunner:
    def __init__(self, router: Router, clock: Clock, probes_per_hour: int) -> None:
        self._router = router
        self._clock = clock
        self._enabled = probes_per_hour > 0
        self._scheduler = ProbeScheduler(clock, random.Random(), max(1, probes_per_hour),
                                         view=router)
        self._accounts: dict[str, str] = {}  # active llm id -> account id
        self._wake = asyncio.Event()
        self._slots = asyncio.Semaphore(MAX_CONCURRENT_PROBES)
        self._tasks: set[asyncio.Task[None]] = set()
        self._registry: RegistryService | None = None
        self._client: UpstreamClient | None = None
        self._timeouts = Timeouts()
        self._nonces = itertools.count(random.randrange(1_000_000))  # replicas differ too
        self.sent = 0

    def bind(self, registry: RegistryService, client: UpstreamClient, timeouts: Timeouts
             ) -> None:
        self._registry, self._client, self._timeouts = registry, client, timeouts

    def touch(self, account_id: str, llm_id: str, ttl_s: float, holder: str = "") -> None:
        """``holder`` (a session id) keeps ``llm_id`` active for ``ttl_s`` more seconds.

        An LLM that becomes active wakes the loop (its warm-up probes go at once); touching
        an active one, as every turn does, leaves its probes to the next tick: waking on
        every turn ran a scheduling round (a registry read per active LLM) per turn."""
        woke = llm_id not in self._accounts or not self._scheduler.is_active(llm_id)
        self._accounts[llm_id] = account_id
        self._scheduler.keep_alive(llm_id, ttl_s, holder)
        if woke:
            self._wake.set()

    def session_ended(self, account_id: str, llm_id: str, session_id: str) -> None:
        """Probing stops when the last session of the LLM ends (and no turn was recent)."""
        self._scheduler.release(llm_id, session_id)

    def turn_started(self, llm: Llm, turn_id: str, edge: str) -> TurnObserver:
        """Every turn (stateless ones too) keeps its LLM active for ``RECENT_TURNS_S``: a
        recovered endpoint is then found by a probe, not by a caller's turn."""
        self.touch(llm.account_id, llm.id, RECENT_TURNS_S, TURNS)
        return NO_TURN

    async def tick(self) -> None:
        """One scheduling round (the loop runs it every second; tests call it directly)."""
        await self._tick()
        if self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)

    async def run(self) -> None:
        if not self._enabled:
            return
        try:
            while True:
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(TICK_S):
                        await self._wake.wait()
                self._wake.clear()
                await self._tick()
        finally:
            for task in self._tasks:
                task.cancel()

    async def _tick(self) -> None:
        assert self._registry is not None
        llms: list[Llm] = []
        for llm_id, account in list(self._accounts.items()):
            if not self._scheduler.is_active(llm_id):
                del self._accounts[llm_id]
                self._scheduler.forget_llm(llm_id)
                continue
            try:
                llms.append(await self._registry.resolve(account, llm_id))
            except Exception:  # deleted meanwhile: stop probing it
                del self._accounts[llm_id]
                self._scheduler.forget_llm(llm_id)
        by_id = {llm.id: llm for llm in llms}
        for llm_id, endpoint_id in self._scheduler.due(self._clock.monotonic(), llms):
            endpoint = by_id[llm_id].endpoint(endpoint_id)
            if endpoint is not None:
                task = asyncio.create_task(self.probe(endpoint))
                self._tasks.add(task)
                task.add_done_callback(self._tasks.discard)

    async def probe(self, endpoint: Endpoint) -> None:
        """Sends one probe to ``endpoint`` now, if the router admits it (else nothing)."""
        assert self._client is not None
        async with self._slots:
            attempt = self._router.admit(endpoint.id, probe=True)
            if attempt is None:  # its trial was taken, it tripped or is cooling down meanwhile
                log.info("probe skipped", endpoint=endpoint.id, reason="not admitted")
                return
            self.sent += 1
            request, tokens = probe_request(next(self._nonces),
                                            self._router.context_window_tokens(endpoint))
            start = time.monotonic()
            error: UpstreamError | None = None
            stream = self._client.stream(adapter_for(endpoint.api_spec), endpoint,
                                         request, timeouts=self._timeouts)
            with attempt:  # cancelled if this task is
                try:
                    async for event in stream:
                        attempt.first_token(time.monotonic() - start, tokens)
                        if isinstance(event, Finish):
                            break
                except UpstreamError as exc:
                    error = exc
                finally:
                    with contextlib.suppress(Exception):
                        await stream.aclose()
                if error is None:
                    attempt.succeeded()
                else:
                    attempt.failed(error)
            log.info("probe", endpoint=endpoint.id, ok=error is None,
                     ms=round((time.monotonic() - start) * 1e3, 1),
                     error=error.kind.value if error else None)
