"""Soak: mixed traffic against a real server and a fleet of faulty simulators, for minutes.

    python -m tests.bench.soak                 # 10 minutes (make soak)
    python -m tests.bench.soak --minutes 0.5   # a 30 s smoke run

Three processes, so that the server's memory is measured alone:

* the fleet (``--role fleet``): seven simulators in one process. Three LLMs each have one
  always-healthy endpoint and one or two faulty ones; the faulty ones are the FASTEST, so the
  router keeps choosing them and the faults are really met. A chaos loop injects random faults
  (500, 503, 429 with and without Retry-After, TCP reset, hang, cut, malformed chunk, stall,
  in-band error) and one endpoint goes down for 20 s of every minute.
* the server (``--role server``): a real ``Switchboard`` (uvloop, SQLite) that answers
  ``stats`` on stdin with its RSS, ``len(asyncio.all_tasks())``, the upstream connection pool
  (aiohttp connector: acquired and idle) and its socket file descriptors, after a
  ``gc.collect()``.
* the driver (this process): workers that each loop over stateless turns, session
  conversations, reasoning turns and tool-call exchanges, with a short think time, for
  ``--minutes``. After ``--warmup-s`` and at the end, traffic pauses until nothing is in
  flight and the server is sampled ("quiescent" samples), so leaks are not confused with load.

Pass criteria (also asserted by the smoke test in tests/integration/test_faults.py): no turn
fails (every LLM keeps a healthy endpoint; a tool call is never faulted after it streamed); no
turn takes over 10 s (nothing waits out a 30 s first-token timeout while a healthy endpoint
exists); RSS grows less than 10 % from the end of warm-up to the end; the task count at
quiescence does not grow; no upstream connection stays acquired at quiescence (turns and
probes done); and the socket count (minus the idle keep-alive pool) does not grow.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import json
import os
import random
import signal
import statistics
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

ROOT = Path(__file__).resolve().parents[2]
SLOWEST_TURN_S = 10.0  # no turn waits on a faulty endpoint while a healthy one exists
TEXT = " ".join(f"word{i}" for i in range(24))
REASONING = "Let me think about this step by step before I answer the caller."
WEATHER = ("get_weather", '{"city": "Paris", "unit": "celsius"}')


# -- the fleet -------------------------------------------------------------------------------


@dataclass(frozen=True)
class SimDef:
    name: str
    spec: str
    llm: str  # which LLM it serves
    healthy: bool  # never faulted
    ttft_s: float
    reasoning: bool = False
    tools: bool = False
    chaos: str = ""  # "", "any" (pre- and mid-stream faults), "pre" (before output), "outage"


FLEET: tuple[SimDef, ...] = (
    SimDef("chat-healthy", "openai", "chat", True, 0.060),
    SimDef("chat-flaky", "gemini", "chat", False, 0.015, chaos="any"),
    SimDef("chat-outage", "azure_openai", "chat", False, 0.020, chaos="outage"),
    SimDef("reason-healthy", "groq", "reason", True, 0.060, reasoning=True),
    SimDef("reason-flaky", "openai", "reason", False, 0.015, reasoning=True, chaos="any"),
    SimDef("tools-healthy", "openai", "tools", True, 0.060, tools=True),
    SimDef("tools-flaky", "azure_openai", "tools", False, 0.015, tools=True, chaos="pre"),
)


def _behavior(d: SimDef) -> Any:
    from server.simulator import Behavior, ReasoningDialect

    return Behavior(
        text="" if d.tools else TEXT,
        chunks=None if d.tools else 12,
        reasoning=REASONING if d.reasoning else "",
        reasoning_chunks=4 if d.reasoning else None,
        reasoning_dialect=ReasoningDialect.REASONING,
        tool_calls=(WEATHER,) if d.tools else (),
        ttft_s=d.ttft_s,
        chunk_gap_s=0.003,
    )


def _random_fault(rng: random.Random, pre_only: bool) -> Any:
    from server.simulator import Fault, FaultKind

    pre = [
        Fault(FaultKind.SERVER_ERROR),
        Fault(FaultKind.UNAVAILABLE),
        Fault(FaultKind.RATE_LIMITED, retry_after_s=1.0),
        Fault(FaultKind.RATE_LIMITED),
        Fault(FaultKind.RESET_BEFORE_HEADERS),
        Fault(FaultKind.HANG),
        Fault(FaultKind.GARBAGE),
    ]
    mid = [
        Fault(FaultKind.CUT_AFTER, chunk=5),
        Fault(FaultKind.MALFORMED_CHUNK_AT, chunk=3),
        Fault(FaultKind.MIDSTREAM_ERROR_AT, chunk=4),
        Fault(FaultKind.STALL_AFTER, chunk=6, seconds=3.0),
        Fault(FaultKind.NO_DONE),
    ]
    return rng.choice(pre if pre_only else pre + mid)


async def _chaos(sims: dict[str, Any], rng: random.Random, injected: Counter[str]) -> None:
    """Random faults on the flaky endpoints; a 20 s outage per minute on the outage one."""
    from server.simulator import Fault, FaultKind

    started = time.monotonic()
    outage = [d.name for d in FLEET if d.chaos == "outage"]
    for name in outage:
        sims[name].behavior = _with_fault(sims[name].behavior, Fault(FaultKind.UNAVAILABLE))
    while True:
        await asyncio.sleep(0.5)
        for d in FLEET:
            sim = sims[d.name]
            injected[d.name] += len([r for r in sim.requests if r.fault is not None])
            injected["requests"] += len(sim.requests)
            sim.requests.clear()  # the fleet's own log must not grow for ten minutes
            behavior = sim.behavior
            armed = behavior.fault is not None and sim.fault_count < (behavior.fault_times or 0)
            if d.chaos in ("any", "pre") and not armed and rng.random() < 0.5:
                # armed until it strikes: every fault is really met by some turn
                sim.set_fault(_random_fault(rng, d.chaos == "pre"), times=rng.randint(1, 2))
        down = (time.monotonic() - started) % 60.0 < 20.0
        for name in outage:
            sims[name].faults_enabled = down


def _with_fault(behavior: Any, fault: Any) -> Any:
    import dataclasses

    return dataclasses.replace(behavior, fault=fault, fault_times=None, fault_until=None)


async def run_fleet(seed: int) -> None:
    from server.simulator import Simulator

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    sims = {d.name: Simulator(d.spec, _behavior(d), seed=seed) for d in FLEET}
    async with contextlib.AsyncExitStack() as stack:
        for sim in sims.values():
            await stack.enter_async_context(sim)
        urls = {name: sim.base_url for name, sim in sims.items()}
        print("SOAK-FLEET " + json.dumps(urls), flush=True)
        injected: Counter[str] = Counter()
        chaos = asyncio.create_task(_chaos(sims, random.Random(seed), injected))
        reader = asyncio.StreamReader()
        await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
        commands = asyncio.create_task(_answer_stats(reader, injected))
        await asyncio.wait([commands, asyncio.create_task(stop.wait())],
                           return_when=asyncio.FIRST_COMPLETED)
        chaos.cancel()
        commands.cancel()


async def _answer_stats(reader: asyncio.StreamReader, injected: Counter[str]) -> None:
    while line := await reader.readline():
        if line.strip() == b"stats":
            print("SOAK-STATS " + json.dumps(dict(injected)), flush=True)


# -- the server ------------------------------------------------------------------------------


def _rss_kb() -> int:
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def _socket_fds() -> int:
    count = 0
    for fd in os.listdir("/proc/self/fd"):
        with contextlib.suppress(OSError):
            if os.readlink(f"/proc/self/fd/{fd}").startswith("socket:"):
                count += 1
    return count


def _pool(app: Any) -> tuple[int, int]:
    """(acquired, idle) connections of the upstream client's aiohttp connector."""
    client = getattr(app, "_client", None)
    session = getattr(client, "_session", None)
    connector = getattr(session, "connector", None)
    if connector is None:
        return 0, 0
    acquired = len(getattr(connector, "_acquired", ()))
    idle = sum(len(v) for v in getattr(connector, "_conns", {}).values())
    return acquired, idle


