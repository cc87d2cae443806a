"""``make bench``: Switchboard's two edges against the upstream called directly, a bare
grpc.aio relay (the floor), TensorZero's embedded gateway and LiteLLM.

    python -m tests.bench.run                # the full run (a few minutes)
    python -m tests.bench.run --quick        # a smoke run (seconds)
    python -m tests.bench.run --help

Processes: the upstream simulator (fast: 20 ms to first token, 20 chunks 2 ms apart; and a
slow one for the many-streams scenario), Switchboard (``python -m server.main``), the relay
floor (``tests.bench.relay_floor``: the thinnest grpc.aio relay of the same turn, the best any
grpc.aio server can do on this host) and the LiteLLM proxy each run in their own process, so
their CPU and RSS are read from /proc; this process is the load generator, and it embeds
TensorZero's gateway (``tensorzero``: its Rust core runs in the caller's process, so its CPU is
the load generator's). Switchboard is measured on both edges: gRPC ``Converse`` (stateless,
session turns, and stateless turns resending the conversation a session would hold), the same
Converse over the Connect protocol on its HTTP port, and the
OpenAI-compatible front door on that port. The gRPC rows run twice: from this process's
grpc.aio client, and from a compiled grpc-go client in a process of its own
(``tests.bench.goclient``: the same turns, timed the same way, its CPU from its own rusage), so
that the client's share of the two cores can be told apart from the server's; without Go its
rows say why they are missing. Every point is measured
against the same simulator in the same run: "added" figures are the target minus the direct
client at the same load.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import math
import platform
import shutil
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from switchboard.v1 import llm_pb2 as lpb
from switchboard_client import AsyncClient

from tests.bench import report
from tests.bench.drivers import (
    TENSORZERO_KEY_ENV,
    ConnectDriver,
    Driver,
    HttpSseDriver,
    SwitchboardDriver,
    TensorZeroDriver,
    TurnResult,
    tensorzero_config,
)
from tests.bench.goclient import LOADGEN, GoDriver, GoPoint, build_loadgen
from tests.bench.load import Run, closed_loop, open_loop
from tests.bench.procs import Proc, host_busy_s
from tests.bench.services import (
    API_KEY,
    LITELLM_KEY,
    MODEL,
    UPSTREAM_KEY,
    Pace,
    start_floor,
    start_http_floor,
    start_litellm,
    start_simulator,
    start_switchboard,
    wait_litellm,
)
from tests.bench.stats import Point, Usage, summarise

UNSLICED = frozenset({"litellm"})  # its turns take seconds at load: measured in one window
GO_TARGETS = ("switchboard-go", "session-go")  # the gRPC rows from the Go load generator


def _ints(text: str) -> list[int]:
    return [int(x) for x in text.split(",") if x.strip()]


def _floats(text: str) -> list[float]:
    return [float(x) for x in text.split(",") if x.strip()]


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m tests.bench.run", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true",
                   help="smoke run: concurrency 1 only, 2 s points, no LiteLLM/open loop/streams")
    p.add_argument("--duration", type=float, default=10.0, help="seconds measured per point")
    p.add_argument("--warmup", type=float, default=2.0, help="seconds of warm-up per point")
    p.add_argument("--slices", type=int, default=1,
                   help="split each point into this many slices, run round-robin over the "
                   "targets of a load (each slice: --duration/N after its own warm-up), so a "
                   "shared host's changing load falls on every target alike")
    p.add_argument("--concurrency", type=_ints, default=[1, 10, 50, 200])
    p.add_argument("--session-concurrency", type=_ints, default=[1, 50])
    p.add_argument("--rates", type=_floats, default=[100.0, 200.0],
                   help="open-loop arrival rates (turns/s); empty to skip")
    p.add_argument("--streams", type=int, default=1000, help="concurrent slow streams; 0: skip")
    p.add_argument("--stream-seconds", type=float, default=10.0, help="length of a slow stream")
    p.add_argument("--litellm", choices=("on", "off"), default="on")
    p.add_argument("--litellm-concurrency", type=_ints, default=None,
                   help="default: the same as --concurrency")
    p.add_argument("--targets",
                   default="direct,tensorzero,switchboard,switchboard-go,frontdoor,connect,floor,"
                   "http-floor,session,session-go,switchboard-history,litellm",
                   help="which targets to run (comma separated; switchboard-go and session-go: "
                   "the gRPC rows from the Go load generator)")
    p.add_argument("--channels", type=int, default=1,
                   help="gRPC channels the load generator spreads its workers over")
    p.add_argument("--go-window", type=int, default=0, metavar="BYTES",
                   help="the Go load generator's fixed HTTP/2 windows (no BDP pings); "
                   "0: grpc-go's default")
    p.add_argument("--server-loop", choices=("uvloop", "asyncio"), default="uvloop")
    p.add_argument("--loadgen-loop", choices=("uvloop", "asyncio"), default="uvloop")
    p.add_argument("--server-env", action="append", default=[], metavar="NAME=VALUE",
                   help="extra SWITCHBOARD_* settings for the server (repeatable)")
    p.add_argument("--ttft-ms", type=float, default=20.0)
    p.add_argument("--chunks", type=int, default=20)
    p.add_argument("--gap-ms", type=float, default=2.0)
    p.add_argument("--profile", metavar="DIR",
                   help="after the run, record the server with py-spy at --profile-concurrency")
    p.add_argument("--profile-concurrency", type=int, default=50)
    p.add_argument("--profile-target", choices=("switchboard", "session", "frontdoor", "connect"),
                   default="switchboard", help="which of the server's edges to profile")
    p.add_argument("--profile-rate", type=int, default=400, help="py-spy samples per second")
    p.add_argument("--profile-native", action="store_true",
                   help="py-spy --native (C frames too; pauses the server while sampling)")
    p.add_argument("--json", metavar="PATH", help="write every point as JSON")
    p.add_argument("--markdown", metavar="PATH", help="write the tables as Markdown")
    p.add_argument("--keep-logs", action="store_true", help="keep the processes' logs")
    args = p.parse_args(argv)
    if args.quick:
        args.duration, args.warmup = min(args.duration, 2.0), min(args.warmup, 0.5)
        args.concurrency, args.session_concurrency, args.rates = [1], [1], []
        args.streams, args.litellm = 0, "off"
    args.targets = set(args.targets.split(","))
    if args.litellm == "off":
        args.targets.discard("litellm")
    if args.litellm_concurrency is None:
        args.litellm_concurrency = args.concurrency
    return args


class Bench:
    def __init__(self, args: argparse.Namespace, workdir: Path) -> None:
        self.args = args
        self.workdir = workdir
        self.points: list[Point] = []
        self.streams: dict[str, Any] | None = None
        self.procs: list[Proc] = []
        self.notes: list[str] = []
        self.missing: dict[str, str] = {}  # target -> why it did not run
        self.coordinator_cpu_s: dict[str, float] = {}  # this process's CPU in Go windows

    # -- processes ---------------------------------------------------------------------------

    def start(self) -> None:
        a, w = self.args, self.workdir
        self.sim, self.sim_url = start_simulator(
            "simulator", Pace(a.ttft_ms, a.chunks, a.gap_ms), w)
        self.procs.append(self.sim)
        self.litellm: Proc | None = None
        self.litellm_root = ""  # known once it is up (it listens on port 0)
        if "litellm" in a.targets:
            self.litellm = start_litellm(self.sim_url, w)
            self.procs.append(self.litellm)
        self.slow: Proc | None = None
        if a.streams:
            self.slow, self.slow_url = start_simulator(
                "simulator-slow", Pace(a.ttft_ms, 20, a.stream_seconds * 1000 / 20), w)
            self.procs.append(self.slow)
        env = dict(item.split("=", 1) for item in a.server_env)
        self.server, self.target, self.http_port = start_switchboard(
            w, loop=a.server_loop, extra_env=env, http=bool({"frontdoor", "connect"} & a.targets))
        self.procs.append(self.server)
        self.floor: Proc | None = None
        if "floor" in a.targets:
            self.floor, self.floor_target = start_floor(self.sim_url, w)
            self.procs.append(self.floor)
        self.http_floor: Proc | None = None
        if "http-floor" in a.targets:
            self.http_floor, self.http_floor_url = start_http_floor(self.sim_url, w)
            self.procs.append(self.http_floor)
        go_targets = [t for t in GO_TARGETS if t in a.targets]
        if go_targets and (why := build_loadgen(LOADGEN)) is not None:
            for target in go_targets:
                self.missing[target] = why
                a.targets.discard(target)
            self.notes.append(f"The Go-client rows did not run: {why}")
        if self.litellm is not None:
            try:
                self.litellm_root = wait_litellm(self.litellm)
            except RuntimeError as exc:
                self.notes.append(f"LiteLLM could not start: {exc}")
                self.litellm = None
                self.args.targets.discard("litellm")

    def stop(self) -> None:
        for proc in reversed(self.procs):
            proc.stop()

    # -- measuring ---------------------------------------------------------------------------

    async def _slice(self, driver: Driver | GoDriver, proxy: Proc | None, shape: str, load: float,
                     duration: float, slices: int = 0) -> tuple[Run, tuple[float, ...]]:
        """One measured window; returns it and the CPU/RSS/other-load deltas over it."""
        a = self.args
        marks: dict[str, tuple[float, float, float, int, float]] = {}
        ours = [p for p in self.procs if p.alive()]

        def on_window(phase: str) -> None:
            bench_cpu = sum(p.cpu_s() for p in ours) + time.process_time()
            marks[phase] = (proxy.cpu_s() if proxy else 0.0, self.sim.cpu_s(),
                            time.process_time(), proxy.rss_kb() if proxy else 0,
                            host_busy_s() - bench_cpu)

        gc.collect()
        slices = slices or a.slices
        warmup = a.warmup if slices <= 1 else a.warmup / slices
        go: GoPoint | None = None
        if isinstance(driver, GoDriver):  # closed loop only
            go = await driver.closed_loop(int(load), duration, warmup, on_window)
            run = go.run
        elif shape == "closed":
            run = await closed_loop(driver, int(load), duration, warmup, on_window)
        else:
            run = await open_loop(driver, load, duration, warmup, on_window)
        (p0, s0, l0, _, o0), (p1, s1, l1, rss, o1) = marks["begin"], marks["end"]
        loadgen = l1 - l0
        if go is not None:  # the load generator is the Go process; this one only waited
            self.coordinator_cpu_s[driver.name] = (
                self.coordinator_cpu_s.get(driver.name, 0.0) + loadgen)
            loadgen = go.cpu_s
        return run, (p1 - p0, s1 - s0, loadgen, float(rss), o1 - o0)

    async def _points(self, shape: str, load: float,
                      targets: Sequence[tuple[Driver | GoDriver, str, Proc | None]]) -> None:
        """Every target at ``load``; with ``--slices N``, N round-robin slices each."""
        slices = max(1, self.args.slices)
        runs: dict[str, list[tuple[Run, tuple[float, ...]]]] = {t: [] for _, t, _ in targets}
        for _ in range(slices):
            for driver, target, proxy in targets:
                if target not in UNSLICED:
                    runs[target].append(await self._slice(driver, proxy, shape, load,
                                                          self.args.duration / slices))
        for driver, target, proxy in targets:  # too slow for short slices: one window
            if target in UNSLICED:
                runs[target].append(await self._slice(driver, proxy, shape, load,
                                                      self.args.duration, slices=1))
        for _, target, proxy in targets:
            parts = runs[target]
            merged = Run(started=0.0, ended=sum(r.seconds for r, _ in parts),
                         completed=sum(r.completed for r, _ in parts),
                         results=[x for r, _ in parts for x in r.results])
            cpu, sim, lg, _, other = (sum(u[i] for _, u in parts) for i in range(5))
            rss = int(parts[-1][1][3])
            point = summarise(target, shape, load, merged,
                              proxy=Usage(cpu, rss) if proxy else None, upstream=Usage(sim),
                              loadgen=Usage(lg), other_cpu_s=other)
            self.points.append(point)
            self._print(point)

    def _print(self, point: Point) -> None:
        print(f"  {point.target:12} {point.shape} {point.load:>5g}: "
              f"{point.turns_per_s:7.1f} turns/s, ttft p50 "
              f"{point.ttft_p50_ms:6.2f} p99 {point.ttft_p99_ms:6.2f} ms, gap p99 "
              f"{point.gap_p99_ms:5.2f} ms, {point.deltas_per_turn:.1f} deltas/turn, errors "
              f"{point.errors}; CPU ms/turn: proxy "
              f"{point.proxy_cpu_s_per_1k:.2f} upstream {point.upstream_cpu_s_per_1k:.2f} "
              f"loadgen {point.loadgen_cpu_s_per_1k:.2f}; other processes "
              f"{point.other_cpu_cores:.2f} cores", flush=True)

    async def run(self) -> None:
        a = self.args
        async with AsyncClient(self.target, API_KEY) as admin:
            llm_id = await self._create_llm(admin, self.sim_url, "bench-fast")
            slow_id = await self._create_llm(admin, self.slow_url, "bench-slow") \
                if self.slow is not None else ""
        direct = HttpSseDriver("direct", self.sim_url, MODEL, UPSTREAM_KEY)
        sb = SwitchboardDriver("switchboard", self.target, API_KEY, llm_id, channels=a.channels)
        session = SwitchboardDriver("session", self.target, API_KEY, llm_id,
                                    channels=a.channels, sessions=True)
        history = SwitchboardDriver("switchboard-history", self.target, API_KEY, llm_id,
                                    channels=a.channels, history=True)
        floor = SwitchboardDriver("floor", self.floor_target, API_KEY, llm_id,
                                  channels=a.channels) if self.floor is not None else None
        http_floor = HttpSseDriver("http-floor", self.http_floor_url, MODEL, UPSTREAM_KEY) \
            if self.http_floor is not None else None
        litellm = HttpSseDriver("litellm", self.litellm_root + "/v1", MODEL, LITELLM_KEY) \
            if self.litellm is not None else None
        front = HttpSseDriver("frontdoor", f"http://127.0.0.1:{self.http_port}/v1", llm_id,
                              API_KEY) if "frontdoor" in a.targets else None
        connect = ConnectDriver("connect", f"http://127.0.0.1:{self.http_port}", API_KEY,
                                llm_id) if "connect" in a.targets else None
        t0 = await self._tensorzero() if "tensorzero" in a.targets else None
        go_sb = await self._go("switchboard-go", llm_id, sessions=False)
        go_session = await self._go("session-go", llm_id, sessions=True)
        try:
            if litellm is not None:  # LiteLLM's first requests take seconds (lazy imports)
                for _ in range(3):
                    await litellm.worker().turn()
            print("closed loop", flush=True)
            for c in a.concurrency:
                closed: list[tuple[Driver | GoDriver | None, str, Proc | None]] = [
                    (direct if "direct" in a.targets else None, "direct", None),
                    (t0, "tensorzero", None),
                    (sb if "switchboard" in a.targets else None, "switchboard", self.server),
                    (go_sb, "switchboard-go", self.server),
                    (front, "frontdoor", self.server),
                    (connect, "connect", self.server),
                    (floor, "floor", self.floor),
                    (http_floor, "http-floor", self.http_floor),
                    (session if c in a.session_concurrency and "session" in a.targets
                     else None, "session", self.server),
                    (go_session if c in a.session_concurrency else None, "session-go",
                     self.server),
                    (history if c in a.session_concurrency and "switchboard-history" in a.targets
                     else None, "switchboard-history", self.server),
                    (litellm if c in a.litellm_concurrency else None, "litellm", self.litellm),
                ]
                await self._points("closed", c, [(d, t, p) for d, t, p in closed if d])
            if a.rates:
                print("open loop", flush=True)
            for rate in a.rates:
                opened: list[tuple[Driver | None, str, Proc | None]] = [
                    (direct if "direct" in a.targets else None, "direct", None),
                    (sb if "switchboard" in a.targets else None, "switchboard", self.server),
                    (floor, "floor", self.floor)]
                await self._points("open", rate, [(d, t, p) for d, t, p in opened if d])
            if a.profile:
                drivers: dict[str, Driver | None] = {
                    "switchboard": sb, "session": session, "frontdoor": front, "connect": connect}
                chosen = drivers[a.profile_target]
                if chosen is None:
                    raise SystemExit(f"--profile-target {a.profile_target}: add it to --targets")
                await self._profile(chosen)
            if slow_id:
                print(f"{a.streams} concurrent slow streams", flush=True)
                self.streams = await self._hold_streams(slow_id)
        finally:
            for d in (direct, sb, floor, http_floor, session, history, litellm, front, connect,
                      t0, go_sb, go_session):
                if d is not None:
                    await d.close()

    async def _go(self, target: str, llm_id: str, *, sessions: bool) -> GoDriver | None:
        """The Go load generator for ``target``, started; None when that target is off or
        could not start (the reason goes into the report)."""
        if target not in self.args.targets:
            return None
        try:
            driver = await GoDriver.start(target, LOADGEN, self.target, API_KEY, llm_id,
                                          self.workdir, channels=self.args.channels,
                                          sessions=sessions, window=self.args.go_window)
        except RuntimeError as exc:
            self.missing[target] = f"the Go load generator could not start: {exc}"
            self.notes.append(f"{report.NAMES[target]}: {self.missing[target]}")
            self.args.targets.discard(target)
            return None
        self.procs.append(driver.proc)  # its CPU is the bench's, not "other processes"
        return driver

    async def _tensorzero(self) -> TensorZeroDriver | None:
        """TensorZero's embedded gateway on the simulator, warmed up; None if it cannot start."""
        import os

        config = self.workdir / "tensorzero.toml"
        config.write_text(tensorzero_config(self.sim_url, MODEL))
        os.environ[TENSORZERO_KEY_ENV] = UPSTREAM_KEY  # the gateway reads its key from here
        driver = TensorZeroDriver("tensorzero", str(config))
        try:
            await driver.start()
            for _ in range(3):
                warm = await driver.turn()
                if warm.error:
                    raise RuntimeError(warm.error)
        except Exception as exc:  # not installed (run `make bench`), or a config it refuses
            self.notes.append(f"TensorZero could not run: {type(exc).__name__}: {exc}")
            await driver.close()
            self.args.targets.discard("tensorzero")
            return None
        return driver

    async def _create_llm(self, admin: AsyncClient, base_url: str, name: str) -> str:
        created = await admin.create_llm(lpb.Llm(display_name=name, endpoints=[lpb.Endpoint(
            api_spec=lpb.API_SPEC_OPENAI, base_url=base_url, model=MODEL,
            api_key=UPSTREAM_KEY)]), skip_validation=True)
        return str(created.llm.id)

    async def _profile(self, sb: Driver) -> None:
        """py-spy on the server during one extra (unrecorded) point."""
        a = self.args
        out = Path(a.profile)  # created by main()
        spy = shutil.which("py-spy") or str(Path(sys.executable).with_name("py-spy"))
        seconds = int(max(a.duration, 5))
        stem = out / f"profile-{a.profile_target}-c{a.profile_concurrency}"
        mode = ["--native"] if a.profile_native else ["--nonblocking"]
        cmds = [[spy, "record", "--pid", str(self.server.pid), "--duration", str(seconds),
                 "--rate", str(a.profile_rate), *mode, "--format", fmt, "-o", f"{stem}.{ext}"]
                for fmt, ext in (("flamegraph", "svg"), ("raw", "txt"))]
        spies = [await asyncio.create_subprocess_exec(
            *c, stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE) for c in cmds]
        await closed_loop(sb, a.profile_concurrency, seconds + 1, 0.5)  # not recorded
        for spy_proc, cmd in zip(spies, cmds, strict=True):
            async with asyncio.timeout(60):
                _, err = await spy_proc.communicate()
            if spy_proc.returncode:
                self.notes.append(f"py-spy failed ({' '.join(cmd[:2])}): "
                                  f"{err.decode(errors='replace').strip()[-300:]}")
            else:
                print(f"  profile written to {cmd[-1]}", flush=True)

    async def _hold_streams(self, llm_id: str) -> dict[str, Any]:
        """``--streams`` turns held open at once against the slow simulator; RSS per stream."""
        a = self.args
        driver = SwitchboardDriver("streams", self.target, API_KEY, llm_id,
                                   channels=a.channels, deadline_s=a.stream_seconds * 3 + 30)
        try:
            await asyncio.gather(*(driver.worker().turn() for _ in range(10)))  # warm the path
            await asyncio.sleep(1.0)
            before, cpu0 = self.server.rss_kb(), self.server.cpu_s()
            results: list[TurnResult] = []
            started = 0

            async def one() -> None:
                nonlocal started
                started += 1
                results.append(await driver.worker().turn())

            tasks = []
            for i in range(a.streams):
                tasks.append(asyncio.create_task(one()))
                if i % 100 == 99:
                    await asyncio.sleep(0.05)
            # RSS while every stream is open at once (they last --stream-seconds; the ramp-up
            # takes about half a second), then until they are done.
            peak, peak_open = before, 0
            while len(results) < a.streams:
                open_now = started - len(results)
                rss = self.server.rss_kb()
                if (open_now >= peak_open and rss > peak) or open_now > peak_open:
                    peak, peak_open = rss, open_now
                await asyncio.wait(tasks, timeout=0.1)
            cpu = self.server.cpu_s() - cpu0
        finally:
            await driver.close()
        kinds = Counter(r.error for r in results if r.error)
        per_stream = (peak - before) / max(1, peak_open)
        out = {"streams": a.streams, "stream_s": a.stream_seconds, "peak_in_flight": peak_open,
               "rss_before_kb": before, "rss_peak_kb": peak, "rss_per_stream_kb": per_stream,
               "cpu_s": cpu, "errors": sum(kinds.values()),
               "error_kinds": ", ".join(f"{k} x{v}" for k, v in kinds.items())}
        print(f"  peak RSS {peak / 1024:.0f} MB ({per_stream:.1f} KB per stream), "
              f"errors {out['errors']}", flush=True)
        return out

    # -- output ------------------------------------------------------------------------------

    def markdown(self) -> str:
        a = self.args
        parts = [f"Machine: {machine()}; Python {platform.python_version()}; "
                 f"{a.duration:g} s per point after {a.warmup:g} s warm-up; upstream: "
                 f"{a.ttft_ms:g} ms to first token, {a.chunks} chunks {a.gap_ms:g} ms apart; "
                 f"{a.channels} gRPC channel(s); server loop {a.server_loop}.", "",
                 "### Closed loop", "",
                 report.points_table(self.points, "closed", missing=self.missing)]
        if any(p.shape == "open" for p in self.points):
            parts += ["", "### Open loop (fixed arrival rate)", "",
                      report.points_table(self.points, "open")]
        parts += ["", "### CPU per turn (ms)", "", report.cpu_table(self.points)]
        if any(p.target == "litellm" for p in self.points):
            parts += ["", "### Against the LiteLLM proxy", "", report.litellm_table(self.points)]
        if self.streams:
            parts += ["", "### Concurrent slow streams", "", report.streams_table(self.streams)]
        parts += ["", "### Targets", "",
                  report.checks_table(report.checks(self.points, self.streams))]
        for target, cpu_s in self.coordinator_cpu_s.items():
            turns = sum(p.turns for p in self.points if p.target == target)
            if turns:
                self.notes.append(
                    f"{report.NAMES[target]}: the load generator column is the Go process's own "
                    f"CPU (getrusage); this Python process used {cpu_s * 1000 / turns:.2f} ms "
                    f"per turn meanwhile (it only waits for the Go process's lines).")
        other = [p.other_cpu_cores for p in self.points if not math.isnan(p.other_cpu_cores)]
        if other:
            self.notes.append(
                f"Processes outside the bench kept {sum(other) / len(other):.2f} of the "
                f"{machine_cores()} cores busy on average during the measured windows (max "
                f"{max(other):.2f}): on a shared host, latencies include waiting for a core.")
        if self.notes:
            parts += ["", "### Notes", ""] + [f"- {n}" for n in self.notes]
        return "\n".join(parts) + "\n"


