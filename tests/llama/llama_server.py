"""llama.cpp's own ``llama-server`` as a subprocess on an ephemeral loopback port.

The binary and the llama.cpp tree come from ``make llama-server`` (a cache outside the clone,
``LLAMA_SERVER_HOME``; by default ``~/.cache/switchboard/llama-cpp-python-<VERSION>``).
The model is the tiny random one of ``tinymodel``; a default grammar (``--grammar-file``)
makes every answer ``<think>...</think>`` followed by text, so both reasoning dialects can be
tested: with ``--jinja`` and a Qwen3 chat template llama.cpp streams the thought as
``reasoning_content``; with the built-in template and ``--reasoning-format none`` the tags stay
in ``content``.
"""

from __future__ import annotations

import os
import re
import subprocess
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
VERSION = (HERE / "VERSION").read_text().strip()
READY_WITHIN_S = 60.0
# Lower-case words and spaces only: the tiny model's garbage, shaped into a reasoning answer.
GRAMMAR = 'root ::= "<think>" [a-z ]{20,60} "</think>" [a-z ]{20,80}\n'
QWEN3_TEMPLATE = "Qwen-Qwen3-0.6B.jinja"
MODEL_ALIAS = "tiny-llama"
_LISTENING = re.compile(r"listening on (http://127\.0\.0\.1:(\d+))")


def llama_home() -> Path:
    default = Path.home() / ".cache" / "switchboard" / f"llama-cpp-python-{VERSION}"
    return Path(os.environ.get("LLAMA_SERVER_HOME") or default)


def binary() -> Path:
    return llama_home() / "bin" / "llama-server"


def require_build() -> Path:
    """The llama-server binary; without a build, FAILS under CI=true and skips loudly
    otherwise (``make llama-server`` builds it, ~12 minutes on a machine's first run)."""
    exe = binary()
    if exe.is_file() and (llama_home() / ".complete").exists():
        return exe
    why = (f"llama-server is not built at {exe}: run `make llama-server` (cached under "
           f"{llama_home().parent}; the first build takes about 12 minutes)")
    if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
        pytest.fail(f"CI must run the llama.cpp tests: {why}")
    pytest.skip(f"SKIPPED LOUDLY: {why}")


@dataclass
class LlamaServer:
    """One running llama-server. ``base_url`` ends in ``/v1``."""

    model: Path
    log: Path
    ctx_size: int = 4096
    jinja: bool = False
    grammar: bool = True
    extra: tuple[str, ...] = ()
    proc: subprocess.Popen[bytes] | None = None
    root_url: str = ""
    args: list[str] = field(default_factory=list)

    @property
    def base_url(self) -> str:
        return f"{self.root_url}/v1"

    def command(self) -> list[str]:
        tree = llama_home() / "src" / "vendor" / "llama.cpp"
        cmd = [str(binary()), "-m", str(self.model), "--host", "127.0.0.1", "--port", "0",
               "--ctx-size", str(self.ctx_size), "--parallel", "1", "--threads", "1",
               "--threads-batch", "1", "--alias", MODEL_ALIAS, "--no-webui", "--no-warmup",
               "--seed", "19"]
        if self.grammar:
            gbnf = self.log.with_suffix(".gbnf")
            gbnf.write_text(GRAMMAR)
            cmd += ["--grammar-file", str(gbnf)]
        if self.jinja:
            cmd += ["--jinja", "--chat-template-file",
                    str(tree / "models" / "templates" / QWEN3_TEMPLATE),
                    "--reasoning-format", "deepseek"]
        else:
            cmd += ["--no-jinja", "--reasoning-format", "none"]
        return cmd + list(self.extra)

    def start(self) -> LlamaServer:
        self.args = self.command()
        out = self.log.open("wb")
        self.proc = subprocess.Popen(self.args, stdout=out, stderr=subprocess.STDOUT,
                                     stdin=subprocess.DEVNULL)
        out.close()
        deadline = time.monotonic() + READY_WITHIN_S
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(f"llama-server exited with {self.proc.returncode}:\n"
                                     f"{self.tail()}")
            if not self.root_url and (m := _LISTENING.search(self.tail())):
                self.root_url = m.group(1)
            if self.root_url and self._healthy():
                return self
            time.sleep(0.1)  # polling a subprocess's readiness, not synchronising test steps
        self.stop()
        raise AssertionError(f"llama-server was not ready within {READY_WITHIN_S:g}s:\n"
                             f"{self.tail()}")

    def _healthy(self) -> bool:
        try:
            with urllib.request.urlopen(f"{self.root_url}/health", timeout=2) as response:
                return bool(response.status == 200)
        except (urllib.error.URLError, OSError):
            return False

    def tail(self) -> str:
        return self.log.read_text(errors="replace")[-4000:] if self.log.exists() else ""

    def kill(self) -> None:
        """SIGKILL: the server dies mid-whatever, as a crashed upstream does."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.terminate()
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
