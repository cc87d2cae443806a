"""The ``Validator`` seam of the registry servicer, backed by ``server.validation``.

Turns the domain events into ``ValidateLlmResponse`` messages (``check_started`` and
``check_finished`` as they happen, then exactly one ``report``). Before the report goes out:

* each endpoint that passed and measured a time to first token gives the router its first
  latency sample (``Router.first_token(..., is_probe=True)``), so a new endpoint is not ranked
  blind;
* when the LLM is the stored one (``ValidateLlm`` by id), the detected capabilities of the
  endpoints that passed are recorded with ``RegistryService.set_capabilities``. A draft that is
  not stored yet (``CreateLlm``, ``UpdateLlm``, an inline ``ValidateLlm``) is left alone:
  writing then would change the etag under the pending store.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime

import structlog
from switchboard.v1 import llm_pb2 as lpb
from switchboard.v1 import registry_pb2 as rpb

from server.edge.convert import duration, timestamp
from server.edge.registry_servicer import Validator
from server.errors import SwitchboardError
from server.registry.llm import Llm
from server.registry.service import RegistryService
from server.routing.router import Router
from server.validation import (
    CheckFinished,
    CheckStarted,
    CheckStatus,
    EndpointReport,
    Validation,
    ValidationReport,
)

log = structlog.get_logger("switchboard.validation")

_STATUS = {
    CheckStatus.PASS: rpb.CHECK_STATUS_PASS,
    CheckStatus.WARN: rpb.CHECK_STATUS_WARN,
    CheckStatus.FAIL: rpb.CHECK_STATUS_FAIL,
    CheckStatus.SKIPPED: rpb.CHECK_STATUS_SKIPPED,
}


def check_to_pb(c: CheckFinished) -> rpb.CheckResult:
    return rpb.CheckResult(
        endpoint_id=c.endpoint_id, check=c.check, status=_STATUS[c.status],
        required=c.required, observed=c.observed, expected=c.expected, hint=c.hint,
        duration=duration(c.duration_s))


def endpoint_report_to_pb(r: EndpointReport, validate_time: datetime) -> rpb.EndpointReport:
    out = rpb.EndpointReport(endpoint_id=r.endpoint_id, base_url=r.base_url,
                             checks=[check_to_pb(c) for c in r.checks], passed=r.passed)
    caps = r.capabilities
    out.capabilities.CopyFrom(lpb.EndpointCapabilities(
        reasoning=caps.reasoning, reasoning_dialect=caps.reasoning_dialect,
        tool_calling=caps.tool_calling, image_input=caps.image_input,
        reported_context_window_tokens=caps.reported_context_window_tokens,
        continues_partial_answer=caps.continues_partial_answer,
        validate_time=timestamp(validate_time)))
    if r.ttft_s is not None:
        out.time_to_first_token.CopyFrom(duration(r.ttft_s))
    return out


def report_to_pb(report: ValidationReport, validate_time: datetime) -> rpb.ValidationReport:
    return rpb.ValidationReport(
        endpoints=[endpoint_report_to_pb(r, validate_time) for r in report.endpoints],
        passed=report.passed)


def event_to_pb(event: CheckStarted | CheckFinished) -> rpb.ValidateLlmResponse:
    if isinstance(event, CheckStarted):
        return rpb.ValidateLlmResponse(
            check_started=rpb.CheckStarted(endpoint_id=event.endpoint_id, check=event.check))
    return rpb.ValidateLlmResponse(check_finished=check_to_pb(event))


class ConformanceValidator(Validator):
    """Runs ``server.validation`` for the registry servicer and the CLI."""

    def __init__(self, registry: RegistryService | None = None, router: Router | None = None,
                 validation: Validation | None = None) -> None:
        self._registry = registry
        self._router = router
        self._validation = validation or Validation()

    async def validate(self, llm: Llm) -> AsyncIterator[rpb.ValidateLlmResponse]:
        async for event in self._validation.run(llm.endpoints, llm.generation):
            if isinstance(event, ValidationReport):
                await self._record(llm, event)
                yield rpb.ValidateLlmResponse(report=report_to_pb(event, datetime.now(UTC)))
            else:
                yield event_to_pb(event)

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
        capabilities = {r.endpoint_id: r.capabilities.as_dict() for r in passed
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
