"""Each fault breaks one rule, in each provider's own way."""

from __future__ import annotations

import itertools
import time
from typing import Any

import aiohttp
import pytest

from server.simulator import Behavior, Fault, FaultKind, Simulator, Spec
from tests.unit.simulator._sim_testkit import chat, gemini_text, openai_text

SPECS = [Spec.OPENAI, Spec.AZURE_OPENAI, Spec.GROQ, Spec.GEMINI]
TEXT = "one two three four five"

# kind -> spec -> (HTTP status, error.code (OpenAI family) or error.status (Gemini))
HTTP_FAULTS: dict[FaultKind, dict[Spec, tuple[int, Any]]] = {
    FaultKind.RATE_LIMITED: {
        Spec.OPENAI: (429, "rate_limit_exceeded"),
        Spec.AZURE_OPENAI: (429, "429"),
        Spec.GROQ: (429, "rate_limit_exceeded"),
        Spec.GEMINI: (429, "RESOURCE_EXHAUSTED"),
    },
    FaultKind.SERVER_ERROR: {
        Spec.OPENAI: (500, None),
        Spec.AZURE_OPENAI: (500, None),
        Spec.GROQ: (500, None),
        Spec.GEMINI: (500, "INTERNAL"),
    },
    FaultKind.UNAVAILABLE: {
        Spec.OPENAI: (503, None),
        Spec.AZURE_OPENAI: (503, "ServiceUnavailable"),
        Spec.GROQ: (503, "service_unavailable"),
        Spec.GEMINI: (503, "UNAVAILABLE"),
    },
    FaultKind.CONTEXT_LENGTH: {
        Spec.OPENAI: (400, "context_length_exceeded"),
        Spec.AZURE_OPENAI: (400, "context_length_exceeded"),
        Spec.GROQ: (400, "context_length_exceeded"),
        Spec.GEMINI: (400, "INVALID_ARGUMENT"),
    },
    FaultKind.UNAUTHORIZED: {
        Spec.OPENAI: (401, "invalid_api_key"),
        Spec.AZURE_OPENAI: (401, "401"),
        Spec.GROQ: (401, "invalid_api_key"),
        Spec.GEMINI: (400, "INVALID_ARGUMENT"),
    },
    FaultKind.NOT_FOUND: {
        Spec.OPENAI: (404, "model_not_found"),
        Spec.AZURE_OPENAI: (404, "DeploymentNotFound"),
        Spec.GROQ: (404, "model_not_found"),
        Spec.GEMINI: (404, "NOT_FOUND"),
    },
}


def _error_code(spec: Spec, body: Any) -> Any:
    return body["error"].get("status" if spec is Spec.GEMINI else "code")


def _text(spec: Spec, payloads: list[Any]) -> str:
    return gemini_text(payloads) if spec is Spec.GEMINI else openai_text(payloads)


def _finished(spec: Spec, payloads: list[Any]) -> bool:
    key = "finishReason" if spec is Spec.GEMINI else "finish_reason"
    return any(c.get(key) for p in payloads for c in p.get("candidates", p.get("choices", [])))


@pytest.mark.parametrize("spec", SPECS)
@pytest.mark.parametrize("kind", list(HTTP_FAULTS))
async def test_http_faults_use_the_providers_error_bodies(
    session: aiohttp.ClientSession, spec: Spec, kind: FaultKind
) -> None:
    async with Simulator(spec, Behavior(fault=Fault(kind))) as sim:
        got = await chat(session, sim, spec)
    status, code = HTTP_FAULTS[kind][spec]
    assert got.status == status
    assert _error_code(spec, got.json()) == code
    assert got.json()["error"]["message"]
    assert sim.requests[0].fault is kind and sim.requests[0].status == status


@pytest.mark.parametrize("spec", [Spec.OPENAI, Spec.AZURE_OPENAI, Spec.GROQ])
async def test_rate_limit_sends_retry_after(session: aiohttp.ClientSession, spec: Spec) -> None:
    fault = Fault(FaultKind.RATE_LIMITED, retry_after_s=2)
    async with Simulator(spec, Behavior(fault=fault)) as sim:
        got = await chat(session, sim, spec)
    assert got.headers["retry-after"] == "2"


async def test_gemini_rate_limit_carries_retry_info(session: aiohttp.ClientSession) -> None:
    fault = Fault(FaultKind.RATE_LIMITED, retry_after_s=34.4)
    async with Simulator("gemini", Behavior(fault=fault)) as sim:
        got = await chat(session, sim, "gemini")
    details = got.json()["error"]["details"]
    assert {"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": "34.4s"} in details
    assert "retry-after" not in got.headers


async def test_any_status(session: aiohttp.ClientSession) -> None:
    fault = Fault(FaultKind.HTTP_STATUS, status=504)
    async with Simulator("gemini", Behavior(fault=fault)) as sim:
        got = await chat(session, sim, "gemini")
    assert got.status == 504 and got.json()["error"]["status"] == "DEADLINE_EXCEEDED"


