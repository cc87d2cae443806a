"""The real grpcurl (v1.8.6) against a real server: every listed service and every method
describes, and the rich error details print with their types resolved by reflection."""

from __future__ import annotations

import asyncio
import json
import os
import re
import subprocess

import pytest

from server.app import Switchboard
from tests import grpcurl
from tests.support import API_KEY, ROOT

LISTED = [
    "grpc.health.v1.Health",
    "grpc.reflection.v1.ServerReflection",
    "grpc.reflection.v1alpha.ServerReflection",
    "switchboard.v1.Conversations",
    "switchboard.v1.LlmRegistry",
]


def _ok(*args: str) -> str:
    done = grpcurl.run(*args)
    assert done.returncode == 0, f"grpcurl {' '.join(args)}: {done.stderr}"
    return done.stdout


def _describe_everything(target: str) -> dict[str, list[str]]:
    services = _ok("-plaintext", target, "list").split()
    methods: dict[str, list[str]] = {}
    for service in services:
        text = _ok("-plaintext", target, "describe", service)
        assert text.startswith(f"{service} is a service:"), text
        names = re.findall(r"^\s*rpc (\w+) \(", text, flags=re.M)
        assert names, text
        methods[service] = names
        assert _ok("-plaintext", target, "list", service).split() == [
            f"{service}.{n}" for n in sorted(names)]
        for name in names:
            described = _ok("-plaintext", target, "describe", f"{service}.{name}")
            assert described.startswith(f"{service}.{name} is a method:"), described
    return methods


async def test_grpcurl_lists_and_describes_every_service_and_method(
        server: Switchboard) -> None:
    grpcurl.grpcurl_path()
    methods = await asyncio.to_thread(_describe_everything, f"127.0.0.1:{server.port}")
    assert sorted(methods) == LISTED
    assert "Converse" in methods["switchboard.v1.Conversations"]
    assert methods["grpc.reflection.v1.ServerReflection"] == ["ServerReflectionInfo"]


async def test_grpcurl_prints_error_details_with_their_types(server: Switchboard) -> None:
    grpcurl.grpcurl_path()
    done = await asyncio.to_thread(
        grpcurl.run, "-plaintext", "-H", f"authorization: Bearer {API_KEY}", "-d",
        '{"llm": {"displayName": "x"}}', f"127.0.0.1:{server.port}",
        "switchboard.v1.LlmRegistry/CreateLlm")
    assert done.returncode != 0
    assert "Code: InvalidArgument" in done.stdout + done.stderr
    details = [json.loads(line.split(")", 1)[1]) for line in done.stderr.splitlines()
               if re.match(r"\s*\d+\)\s", line)]
    types = {d["@type"].rsplit(".", 1)[1] for d in details}
    assert types == {"ErrorInfo", "RequestInfo", "BadRequest"}, done.stderr
    bad = next(d for d in details if d["@type"].endswith("BadRequest"))
    assert bad["field_violations"][0]["field"] == "llm.endpoints"


def _buf() -> str:
    """buf from `make buf-lint` (.tools) or the TypeScript client's npm install."""
    for candidate in (ROOT / ".tools/node_modules/.bin/buf",
                      ROOT / "clients/typescript/node_modules/.bin/buf"):
        if candidate.exists():
            return str(candidate)
    if os.environ.get("CI", "").strip().lower() in ("true", "1", "yes"):
        pytest.fail("buf is not installed (make buf-lint installs it); CI must run this test")
    pytest.skip("buf is not installed: run `make buf-lint`")


async def test_buf_curl_lists_every_method_by_reflection(server: Switchboard) -> None:
    buf = _buf()
    done = await asyncio.to_thread(
        subprocess.run, [buf, "curl", "--list-methods", "--protocol", "grpc",
                         "--http2-prior-knowledge", f"http://127.0.0.1:{server.port}"],
        capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 0, done.stderr
    methods = done.stdout.split()
    assert "grpc.reflection.v1.ServerReflection/ServerReflectionInfo" in methods
    assert "switchboard.v1.Conversations/Converse" in methods
    assert "grpc.health.v1.Health/Check" in methods
