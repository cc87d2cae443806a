"""Child processes of the bench (simulator, Switchboard, LiteLLM) and what /proc says of them.

Each service runs in its own process so its CPU time and RSS are its own: ``cpu_s()`` is
utime + stime of every thread (``/proc/<pid>/stat``), ``rss_kb()`` is ``VmRSS``.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import IO

_TICK = os.sysconf("SC_CLK_TCK")
ROOT = Path(__file__).resolve().parents[2]


def python_env(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """The environment for a child Python: this repo, its generated stubs and client."""
    env = dict(os.environ)
    paths = [str(ROOT), str(ROOT / "generated"), str(ROOT / "clients" / "python")]
    if env.get("PYTHONPATH"):
        paths.append(env["PYTHONPATH"])
    env["PYTHONPATH"] = os.pathsep.join(paths)
    env.update(extra or {})
    return env


class Proc:
    """A child process; ``stop()`` sends SIGTERM, then SIGKILL after a grace period."""

    def __init__(self, name: str, popen: subprocess.Popen[bytes], log_path: Path) -> None:
        self.name = name
        self.popen = popen
        self.log_path = log_path

    @property
    def pid(self) -> int:
        return self.popen.pid

    def alive(self) -> bool:
        return self.popen.poll() is None

    def cpu_s(self) -> float:
        """CPU seconds (user + system, all threads) used so far."""
        with open(f"/proc/{self.pid}/stat", "rb") as fh:
            stat = fh.read()
        fields = stat[stat.rindex(b")") + 2 :].split()
        return (int(fields[11]) + int(fields[12])) / _TICK  # utime, stime (fields 14, 15)

    def rss_kb(self) -> int:
        """Resident set size now, in KiB."""
        return _status_kb(self.pid, "VmRSS")

    def tail(self, lines: int = 20) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])

    def stop(self, grace_s: float = 10.0) -> None:
        if not self.alive():
            return
        self.popen.send_signal(signal.SIGTERM)
        try:
            self.popen.wait(grace_s)
        except subprocess.TimeoutExpired:
            self.popen.kill()
            self.popen.wait(5)


def host_busy_s() -> float:
    """CPU seconds the whole host has spent busy (all cores), from ``/proc/stat``."""
    with open("/proc/stat") as fh:
        fields = [int(x) for x in fh.readline().split()[1:]]
    idle = fields[3] + fields[4]  # idle + iowait
    return (sum(fields[:8]) - idle) / _TICK


def _status_kb(pid: int, key: str) -> int:
    with open(f"/proc/{pid}/status") as fh:
        for line in fh:
            if line.startswith(key + ":"):
                return int(line.split()[1])
    raise RuntimeError(f"{key} missing from /proc/{pid}/status")


def spawn(name: str, argv: Sequence[str], logdir: Path, *, env: Mapping[str, str] | None = None,
          banner: str = "", timeout_s: float = 30.0) -> tuple[Proc, str]:
    """Starts ``argv``; with ``banner``, waits for the first stdout line starting with it and
    returns that line. Everything else the child writes goes to ``logdir/<name>.log``."""
    log_path = logdir / f"{name}.log"
    log = open(log_path, "ab")  # noqa: SIM115 - kept open for the child's lifetime
    popen = subprocess.Popen(list(argv), stdout=subprocess.PIPE if banner else log,
                             stderr=log, env=dict(env or python_env()), cwd=ROOT)
    proc = Proc(name, popen, log_path)
    if not banner:
        return proc, ""
    assert popen.stdout is not None
    found: list[str] = []
    ready = threading.Event()

    def pump(out: IO[bytes]) -> None:  # the banner, then drain stdout into the log
        for raw in out:
            if not found and raw.decode(errors="replace").startswith(banner):
                found.append(raw.decode().strip())
                ready.set()
            log.write(raw)
            log.flush()
        ready.set()

    threading.Thread(target=pump, args=(popen.stdout,), daemon=True).start()
    if not ready.wait(timeout_s) or not found:
        proc.stop(2)
        raise RuntimeError(f"{name} did not start within {timeout_s:g}s:\n{proc.tail()}")
    return proc, found[0]


def wait_http_ok(url: str, proc: Proc, timeout_s: float) -> None:
    """Polls ``url`` until it answers 200 (LiteLLM's liveliness probe)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if not proc.alive():
            raise RuntimeError(f"{proc.name} exited with {proc.popen.returncode}:\n"
                               f"{proc.tail()}")
        try:
            with urllib.request.urlopen(url, timeout=1) as resp:
                if resp.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.25)
    proc.stop(2)
    raise RuntimeError(f"{proc.name} did not answer {url} within {timeout_s:g}s:\n"
                       f"{proc.tail()}")


def python_argv(*args: str) -> list[str]:
    return [sys.executable, *args]
