"""The gRPC rows' compiled load generator: ``clients/go/cmd/loadgen`` (grpc-go, built offline
by ``clients/go/offline.sh build-loadgen`` against Debian's Go packages, ``make go-deps``).

The Python grpc.aio client costs the gRPC rows a share of the two cores the server runs on
(FINDINGS.md, section 0); a real internal caller is more likely a compiled one. ``GoDriver``
runs the same closed loop, the same turn (stateless, or session turns replaced every
``TURNS_PER_SESSION``) and the same timing at the client as ``SwitchboardDriver``, in its own
process: it returns the turns as ``TurnResult`` s, so ``stats.summarise`` makes the same figures
of them, and the Go process's own CPU over the window (``getrusage``) for the load generator
column. ``build_loadgen`` says why there is no binary when Go is missing.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import subprocess
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from tests.bench.drivers import PROMPT, TURNS_PER_SESSION, TurnResult
from tests.bench.load import DRAIN_S, Run, replay
from tests.bench.procs import ROOT, Proc

OFFLINE = ROOT / "clients" / "go" / "offline.sh"
LOADGEN = ROOT / ".tools" / "go" / "bin" / "loadgen"
GOCODE = Path("/usr/share/gocode/src")
SYSTEM_PROMPT = "Be brief."  # as SwitchboardDriver's sessions


def build_loadgen(out: Path = LOADGEN, timeout_s: float = 900.0) -> str | None:
    """Builds the load generator into ``out`` (Go's build cache makes an unchanged rebuild take
    about a second); returns None, or why there is none."""
    if shutil.which("go") is None:
        return "Go is not installed (`make go-deps` installs Debian's Go and grpc-go, as root)"
    if not (GOCODE / "google.golang.org" / "grpc").is_dir():
        return f"{GOCODE}/google.golang.org/grpc is missing (`make go-deps`)"
    try:
        done = subprocess.run([str(OFFLINE), "build-loadgen", str(out)], cwd=ROOT,
                              capture_output=True, text=True, timeout=timeout_s, check=False)
    except subprocess.TimeoutExpired:
        return f"building the Go load generator took over {timeout_s:g} s"
    if done.returncode != 0:
        return "the Go load generator did not build: " + (done.stderr or done.stdout)[-600:]
    return None


def _spawn(argv: list[str], log_path: Path, api_key: str) -> subprocess.Popen[bytes]:
    """The key goes in the environment, not on the command line (``ps`` shows that)."""
    with open(log_path, "ab") as log:  # the child keeps its own descriptor
        return subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=log,
                                env={**os.environ, "SWITCHBOARD_API_KEY": api_key}, cwd=ROOT)


@dataclass(frozen=True, slots=True)
class GoPoint:
    """One point run by the Go load generator."""

    run: Run  # the same window rules as ``load.closed_loop``
    cpu_s: float  # the Go process's user + system CPU over the window (getrusage)
    turns_run: int  # every turn of the point, warm-up and drain included
    sessions_created: int
    text_bytes: tuple[int, ...]  # per turn of ``run.results``: the text it received


class GoDriver:
    """One long-lived ``loadgen`` process (its connections kept across points, like the Python
    driver's channels); ``closed_loop`` runs one point in it."""

    def __init__(self, name: str, proc: Proc, stdin: IO[bytes], stdout: IO[bytes]) -> None:
        self.name = name
        self.proc = proc
        self._stdin = stdin
        self._stdout = stdout

    @classmethod
    async def start(cls, name: str, binary: Path, target: str, api_key: str, llm_id: str,
                    logdir: Path, *, channels: int = 1, sessions: bool = False,
                    deadline_s: float = 60.0, window: int = 0) -> GoDriver:
        """``window``: fixed HTTP/2 windows in bytes (grpc-go then sends no BDP pings); 0:
        grpc-go's default."""
        argv = [str(binary), "-target", target, "-llm", llm_id, "-channels", str(channels),
                "-prompt", PROMPT, "-system", SYSTEM_PROMPT, "-window", str(window),
                "-session-turns", str(TURNS_PER_SESSION), "-deadline", f"{deadline_s:g}s"]
        if sessions:
            argv.append("-sessions")
        log_path = logdir / f"{name}.log"
        popen = _spawn(argv, log_path, api_key)
        assert popen.stdin is not None and popen.stdout is not None
        driver = cls(name, Proc(name, popen, log_path), popen.stdin, popen.stdout)
        try:
            async with asyncio.timeout(30):
                line = await driver._line()
        except TimeoutError:
            line = ""
        if line != "LOADGEN ready":
            driver.proc.stop(2)
            raise RuntimeError(f"{name} did not start: {line!r}\n{driver.proc.tail()}")
        return driver

    async def _line(self) -> str:
        raw = await asyncio.to_thread(self._stdout.readline)
        if not raw:
            raise RuntimeError(f"{self.name} exited ({self.proc.popen.poll()}):\n"
                               f"{self.proc.tail()}")
        return raw.decode().rstrip("\n")

    async def closed_loop(self, concurrency: int, duration_s: float, warmup_s: float,
                          on_window: Callable[[str], None] | None = None
                          ) -> GoPoint:
        """One point; ``on_window("begin"|"end")`` as the loader prints its window's bounds."""
        command = {"concurrency": concurrency, "warmup_s": warmup_s, "duration_s": duration_s}
        self._stdin.write(json.dumps(command).encode() + b"\n")
        self._stdin.flush()
        async with asyncio.timeout(warmup_s + duration_s + DRAIN_S + 60):
            while True:
                line = await self._line()
                if line in ("LOADGEN begin", "LOADGEN end"):
                    if on_window:
                        on_window(line.split()[1])
                elif line.startswith("LOADGEN result "):
                    out = json.loads(line.removeprefix("LOADGEN result "))
                    break
        turns = [TurnResult(t["s"], first=t["f"], end=t["e"], marks=t["m"] or [],
                            error=t.get("err", "")) for t in out["turns"]]
        text_bytes = {id(r): int(t["b"]) for r, t in zip(turns, out["turns"], strict=True)}
        run = replay(out["started"], out["ended"], turns)
        return GoPoint(run, float(out["cpu_s"]), int(out["turns_run"]),
                       int(out["sessions_created"]), tuple(text_bytes[id(r)] for r in run.results))

    async def close(self) -> None:
        if self.proc.alive():
            self._stdin.close()  # EOF: the load generator exits
            await asyncio.to_thread(self.proc.stop, 5.0)
