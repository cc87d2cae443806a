"""Validation end to end: real simulators on loopback, the real gRPC server for the RPCs.

Acceptance (issue 6): each fault mode fails exactly its check (no usage: WARN) with a hint and
nothing else; a correct endpoint of each spec passes every required check; three endpoints
answering in 100 ms validate in under 5 s; CreateLlm refuses a broken endpoint with
FAILED_PRECONDITION and the ValidationReport in the status details; validate_only stores
nothing.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import grpc
import pytest
from google.rpc import code_pb2
from grpc_status import rpc_status
from switchboard.v1 import llm_pb2 as lpb
from switchboard.v1 import registry_pb2 as rpb
from switchboard_client import AsyncClient

from server.app import Switchboard
from server.edge.check_endpoint import check_endpoint
from server.registry.llm import ApiSpec, Endpoint
from server.secret import Secret
from server.simulator import Behavior, Fault, FaultKind, Prefill, ReasoningDialect, Simulator
from server.simulator.answer import prefill_text
from server.timeouts import Timeouts
from server.validation import (
    CheckFinished,
    CheckStarted,
    CheckStatus,
    Event,
    Validation,
    ValidationLimits,
    ValidationReport,
    catalog,
)
from tests.support import endpoint

KEY = "sk-sim-key-0123456789"
SPECS = ["openai", "azure_openai", "gemini", "groq"]
FAST = Timeouts(connect_s=2.0, first_token_s=1.0, between_chunks_s=1.0, total_s=5.0)
LIMITS = ValidationLimits(turn=FAST, probe=FAST)
BEHAVIOR = Behavior(text="pong, says the simulator", ttft_s=0.01)
FAIL, WARN = CheckStatus.FAIL, CheckStatus.WARN


def domain_endpoint(sim: Simulator, spec: str, *, key: str = KEY, model: str = "sim-model",
                    base_url: str = "", endpoint_id: str = "ep_1") -> Endpoint:
    return Endpoint(id=endpoint_id, api_spec=ApiSpec(spec), base_url=base_url or sim.base_url,
                    model=model, api_key=Secret(key),
                    api_version="2024-10-21" if spec == "azure_openai" else "")


async def run(*endpoints: Endpoint, limits: ValidationLimits = LIMITS
              ) -> tuple[ValidationReport, list[Event]]:
    events = [e async for e in Validation(limits).run(endpoints)]
    report = events[-1]
    assert isinstance(report, ValidationReport)
    return report, events


def required_problems(report: ValidationReport, index: int = 0) -> dict[str, CheckStatus]:
    """Required checks that did not PASS, apart from SKIPPED (not run or not applicable)."""
    return {c.check: c.status for c in report.endpoints[index].checks
            if c.required and c.status in (FAIL, WARN)}


FAULTS: list[tuple[Fault, str, CheckStatus, Sequence[str]]] = [
    (Fault(FaultKind.UNAUTHORIZED), catalog.AUTH, FAIL, SPECS),
    (Fault(FaultKind.NOT_FOUND), catalog.MODEL, FAIL, SPECS),
    (Fault(FaultKind.RATE_LIMITED, retry_after_s=20), catalog.QUOTA, FAIL, SPECS),
    (Fault(FaultKind.SERVER_ERROR), catalog.STATUS, FAIL, SPECS),
    (Fault(FaultKind.UNAVAILABLE), catalog.STATUS, FAIL, SPECS),
    (Fault(FaultKind.CONTEXT_LENGTH), catalog.STATUS, FAIL, SPECS),
    (Fault(FaultKind.HTTP_STATUS, status=504), catalog.STATUS, FAIL, SPECS),
    (Fault(FaultKind.HTML_ERROR_PAGE), catalog.STATUS, FAIL, SPECS),
    (Fault(FaultKind.RESET_BEFORE_HEADERS), catalog.STATUS, FAIL, SPECS),
    (Fault(FaultKind.HANG), catalog.FIRST_TOKEN, FAIL, SPECS),
    (Fault(FaultKind.SLOW, seconds=3.0), catalog.FIRST_TOKEN, FAIL, SPECS),
    (Fault(FaultKind.WRONG_CONTENT_TYPE), catalog.CONTENT_TYPE, FAIL, SPECS),
    (Fault(FaultKind.NON_STREAMING_ONLY), catalog.CONTENT_TYPE, FAIL, SPECS),
    (Fault(FaultKind.GARBAGE), catalog.FRAMING, FAIL, SPECS),
    (Fault(FaultKind.MALFORMED_CHUNK_AT, chunk=1), catalog.CHUNK_SCHEMA, FAIL, SPECS),
    (Fault(FaultKind.MIDSTREAM_ERROR_AT, chunk=1), catalog.ERROR_EVENTS, FAIL, SPECS),
    (Fault(FaultKind.MIDSTREAM_ERROR_AT, chunk=1, raw_tail=True), catalog.ERROR_EVENTS, FAIL,
     ["gemini"]),
    (Fault(FaultKind.CUT_AFTER, chunk=1), catalog.END, FAIL, SPECS),
    (Fault(FaultKind.CUT_AFTER, chunk=1, abrupt=False), catalog.END, FAIL, SPECS),
    (Fault(FaultKind.NO_DONE), catalog.END, WARN, ["openai", "azure_openai", "groq"]),
    (Fault(FaultKind.NO_ROLE), catalog.ROLE, FAIL, ["openai", "azure_openai", "groq"]),
    (Fault(FaultKind.NO_ROLE), catalog.ROLE, WARN, ["gemini"]),
    (Fault(FaultKind.NO_USAGE), catalog.USAGE, WARN, SPECS),
    (Fault(FaultKind.CONTENT_FILTER), catalog.STATUS, FAIL, ["openai", "azure_openai", "groq"]),
    (Fault(FaultKind.CONTENT_FILTER), catalog.CONTENT, FAIL, ["gemini"]),
]
CASES = [pytest.param(fault, check, status, spec,
                      id=f"{spec}-{fault.kind.value}{'-raw' if fault.raw_tail else ''}"
                      f"{'-clean' if not fault.abrupt else ''}")
         for fault, check, status, specs in FAULTS for spec in specs]


@pytest.mark.parametrize(("fault", "check", "status", "spec"), CASES)
async def test_each_fault_fails_exactly_its_check(fault: Fault, check: str,
                                                  status: CheckStatus, spec: str) -> None:
    async with Simulator(spec, BEHAVIOR, api_key=KEY) as sim:
        sim.set_fault(fault)
        report, _ = await run(domain_endpoint(sim, spec))
    assert required_problems(report) == {check: status}
    result = report.endpoints[0].check(check)
    assert result is not None and result.hint and result.observed and result.expected
    assert report.passed is (status is WARN)
    assert all(c.status is not FAIL for c in report.endpoints[0].checks if not c.required)


@pytest.mark.parametrize("spec", SPECS)
async def test_a_correct_endpoint_of_each_spec_passes_every_required_check(spec: str) -> None:
    async with Simulator(spec, BEHAVIOR, api_key=KEY) as sim:
        report, _events = await run(domain_endpoint(sim, spec))
    checks = report.endpoints[0].checks
    assert [c.check for c in checks] == list(catalog.ALL)
    for c in checks:
        if c.required and c.check != catalog.TLS:
            assert c.status is CheckStatus.PASS, c
    tls = report.endpoints[0].check(catalog.TLS)
    assert tls is not None and tls.status is CheckStatus.SKIPPED  # http:// on loopback
    assert report.passed and report.endpoints[0].ttft_s is not None
    assert report.endpoints[0].capabilities.image_input


@pytest.mark.parametrize(("base", "spec", "check", "hint"), [
    ("root", "openai", catalog.ROUTE, "usually ends in /v1"),
    ("root", "gemini", catalog.ROUTE, "v1beta"),
    ("root", "azure_openai", catalog.ROUTE, "openai.azure.com"),
])
async def test_a_wrong_base_url_fails_the_route(base: str, spec: str, check: str,
                                                hint: str) -> None:
    async with Simulator(spec, BEHAVIOR, api_key=KEY) as sim:
        url = sim.root_url + ("/api" if spec == "azure_openai" else "")
        report, _ = await run(domain_endpoint(sim, spec, base_url=url))
    assert required_problems(report) == {check: FAIL}
    result = report.endpoints[0].check(check)
    assert result is not None and hint in result.hint


@pytest.mark.parametrize("spec", SPECS)
async def test_an_unknown_model_and_a_missing_key_are_told_apart(spec: str) -> None:
    async with Simulator(spec, BEHAVIOR, api_key=KEY, known_models=["sim-model"]) as sim:
        wrong_model, _ = await run(domain_endpoint(sim, spec, model="no-such-model"))
        no_key, _ = await run(domain_endpoint(sim, spec, key=""))
        wrong_key, _ = await run(domain_endpoint(sim, spec, key="sk-wrong-key-987654321"))
    assert required_problems(wrong_model) == {catalog.MODEL: FAIL}
    assert required_problems(no_key) == {catalog.AUTH: FAIL}
    assert "no API key is set" in (no_key.endpoints[0].check(catalog.AUTH) or CHECK).hint
    assert required_problems(wrong_key) == {catalog.AUTH: FAIL}


CHECK = CheckFinished("", "", FAIL, True)


@pytest.mark.parametrize(("spec", "dialect", "expected"), [
    ("openai", ReasoningDialect.REASONING_CONTENT, "reasoning_content"),
    ("openai", ReasoningDialect.REASONING, "reasoning"),
    ("openai", ReasoningDialect.THINK_TAGS, "think_tags"),
    ("groq", ReasoningDialect.REASONING, "reasoning"),
    ("gemini", ReasoningDialect.REASONING, "thought_parts"),
])
async def test_capabilities_are_detected(spec: str, dialect: ReasoningDialect,
                                         expected: str) -> None:
    behavior = Behavior(text="pong", reasoning="The user wants pong.", reasoning_dialect=dialect,
                        tool_calls=[("get_weather", '{"city": "Paris"}')])
    async with Simulator(spec, behavior, api_key=KEY) as sim:
        report, _ = await run(domain_endpoint(sim, spec))
    caps = report.endpoints[0].capabilities
    assert (caps.reasoning, caps.reasoning_dialect, caps.tool_calling, caps.image_input) == (
        True, expected, True, True)
    assert report.passed


async def test_absent_capabilities_warn_and_never_fail() -> None:
    async with Simulator("openai", BEHAVIOR, api_key=KEY) as sim:
        report, _ = await run(domain_endpoint(sim, "openai"))
    statuses = {c.check: c.status for c in report.endpoints[0].checks if not c.required}
    assert statuses == {catalog.REASONING: WARN, catalog.TOOL_CALLING: WARN,
                        catalog.IMAGE_INPUT: CheckStatus.PASS, catalog.CONTINUATION: WARN}
    assert not report.endpoints[0].capabilities.continues_partial_answer


@pytest.mark.parametrize("spec", ["openai", "groq", "gemini"])
@pytest.mark.parametrize("prefill", [Prefill.CONTINUE, Prefill.IGNORE, Prefill.REJECT])
async def test_continuing_a_partial_answer_is_detected_with_a_real_request(
        spec: str, prefill: Prefill) -> None:
    count = "one two three four five six seven eight nine ten"
    async with Simulator(spec, dataclasses.replace(BEHAVIOR, text=count, prefill=prefill),
                         api_key=KEY) as sim:
        report, _ = await run(domain_endpoint(sim, spec))
        probe = next(r for r in sim.requests if prefill_text(r.body) is not None)
    check = report.endpoints[0].check(catalog.CONTINUATION)
    assert check is not None
    continues = prefill is Prefill.CONTINUE
    assert check.status is (CheckStatus.PASS if continues else WARN), check.observed
    assert report.endpoints[0].capabilities.continues_partial_answer is continues
    assert prefill_text(probe.body) == "one two three"
    assert report.passed
    assert report.passed


async def test_no_connection_skips_everything_else_with_the_reason() -> None:
    async with Simulator("openai", BEHAVIOR) as sim:
        url = sim.base_url
    report, _events = await run(domain_endpoint(sim, "openai", base_url=url))  # closed now
    checks = report.endpoints[0].checks
    assert [c.check for c in checks] == list(catalog.ALL)
    assert {c.check for c in checks if c.status is FAIL} == {catalog.CONNECT}
    assert all(c.status is CheckStatus.SKIPPED and "no TCP connection" in c.observed
               for c in checks[2:])


async def test_events_come_in_order_and_the_key_never_shows() -> None:
    async with Simulator("openai", BEHAVIOR, api_key=KEY) as sim:
        sim.set_fault(Fault(FaultKind.UNAUTHORIZED))
        _report, events = await run(domain_endpoint(sim, "openai"),
                                   domain_endpoint(sim, "openai", key="sk-other-key-55555",
                                                   endpoint_id="ep_2"))
    started: set[tuple[str, str]] = set()
    finished: list[tuple[str, str]] = []
    for e in events[:-1]:
        assert isinstance(e, CheckStarted | CheckFinished)
        if isinstance(e, CheckStarted):
            started.add((e.endpoint_id, e.check))
        else:
            assert (e.endpoint_id, e.check) in started
            finished.append((e.endpoint_id, e.check))
            for text in (e.observed, e.hint, e.expected):
                assert KEY not in text and "sk-other-key-55555" not in text
    assert len(finished) == 2 * len(catalog.ALL) == len(set(finished))
    assert sum(isinstance(e, ValidationReport) for e in events) == 1


async def test_a_validator_bug_fails_one_check_instead_of_the_rpc(
        monkeypatch: pytest.MonkeyPatch) -> None:
    from server.validation import admission

    def broken(*args: object) -> None:
        raise RuntimeError("bug")

    monkeypatch.setattr(admission, "judge", broken)
    async with Simulator("openai", BEHAVIOR) as sim:
        report, _ = await run(domain_endpoint(sim, "openai"))
    failed = [c for c in report.endpoints[0].checks if c.status is FAIL]
    assert len(failed) == 1 and "internally" in failed[0].observed
    assert [c.check for c in report.endpoints[0].checks] == list(catalog.ALL)


# -- over gRPC ----------------------------------------------------------------------------------


async def test_three_endpoints_answering_in_100_ms_are_validated_side_by_side(
        client: AsyncClient) -> None:
    """What keeps validation of three 100 ms endpoints well under 5 s: the endpoints are
    checked at the same time, not one after the other. Asserted by the order of the requests
    the upstreams saw (each one's first request came before any one's last ended), not by
    the host's clock."""
    behavior = Behavior(text="pong", ttft_s=0.1)
    async with Simulator("openai", behavior) as a, Simulator("groq", behavior) as b, \
            Simulator("gemini", behavior) as c:
        llm = lpb.Llm(display_name="three", endpoints=[
            endpoint(a, "openai"), endpoint(b, "groq"), endpoint(c, "gemini")])
        response = await client.create_llm(llm)
        sims = (a, b, c)
    last_start = max(min(r.received_at for r in s.requests) for s in sims)
    first_end = min(max(r.completed_at or r.disconnected_at or 0.0 for r in s.requests)
                    for s in sims)
    assert last_start < first_end, "one endpoint's checks ended before another's began"
    assert response.validation.passed and len(response.validation.endpoints) == 3
    for r in response.validation.endpoints:
        assert r.passed and r.time_to_first_token.ToMilliseconds() >= 100
    assert response.llm.id


