"""The benchmark harness works end to end: ``python -m tests.bench.run --quick`` (no timings)
measures every target, TensorZero's embedded gateway and the front door included, and its
grpc.aio relay floor relays a turn as Switchboard does."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import grpc
from switchboard.v1 import conversations_pb2 as cpb
from switchboard.v1 import conversations_pb2_grpc as cgrpc

from tests.bench.procs import ROOT, python_env
from tests.bench.services import ANSWER, Pace, start_floor, start_simulator


def test_quick_bench_runs_every_process_and_reports_each_target(tmp_path: Path) -> None:
    out = tmp_path / "bench.json"
    done = subprocess.run(
        [sys.executable, "-m", "tests.bench.run", "--quick", "--duration", "2",
         "--json", str(out)],
        cwd=ROOT, env=python_env(), capture_output=True, text=True, timeout=110)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    report = json.loads(out.read_text())
    points = {(p["target"], p["load"]): p for p in report["points"]}
    assert set(points) == {("direct", 1), ("tensorzero", 1), ("switchboard", 1),
                           ("frontdoor", 1), ("connect", 1), ("floor", 1), ("session", 1)}, \
        report["notes"]
    for point in points.values():
        assert point["turns"] > 0 and point["errors"] == 0, point
        assert point["ttft_p50_ms"] is not None
    assert points[("switchboard", 1)]["proxy_rss_mb"] > 0, "server RSS read from /proc"
    assert points[("floor", 1)]["proxy_rss_mb"] > 0, "the floor's RSS read from /proc"
    assert points[("frontdoor", 1)]["proxy_cpu_s_per_1k"] > 0, "the front door's CPU per turn"
    assert "### CPU per turn (ms)" in done.stdout
    assert "### Targets" in done.stdout


async def test_relay_floor_sends_what_switchboard_sends_for_a_turn(tmp_path: Path) -> None:
    """The ``floor`` target relays a real turn: the simulator's answer in Switchboard's order."""
    sim, sim_url = start_simulator("simulator", Pace(ttft_ms=5, chunks=20, gap_ms=5), tmp_path)
    try:
        floor, target = start_floor(sim_url, tmp_path)
        try:
            async with grpc.aio.insecure_channel(target) as channel:
                call = cgrpc.ConversationsStub(channel).Converse(
                    cpb.ConverseRequest(llm_id="ignored", messages=[cpb.Message(
                        role=cpb.ROLE_USER, parts=[cpb.ContentPart(text="hi")])]), timeout=30)
                events = [r async for r in call]
        finally:
            floor.stop()
    finally:
        sim.stop()
    kinds = [e.WhichOneof("event") for e in events]
    texts = [e.text.delta for e in events if e.HasField("text")]
    assert kinds == ["started", "route", *["text"] * len(texts), "usage", "finished"], kinds
    # 20 deltas 5 ms apart arrive one per read; deltas read together go out as one message,
    # as Switchboard's transport does, so a stalled host may show fewer.
    assert 2 <= len(texts) <= 20
    assert "".join(texts) == ANSWER
    assert events[-2].usage.output_tokens > 0
    finished = events[-1].finished
    assert finished.complete and finished.finish_reason == cpb.FINISH_REASON_STOP
