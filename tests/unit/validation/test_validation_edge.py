"""The edge validator: domain events to protos, router samples, recorded capabilities."""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import AsyncIterator, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any, cast

import pytest
from switchboard.v1 import llm_pb2 as lpb
from switchboard.v1 import registry_pb2 as rpb

from server.chat import Generation
from server.edge.check_endpoint import check_endpoint
from server.edge.validation_pb import event_to_pb, response_to_pb
from server.edge.validator import ConformanceValidator
from server.errors import DeadlineExceeded
from server.registry.endpoint_capabilities import Capabilities
from server.registry.llm import Endpoint, Llm
from server.registry.service import RegistryService
from server.routing.router import Router
from server.validation import (
    CheckFinished,
    CheckStarted,
    CheckStatus,
    EndpointReport,
    Event,
    Validation,
    ValidationReport,
)
from tests.unit.validation._validation_testkit import endpoint

NOW = datetime(2026, 1, 1, tzinfo=UTC)


def finished(endpoint_id: str, status: CheckStatus, required: bool = True) -> CheckFinished:
    return CheckFinished(endpoint_id, "streaming.end", status, required, observed="seen",
                         expected="wanted", hint="fix it", duration_s=0.25)


class Canned(Validation):
    """Yields prepared events instead of checking anything."""

    def __init__(self, events: list[Event]) -> None:
        super().__init__()
        self.events = events

    async def run(self, endpoints: Sequence[Endpoint], generation: Generation | None = None
                  ) -> AsyncIterator[Event]:
        for event in self.events:
            yield event


class Samples:
    def __init__(self) -> None:
        self.calls: list[tuple[Any, ...]] = []

    def first_token(self, endpoint_id: str, ttft_s: float, prompt_tokens: int,
                    is_probe: bool = False) -> None:
        self.calls.append((endpoint_id, ttft_s, prompt_tokens, is_probe))


class Registry:
    def __init__(self, stored: Llm) -> None:
        self.stored = stored
        self.recorded: list[tuple[str, str, Mapping[str, Capabilities]]] = []

    async def get(self, account_id: str, llm_id: str) -> Llm:
        return self.stored

    async def set_capabilities(self, account_id: str, llm_id: str,
                               capabilities: Mapping[str, Capabilities]) -> None:
        self.recorded.append((account_id, llm_id, capabilities))


def llm(*endpoints: Endpoint) -> Llm:
    return Llm(id="llm_1", account_id="acct", display_name="x", endpoints=endpoints,
               create_time=NOW, update_time=NOW, etag="etag1")


def report(ok: EndpointReport, *more: EndpointReport) -> ValidationReport:
    return ValidationReport((ok, *more))


CAPS = Capabilities(reasoning=True, reasoning_dialect="reasoning", tool_calling=True)
GOOD = EndpointReport("ep_1", "https://a/v1", (finished("ep_1", CheckStatus.PASS),), CAPS,
                      ttft_s=0.12, prompt_tokens=9)
BAD = EndpointReport("ep_2", "https://b/v1", (finished("ep_2", CheckStatus.FAIL),),
                     ttft_s=0.3, prompt_tokens=9)


async def collect(validator: ConformanceValidator, target: Llm) -> list[rpb.ValidateLlmResponse]:
    return [response_to_pb(e, NOW) async for e in validator.validate(target)]


def test_check_events_become_protos() -> None:
    started = event_to_pb(CheckStarted("ep_1", "network.dns"))
    assert started.check_started.endpoint_id == "ep_1"
    done = event_to_pb(finished("ep_1", CheckStatus.WARN, required=False)).check_finished
    assert (done.status, done.required, done.observed, done.expected, done.hint) == (
        rpb.CHECK_STATUS_WARN, False, "seen", "wanted", "fix it")
    assert done.duration.ToTimedelta() == timedelta(milliseconds=250)


async def test_the_report_comes_last_with_capabilities_and_ttft() -> None:
    events: list[Event] = [CheckStarted("ep_1", "streaming.end"),
                           finished("ep_1", CheckStatus.PASS), report(GOOD, BAD)]
    second = dataclasses.replace(endpoint(), id="ep_2")
    out = await collect(ConformanceValidator(validation=Canned(events)), llm(endpoint(), second))
    assert [e.WhichOneof("event") for e in out] == ["check_started", "check_finished", "report"]
    pb = out[-1].report
    assert not pb.passed and [r.passed for r in pb.endpoints] == [True, False]
    caps = pb.endpoints[0].capabilities
    assert (caps.reasoning, caps.reasoning_dialect, caps.tool_calling, caps.image_input) == (
        True, "reasoning", True, False)
    assert caps.validate_time.seconds > 0
    assert pb.endpoints[0].time_to_first_token.ToTimedelta() == timedelta(milliseconds=120)


async def test_passed_endpoints_feed_the_router_a_probe_sample() -> None:
    router = Samples()
    second = dataclasses.replace(endpoint(), id="ep_2")
    validator = ConformanceValidator(router=cast(Router, router),
                                     validation=Canned([report(GOOD, BAD)]))
    await collect(validator, llm(endpoint(), second))
    assert router.calls == [("ep_1", 0.12, 9, True)]


async def test_capabilities_are_recorded_for_the_stored_llm_only() -> None:
    stored = llm(endpoint())
    registry = Registry(stored)
    validator = ConformanceValidator(registry=cast(RegistryService, registry),
                                     validation=Canned([report(GOOD)]))
    await collect(validator, stored)
    assert registry.recorded == [("acct", "llm_1", {"ep_1": CAPS})]
    pending = dataclasses.replace(stored, update_time=NOW + timedelta(seconds=1))
    await collect(validator, pending)  # an UpdateLlm draft: its etag must not change
    draft = dataclasses.replace(stored, etag="")
    await collect(validator, draft)  # CreateLlm: not stored yet
    assert len(registry.recorded) == 1


async def test_check_endpoint_reports_bad_flags_as_a_failed_check() -> None:
    shown: list[rpb.ValidateLlmResponse] = []
    ep = lpb.Endpoint(api_spec=lpb.API_SPEC_OPENAI, base_url="ftp://x", model="")
    assert await check_endpoint(ep, shown.append) == 1
    assert [e.WhichOneof("event") for e in shown] == ["check_finished", "report"]
    check = shown[0].check_finished
    assert check.check == "config.endpoint" and check.status == rpb.CHECK_STATUS_FAIL
    assert "base_url" in check.observed and "model" in check.observed
    assert not shown[1].report.passed


class Stuck(Validation):
    """A validation whose first check never finishes (an endpoint that never answers)."""

    async def run(self, endpoints: Sequence[Endpoint], generation: Generation | None = None
                  ) -> AsyncIterator[Event]:
        yield CheckStarted("ep_1", "streaming.end")
        await asyncio.Event().wait()


async def test_validation_is_bounded_by_the_callers_deadline() -> None:
    validator = ConformanceValidator(validation=Stuck())
    seen: list[Event] = []
    with pytest.raises(DeadlineExceeded) as caught:
        async for event in validator.validate(llm(endpoint()), deadline_s=0.05):
            seen.append(event)
    assert seen == [CheckStarted("ep_1", "streaming.end")]
    assert caught.value.reason == "DEADLINE_EXCEEDED"
