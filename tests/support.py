"""Shared test helpers: a real Switchboard on port 0 with real simulators on loopback."""

from __future__ import annotations

import base64
import os
import re
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import grpc
from google.rpc import error_details_pb2
from grpc_status import rpc_status
from switchboard.v1 import llm_pb2 as lpb
from switchboard_client import AsyncClient

from server.app import Switchboard
from server.config import Settings

API_KEY = "test-static-key-0123456789"
SPECS = {
    "openai": lpb.API_SPEC_OPENAI,
    "azure_openai": lpb.API_SPEC_AZURE_OPENAI,
    "gemini": lpb.API_SPEC_GEMINI,
    "groq": lpb.API_SPEC_GROQ,
}


def master_keys() -> str:
    return "test1:" + base64.urlsafe_b64encode(os.urandom(32)).decode().rstrip("=")


def settings(tmp_path: Path, **overrides: object) -> Settings:
    values: dict[str, object] = dict(
        host="127.0.0.1",
        grpc_port=0,
        database=str(tmp_path / "switchboard.db"),
        api_keys=(API_KEY,),
        master_keys=master_keys(),
        allow_http_upstreams=True,
        upstream_allow_cidrs=("127.0.0.0/8",),
        grace_period_s=5.0,
        log_format="json",
        # Probes follow stateless traffic too (issue 19): background probes would add requests
        # to the simulators of every test. Tests of probes ask for them (and tick a FakeClock).
        probes_per_hour=0,
    )
    values.update(overrides)
    return Settings(**values)  # type: ignore[arg-type]


@asynccontextmanager
async def running(s: Settings) -> AsyncIterator[Switchboard]:
    app = Switchboard(s)
    await app.start()
    try:
        yield app
    finally:
        await app.stop(grace_s=1.0)


def endpoint(sim: object, spec: str = "openai", model: str = "sim-model", key: str = "sk-test",
             **fields: object) -> lpb.Endpoint:
    ep = lpb.Endpoint(api_spec=SPECS[spec], base_url=sim.base_url, model=model,  # type: ignore[attr-defined]
                      api_key=key, **fields)  # type: ignore[arg-type]
    if spec == "azure_openai" and not ep.api_version:
        ep.api_version = "2024-10-21"
    return ep


async def create_llm(client: AsyncClient, *endpoints: lpb.Endpoint, name: str = "test-llm",
                     **fields: object) -> lpb.Llm:
    response = await client.create_llm(
        lpb.Llm(display_name=name, endpoints=list(endpoints), **fields),  # type: ignore[arg-type]
        skip_validation=True)
    return response.llm


ROOT = Path(__file__).resolve().parents[1]


def server_env(tmp_path: Path) -> dict[str, str]:
    """Environment for ``python -m server.main`` as a subprocess (loopback upstreams allowed)."""
    return {**os.environ, "SWITCHBOARD_GRPC_PORT": "0",
            "SWITCHBOARD_DATABASE": str(tmp_path / "db.sqlite"),
            "SWITCHBOARD_API_KEYS": API_KEY, "SWITCHBOARD_MASTER_KEYS": master_keys(),
            "SWITCHBOARD_ALLOW_HTTP_UPSTREAMS": "true",
            "SWITCHBOARD_UPSTREAM_ALLOW_CIDRS": "127.0.0.0/8",
            "SWITCHBOARD_GRACE_PERIOD_S": "10", "SWITCHBOARD_LOG_FORMAT": "json"}


def start_server_process(env: dict[str, str]) -> tuple[subprocess.Popen[str], int]:
    """Starts ``python -m server.main``; returns the process and its gRPC port."""
    proc = subprocess.Popen([sys.executable, "-m", "server.main"], env=env, cwd=ROOT,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    assert proc.stdout is not None
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        banner = re.search(r"SWITCHBOARD listening on [^\s\"]+:(\d+)", line)
        if banner:  # plain, or a JSON line with SWITCHBOARD_LOG_FORMAT=json
            return proc, int(banner.group(1))
        if not line and proc.poll() is not None:
            break
    proc.kill()
    raise AssertionError(f"server did not start: {proc.stdout.read()}")


def reason_and_retry(exc: grpc.aio.AioRpcError) -> tuple[str, float | None]:
    """(ErrorInfo.reason, RetryInfo delay in seconds or None) of a failed call."""
    status = rpc_status.from_call(exc)
    assert status is not None, f"no rich status: {exc.code()} {exc.details()}"
    reason, delay = "", None
    for d in status.details:
        if d.Is(error_details_pb2.ErrorInfo.DESCRIPTOR):
            info = error_details_pb2.ErrorInfo()
            d.Unpack(info)
            reason = info.reason
        if d.Is(error_details_pb2.RetryInfo.DESCRIPTOR):
            retry = error_details_pb2.RetryInfo()
            d.Unpack(retry)
            delay = retry.retry_delay.ToNanoseconds() / 1e9
    return reason, delay


def error_info(exc: grpc.aio.AioRpcError) -> error_details_pb2.ErrorInfo:
    """The ErrorInfo detail of a failed call."""
    status = rpc_status.from_call(exc)
    assert status is not None, f"no rich status: {exc.code()} {exc.details()}"
    for d in status.details:
        if d.Is(error_details_pb2.ErrorInfo.DESCRIPTOR):
            info = error_details_pb2.ErrorInfo()
            d.Unpack(info)
            return info
    raise AssertionError(f"no ErrorInfo in {exc.code()} {exc.details()}")