def _stats(app: Any) -> dict[str, Any]:
    gc.collect()
    acquired, idle = _pool(app)
    turns = getattr(app, "turns", None)
    return {
        "rss_kb": _rss_kb(),
        "tasks": len(asyncio.all_tasks()),
        "upstream_acquired": acquired,
        "upstream_idle": idle,
        "socket_fds": _socket_fds(),
        "in_flight": getattr(turns, "in_flight", -1),
        "probes_in_flight": len(getattr(app.probes, "_tasks", ())),
    }


async def run_server(database: str) -> None:
    from server import logs
    from server.app import Switchboard
    from server.vault.redact import Redactor
    from tests.support import settings

    logs.configure("warning", "json", Redactor(), stream=sys.stderr)
    s = settings(Path(database).parent, database=database, max_concurrent_streams=10_000,
                 log_level="warning")  # probes as in production: they take half-open trials
    app = Switchboard(s)
    await app.start()
    print(f"SOAK-SERVER port={app.port}", flush=True)
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    try:
        while line := await reader.readline():
            if line.strip() == b"stats":
                print("SOAK-STATS " + json.dumps(_stats(app)), flush=True)
    finally:
        await app.stop(grace_s=2.0)


# -- the driver ------------------------------------------------------------------------------


@dataclass
class Results:
    minutes: float
    turns: Counter[str] = field(default_factory=Counter)
    failures: list[str] = field(default_factory=list)
    failovers: int = 0
    retried: int = 0  # turns that needed more than one attempt
    ttft_ms: list[float] = field(default_factory=list)
    turn_ms: list[float] = field(default_factory=list)
    warm: dict[str, Any] = field(default_factory=dict)
    end: dict[str, Any] = field(default_factory=dict)
    samples: list[dict[str, Any]] = field(default_factory=list)
    fleet: dict[str, int] = field(default_factory=dict)

    @property
    def total(self) -> int:
        return sum(self.turns.values())

    @property
    def rss_growth(self) -> float:
        return float(self.end["rss_kb"]) / float(self.warm["rss_kb"]) - 1.0

    def problems(self) -> list[str]:
        out = []
        if self.failures:
            out.append(f"{len(self.failures)} turn(s) failed, e.g. {self.failures[0]}")
        slowest = max(self.turn_ms, default=0.0)
        if slowest > SLOWEST_TURN_S * 1e3:
            out.append(f"a turn took {slowest / 1e3:.1f} s (limit {SLOWEST_TURN_S:g} s: the "
                       "worst fault here, a stall, is cut at the 2 s stall floor)")
        if self.rss_growth >= 0.10:
            out.append(f"RSS grew {self.rss_growth:.1%} after warm-up (limit 10%)")
        probes_warm = self.warm.get("probes_in_flight", 0)
        probes_end = self.end.get("probes_in_flight", 0)  # one task and connection each
        if self.end["tasks"] - probes_end > self.warm["tasks"] - probes_warm + 2:
            out.append(f"asyncio tasks at rest grew {self.warm['tasks']} -> {self.end['tasks']}")
        if self.end["upstream_acquired"] > probes_end or self.end["in_flight"]:
            out.append(f"at rest: {self.end['upstream_acquired']} upstream connection(s) "
                       f"acquired, {self.end['in_flight']} turn(s) and {probes_end} probe(s) "
                       "in flight")
        other_warm = self.warm["socket_fds"] - self.warm["upstream_idle"]
        other_end = self.end["socket_fds"] - self.end["upstream_idle"]
        if other_end > other_warm + 2:
            out.append(f"sockets other than the idle pool grew {other_warm} -> {other_end}")
        return out

    def report(self) -> str:
        def pct(values: list[float], q: float) -> float:
            if not values:
                return 0.0
            ordered = sorted(values)
            return ordered[min(len(ordered) - 1, int(q * len(ordered)))]

        kinds = ", ".join(f"{k} {v}" for k, v in sorted(self.turns.items()))
        peak_rss = max((s["rss_kb"] for s in self.samples), default=0)
        lines = [
            "== soak results ==",
            f"duration           {self.minutes:g} min of traffic (+ warm-up)",
            f"turns              {self.total} ({kinds})",
            f"failed turns       {len(self.failures)}",
            f"upstream requests  {self.fleet.get('requests', 0)}, of which faulted "
            f"{sum(v for k, v in self.fleet.items() if k != 'requests')} ("
            + ", ".join(f"{k} {v}" for k, v in sorted(self.fleet.items())
                        if k != "requests" and v) + ")",
            f"turns with retries {self.retried}; failovers after output {self.failovers}",
            f"ttft ms            p50 {pct(self.ttft_ms, 0.5):.0f}  p95 "
            f"{pct(self.ttft_ms, 0.95):.0f}  p99 {pct(self.ttft_ms, 0.99):.0f}",
            f"turn ms            p50 {pct(self.turn_ms, 0.5):.0f}  p95 "
            f"{pct(self.turn_ms, 0.95):.0f}  max {max(self.turn_ms, default=0):.0f}",
            f"server RSS         {self.warm['rss_kb'] / 1024:.1f} MiB after warm-up -> "
            f"{self.end['rss_kb'] / 1024:.1f} MiB at end ({self.rss_growth:+.1%}); "
            f"peak under load {peak_rss / 1024:.1f} MiB",
            f"asyncio tasks      {self.warm['tasks']} -> {self.end['tasks']} (at rest; "
            f"probes in flight {self.warm.get('probes_in_flight', 0)} -> "
            f"{self.end.get('probes_in_flight', 0)})",
            f"upstream conns     acquired {self.warm['upstream_acquired']} -> "
            f"{self.end['upstream_acquired']}, idle pool {self.warm['upstream_idle']} -> "
            f"{self.end['upstream_idle']} (at rest)",
            f"socket fds         {self.warm['socket_fds']} -> {self.end['socket_fds']} (at rest)",
            f"verdict            {'PASS' if not self.problems() else 'FAIL'}",
        ]
        lines += [f"  problem: {p}" for p in self.problems()]
        return "\n".join(lines)


