"""``switchboard.v1.LlmRegistry``: protos in, registry service calls, protos out."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from dataclasses import replace
from datetime import UTC, datetime
from typing import Protocol

from switchboard.v1 import llm_pb2 as lpb
from switchboard.v1 import registry_pb2 as rpb
from switchboard.v1 import registry_pb2_grpc

from server.edge import context as rpc
from server.edge.context import ServicerContext
from server.edge.convert import llm_draft_from_pb, llm_to_pb
from server.edge.routing_state import RoutingReader
from server.edge.validation_pb import report_to_pb, response_to_pb
from server.errors import FailedPrecondition, Violations
from server.registry.llm import Llm
from server.registry.service import RegistryService
from server.validation import CheckStatus, Event, ValidationReport

# Fills in live health for GetLlm/ListLlms: (endpoint id, Endpoint proto) -> None.
HealthFiller = Callable[[str, lpb.Endpoint], None]


class Validator(Protocol):
    """Runs the conformance checks of ``llm``: ``CheckStarted``/``CheckFinished`` events, then
    exactly one ``ValidationReport`` (domain values); ``deadline_s`` bounds the run.
    ``server.edge.validator.ConformanceValidator`` is the real one."""

    def validate(self, llm: Llm, deadline_s: float | None = None) -> AsyncIterator[Event]: ...


# grpc-status-details-bin travels as metadata, whose default soft limit is 8 KiB for every
# header together: a full report of many checks reached it and arrived as RESOURCE_EXHAUSTED.
DETAILS_BUDGET_BYTES = 3000
_TEXT_CHARS = 240


def failing_checks(report: rpb.ValidationReport) -> rpb.ValidationReport:
    """The report cut down for a status's error details: each endpoint with only its failed
    required checks (observed and hint, shortened), well under ``DETAILS_BUDGET_BYTES``."""
    out = rpb.ValidationReport(passed=report.passed)
    for r in report.endpoints:
        if r.passed:
            continue
        kept = out.endpoints.add(endpoint_id=r.endpoint_id, base_url=r.base_url[:_TEXT_CHARS],
                                 passed=False)
        for c in r.checks:
            if c.required and c.status == rpb.CHECK_STATUS_FAIL:
                kept.checks.add(check=c.check, status=c.status, required=True,
                                observed=_cut(c.observed), hint=_cut(c.hint))
    while out.ByteSize() > DETAILS_BUDGET_BYTES:  # many endpoints: drop checks from the end
        last = out.endpoints[-1]
        if len(last.checks) > 1:
            del last.checks[-1]
        else:
            del out.endpoints[-1]
    return out


def _cut(text: str) -> str:
    return text if len(text) <= _TEXT_CHARS else text[: _TEXT_CHARS - 1] + "…"


def with_capabilities(llm: Llm, report: ValidationReport | None) -> Llm:
    """The LLM with what validation detected recorded on each endpoint (stored with it)."""
    if report is None:
        return llm
    found = {r.endpoint_id: r.capabilities for r in report.endpoints}
    return replace(llm, endpoints=tuple(
        replace(e, capabilities=found.get(e.id, e.capabilities)) for e in llm.endpoints))


class RegistryServicer(registry_pb2_grpc.LlmRegistryServicer):
    def __init__(self, registry: RegistryService, validator: Validator,
                 fill_health: HealthFiller | None = None,
                 routing: RoutingReader | None = None) -> None:
        self._registry = registry
        self._validator = validator
        self._fill_health = fill_health
        self._routing = routing

    def _out(self, llm: Llm) -> lpb.Llm:
        pb = llm_to_pb(llm)
        if self._fill_health is not None:
            for e in pb.endpoints:
                self._fill_health(e.id, e)
        return pb

    async def _report(self, llm: Llm, deadline_s: float | None) -> ValidationReport:
        report = ValidationReport(())
        async for event in self._validator.validate(llm, deadline_s):
            if isinstance(event, ValidationReport):
                report = event
        return report

    async def _gate(self, llm: Llm, skip: bool, deadline_s: float | None
                    ) -> tuple[ValidationReport, rpb.ValidationReport] | None:
        """The domain report (what is gated on and stored) and its proto (what is answered),
        converted once; None when validation is skipped."""
        if skip:
            return None
        report = await self._report(llm, deadline_s)
        pb = report_to_pb(report, datetime.now(UTC))
        if not report.passed:
            failed = [f"{r.endpoint_id}: {c.check} ({c.hint or c.observed})"
                      for r in report.endpoints for c in r.checks
                      if c.required and c.status is CheckStatus.FAIL]
            rpc.call().error_details = (failing_checks(pb),)
            raise FailedPrecondition(
                "validation failed: " + "; ".join(failed[:3])
                + (f" (and {len(failed) - 3} more)" if len(failed) > 3 else "")
                + "; the failing checks are in the error details (ValidateLlm streams the "
                "full report)", reason="VALIDATION_FAILED")
        return report, pb

    async def CreateLlm(self, request: rpb.CreateLlmRequest, context: ServicerContext
                        ) -> rpb.CreateLlmResponse:
        account = rpc.call().account_id
        llm = await self._registry.prepare_new(account, llm_draft_from_pb(request.llm))
        gated = await self._gate(llm, request.skip_validation, context.time_remaining())
        response = rpb.CreateLlmResponse()
        if gated is not None:
            response.validation.CopyFrom(gated[1])
        if request.validate_only:
            return response
        stored = await self._registry.store_new(with_capabilities(llm, gated[0] if gated else None))
        rpc.call().summary["llm_id"] = stored.id
        response.llm.CopyFrom(self._out(stored))
        return response

    async def GetLlm(self, request: rpb.GetLlmRequest, context: ServicerContext
                     ) -> rpb.GetLlmResponse:
        llm = await self._registry.get(rpc.call().account_id, request.llm_id)
        return rpb.GetLlmResponse(llm=self._out(llm))

    async def ListLlms(self, request: rpb.ListLlmsRequest, context: ServicerContext
                       ) -> rpb.ListLlmsResponse:
        llms, token = await self._registry.list(rpc.call().account_id, request.page_size,
                                                request.page_token)
        return rpb.ListLlmsResponse(llms=[self._out(x) for x in llms], next_page_token=token)

    async def UpdateLlm(self, request: rpb.UpdateLlmRequest, context: ServicerContext
                        ) -> rpb.UpdateLlmResponse:
        if not request.llm.id:
            v = Violations()
            v.add("llm.id", "is required")
            v.raise_if_any()
        mask = frozenset(request.update_mask.paths)
        existing, updated = await self._registry.prepare_update(
            rpc.call().account_id, request.llm.id,
            llm_draft_from_pb(request.llm, require_keys=False), mask)
        gated = await self._gate(updated, request.skip_validation or "endpoints" not in mask,
                                 context.time_remaining())
        response = rpb.UpdateLlmResponse()
        if gated is not None:
            response.validation.CopyFrom(gated[1])
        if request.validate_only:
            response.llm.CopyFrom(self._out(existing))
            return response
        found = with_capabilities(updated, gated[0] if gated else None)
        stored = await self._registry.store_update(existing, found)
        response.llm.CopyFrom(self._out(stored))
        return response

    async def DeleteLlm(self, request: rpb.DeleteLlmRequest, context: ServicerContext
                        ) -> rpb.DeleteLlmResponse:
        await self._registry.delete(rpc.call().account_id, request.llm_id, request.etag)
        return rpb.DeleteLlmResponse()

    async def ValidateLlm(self, request: rpb.ValidateLlmRequest, context: ServicerContext
                          ) -> AsyncIterator[rpb.ValidateLlmResponse]:
        account = rpc.call().account_id
        if request.WhichOneof("target") == "llm":
            llm = await self._registry.prepare_new(account, llm_draft_from_pb(request.llm))
        elif request.llm_id:
            llm = await self._registry.get(account, request.llm_id)
        else:
            v = Violations()
            v.add("target", "set llm_id (a stored LLM) or llm (an LLM given inline)")
            v.raise_if_any()
        if request.endpoint_id:
            only = tuple(e for e in llm.endpoints if e.id == request.endpoint_id)
            if not only:
                v = Violations()
                v.add("endpoint_id", f"LLM {llm.id!r} has no endpoint {request.endpoint_id!r}")
                v.raise_if_any()
            llm = replace(llm, endpoints=only)
        async for event in self._validator.validate(llm, context.time_remaining()):
            yield response_to_pb(event, datetime.now(UTC))

    async def GetRoutingState(self, request: rpb.GetRoutingStateRequest,
                              context: ServicerContext) -> rpb.GetRoutingStateResponse:
        if not request.llm_id:
            v = Violations()
            v.add("llm_id", "is required")
            v.raise_if_any()
        llm = await self._registry.get(rpc.call().account_id, request.llm_id)
        if self._routing is None:
            return rpb.GetRoutingStateResponse(llm_id=llm.id)
        return self._routing(llm)