def machine_cores() -> int:
    import os

    return os.cpu_count() or 1


def machine() -> str:
    model = "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    import os

    return f"{model}, {os.cpu_count()} cores"


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    workdir = Path(tempfile.mkdtemp(prefix="switchboard-bench-"))
    if args.profile:
        Path(args.profile).mkdir(parents=True, exist_ok=True)
    bench = Bench(args, workdir)
    print(f"machine: {machine()}; logs in {workdir}", flush=True)
    try:
        try:
            bench.start()
            if args.loadgen_loop == "uvloop":
                import uvloop

                uvloop.run(bench.run())
            else:
                asyncio.run(bench.run())
        finally:
            bench.stop()
        text = bench.markdown()
        print()
        print(text)
        if args.markdown:
            Path(args.markdown).write_text(text)
        if args.json:
            Path(args.json).write_text(json.dumps({
                "machine": machine(), "args": {k: sorted(v) if isinstance(v, set) else v
                                               for k, v in vars(args).items()},
                "points": [p.to_json() for p in bench.points], "streams": bench.streams,
                "missing": bench.missing, "notes": bench.notes}, indent=2))
    finally:
        if not args.keep_logs:
            shutil.rmtree(workdir, ignore_errors=True)
    return 1 if any(p.turns == 0 for p in bench.points) or any(
        math.isnan(p.turns_per_s) for p in bench.points) else 0


if __name__ == "__main__":
    sys.exit(main())