class _Proc:
    """A child process whose stdout is read line by line (and always drained)."""

    def __init__(self, proc: asyncio.subprocess.Process) -> None:
        self.proc = proc
        self._lines: asyncio.Queue[str] = asyncio.Queue()
        self._reader = asyncio.create_task(self._read())

    @classmethod
    async def start(cls, *args: str, stderr: Any) -> _Proc:
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(
            [str(ROOT), str(ROOT / "generated"), str(ROOT / "clients" / "python")])}
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "tests.bench.soak", *args, cwd=ROOT, env=env,
            stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE, stderr=stderr)
        return cls(proc)

    async def _read(self) -> None:
        assert self.proc.stdout is not None
        while line := await self.proc.stdout.readline():
            text = line.decode(errors="replace").rstrip()
            if text.startswith("SOAK-"):
                await self._lines.put(text)

    async def expect(self, prefix: str, timeout_s: float = 30.0) -> str:
        async with asyncio.timeout(timeout_s):
            while True:
                line = await self._lines.get()
                if line.startswith(prefix):
                    return line[len(prefix):].strip()

    async def stats(self) -> dict[str, Any]:
        assert self.proc.stdin is not None
        self.proc.stdin.write(b"stats\n")
        await self.proc.stdin.drain()
        return dict(json.loads(await self.expect("SOAK-STATS")))

    async def stats_at_rest(self, limit_s: float = 5.0) -> dict[str, Any]:
        """Stats once no turn and no probe is in flight, or after ``limit_s`` (a probe of a
        hung endpoint waits for its 30 s first-token timeout: ``problems`` allows for it)."""
        deadline = time.monotonic() + limit_s
        sample = await self.stats()
        while (sample.get("in_flight") or sample.get("probes_in_flight")) \
                and time.monotonic() < deadline:
            await asyncio.sleep(0.5)
            sample = await self.stats()
        return sample

    async def stop(self) -> int:
        """End of stdin stops the server (it drains); the fleet stops on SIGTERM."""
        if self.proc.stdin is not None:
            self.proc.stdin.close()
        for signum in (None, signal.SIGTERM, signal.SIGKILL):
            if self.proc.returncode is not None:
                break
            if signum is not None:
                self.proc.send_signal(signum)
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(10):
                    await self.proc.wait()
        self._reader.cancel()
        return self.proc.returncode or 0


