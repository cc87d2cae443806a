"""``Simulator``: a loopback upstream LLM server for tests, demos and benchmarks.

Usage: ``async with Simulator(spec="openai", behavior=Behavior(ttft_s=0.02)) as sim:``, then
register ``sim.base_url`` with the gateway and inspect ``sim.requests``.
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Callable, Iterable
from types import TracebackType

from aiohttp import web

from server.simulator.app import build_app
from server.simulator.behavior import Behavior, Fault, Spec
from server.simulator.log import RecordedRequest
from server.simulator.state import SimState

_BASE_PATHS = {
    Spec.OPENAI: "/v1",
    Spec.GROQ: "/openai/v1",
    Spec.AZURE_OPENAI: "",
    Spec.GEMINI: "/v1beta",
}


class Simulator:
    """An aiohttp server on loopback speaking OpenAI, Azure OpenAI, Groq and Gemini.

    All four providers' routes are served; ``spec`` chooses ``base_url`` (what a user would
    register for that provider) and the style of 404s for unknown paths. ``api_key``: if set,
    requests must present it the provider's way (Bearer, ``api-key``, ``x-goog-api-key``).
    ``known_models``: if set, other models (Azure: deployments) get the provider's 404.
    ``seed`` makes ids and random padding reproducible.
    """

    def __init__(
        self,
        spec: str = "openai",
        behavior: Behavior | None = None,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        api_key: str | None = None,
        known_models: Iterable[str] | None = None,
        seed: int | None = None,
        shutdown_timeout_s: float = 1.0,
    ) -> None:
        self.spec = Spec.parse(spec)
        self._host, self._port = host, port
        self._shutdown_timeout_s = shutdown_timeout_s
        self._state = SimState(
            behavior or Behavior(), api_key=api_key, known_models=known_models, seed=seed
        )
        self._runner: web.AppRunner | None = None

    # Lifecycle ---------------------------------------------------------------------------
    async def start(self) -> None:
        if self._runner is not None:
            raise RuntimeError("simulator already started")
        self._state.closing = False
        runner = web.AppRunner(
            build_app(self._state, self.spec),
            handler_cancellation=True,
            access_log=None,
            shutdown_timeout=self._shutdown_timeout_s,
        )
        await runner.setup()
        site = web.TCPSite(runner, self._host, self._port, backlog=2048)
        try:
            await site.start()
        except BaseException:
            await runner.cleanup()
            raise
        self._port = int(runner.addresses[0][1])
        self._runner = runner

    async def close(self) -> None:
        """Stop serving; in-flight responses (hangs, stalls) are cancelled, not disconnects."""
        runner, self._runner = self._runner, None
        if runner is None:
            return
        self._state.closing = True
        tasks = list(self._state.tasks)
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.wait(tasks, timeout=self._shutdown_timeout_s)
        await runner.cleanup()

    async def __aenter__(self) -> Simulator:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    # Addresses ---------------------------------------------------------------------------
    @property
    def port(self) -> int:
        """The bound port (still readable after ``close``)."""
        if self._port == 0:
            raise RuntimeError("simulator not started")
        return self._port

    @property
    def root_url(self) -> str:
        return f"http://{self._host}:{self.port}"

    @property
    def base_url(self) -> str:
        """The base URL to register for ``spec`` (OpenAI ``…/v1``, Gemini ``…/v1beta``)."""
        return self.base_url_for(self.spec)

    def base_url_for(self, spec: str) -> str:
        return self.root_url + _BASE_PATHS[Spec.parse(spec)]

    # Behaviour and faults ----------------------------------------------------------------
    @property
    def behavior(self) -> Behavior:
        return self._state.behavior

    @behavior.setter
    def behavior(self, value: Behavior) -> None:
        """Applies to requests that arrive from now on; restarts the ``fault_times`` count."""
        self._state.behavior = value

    def set_fault(
        self, fault: Fault | None, *, times: int | None = None, until: float | None = None
    ) -> None:
        """Keep the behaviour, change the fault (and its ``fault_times``/``fault_until``)."""
        self.behavior = dataclasses.replace(
            self.behavior, fault=fault, fault_times=times, fault_until=until
        )

    @property
    def faults_enabled(self) -> bool:
        return self._state.faults_enabled

    @faults_enabled.setter
    def faults_enabled(self, enabled: bool) -> None:
        """A switch for "down until the test says so": False serves healthy answers."""
        self._state.faults_enabled = enabled

    @property
    def fault_count(self) -> int:
        """How many requests the current behaviour's fault has been applied to."""
        return self._state.fault_count

    # Request log -------------------------------------------------------------------------
    @property
    def requests(self) -> list[RecordedRequest]:
        return self._state.log.requests

    async def wait_for_requests(self, n: int, timeout: float = 5.0) -> list[RecordedRequest]:  # noqa: ASYNC109
        """Return once at least ``n`` requests have arrived (bodies read)."""
        log = self._state.log
        await log.wait_until(lambda: len(log.requests) >= n, timeout, f"{n} request(s)")
        return list(log.requests)

    async def wait_for_disconnect(self, index: int = -1, timeout: float = 5.0) -> RecordedRequest:  # noqa: ASYNC109
        """Return request ``index`` once its client has gone away before the response ended."""
        return await self._wait_for(index, timeout, "disconnect", lambda r: r.disconnected)

    async def wait_for_end(self, index: int = -1, timeout: float = 5.0) -> RecordedRequest:  # noqa: ASYNC109
        """Return request ``index`` once its response completed or its client went away."""
        return await self._wait_for(index, timeout, "response end", lambda r: r.ended)

    async def _wait_for(
        self,
        index: int,
        timeout_s: float,
        what: str,
        done: Callable[[RecordedRequest], bool],
    ) -> RecordedRequest:
        log = self._state.log

        def ready() -> bool:
            record = log.get(index)
            return record is not None and done(record)

        await log.wait_until(ready, timeout_s, f"{what} of request {index}")
        record = log.get(index)
        assert record is not None
        return record
