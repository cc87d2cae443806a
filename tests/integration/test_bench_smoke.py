"""The benchmark harness works end to end: ``python -m tests.bench.run --quick`` (no timings)
measures every target, TensorZero's embedded gateway, the front door and the Go-client gRPC
rows included; its grpc.aio relay floor relays a turn as Switchboard does; its Go load
generator (``tests.bench.goclient``) runs the turns the server sees, and without Go the bench
says why those rows are missing.

The Go load generator builds offline over Debian's Go packages (``make go-deps``); without
them its tests skip, except in CI (``CI`` set), where that is a failure."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import aiohttp
import grpc
import pytest
from switchboard.v1 import conversations_pb2 as cpb
from switchboard.v1 import conversations_pb2_grpc as cgrpc
from switchboard_client import AsyncClient

from server.app import Switchboard
from server.simulator import Behavior, Simulator
from tests.bench.drivers import PROMPT, TURNS_PER_SESSION
from tests.bench.goclient import GoDriver, build_loadgen
from tests.bench.procs import ROOT, python_env
from tests.bench.services import (
    ANSWER,
    UPSTREAM_KEY,
    Pace,
    start_floor,
    start_http_floor,
    start_simulator,
)
from tests.support import API_KEY, create_llm, endpoint, running, settings

CONVERSE = "switchboard.v1.Conversations/Converse"
CREATE_SESSION = "switchboard.v1.Conversations/CreateSession"
END_SESSION = "switchboard.v1.Conversations/EndSession"


@pytest.fixture(scope="module")
def loadgen(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path | None]:
    """The Go load generator, built into the path the bench uses (so the bench's own build is a
    cache hit); None without Go, outside CI."""
    from tests.bench.goclient import LOADGEN

    why = build_loadgen(LOADGEN)  # the first build compiles grpc-go: minutes on a busy host
    if why is not None and os.environ.get("CI"):
        pytest.fail(f"{why} (required in CI)")
    yield None if why else LOADGEN


@pytest.mark.timeout(900)
def test_quick_bench_runs_every_process_and_reports_each_target(
        tmp_path: Path, loadgen: Path | None) -> None:
    out = tmp_path / "bench.json"
    done = subprocess.run(
        [sys.executable, "-m", "tests.bench.run", "--quick", "--duration", "2",
         "--json", str(out)],
        cwd=ROOT, env=python_env(), capture_output=True, text=True, timeout=150)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    report = json.loads(out.read_text())
    points = {(p["target"], p["load"]): p for p in report["points"]}
    go_rows = {("switchboard-go", 1), ("session-go", 1)} if loadgen else set()
    assert set(points) == {("direct", 1), ("tensorzero", 1), ("switchboard", 1),
                           ("frontdoor", 1), ("connect", 1), ("floor", 1), ("http-floor", 1),
                           ("session", 1), ("switchboard-history", 1),
                           *go_rows}, report["notes"]
    if loadgen:
        assert points[("switchboard-go", 1)]["loadgen_cpu_s_per_1k"] > 0, "the Go CPU, rusage"
        assert "| Switchboard gRPC (Go client) |" in done.stdout
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


async def test_http_floor_passes_a_turn_through_unchanged(tmp_path: Path) -> None:
    """The ``http-floor`` target relays a real streamed answer byte for byte (the OpenAI
    client reads it as it reads the simulator)."""
    sim, sim_url = start_simulator("simulator", Pace(ttft_ms=5, chunks=20, gap_ms=5), tmp_path)
    try:
        floor, base_url = start_http_floor(sim_url, tmp_path)
        try:
            async with aiohttp.ClientSession() as http:
                bodies = []
                for url in (sim_url, base_url):
                    async with http.post(url + "/chat/completions", headers={
                            "Authorization": f"Bearer {UPSTREAM_KEY}"}, json={
                            "model": "m", "stream": True,
                            "messages": [{"role": "user", "content": "hi"}]}) as r:
                        assert r.status == 200
                        assert r.headers["Content-Type"].startswith("text/event-stream")
                        bodies.append(await r.read())
        finally:
            floor.stop()
    finally:
        sim.stop()
    events = [json.loads(line[6:]) for line in bodies[1].decode().split("\n\n")
              if line.startswith("data: {")]
    text = "".join(e["choices"][0]["delta"].get("content") or "" for e in events
                   if e.get("choices"))
    assert text == ANSWER and bodies[1].rstrip().endswith(b"data: [DONE]")


def test_without_go_the_bench_says_why_its_go_rows_are_missing(tmp_path: Path) -> None:
    out = tmp_path / "bench.json"
    done = subprocess.run(
        [sys.executable, "-m", "tests.bench.run", "--quick", "--duration", "1",
         "--targets", "direct,switchboard-go,session-go", "--json", str(out)],
        cwd=ROOT, env=python_env({"PATH": str(tmp_path)}), capture_output=True, text=True,
        timeout=110)  # no go on PATH (every other program the bench starts has a full path)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    report = json.loads(out.read_text())
    assert [p["target"] for p in report["points"]] == ["direct"]
    assert set(report["missing"]) == {"switchboard-go", "session-go"}
    assert all("Go is not installed" in why for why in report["missing"].values())
    assert "| - | Switchboard gRPC (Go client) | not run: Go is not installed" in done.stdout


def _count(app: Switchboard, sample_name: str, **labels: str) -> float:
    """The sum of the server's own samples ``sample_name`` whose labels include ``labels``."""
    return sum(s.value for metric in app.metrics.registry.collect() for s in metric.samples
               if s.name == sample_name and all(s.labels.get(k) == v for k, v in labels.items()))