class _Traffic:
    """The workers' shared switch: paused workers finish their turn and wait."""

    def __init__(self) -> None:
        self.running = asyncio.Event()
        self.running.set()
        self.busy = 0
        self.idle = asyncio.Event()

    async def pause(self) -> None:
        self.running.clear()
        while self.busy:
            self.idle.clear()
            await self.idle.wait()

    def resume(self) -> None:
        self.running.set()


async def _worker(n: int, client: Any, llms: dict[str, str], traffic: _Traffic,
                  results: Results, stop_at: list[float], rng: random.Random) -> None:
    import grpc
    from switchboard.v1 import conversations_pb2 as cpb
    from switchboard_client import Reply

    tool = cpb.Tool(name="get_weather", description="Current weather for a city.")
    tool.parameters.update({"type": "object", "properties": {"city": {"type": "string"}}})

    async def turn(kind: str, messages: Any, **kw: Any) -> Reply | None:
        started = time.monotonic()
        try:
            reply: Reply = await client.reply(messages, timeout=60.0, **kw)
        except grpc.aio.AioRpcError as exc:
            results.failures.append(f"{kind}: {exc.code().name}: {exc.details()}")
            return None
        results.turn_ms.append((time.monotonic() - started) * 1e3)
        if not reply.complete:
            results.failures.append(f"{kind}: finished incomplete ({reply.finished})")
            return None
        results.turns[kind] += 1
        assert reply.finished is not None
        results.ttft_ms.append(reply.finished.time_to_first_token.ToMilliseconds())
        results.failovers += len(reply.failovers)
        results.retried += reply.finished.attempts > 1
        return reply

    while time.monotonic() < stop_at[0]:
        await traffic.running.wait()
        traffic.busy += 1
        try:
            pick = rng.random()
            if pick < 0.3:
                await turn("stateless", "What time is it?", llm_id=llms["chat"])
            elif pick < 0.55:
                session = await client.create_session(llms["chat"], system_prompt="Be brief.",
                                                      idle_ttl_s=120)
                for i in range(rng.randint(2, 4)):
                    if await turn("session", f"question {i}", session_id=session.id) is None:
                        break
                await client.end_session(session.id)
            elif pick < 0.8:
                reply = await turn("reasoning", "Why is the sky blue?", llm_id=llms["reason"])
                if reply is not None and not reply.reasoning:
                    results.failures.append("reasoning: no reasoning streamed")
            else:
                reply = await turn("tool_call", "Weather in Paris?", llm_id=llms["tools"],
                                   tools=[tool])
                if reply is not None:
                    call = reply.tool_calls.get(0)
                    if call is None or json.loads(call.arguments_json)["city"] != "Paris":
                        results.failures.append(f"tool_call: wrong call {call}")
                    else:
                        history = [
                            cpb.Message(role=cpb.ROLE_USER,
                                        parts=[cpb.ContentPart(text="Weather in Paris?")]),
                            cpb.Message(role=cpb.ROLE_ASSISTANT, tool_calls=[cpb.ToolCall(
                                id=call.id, name=call.name,
                                arguments_json=call.arguments_json)]),
                            cpb.Message(role=cpb.ROLE_TOOL, tool_call_id=call.id,
                                        name=call.name,
                                        parts=[cpb.ContentPart(text='{"temp_c": 21}')]),
                        ]
                        await turn("tool_call", history, llm_id=llms["tools"], tools=[tool])
        except grpc.aio.AioRpcError as exc:  # session calls
            results.failures.append(f"session rpc: {exc.code().name}: {exc.details()}")
        finally:
            traffic.busy -= 1
            if not traffic.busy:
                traffic.idle.set()
        await asyncio.sleep(rng.uniform(0.01, 0.1))  # a voice agent's think time


