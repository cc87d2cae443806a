"""Runs the checks of every endpoint of an LLM and streams the events.

``Validation.run(endpoints)`` yields ``CheckStarted``/``CheckFinished`` events as they happen
(endpoints run concurrently, at most ``ValidationLimits.concurrency`` at a time, and
interleave), then exactly one ``ValidationReport``. Per endpoint the checks run in catalogue
order: DNS, connect, TLS, then one streaming turn judged by the admission, stream and
response checks, then the optional capability probes concurrently. A failed prerequisite
SKIPS what depends on it, with the reason. Every step has its own deadline (``ValidationLimits``).

One aiohttp session per run: validation is rare, it must not share pooled connections (whose
DNS and TLS were settled earlier) with live traffic, and the session closes with the run.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from urllib.parse import urlsplit

import aiohttp
import structlog
from aiohttp.abc import AbstractResolver

from server.chat import ChatRequest, Generation
from server.providers.adapters import adapter_for
from server.registry.endpoint_capabilities import Capabilities
from server.registry.llm import Endpoint
from server.secret import Secret
from server.timeouts import Timeouts
from server.validation import (
    admission,
    capability_checks,
    catalog,
    exchange,
    listing,
    stream_checks,
)
from server.validation.audit import StreamAudit, new_audit
from server.validation.catalog import CheckVerdict
from server.validation.network import Target, connect, handshake, resolve
from server.validation.report import (
    NOTHING_DETECTED,
    CheckFinished,
    CheckStarted,
    CheckStatus,
    EndpointReport,
    Event,
    ValidationReport,
)
from server.vault.redact import mask_values, scrub

log = structlog.get_logger("switchboard.validation")

Emit = Callable[[Event], None]


@dataclass(frozen=True, slots=True)
class ValidationLimits:
    """Deadlines (seconds) of each step, and how many endpoints are checked at once."""

    dns_s: float = 5.0
    connect_s: float = 5.0
    tls_s: float = 10.0
    turn: Timeouts = field(default_factory=lambda: Timeouts(total_s=60.0))  # a turn's budget
    probe: Timeouts = field(default_factory=lambda: Timeouts(total_s=45.0))
    slow_first_token_s: float = 10.0
    concurrency: int = 8


class Validation:
    """``log_summary``: one log line per endpoint (off for the CLI, which prints the checks)."""

    def __init__(self, limits: ValidationLimits | None = None, *, log_summary: bool = True,
                 resolver: AbstractResolver | None = None) -> None:
        """``resolver``: DNS for the endpoints' hosts; the server passes its
        ``GuardedResolver`` so validation connects only where a turn could."""
        self.limits = limits or ValidationLimits()
        self.log_summary = log_summary
        self.resolver = resolver

    async def run(self, endpoints: Sequence[Endpoint], generation: Generation | None = None
                  ) -> AsyncIterator[Event]:
        queue: asyncio.Queue[Event | None] = asyncio.Queue()
        reports: list[EndpointReport | None] = [None] * len(endpoints)
        gate = asyncio.Semaphore(self.limits.concurrency)
        gen = generation or Generation()

        async def one(index: int, endpoint: Endpoint, session: aiohttp.ClientSession) -> None:
            async with gate:
                run = _EndpointRun(endpoint, endpoint.id or f"#{index}", gen, session,
                                   self.limits, queue.put_nowait, self.log_summary,
                                   self.resolver)
                reports[index] = await run.run()

        async def everything() -> None:
            try:
                async with aiohttp.ClientSession(
                    connector=aiohttp.TCPConnector(resolver=self.resolver),
                    timeout=aiohttp.ClientTimeout(total=None),
                    headers={"User-Agent": "switchboard-validation/0.1"},
                    cookie_jar=aiohttp.DummyCookieJar(),
                ) as session, asyncio.TaskGroup() as tasks:
                    for index, endpoint in enumerate(endpoints):
                        tasks.create_task(one(index, endpoint, session))
            finally:
                queue.put_nowait(None)

        task = asyncio.create_task(everything(), name="validation")
        try:
            while (event := await queue.get()) is not None:
                yield event
            await task
        finally:
            if not task.done():
                task.cancel()
                await asyncio.wait([task])
        yield ValidationReport(tuple(r for r in reports if r is not None))


class _EndpointRun:
    def __init__(self, endpoint: Endpoint, endpoint_id: str, generation: Generation,
                 session: aiohttp.ClientSession, limits: ValidationLimits, emit: Emit,
                 log_summary: bool = True, resolver: AbstractResolver | None = None) -> None:
        self.endpoint = endpoint
        self.id = endpoint_id
        self.generation = generation
        self.session = session
        self.limits = limits
        self.emit = emit
        self.log_summary = log_summary
        self.resolver = resolver
        self.results: dict[str, CheckFinished] = {}
        self.capabilities = NOTHING_DETECTED
        self.ttft_s: float | None = None
        self.prompt_tokens = 0
        self.reported_window_tokens = 0
        self.server = ""  # the server software when it names itself (hints)

    async def run(self) -> EndpointReport:
        try:
            await self._checks()
        except Exception as exc:  # a validator bug must not hide the endpoint's other results
            log.exception("validation check crashed", endpoint_id=self.id)
            self._abandon(type(exc).__name__)
        report = EndpointReport(
            endpoint_id=self.id, base_url=self.endpoint.base_url,
            checks=tuple(self.results[name] for name in catalog.ALL if name in self.results),
            capabilities=self.capabilities, ttft_s=self.ttft_s,
            prompt_tokens=self.prompt_tokens)
        if not self.log_summary:
            return report
        log.info("endpoint validated", endpoint_id=self.id, passed=report.passed,
                 failed=[c.check for c in report.checks if c.status is CheckStatus.FAIL],
                 warned=[c.check for c in report.checks if c.status is CheckStatus.WARN],
                 ttft_ms=None if self.ttft_s is None else round(self.ttft_s * 1000))
        return report

    # -- the sequence --------------------------------------------------------------------------

    async def _checks(self) -> None:
        limits, target = self.limits, Target.of(self.endpoint.base_url)
        addresses: list[tuple[str, int]] = []

        async def dns() -> CheckVerdict:
            nonlocal addresses
            verdict, addresses = await resolve(target, limits.dns_s, self.resolver)
            return verdict

        if not await self._step(catalog.DNS, dns()):
            return self._skip_rest("the host name does not resolve")
        if not await self._step(catalog.CONNECT, connect(target, addresses, limits.connect_s)):
            return self._skip_rest("no TCP connection")
        if not await self._step(catalog.TLS, handshake(target, addresses, limits.tls_s)):
            return self._skip_rest("no TLS connection")
        basic = await self._turn()
        if basic is None:
            return self._skip_rest("the basic streaming turn did not produce a usable stream")
        await self._capabilities(basic)

    async def _turn(self) -> StreamAudit | None:
        """The basic streaming turn; its audit when the stream is worth probing further."""
        group = (*catalog.ADMISSION, *catalog.STREAM, *catalog.RESPONSE)
        for name in group:
            self.emit(CheckStarted(self.id, name))
        http = adapter_for(self.endpoint.api_spec).build_request(
            self.endpoint, capability_checks.ping(self.generation))
        audit = new_audit(self.endpoint.api_spec)
        ex = await exchange.run(self.session, http, self.limits.turn, audit)
        audit.close()
        url = urlsplit(http.url)
        path = url.path + (f"?{url.query}" if url.query else "")
        verdicts = admission.judge(ex, self.endpoint, path)
        admitted = next((v.check for v in verdicts if v.status is CheckStatus.FAIL), "")
        if not admitted:
            verdicts = await self._listed(verdicts, http.headers)
            admitted = next((v.check for v in verdicts if v.status is CheckStatus.FAIL), "")
        budget = stream_checks.Budget(self.limits.turn.first_token_s,
                                      self.limits.slow_first_token_s)
        self.server = stream_checks.server_of(ex)
        verdicts += stream_checks.judge(
            ex, audit, self.endpoint, budget, admitted,
            limit_sent=self.generation.max_output_tokens is not None)
        for verdict in verdicts:
            self._finish(verdict, ex.duration_s)
        if audit.first_content_at is not None:
            self.ttft_s = audit.first_content_at - ex.sent_at
            self.prompt_tokens = (audit.usage.input_tokens if audit.usage is not None
                                  and audit.usage.input_tokens
                                  else capability_checks.estimate_tokens(
                                      capability_checks.PING_PROMPT))
        first_token = self.results[catalog.FIRST_TOKEN].status
        usable = not admitted and ex.streamed and audit.events > 0 and (
            first_token is not CheckStatus.FAIL)
        return audit if usable else None

    async def _listed(self, verdicts: list[CheckVerdict], headers: Mapping[str, str]
                      ) -> list[CheckVerdict]:
        """Reads the server's model list and window; ``request.model`` FAILS for a model it
        does not list (llama.cpp answers any name with its one model)."""
        found = await listing.fetch(self.session, self.endpoint, headers)
        self.reported_window_tokens = found.window_tokens
        model = self.endpoint.model
        if found.lists(model):
            return verdicts
        shown = ", ".join(repr(m) for m in found.models[:5])
        more = f" and {len(found.models) - 5} more" if len(found.models) > 5 else ""
        server = "llama.cpp answers any model name, but it" if found.llama_cpp else "the server"
        bad = catalog.failed(
            catalog.MODEL, f"{model!r} is not in GET /models, which lists {shown}{more}",
            f"set the endpoint's model to a listed id: {server} serves only those"
            + (" (llama-server --alias names the model)" if found.llama_cpp else ""))
        return [bad if v.check == catalog.MODEL else v for v in verdicts]

    async def _capabilities(self, basic: StreamAudit) -> None:
        for name in catalog.CAPABILITIES:
            self.emit(CheckStarted(self.id, name))
        endpoint, gen = self.endpoint, self.generation

        dialect = ""

        async def reasoning() -> None:
            nonlocal dialect
            probe = None
            duration = 0.0
            if not basic.reasoning and capability_checks.wants_reasoning_probe(gen):
                ex, audit = await self._probe(capability_checks.with_reasoning(gen))
                probe, duration = (ex, audit), ex.duration_s
            verdict, dialect = capability_checks.reasoning_verdict(basic, probe, endpoint,
                                                                   self.server)
            self._finish(verdict, duration)

        async def tools() -> None:
            ex, audit = await self._probe(capability_checks.with_tool(gen))
            self._finish(capability_checks.tool_verdict(ex, audit, endpoint), ex.duration_s)

        async def image() -> None:
            ex, audit = await self._probe(capability_checks.with_image(gen))
            self._finish(capability_checks.image_verdict(ex, audit, endpoint), ex.duration_s)

        async def continuation() -> None:
            ex, audit = await self._probe(capability_checks.with_partial_answer(gen))
            self._finish(capability_checks.continuation_verdict(ex, audit, endpoint),
                         ex.duration_s)

        async with asyncio.TaskGroup() as tasks:
            for probe in (reasoning, tools, image, continuation):
                tasks.create_task(probe())
        r = self.results
        self.capabilities = Capabilities(
            reasoning=bool(dialect), reasoning_dialect=dialect,
            tool_calling=r[catalog.TOOL_CALLING].status is CheckStatus.PASS,
            image_input=r[catalog.IMAGE_INPUT].status is CheckStatus.PASS,
            reported_context_window_tokens=self.reported_window_tokens,
            continues_partial_answer=r[catalog.CONTINUATION].status is CheckStatus.PASS)

    async def _probe(self, request: ChatRequest) -> tuple[exchange.Exchange, StreamAudit]:
        http = adapter_for(self.endpoint.api_spec).build_request(self.endpoint, request)
        audit = new_audit(self.endpoint.api_spec)
        ex = await exchange.run(self.session, http, self.limits.probe, audit)
        audit.close()
        return ex, audit

    # -- bookkeeping ---------------------------------------------------------------------------

    async def _step(self, name: str, work: Awaitable[CheckVerdict]) -> bool:
        """Runs one check; True unless it FAILED."""
        self.emit(CheckStarted(self.id, name))
        loop = asyncio.get_running_loop()
        started = loop.time()
        verdict = await work
        self._finish(verdict, loop.time() - started)
        return verdict.status is not CheckStatus.FAIL

    def _finish(self, verdict: CheckVerdict, duration_s: float) -> None:
        spec = catalog.check(verdict.check, self.endpoint.api_spec)
        expected = (verdict.expected or spec.expected).replace(
            "{base_url}", self.endpoint.base_url.rstrip("/")).replace(
            "{model}", self.endpoint.model)
        result = CheckFinished(
            endpoint_id=self.id, check=verdict.check, status=verdict.status,
            required=spec.required, observed=self._redact(verdict.observed),
            expected=expected, hint=self._redact(verdict.hint), duration_s=duration_s)
        self.results[verdict.check] = result
        self.emit(result)

    def _redact(self, text: str) -> str:
        """No piece of the endpoint's key or secret headers in what the report shows."""
        text = scrub(text)
        secrets = [self.endpoint.api_key, *(v for _, v in self.endpoint.extra_headers
                                            if isinstance(v, Secret))]
        return mask_values(text, (s.reveal() for s in secrets if s))

    def _skip_rest(self, reason: str) -> None:
        for name in catalog.ALL:
            if name not in self.results:
                self.emit(CheckStarted(self.id, name))
                self._finish(catalog.skipped(name, reason), 0.0)

    def _abandon(self, what: str) -> None:
        """After a validator bug: the first unfinished required check FAILs, the rest SKIP."""
        first = next((n for n in catalog.ALL if n not in self.results
                      and n in catalog.REQUIRED), None)
        if first is not None:
            self._finish(catalog.failed(first, f"the validator failed internally ({what})",
                                        "this is a Switchboard bug: report it with the time "
                                        "of the validation"), 0.0)
        self._skip_rest("the validator failed internally")