@pytest.mark.timeout(900)
@pytest.mark.parametrize("sessions", [False, True], ids=["stateless", "session-turns"])
async def test_go_load_generator_runs_the_turns_the_server_sees(
        loadgen: Path | None, tmp_path: Path, sessions: bool) -> None:
    """Closed loop from the Go process against a real server: every turn it ran is a turn the
    server served and the upstream answered, each relayed whole, timed at the client."""
    if loadgen is None:
        pytest.skip("Go is not installed (make go-deps)")
    concurrency = 4
    behavior = Behavior(text=ANSWER, chunks=20, ttft_s=0.005, chunk_gap_s=0.002)
    async with running(settings(tmp_path)) as app, \
            AsyncClient(f"127.0.0.1:{app.port}", API_KEY) as client, \
            Simulator("openai", behavior) as sim:
        llm = await create_llm(client, endpoint(sim), name="go-loadgen")
        driver = await GoDriver.start("go", loadgen, f"127.0.0.1:{app.port}", API_KEY, llm.id,
                                      tmp_path, sessions=sessions)
        windows: list[str] = []
        try:
            point = await driver.closed_loop(concurrency, duration_s=1.0, warmup_s=0.2,
                                             on_window=windows.append)
        finally:
            await driver.close()
        served = _count(app, "rpc_server_call_duration_seconds_count", rpc_method=CONVERSE,
                        rpc_response_status_code="OK")
        turns_ok = _count(app, "switchboard_turns_total", outcome="ok")
        created = _count(app, "rpc_server_call_duration_seconds_count",
                         rpc_method=CREATE_SESSION, rpc_response_status_code="OK")
        ended = _count(app, "rpc_server_call_duration_seconds_count", rpc_method=END_SESSION,
                       rpc_response_status_code="OK")
        sent = [[(m["role"], m["content"]) for m in r.body["messages"]] for r in sim.requests]
    assert windows == ["begin", "end"]
    run = point.run
    assert point.turns_run == served == turns_ok == len(sent), (point, served, turns_ok)
    assert 0 < run.completed <= len(run.results) <= point.turns_run
    assert point.cpu_s > 0
    for turn, text_bytes in zip(run.results, point.text_bytes, strict=True):
        assert not turn.error, turn
        assert text_bytes == len(ANSWER.encode())
        assert 1 <= len(turn.marks) <= 20  # deltas read together are sent as one
        assert turn.start < turn.first == turn.marks[0] <= turn.marks[-1] <= turn.end
    if not sessions:
        assert created == ended == 0
        assert all(messages == [("user", PROMPT)] for messages in sent)
        return
    # A session per worker at a time, replaced after TURNS_PER_SESSION turns (the last ones
    # stay open); a turn sends the system prompt, the session's history and the new message.
    assert point.sessions_created == created == ended + concurrency
    assert point.sessions_created >= point.turns_run / TURNS_PER_SESSION
    history = [("user", PROMPT), ("assistant", ANSWER)]
    for messages in sent:
        earlier = (len(messages) - 2) // 2  # the session's turns before this one
        assert earlier < TURNS_PER_SESSION, len(messages)
        assert messages == [("system", "Be brief."), *history * earlier, ("user", PROMPT)]
    assert Counter(len(m) for m in sent)[2] == point.sessions_created  # each one's first turn


@pytest.mark.timeout(900)
async def test_go_load_generator_reports_failed_turns_as_errors(
        loadgen: Path | None, tmp_path: Path) -> None:
    if loadgen is None:
        pytest.skip("Go is not installed (make go-deps)")
    async with running(settings(tmp_path)) as app, Simulator("openai") as sim:
        driver = await GoDriver.start("go", loadgen, f"127.0.0.1:{app.port}", "not-a-key",
                                      "llm_unknown", tmp_path)
        try:
            point = await driver.closed_loop(2, duration_s=0.5, warmup_s=0.1)
        finally:
            await driver.close()
        assert not sim.requests
    assert point.run.completed == 0 and point.run.results
    assert {turn.error for turn in point.run.results} == {"UNAUTHENTICATED"}


async def test_stateless_history_turns_send_what_session_turns_send(tmp_path: Path) -> None:
    """The bench's ``switchboard-history`` target is compared with session turns, so it must
    put the same conversation upstream: the system prompt, the earlier questions and answers,
    the new question, starting over every TURNS_PER_SESSION turns."""
    from tests.bench.drivers import SwitchboardDriver

    turns = TURNS_PER_SESSION + 3
    sent: dict[bool, list[list[tuple[str, str]]]] = {}
    async with running(settings(tmp_path)) as app, \
            AsyncClient(f"127.0.0.1:{app.port}", API_KEY) as client, \
            Simulator("openai", Behavior(text=ANSWER, chunks=4)) as sim:
        llm = await create_llm(client, endpoint(sim), name="history")
        for sessions in (True, False):
            driver = SwitchboardDriver("d", f"127.0.0.1:{app.port}", API_KEY, llm.id,
                                       sessions=sessions, history=not sessions)
            worker = driver.worker()
            try:
                for _ in range(turns):
                    assert not (await worker.turn()).error
            finally:
                await driver.close()
            sent[sessions] = [[(m["role"], m["content"]) for m in r.body["messages"]]
                              for r in sim.requests[-turns:]]
    assert sent[False] == sent[True]
    assert [len(m) for m in sent[False]] == [2 + 2 * (i % TURNS_PER_SESSION)
                                             for i in range(turns)]
