"""The TypeScript client (clients/typescript) against a real Switchboard and simulator.

`npm ci` runs once and is cached in clients/typescript/node_modules (keyed by the lockfile's
hash); the client and its tests compile with tsc (incremental) and run under `node --test`.
Without node and npm the tests skip, except in CI (`CI` set), where that is a failure.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import re
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from switchboard_client import AsyncClient

from server.app import Switchboard
from server.simulator import Behavior, Simulator
from tests.support import API_KEY, create_llm, endpoint

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = ROOT / "clients" / "typescript"
STAMP = PACKAGE / "node_modules" / ".switchboard-lock-sha256"
TEXT = "Hello from the Node client test."
REASONING = "The user greets me; greet back."


def _unavailable(reason: str) -> None:
    if os.environ.get("CI"):
        pytest.fail(f"{reason} (required in CI)")
    pytest.skip(reason)


def _run(*args: str, timeout: float) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(args, cwd=PACKAGE, capture_output=True, text=True, timeout=timeout,
                            check=False)
    if result.returncode != 0:
        raise AssertionError(f"{' '.join(args)} failed:\n{result.stdout}\n{result.stderr}")
    return result


@pytest.fixture(scope="module")
def node() -> Iterator[str]:
    """The node binary, after `npm ci` (when the lockfile changed) and a tsc build."""
    node, npm = shutil.which("node"), shutil.which("npm")
    if node is None or npm is None:
        _unavailable("node and npm are needed for the TypeScript client")
    assert node is not None and npm is not None
    major = int(subprocess.run([node, "--version"], capture_output=True, text=True,
                               check=True).stdout.strip().lstrip("v").split(".")[0])
    if major < 20:
        _unavailable(f"the TypeScript client needs Node 20 or later, found {major}")
    lock = hashlib.sha256((PACKAGE / "package-lock.json").read_bytes()).hexdigest()
    if not STAMP.exists() or STAMP.read_text() != lock:
        _run(npm, "ci", "--no-audit", "--no-fund", timeout=600)
        STAMP.write_text(lock)
    _run(node, "node_modules/typescript/bin/tsc", "-p", "tsconfig.json", timeout=120)
    yield node


def test_typescript_stubs_match_the_protos(node: str) -> None:
    _run(node, "scripts/generate.js", "--check", "src/gen", timeout=120)


async def test_node_client_streams_a_turn(node: str, server: Switchboard,
                                          client: AsyncClient) -> None:
    behavior = Behavior(text=TEXT, reasoning=REASONING, reasoning_chunks=3)
    async with Simulator("openai", behavior) as sim:
        llm = await create_llm(client, endpoint(sim), name="node-client")
        env = {
            **os.environ,
            "SWITCHBOARD_TARGET": f"127.0.0.1:{server.port}",
            "SWITCHBOARD_API_KEY": API_KEY,
            "SWITCHBOARD_LLM_ID": llm.id,
            "SWITCHBOARD_EXPECT_TEXT": TEXT,
            "SWITCHBOARD_EXPECT_REASONING": REASONING,
            "SWITCHBOARD_UPSTREAM_URL": sim.base_url,
        }
        # The server runs on this event loop, so the child must not block it.
        tests = sorted(str(p.relative_to(PACKAGE)) for p in PACKAGE.glob("dist/test/*.test.js"))
        proc = await asyncio.create_subprocess_exec(
            node, "--test", "--test-reporter=tap", *tests, cwd=PACKAGE, env=env,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT)
        try:
            out, _ = await asyncio.wait_for(proc.communicate(), timeout=60)
        finally:
            if proc.returncode is None:
                proc.kill()
                await proc.wait()
    report = out.decode()
    assert proc.returncode == 0, report
    assert "# fail 0" in report and "# skipped 0" in report, report
    for name in ("a session turn streams reasoning apart from text and finishes",
                 "createLlm registers an LLM that answers a stateless turn",
                 "barge-in: a cancelled answer is kept as heard, and the next turn barges in"):
        assert re.search(rf"^\s*ok \d+ - {re.escape(name)}$", report, re.M), report
    assert f"text: {json.dumps(TEXT)}" in report, report
    prompts = [r.body["messages"][-1]["content"] for r in sim.requests
               if isinstance(r.body, dict) and r.body.get("messages")]
    assert "Hi!" in prompts  # the session turn
    assert "Hello?" in prompts  # the stateless turn on the LLM that createLlm registered
