"""The ``Validator`` seam of the registry servicer, backed by ``server.validation``.

Yields the domain events (``CheckStarted`` and ``CheckFinished`` as they happen, then exactly
one ``ValidationReport``), bounded by the caller's deadline; the servicer turns them into
protos once (``server.edge.validation_pb``). Before the report goes out:

* each endpoint that passed and measured a time to first token gives the router its first
  latency sample (``Router.first_token(..., is_probe=True)``), so a new endpoint is not ranked
  blind;
* when the LLM is the stored one (``ValidateLlm`` by id), the detected capabilities of the
  endpoints that passed are recorded with ``RegistryService.set_capabilities``. A draft that is
  not stored yet (``CreateLlm``, ``UpdateLlm``, an inline ``ValidateLlm``) is left alone:
  writing then would change the etag under the pending store.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import structlog

from server.errors import DeadlineExceeded, SwitchboardError
from server.registry.llm import Llm
from server.registry.service import RegistryService
from server.routing.router import Router
from server.validation import Event, Validation, ValidationReport

log = structlog.get_logger("switchboard.validation")

class ConformanceValidator:
    """Runs ``server.validation`` for the registry servicer and the CLI."""

    def __init__(self, registry: RegistryService | None = None, router: Router | None = None,
                 validation: Validation | None = None) -> None:
        self._registry = registry
        self._router = router
        self._validation = validation or Validation()

    async def validate(self, llm: Llm, deadline_s: float | None = None
                       ) -> AsyncIterator[Event]:
        """The checks' events, then the report; DEADLINE_EXCEEDED when ``deadline_s`` (the
        caller's remaining time; None: none) passes first."""
        try:
            async with asyncio.timeout(deadline_s):
                async for event in self._validation.run(llm.endpoints, llm.generation):
                    if isinstance(event, ValidationReport):
                        await self._record(llm, event)
                    yield event
        except TimeoutError:
            raise DeadlineExceeded(
                "validation did not finish within the caller's deadline; retry with a longer "
                "deadline, or validate one endpoint at a time (endpoint_id)",
                reason="DEADLINE_EXCEEDED") from None

    async def _record(self, llm: Llm, report: ValidationReport) -> None:
        passed = [r for r in report.endpoints if r.passed and llm.endpoint(r.endpoint_id)]
        if self._router is not None:
            for r in passed:
                if r.ttft_s is not None:
                    self._router.first_token(r.endpoint_id, r.ttft_s, r.prompt_tokens,
                                             is_probe=True)
        stored = await self._stored(llm)
        if stored is None or self._registry is None:
            return
        capabilities = {r.endpoint_id: r.capabilities for r in passed
                        if stored.endpoint(r.endpoint_id) == llm.endpoint(r.endpoint_id)}
        if not capabilities:
            return
        try:
            await self._registry.set_capabilities(llm.account_id, llm.id, capabilities)
        except SwitchboardError as exc:  # best effort: a concurrent update wins
            log.warning("capabilities not recorded", llm_id=llm.id, reason=exc.reason)

    async def _stored(self, llm: Llm) -> Llm | None:
        """The stored LLM when ``llm`` is exactly it (not a draft or a pending update)."""
        if self._registry is None or not llm.etag or not llm.account_id:
            return None
        try:
            stored = await self._registry.get(llm.account_id, llm.id)
        except SwitchboardError:
            return None
        if stored.etag != llm.etag or stored.update_time != llm.update_time:
            return None
        return stored
