"""``python -m server.simulator``: prints its base URL first, serves, stops on SIGTERM."""

from __future__ import annotations

import asyncio
import signal
import sys
from pathlib import Path

import aiohttp

from tests.unit.simulator._sim_testkit import openai_text, parse_sse

REPO = Path(__file__).resolve().parents[3]


async def test_cli_serves_until_sigterm(session: aiohttp.ClientSession) -> None:
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "server.simulator",
        "--spec", "groq", "--port", "0", "--ttft-ms", "5", "--chunks", "4", "--gap-ms", "1",
        "--text", "hello from the cli", "--api-key", "gsk_cli",
        cwd=REPO, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    try:
        assert process.stdout is not None
        line = (await asyncio.wait_for(process.stdout.readline(), 20)).decode()
        assert line.startswith("SIMULATOR base_url=http://127.0.0.1:")
        base_url = line.strip().split("=", 1)[1]
        assert base_url.endswith("/openai/v1")
        body = {"model": "m", "messages": [{"role": "user", "content": "hi"}], "stream": True}
        headers = {"Authorization": "Bearer gsk_cli"}
        async with session.post(base_url + "/chat/completions", json=body, headers=headers) as r:
            raw = await r.read()
        events = [e.json() for e in parse_sse(raw) if e.data != "[DONE]"]
        assert openai_text(events) == "hello from the cli"
        assert len(events) == 6  # role, 4 chunks, finish
    finally:
        if process.returncode is None:
            process.send_signal(signal.SIGTERM)
        code = await asyncio.wait_for(process.wait(), 10)
    assert code == 0