async def test_create_llm_refuses_a_broken_endpoint_with_the_report(
        client: AsyncClient) -> None:
    async with Simulator("openai", BEHAVIOR) as sim:
        sim.set_fault(Fault(FaultKind.CUT_AFTER, chunk=1))
        llm = lpb.Llm(display_name="broken", endpoints=[endpoint(sim, "openai")])
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await client.create_llm(llm)
    err = caught.value
    assert err.code() is grpc.StatusCode.FAILED_PRECONDITION
    assert "streaming.end" in (err.details() or "")
    status = rpc_status.from_call(err)
    assert status is not None and status.code == code_pb2.FAILED_PRECONDITION
    reports = [d for d in status.details if d.Is(rpb.ValidationReport.DESCRIPTOR)]
    assert len(reports) == 1
    report = rpb.ValidationReport()
    reports[0].Unpack(report)
    assert not report.passed
    failed = [c for r in report.endpoints for c in r.checks
              if c.required and c.status == rpb.CHECK_STATUS_FAIL]
    assert [c.check for c in failed] == ["streaming.end"] and failed[0].hint
    assert [x async for x in client.list_llms()] == []


async def test_validate_only_stores_nothing(client: AsyncClient) -> None:
    async with Simulator("openai", BEHAVIOR) as sim:
        llm = lpb.Llm(display_name="dry run", endpoints=[endpoint(sim, "openai")])
        response = await client.create_llm(llm, validate_only=True)
    assert response.validation.passed and not response.llm.id
    assert [x async for x in client.list_llms()] == []