async def _register(client: Any, urls: dict[str, str]) -> dict[str, str]:
    from switchboard.v1 import llm_pb2 as lpb

    from tests.support import SPECS

    llms: dict[str, str] = {}
    for name in ("chat", "reason", "tools"):
        endpoints = []
        for d in FLEET:
            if d.llm != name:
                continue
            ep = lpb.Endpoint(api_spec=SPECS[d.spec], base_url=urls[d.name], model="soak-model",
                              api_key="sk-soak", label=d.name)
            if d.spec == "azure_openai":
                ep.api_version = "2024-10-21"
            endpoints.append(ep)
        response = await client.create_llm(lpb.Llm(display_name=f"soak-{name}",
                                                    endpoints=endpoints), skip_validation=True)
        llms[name] = response.llm.id
    return llms


def _open_log(path: Path) -> BinaryIO:
    return path.open("wb")


async def run_soak(minutes: float, *, concurrency: int = 12, warmup_s: float | None = None,
                   seed: int = 7, sample_every_s: float = 10.0,
                   log: Any = None) -> Results:
    """Runs the whole soak and returns its results (it does not judge them)."""
    from switchboard_client import AsyncClient

    from tests.support import API_KEY

    say = log or (lambda text: print(text, file=sys.stderr, flush=True))
    warmup = warmup_s if warmup_s is not None else min(60.0, max(8.0, minutes * 6.0))
    results = Results(minutes)
    with tempfile.TemporaryDirectory(prefix="soak-") as tmp:
        errors = _open_log(Path(tmp) / "children.log")
        fleet = await _Proc.start("--role", "fleet", "--seed", str(seed), stderr=errors)
        server = await _Proc.start("--role", "server", "--database",
                                   str(Path(tmp) / "soak.db"), stderr=errors)
        try:
            urls = json.loads(await fleet.expect("SOAK-FLEET"))
            port = int((await server.expect("SOAK-SERVER")).split("=", 1)[1])
            async with AsyncClient(f"127.0.0.1:{port}", API_KEY) as client:
                llms = await _register(client, urls)
                traffic = _Traffic()
                rng = random.Random(seed)
                stop_at = [time.monotonic() + warmup + minutes * 60.0]
                workers = [asyncio.create_task(_worker(
                    i, client, llms, traffic, results, stop_at, random.Random(rng.random())))
                    for i in range(concurrency)]
                say(f"soak: warming up for {warmup:g} s with {concurrency} workers")
                await asyncio.sleep(warmup)
                await traffic.pause()
                results.warm = await server.stats_at_rest()
                say(f"soak: after warm-up {results.warm}")
                traffic.resume()
                next_sample = time.monotonic() + sample_every_s
                while time.monotonic() < stop_at[0]:
                    await asyncio.sleep(min(1.0, max(0.0, stop_at[0] - time.monotonic())))
                    if time.monotonic() >= next_sample:
                        sample = await server.stats()
                        results.samples.append(sample)
                        next_sample += sample_every_s
                        say(f"soak: {results.total} turns, {len(results.failures)} failed, "
                            f"{sample}")
                await asyncio.gather(*workers)
                await traffic.pause()
                results.end = await server.stats_at_rest()
                results.fleet = await fleet.stats()
        finally:
            await server.stop()
            await fleet.stop()
            errors.close()
    return results


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m tests.bench.soak", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--minutes", type=float, default=10.0, help="traffic after warm-up")
    p.add_argument("--concurrency", type=int, default=12, help="concurrent callers")
    p.add_argument("--warmup-s", type=float, help="default: 60 s (less for short runs)")
    p.add_argument("--seed", type=int, default=7)
    p.add_argument("--json", type=Path, help="also write the figures here")
    p.add_argument("--role", choices=["driver", "fleet", "server"], default="driver",
                   help=argparse.SUPPRESS)
    p.add_argument("--database", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    import uvloop

    if args.role == "fleet":
        uvloop.run(run_fleet(args.seed))
        return 0
    if args.role == "server":
        uvloop.run(run_server(args.database))
        return 0
    results = uvloop.run(run_soak(args.minutes, concurrency=args.concurrency,
                                  warmup_s=args.warmup_s, seed=args.seed))
    print(results.report())
    if args.json:
        args.json.write_text(json.dumps({
            "minutes": results.minutes, "turns": dict(results.turns),
            "failures": results.failures[:20], "failed": len(results.failures),
            "ttft_ms_p50": statistics.median(results.ttft_ms) if results.ttft_ms else None,
            "warm": results.warm, "end": results.end, "samples": results.samples,
            "rss_growth": results.rss_growth, "problems": results.problems(),
            "fleet": results.fleet,
        }, indent=2))
    return 0 if not results.problems() else 1


if __name__ == "__main__":
    sys.exit(main())
