"""What a log pipeline gets from ``switchboard serve`` with JSON logs: only JSON lines (the
banner included), one summary line per turn that gives the cause of each attempt, and token
counts that mean the same on the gRPC and the HTTP edge."""

from __future__ import annotations

import asyncio
import json
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import aiohttp
from switchboard.v1 import llm_pb2 as lpb
from switchboard_client import AsyncClient

from server.simulator import Behavior, Fault, FaultKind, Simulator
from tests.support import API_KEY, ROOT, endpoint, server_env


def _start(env: dict[str, str]) -> tuple[subprocess.Popen[str], list[str], dict[str, Any]]:
    proc = subprocess.Popen([sys.executable, "-m", "server.main"], env=env, cwd=ROOT,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    assert proc.stdout is not None
    lines: list[str] = []
    for line in proc.stdout:
        lines.append(line)
        if "SWITCHBOARD listening on" in line:
            break
    serving = next(json.loads(x) for x in lines if '"event": "serving"' in x)
    return proc, lines, serving


async def test_json_logs_are_only_json_and_each_turn_says_why_it_failed_over(
        tmp_path: Path) -> None:
    # Any free ports for the HTTP edge and metrics (0 turns them off); the server reports both.
    env = {**server_env(tmp_path), "SWITCHBOARD_HTTP_PORT": "auto",
           "SWITCHBOARD_METRICS_PORT": "auto"}
    async with Simulator("openai", Behavior(fault=Fault(FaultKind.UNAVAILABLE))) as down, \
            Simulator("openai", Behavior(text="Hello there.", reasoning="Think.")) as up:
        proc, lines, serving = await asyncio.to_thread(_start, env)
        try:
            port = int(serving["address"].rsplit(":", 1)[1])
            banner = json.loads(lines[-1])  # the banner reports every port the server bound
            assert banner["address"] == serving["address"]
            assert banner["http_port"] == serving["http_port"] > 0
            assert banner["metrics_port"] == serving["metrics_port"] > 0
            assert banner["event"].endswith(
                f"(http {serving['http_port']}, metrics {serving['metrics_port']})")
            async with AsyncClient(f"127.0.0.1:{port}", API_KEY) as sb:
                llm = (await sb.create_llm(lpb.Llm(display_name="logged", endpoints=[
                    endpoint(down, priority=0, label="down"),
                    endpoint(up, priority=1, label="up")]), skip_validation=True)).llm
                reply = await sb.reply("hi", llm_id=llm.id)
                assert reply.complete
            async with aiohttp.ClientSession() as http, http.post(
                    f"http://127.0.0.1:{serving['http_port']}/v1/chat/completions",
                    headers={"Authorization": f"Bearer {API_KEY}"},
                    json={"model": llm.id, "messages": [{"role": "user", "content": "hi"}]}
                    ) as answer:
                assert answer.status == 200
            async with aiohttp.ClientSession() as http, http.get(
                    f"http://127.0.0.1:{serving['metrics_port']}/metrics") as scraped:
                assert scraped.status == 200
        finally:
            proc.send_signal(signal.SIGTERM)
            rest, _ = await asyncio.to_thread(proc.communicate, timeout=30)
    output = [x for x in "".join(lines) .splitlines() + rest.splitlines() if x.strip()]
    records = [json.loads(x) for x in output]  # every line is JSON: none is plain text
    converse = next(r for r in records if r.get("rpc") == "Converse" and r["event"] == "rpc")
    attempts = converse["attempt_log"]
    assert [(a["label"], a["outcome"]) for a in attempts][-1] == ("up", "ok")
    failed = next(a for a in attempts if a["label"] == "down")
    assert failed["outcome"] == "server_error" and failed["cause"]
    assert failed["model"] == "sim-model" and failed["reason"]
    assert converse["outcome"] == "ok"
    completion = next(r for r in records if r["event"] == "http" and r.get("llm_id") == llm.id)
    assert completion["attempt_log"][-1]["outcome"] == "ok"
    for field in ("tokens_out", "tokens_reasoning", "tokens_in"):
        assert converse[field] == completion[field], field
    assert converse["tokens_reasoning"] > 0
