"""The simulator's bytes have the same shape as the recorded real traffic.

Compares key order, delta shapes and error bodies with the recorded fixtures
(tests/unit/providers/fixtures, a versioned copy of ../shared/fixtures/upstream).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from server.simulator import Behavior, Fault, FaultKind, Simulator, Spec
from tests.unit.simulator._sim_testkit import Streamed, chat, parse_sse

# The versioned copy of ../shared/fixtures/upstream kept with the provider tests.
FIXTURES = Path(__file__).resolve().parents[2] / "unit" / "providers" / "fixtures"


def recorded_stream(name: str) -> list[Any]:
    events = parse_sse((FIXTURES / name).read_bytes())
    return [e.json() for e in events if e.data != "[DONE]"]


def recorded_body(name: str) -> Any:
    return json.loads((FIXTURES / name).read_text())["body"]


def keys(obj: dict[str, Any]) -> list[str]:
    return list(obj)


async def stream(session: aiohttp.ClientSession, spec: Spec, **kwargs: Any) -> Streamed:
    async with Simulator(spec, Behavior(text="The capital of the UK is London.")) as sim:
        return await chat(session, sim, spec, **kwargs)


async def test_openai_chunks(session: aiohttp.ClientSession) -> None:
    real = recorded_stream("openai/stream-text-with-usage.sse")
    ours = (await stream(session, Spec.OPENAI, include_usage=True)).payloads
    for mine, theirs in ((ours[0], real[0]), (ours[1], real[1]), (ours[-2], real[-2])):
        assert keys(mine) == keys(theirs)
        assert keys(mine["choices"][0]) == keys(theirs["choices"][0])
    assert ours[0]["choices"][0]["delta"] == real[0]["choices"][0]["delta"]
    assert ours[-2]["choices"][0]["delta"] == {} == real[-2]["choices"][0]["delta"]
    assert ours[-1]["choices"] == [] == real[-1]["choices"]
    assert ours[-1]["usage"].keys() == real[-1]["usage"].keys()
    for detail in ("prompt_tokens_details", "completion_tokens_details"):
        assert ours[-1]["usage"][detail].keys() == real[-1]["usage"][detail].keys()


async def test_openai_tool_call_fragments(session: aiohttp.ClientSession) -> None:
    real = recorded_stream("openai/stream-parallel-tool-calls.sse")
    behavior = Behavior(tool_calls=[("get_current_weather", '{"location": "Seattle, WA"}')])
    async with Simulator("openai", behavior) as sim:
        ours = (await chat(session, sim, "openai")).payloads
    header, fragment = ours[1]["choices"][0]["delta"], ours[2]["choices"][0]["delta"]
    real_header, real_fragment = real[1]["choices"][0]["delta"], real[2]["choices"][0]["delta"]
    assert keys(header["tool_calls"][0]) == keys(real_header["tool_calls"][0])
    assert header["tool_calls"][0]["function"]["arguments"] == ""
    assert keys(fragment["tool_calls"][0]) == keys(real_fragment["tool_calls"][0])
    assert fragment == real_fragment  # '{"lo', cut where the recording cut it


async def test_azure_chunks(session: aiohttp.ClientSession) -> None:
    real = recorded_stream("azure/stream-text-prompt-filter.sse")
    ours = (await stream(session, Spec.AZURE_OPENAI)).payloads
    assert keys(ours[0]) == keys(real[0])
    assert keys(ours[0]["prompt_filter_results"][0]) == keys(real[0]["prompt_filter_results"][0])
    for index in (1, 2, -1):
        assert keys(ours[index]) == keys(real[index])
        assert keys(ours[index]["choices"][0]) == keys(real[index]["choices"][0])
        ours_filter = ours[index]["choices"][0]["content_filter_results"]
        assert ours_filter == real[index]["choices"][0]["content_filter_results"]


async def test_groq_chunks(session: aiohttp.ClientSession) -> None:
    real = recorded_stream("groq/stream-text.sse")
    ours = (await stream(session, Spec.GROQ)).payloads
    for index in (0, 1):
        assert keys(ours[index]) == keys(real[index])
        assert keys(ours[index]["choices"][0]) == keys(real[index]["choices"][0])
    assert ours[0]["choices"][0]["delta"] == real[0]["choices"][0]["delta"]
    assert keys(ours[-1])[: len(real[-1])] == keys(real[-1])
    assert keys(ours[-1]["x_groq"]["usage"]) == keys(real[-1]["x_groq"]["usage"])


async def test_gemini_events(session: aiohttp.ClientSession) -> None:
    raw = (FIXTURES / "gemini/stream-usage-every-chunk.sse").read_bytes()
    real = [e.json() for e in parse_sse(raw)]
    got = await stream(session, Spec.GEMINI)
    ours = got.payloads
    assert got.raw[:48] == raw[:48]  # 'data: {"candidates": [{"content": {"parts": [{"'
    assert got.raw.count(b"\r\n\r\n") == len(ours) and raw.count(b"\r\n\r\n") == len(real)
    for mine, theirs in ((ours[0], real[0]), (ours[-1], real[-1])):
        assert keys(mine) == keys(theirs)
        assert keys(mine["candidates"][0]) == keys(theirs["candidates"][0])
        usage_keys = [k for k in keys(theirs["usageMetadata"]) if k in mine["usageMetadata"]]
        assert keys(mine["usageMetadata"]) == usage_keys


@pytest.mark.parametrize(
    ("spec", "kind", "fixture"),
    [
        (Spec.OPENAI, FaultKind.UNAUTHORIZED, "openai/error-401-invalid-api-key.json"),
        (Spec.OPENAI, FaultKind.NOT_FOUND, "openai/error-404-model-not-found.json"),
        (Spec.AZURE_OPENAI, FaultKind.UNAUTHORIZED, "azure/error-401-invalid-key.json"),
        (Spec.AZURE_OPENAI, FaultKind.NOT_FOUND, "azure/error-404-deployment-not-found.json"),
        (Spec.AZURE_OPENAI, FaultKind.CONTENT_FILTER, "azure/error-400-content-filter-prompt.json"),
        (Spec.GROQ, FaultKind.NOT_FOUND, "groq/error-404-model-not-found.json"),
        (Spec.GEMINI, FaultKind.UNAUTHORIZED, "gemini/error-400-api-key-invalid.json"),
        (Spec.GEMINI, FaultKind.NOT_FOUND, "gemini/error-404-model-not-found.json"),
    ],
)
async def test_error_bodies(
    session: aiohttp.ClientSession, spec: Spec, kind: FaultKind, fixture: str
) -> None:
    envelope = json.loads((FIXTURES / fixture).read_text())
    async with Simulator(spec, Behavior(fault=Fault(kind))) as sim:
        got = await chat(session, sim, spec, model="gemini-1.5-flash")
    ours, theirs = got.json()["error"], envelope["body"]["error"]
    assert got.status == envelope["status"]
    assert sorted(ours) == sorted(theirs)
    for field in ("code", "type", "status", "param"):
        if field in theirs and field != "message":
            assert ours[field] == theirs[field], field
    if spec is not Spec.OPENAI and kind is not FaultKind.NOT_FOUND:
        assert ours["message"] == theirs["message"]
