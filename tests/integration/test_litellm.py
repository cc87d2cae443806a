"""Switchboard against a real third-party OpenAI-compatible server: the LiteLLM proxy.

The proxy runs as a subprocess on loopback port 0 (uvicorn logs the port it bound), offline:
its one model uses LiteLLM's built-in mock (``mock_response``), the model cost map is the
bundled one (``LITELLM_LOCAL_MODEL_COST_MAP``), there is no database, and HTTP(S)_PROXY
point at a closed port so any attempt to reach the internet fails fast instead of leaving
loopback. Startup
takes 10 to 30 seconds (LiteLLM's imports), so one proxy serves the whole module.

Skipped only when ``litellm[proxy]`` is not installed (``pip install 'litellm[proxy]==1.106.2'``).
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from switchboard.v1 import llm_pb2 as lpb
from switchboard.v1 import registry_pb2 as rpb
from switchboard_client import AsyncClient, Reply

MASTER_KEY = "sk-litellm-master-0123456789"
MODEL = "mock-gpt"
MOCK_TEXT = "Hello from the LiteLLM mock."
READY_WITHIN_S = 90.0
CONFIG = f"""\
model_list:
  - model_name: {MODEL}
    litellm_params:
      model: openai/{MODEL}
      api_key: unused-because-mocked
      mock_response: "{MOCK_TEXT}"
general_settings:
  master_key: {MASTER_KEY}
litellm_settings:
  telemetry: false
"""


_LISTENING = re.compile(r"Uvicorn running on (http://127\.0\.0\.1:\d+)")


def _tail(log: Path) -> str:
    return log.read_text(errors="replace")[-3000:] if log.exists() else "(no output)"


def _wait_ready(proc: subprocess.Popen[bytes], log: Path) -> str:
    """The proxy's URL, once it has logged the port it bound and answers its readiness check."""
    deadline = time.monotonic() + READY_WITHIN_S
    url = ""
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"the LiteLLM proxy exited with {proc.returncode}:\n{_tail(log)}")
        if not url:
            bound = _LISTENING.search(log.read_text(errors="replace"))
            url = bound.group(1) if bound else ""
        if not url:
            time.sleep(0.25)
            continue
        try:
            with urllib.request.urlopen(f"{url}/health/readiness", timeout=2) as response:
                if response.status == 200:
                    return url
        except (urllib.error.URLError, OSError):
            pass
        time.sleep(0.25)
    pytest.fail(f"the LiteLLM proxy was not ready within {READY_WITHIN_S:g}s:\n{_tail(log)}")


@pytest.fixture(scope="module")
def litellm_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    exe = Path(sys.executable).parent / "litellm"
    if not exe.exists():
        pytest.skip("litellm[proxy] is not installed in this environment "
                    "(pip install 'litellm[proxy]==1.106.2')")
    work = tmp_path_factory.mktemp("litellm")
    (work / "config.yaml").write_text(CONFIG)
    log = work / "litellm.log"
    closed = "http://127.0.0.1:9"  # discard port: nothing may leave loopback
    env = {**os.environ, "LITELLM_LOCAL_MODEL_COST_MAP": "True", "LITELLM_TELEMETRY": "False",
           "PYTHONUNBUFFERED": "1", "HTTP_PROXY": closed, "HTTPS_PROXY": closed,
           "http_proxy": closed, "https_proxy": closed, "NO_PROXY": "127.0.0.1,localhost",
           "no_proxy": "127.0.0.1,localhost"}
    env.pop("DATABASE_URL", None)
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [str(exe), "--config", str(work / "config.yaml"), "--host", "127.0.0.1",
             "--port", "0"], stdout=out, stderr=subprocess.STDOUT, env=env, cwd=work)
        try:
            yield _wait_ready(proc, log)
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def _llm(url: str) -> lpb.Llm:
    return lpb.Llm(display_name="litellm", endpoints=[lpb.Endpoint(
        api_spec=lpb.API_SPEC_OPENAI, base_url=f"{url}/v1", model=MODEL, api_key=MASTER_KEY)])


async def test_an_llm_on_litellm_passes_every_required_check(client: AsyncClient,
                                                             litellm_url: str) -> None:
    events = [e async for e in client.validate_llm(llm=_llm(litellm_url))]
    report = events[-1].report
    assert events[-1].HasField("report") and len(report.endpoints) == 1
    checks = report.endpoints[0].checks
    problems = {c.check: (rpb.CheckStatus.Name(c.status), c.observed) for c in checks
                if c.required and c.status != rpb.CHECK_STATUS_PASS}
    assert problems == {"network.tls": ("CHECK_STATUS_SKIPPED", problems["network.tls"][1])}
    assert report.passed and report.endpoints[0].passed
    assert report.endpoints[0].time_to_first_token.ToNanoseconds() > 0
    assert all(c.status != rpb.CHECK_STATUS_FAIL for c in checks)


async def test_a_conversation_through_switchboard_gets_the_mock_text(
        client: AsyncClient, litellm_url: str) -> None:
    created = await client.create_llm(_llm(litellm_url))  # validated, then stored
    assert created.validation.passed
    session = await client.create_session(created.llm.id)
    reply = Reply()
    async for event in client.converse("Hi!", session_id=session.id):
        reply.apply(event)
    assert reply.complete and reply.text == MOCK_TEXT