async def test_validate_llm_streams_events_records_capabilities_and_feeds_the_router(
        client: AsyncClient, server: Switchboard) -> None:
    behavior = Behavior(text="pong", ttft_s=0.05, reasoning="Thinking.",
                        reasoning_dialect=ReasoningDialect.REASONING,
                        tool_calls=[("get_weather", '{"city": "Paris"}')])
    async with Simulator("openai", behavior) as sim:
        created = await client.create_llm(lpb.Llm(display_name="caps",
                                                  endpoints=[endpoint(sim, "openai")]),
                                          skip_validation=True)
        events = [e async for e in client.validate_llm(created.llm.id)]
    kinds = [e.WhichOneof("event") for e in events]
    assert kinds[-1] == "report" and kinds.count("report") == 1
    assert kinds.count("check_started") == kinds.count("check_finished") == len(catalog.ALL)
    assert events[-1].report.passed
    stored = await client.get_llm(created.llm.id)
    caps = stored.endpoints[0].capabilities
    assert (caps.reasoning, caps.reasoning_dialect, caps.tool_calling, caps.image_input) == (
        True, "reasoning", True, True)
    assert stored.endpoints[0].health.samples >= 1
    assert server.router is not None
    assert server.router.snapshot(stored.endpoints[0].id).ttft_ewma_ms is not None


async def test_check_endpoint_cli_exit_codes() -> None:
    async with Simulator("openai", BEHAVIOR) as sim:
        shown: list[rpb.ValidateLlmResponse] = []
        good = await check_endpoint(endpoint(sim, "openai"), shown.append,
                                    validation=Validation(LIMITS))
        sim.set_fault(Fault(FaultKind.NO_ROLE))
        bad = await check_endpoint(endpoint(sim, "openai"), shown.append,
                                   validation=Validation(LIMITS))
    assert (good, bad) == (0, 1)
    assert shown[0].check_started.endpoint_id == "#0"
    assert sum(e.HasField("report") for e in shown) == 2


async def test_create_llm_records_detected_capabilities(client: AsyncClient) -> None:
    behavior = Behavior(text="ok", reasoning="hmm", reasoning_dialect=ReasoningDialect.REASONING)
    async with Simulator("openai", behavior) as sim:
        response = await client.create_llm(lpb.Llm(display_name="caps", endpoints=[
            endpoint(sim)]))
        assert response.validation.passed
        stored = await client.get_llm(response.llm.id)
    caps = stored.endpoints[0].capabilities
    assert caps.reasoning and caps.reasoning_dialect == "reasoning"
