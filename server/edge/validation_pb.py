"""Validation's domain events as ``ValidateLlmResponse`` protos (converted once, at the edge)."""

from __future__ import annotations

from datetime import datetime

from switchboard.v1 import registry_pb2 as rpb

from server.edge.convert import capabilities_to_pb, duration, timestamp
from server.validation import (
    CheckFinished,
    CheckStarted,
    CheckStatus,
    EndpointReport,
    Event,
    ValidationReport,
)

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
    out.capabilities.CopyFrom(capabilities_to_pb(r.capabilities))
    out.capabilities.validate_time.CopyFrom(timestamp(validate_time))
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


def response_to_pb(event: Event, validate_time: datetime) -> rpb.ValidateLlmResponse:
    """Any validation event as the ``ValidateLlm`` stream sends it."""
    if isinstance(event, ValidationReport):
        return rpb.ValidateLlmResponse(report=report_to_pb(event, validate_time))
    return event_to_pb(event)