async def test_reset_before_headers(session: aiohttp.ClientSession) -> None:
    async with Simulator("openai", Behavior(fault=Fault(FaultKind.RESET_BEFORE_HEADERS))) as sim:
        with pytest.raises((aiohttp.ClientOSError, aiohttp.ServerDisconnectedError)):
            await chat(session, sim, "openai")
    (record,) = sim.requests
    assert record.first_byte_at is None and record.status is None
    assert record.completed_at is not None and record.disconnected_at is None


@pytest.mark.parametrize("spec", SPECS)
async def test_cut_after_closes_inside_the_body(session: aiohttp.ClientSession, spec: Spec) -> None:
    behavior = Behavior(text=TEXT, fault=Fault(FaultKind.CUT_AFTER, chunk=2))
    async with Simulator(spec, behavior) as sim:
        got = await chat(session, sim, spec)
    assert got.status == 200
    assert isinstance(got.error, aiohttp.ClientPayloadError)
    assert _text(spec, got.payloads) == "one two"
    assert not _finished(spec, got.payloads) and b"[DONE]" not in got.raw
    record = sim.requests[0]
    assert record.chunks_sent == 2 and record.disconnected_at is None


@pytest.mark.parametrize("spec", SPECS)
async def test_clean_cut_past_the_end_drops_only_the_finish(
    session: aiohttp.ClientSession, spec: Spec
) -> None:
    fault = Fault(FaultKind.CUT_AFTER, chunk=99, abrupt=False)
    async with Simulator(spec, Behavior(text=TEXT, fault=fault)) as sim:
        got = await chat(session, sim, spec)
    assert got.error is None
    assert not _finished(spec, got.payloads) and b"[DONE]" not in got.raw
    if spec is Spec.GEMINI:  # the last text event carries finishReason, so it is held back
        assert _text(spec, got.payloads) == "one two three four"
    else:
        assert _text(spec, got.payloads) == TEXT


async def test_stall_after_pauses_then_continues(session: aiohttp.ClientSession) -> None:
    fault = Fault(FaultKind.STALL_AFTER, chunk=2, seconds=0.3)
    async with Simulator("openai", Behavior(text=TEXT, fault=fault)) as sim:
        got = await chat(session, sim, "openai")
    assert openai_text(got.payloads) == TEXT and got.raw.endswith(b"data: [DONE]\n\n")
    arrivals = [t for t, _ in got.pieces]
    assert max(b - a for a, b in itertools.pairwise(arrivals)) >= 0.29
    record = sim.requests[0]
    assert record.completed_at is not None and record.completed_at - record.received_at >= 0.29


@pytest.mark.parametrize("spec", SPECS)
async def test_malformed_chunk(session: aiohttp.ClientSession, spec: Spec) -> None:
    fault = Fault(FaultKind.MALFORMED_CHUNK_AT, chunk=1)
    async with Simulator(spec, Behavior(text=TEXT, fault=fault)) as sim:
        got = await chat(session, sim, spec)
    bad = []
    for event in got.events[:-1] if spec is not Spec.GEMINI else got.events:
        try:
            event.json()
        except ValueError:
            bad.append(event.data)
    assert len(bad) == 1 and bad[0].startswith("{")
    good = [e.json() for e in got.events if e.data not in bad and e.data != "[DONE]"]
    assert _text(spec, good) == TEXT and _finished(spec, good)


async def test_openai_midstream_error(session: aiohttp.ClientSession) -> None:
    fault = Fault(FaultKind.MIDSTREAM_ERROR_AT, chunk=3)
    async with Simulator("openai", Behavior(text=TEXT, fault=fault)) as sim:
        got = await chat(session, sim, "openai")
    assert got.status == 200 and got.error is None
    assert got.payloads[-1]["error"]["type"] == "server_error"
    assert openai_text(got.payloads[:-1]) == "one two three"
    assert b"[DONE]" not in got.raw and not _finished(Spec.OPENAI, got.payloads)


async def test_no_done(session: aiohttp.ClientSession) -> None:
    async with Simulator("openai", Behavior(fault=Fault(FaultKind.NO_DONE))) as sim:
        got = await chat(session, sim, "openai")
    assert got.error is None and _finished(Spec.OPENAI, got.payloads)
    assert b"[DONE]" not in got.raw


async def test_html_error_page(session: aiohttp.ClientSession) -> None:
    async with Simulator("groq", Behavior(fault=Fault(FaultKind.HTML_ERROR_PAGE))) as sim:
        got = await chat(session, sim, "groq")
    assert got.status == 502 and got.headers["content-type"] == "text/html"
    assert got.raw.startswith(b"<html>") and b"502 Bad Gateway" in got.raw


async def test_garbage(session: aiohttp.ClientSession) -> None:
    async with Simulator("openai", Behavior(fault=Fault(FaultKind.GARBAGE))) as sim:
        got = await chat(session, sim, "openai")
    assert got.status == 200 and got.headers["content-type"] == "text/event-stream"
    assert len(got.raw) > 100 and b"data:" not in got.raw and b"\n" not in got.raw


