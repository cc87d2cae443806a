"""What one turn costs the Switchboard process, per edge, in measures that survive a busy host.

    python -m tests.bench.edge_cost [--edge grpc|session|history|http|connect] [--turns 400]
                                    [--concurrency 1] [--under callgrind|strace] [--gap-ms 2]

Starts the simulator and ``python -m server.main`` (optionally under ``valgrind
--tool=callgrind`` or ``strace -c -f``), warms the path up, then runs ``--turns`` turns and
prints, per turn: the server's CPU milliseconds (``/proc/<pid>/stat``), the messages the
client received, and with ``--under callgrind`` the instructions the server executed
(``callgrind_control --zero`` before the measured turns, ``--dump`` after: repeatable to a
fraction of a percent whatever else the host runs), or with ``--under strace`` the syscalls
per turn by name. Under callgrind the server runs ~50x slower, so pace the simulator slowly
(``--gap-ms 60``) or every delta arrives in one read and is coalesced: the shape of the turn,
not the speed, is what the count is for.
"""

from __future__ import annotations

import argparse
import asyncio
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

import uvloop
from switchboard.v1 import llm_pb2 as lpb
from switchboard_client import AsyncClient

from tests.bench.drivers import (
    ConnectDriver,
    Driver,
    HttpSseDriver,
    SwitchboardDriver,
    TurnResult,
)
from tests.bench.procs import Proc
from tests.bench.services import (
    API_KEY,
    MODEL,
    UPSTREAM_KEY,
    Pace,
    start_simulator,
    start_switchboard,
)


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m tests.bench.edge_cost", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--edge", choices=("grpc", "session", "history", "http", "connect"),
                   default="grpc", help="history: stateless gRPC turns resending the "
                   "conversation a session would hold")
    p.add_argument("--turns", type=int, default=400)
    p.add_argument("--warmup", type=int, default=40)
    p.add_argument("--concurrency", type=int, default=1)
    p.add_argument("--under", choices=("", "callgrind", "strace"), default="")
    p.add_argument("--ttft-ms", type=float, default=20.0)
    p.add_argument("--chunks", type=int, default=20)
    p.add_argument("--gap-ms", type=float, default=2.0)
    p.add_argument("--keep", metavar="DIR", help="keep the callgrind dump (callgrind_annotate)")
    p.add_argument("--server-env", action="append", default=[], metavar="NAME=VALUE")
    return p.parse_args(argv)


async def _turns(driver: Driver, n: int, concurrency: int) -> list[TurnResult]:
    results: list[TurnResult] = []
    left = n

    async def worker() -> None:
        nonlocal left
        w = driver.worker()
        while left > 0:
            left -= 1
            results.append(await w.turn())

    async with asyncio.TaskGroup() as tg:
        for _ in range(concurrency):
            tg.create_task(worker())
    return results


def _callgrind(*args: str) -> str:
    return subprocess.run(["callgrind_control", *args], capture_output=True, text=True,
                          timeout=600, check=False).stdout


async def _measure(a: argparse.Namespace, server: Proc, target: str, http_port: int,
                   sim_url: str, workdir: Path) -> None:
    async with AsyncClient(target, API_KEY) as admin:
        created = await admin.create_llm(lpb.Llm(display_name="edge-cost", endpoints=[
            lpb.Endpoint(api_spec=lpb.API_SPEC_OPENAI, base_url=sim_url, model=MODEL,
                         api_key=UPSTREAM_KEY)]), skip_validation=True)
    llm_id = created.llm.id
    driver: Driver
    if a.edge == "http":
        driver = HttpSseDriver("http", f"http://127.0.0.1:{http_port}/v1", llm_id, API_KEY)
    elif a.edge == "connect":
        driver = ConnectDriver("connect", f"http://127.0.0.1:{http_port}", API_KEY, llm_id)
    else:
        driver = SwitchboardDriver(a.edge, target, API_KEY, llm_id, sessions=a.edge == "session",
                                   history=a.edge == "history", deadline_s=600)
    try:
        await _turns(driver, a.warmup, a.concurrency)
        spy = None
        if a.under == "callgrind":
            await asyncio.to_thread(_callgrind, "--zero", str(server.pid))
        elif a.under == "strace":  # attached after the warm-up: only the measured turns count
            spy = await asyncio.create_subprocess_exec(
                "strace", "-c", "-f", "-p", str(server.pid), "-o", str(workdir / "strace.txt"),
                stderr=asyncio.subprocess.PIPE)
            assert spy.stderr is not None
            await spy.stderr.readline()  # "strace: Process N attached"
        cpu0, t0 = server.cpu_s(), time.perf_counter()
        results = await _turns(driver, a.turns, a.concurrency)
        wall, cpu = time.perf_counter() - t0, server.cpu_s() - cpu0
        if spy is not None:
            spy.send_signal(signal.SIGINT)
            await spy.wait()
        if a.under == "callgrind":
            await asyncio.to_thread(_callgrind, "--dump=measured", str(server.pid))
    finally:
        await driver.close()
    ok = [r for r in results if not r.error]
    n = max(1, len(ok))
    messages = sum(len(r.marks) for r in ok) / n
    insns = await asyncio.to_thread(_instructions, workdir, a.keep) if a.under else 0
    print(f"edge {a.edge} c={a.concurrency}: {len(ok)}/{len(results)} turns ok in {wall:.1f} s; "
          f"server CPU {cpu * 1e3 / n:.2f} ms/turn; {messages:.1f} text messages/turn", flush=True)
    if insns:
        print(f"server instructions: {insns / n / 1e6:.2f} M/turn", flush=True)


def _instructions(workdir: Path, keep: str | None) -> int:
    """The instructions in callgrind's "measured" dump (one file per thread)."""
    total = 0
    for dump in workdir.glob("callgrind.out*"):
        text = dump.read_text(errors="replace")
        if "measured" not in text:
            continue
        m = re.search(r"^(?:summary|totals): (\d+)", text, re.M)
        total += int(m.group(1)) if m else 0
        if keep:
            Path(keep).mkdir(parents=True, exist_ok=True)
            shutil.copy(dump, Path(keep) / dump.name)
    return total


def main(argv: Sequence[str] | None = None) -> int:
    a = parse_args(argv)
    workdir = Path(tempfile.mkdtemp(prefix="switchboard-edge-cost-"))
    sim, sim_url = start_simulator("simulator", Pace(a.ttft_ms, a.chunks, a.gap_ms), workdir)
    wrap: list[str] = []
    if a.under == "callgrind":
        wrap = ["valgrind", "--tool=callgrind", f"--callgrind-out-file={workdir}/callgrind.out",
                "--dump-instr=no", "--collect-atstart=yes"]
    env = dict(item.split("=", 1) for item in a.server_env)
    server, target, http_port = start_switchboard(
        workdir, extra_env=env, http=a.edge in ("http", "connect"), wrap=wrap)
    try:
        uvloop.run(_measure(a, server, target, http_port, sim_url, workdir))
    finally:
        server.stop(60)
        sim.stop()
    if a.under == "strace":
        print((workdir / "strace.txt").read_text())
        print(f"(the {a.turns} measured turns, all threads of the server)")
    shutil.rmtree(workdir, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
