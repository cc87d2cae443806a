"""The probe requests are real turns built by each spec's adapter."""

from __future__ import annotations

import struct
import zlib

import orjson
import pytest

from server.chat import ChatRequest, Generation, ReasoningEffort
from server.providers.adapters import adapter_for
from server.registry.llm import ApiSpec
from server.validation import capability_checks
from tests.unit.validation._validation_testkit import endpoint


def test_the_tiny_png_is_a_valid_16x16_image() -> None:
    png = capability_checks.tiny_png()
    assert png.startswith(b"\x89PNG\r\n\x1a\n") and len(png) < 200
    pos, chunks = 8, {}
    while pos < len(png):
        (length,) = struct.unpack(">I", png[pos:pos + 4])
        kind, data = png[pos + 4:pos + 8], png[pos + 8:pos + 8 + length]
        (crc,) = struct.unpack(">I", png[pos + 8 + length:pos + 12 + length])
        assert crc == zlib.crc32(kind + data) & 0xFFFFFFFF
        chunks[kind] = data
        pos += 12 + length
    assert struct.unpack(">II", chunks[b"IHDR"][:8]) == (16, 16)
    assert len(zlib.decompress(chunks[b"IDAT"])) == 16 * (1 + 16 * 3)
    assert set(chunks) == {b"IHDR", b"IDAT", b"IEND"}


@pytest.mark.parametrize("spec", list(ApiSpec))
def test_probe_bodies_carry_the_tool_the_image_and_the_reasoning_request(spec: ApiSpec) -> None:
    adapter, ep, gen = adapter_for(spec), endpoint(spec), Generation()

    def body(request: ChatRequest) -> str:
        return repr(orjson.loads(adapter.build_request(ep, request).body))

    assert "pong" in body(capability_checks.ping(gen))
    assert "get_weather" in body(capability_checks.with_tool(gen))
    image = body(capability_checks.with_image(gen))
    assert "image/png" in image and "iVBORw0KGgo" in image  # base64 of the PNG signature
    reasoning = body(capability_checks.with_reasoning(gen))
    if spec is ApiSpec.GEMINI:
        assert "includeThoughts" in reasoning
    elif spec is not ApiSpec.GROQ:
        assert "'reasoning_effort': 'low'" in reasoning


def test_the_reasoning_probe_runs_only_when_the_llm_asks_for_none() -> None:
    wants = capability_checks.wants_reasoning_probe
    assert wants(Generation())
    assert wants(Generation(reasoning_effort=ReasoningEffort.NONE))
    assert not wants(Generation(reasoning_effort=ReasoningEffort.HIGH))


def test_the_ping_keeps_the_llms_generation_settings() -> None:
    request = capability_checks.ping(Generation(temperature=0.2, max_output_tokens=64))
    assert request.generation.temperature == 0.2 and request.generation.max_output_tokens == 64