async def test_wrong_content_type(session: aiohttp.ClientSession) -> None:
    async with Simulator("openai", Behavior(fault=Fault(FaultKind.WRONG_CONTENT_TYPE))) as sim:
        got = await chat(session, sim, "openai", prompt="hi")
    assert got.headers["content-type"] == "text/plain; charset=utf-8"
    assert got.raw.endswith(b"data: [DONE]\n\n") and openai_text(got.payloads)


@pytest.mark.parametrize("spec", SPECS)
async def test_no_role(session: aiohttp.ClientSession, spec: Spec) -> None:
    async with Simulator(spec, Behavior(fault=Fault(FaultKind.NO_ROLE))) as sim:
        got = await chat(session, sim, spec)
    if spec is Spec.GEMINI:
        assert all("role" not in e["candidates"][0]["content"] for e in got.payloads)
    else:
        deltas = [c["choices"][0]["delta"] for c in got.payloads if c["choices"]]
        assert all("role" not in d for d in deltas)
    assert _finished(spec, got.payloads)


@pytest.mark.parametrize("spec", SPECS)
async def test_non_streaming_only(session: aiohttp.ClientSession, spec: Spec) -> None:
    async with Simulator(
        spec, Behavior(text=TEXT, fault=Fault(FaultKind.NON_STREAMING_ONLY))
    ) as sim:
        got = await chat(session, sim, spec)
    assert got.headers["content-type"].startswith("application/json")
    body = got.json()
    if spec is Spec.GEMINI:
        assert body["candidates"][0]["content"]["parts"] == [{"text": TEXT}]
    else:
        assert body["object"] == "chat.completion"
        assert body["choices"][0]["message"]["content"] == TEXT


@pytest.mark.parametrize("spec", SPECS)
async def test_no_usage(session: aiohttp.ClientSession, spec: Spec) -> None:
    async with Simulator(spec, Behavior(fault=Fault(FaultKind.NO_USAGE))) as sim:
        got = await chat(session, sim, spec, include_usage=True)
    for payload in got.payloads:
        assert "usageMetadata" not in payload
        assert not payload.get("usage") and "usage" not in payload.get("x_groq", {})
    assert _finished(spec, got.payloads)


async def test_slow_sends_headers_then_waits(session: aiohttp.ClientSession) -> None:
    fault = Fault(FaultKind.SLOW, seconds=0.3)
    async with Simulator("openai", Behavior(ttft_s=0.0, fault=fault)) as sim:
        await chat(session, sim, "openai")
        sim.behavior = Behavior(fault=fault, headers_after_ttft=True)
        await chat(session, sim, "openai")
    early, late = sim.requests
    assert early.first_byte_at is not None and early.first_chunk_at is not None
    assert early.first_byte_at - early.received_at < 0.25
    assert early.first_chunk_at - early.received_at >= 0.29
    assert late.first_byte_at is not None and late.first_byte_at - late.received_at >= 0.29


async def test_fault_times_then_healthy(session: aiohttp.ClientSession) -> None:
    behavior = Behavior(fault=Fault(FaultKind.SERVER_ERROR), fault_times=2)
    async with Simulator("openai", behavior) as sim:
        statuses = [(await chat(session, sim, "openai")).status for _ in range(4)]
        sim.behavior = behavior  # a new behaviour restarts the count
        again = (await chat(session, sim, "openai")).status
    assert statuses == [500, 500, 200, 200] and again == 500
    assert [r.fault for r in sim.requests] == [FaultKind.SERVER_ERROR] * 2 + [None] * 2 + [
        FaultKind.SERVER_ERROR
    ]


async def test_fault_until_and_toggle(session: aiohttp.ClientSession) -> None:
    down = Fault(FaultKind.UNAVAILABLE)
    async with Simulator("openai") as sim:
        sim.set_fault(down, until=time.monotonic() + 60)
        during = (await chat(session, sim, "openai")).status
        sim.set_fault(down, until=time.monotonic() - 1)
        after = (await chat(session, sim, "openai")).status
        sim.set_fault(down)
        sim.faults_enabled = False
        healed = (await chat(session, sim, "openai")).status
        sim.faults_enabled = True
        broken = (await chat(session, sim, "openai")).status
    assert (during, after, healed, broken) == (503, 200, 200, 503)


async def test_stream_faults_skip_non_streaming_requests(session: aiohttp.ClientSession) -> None:
    behavior = Behavior(text=TEXT, fault=Fault(FaultKind.CUT_AFTER, chunk=1), fault_times=1)
    async with Simulator("openai", behavior) as sim:
        unary = await chat(session, sim, "openai", stream=False)
        streamed = await chat(session, sim, "openai")
    assert unary.json()["choices"][0]["message"]["content"] == TEXT
    assert streamed.error is not None and sim.fault_count == 1
