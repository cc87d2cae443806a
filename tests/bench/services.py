"""Starting the processes under test: simulators, Switchboard, the relay floor, LiteLLM."""

from __future__ import annotations

import base64
import json
import os
import re
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from tests.bench.procs import Proc, python_argv, python_env, spawn, wait_http_ok

API_KEY = "bench-static-key-0123456789"
UPSTREAM_KEY = "sk-bench-upstream"
LITELLM_KEY = "sk-litellm-bench"
MODEL = "sim-model"
ANSWER = ("Sure: in Lisbon today it is sunny and warm, around twenty-four degrees, with a "
          "light breeze from the Atlantic in the late afternoon and a clear evening.")


@dataclass(frozen=True, slots=True)
class Pace:
    ttft_ms: float = 20.0
    chunks: int = 20
    gap_ms: float = 2.0


def start_simulator(name: str, pace: Pace, logdir: Path, *, trace: str = ""
                    ) -> tuple[Proc, str]:
    """A simulator (``tests.bench.upstream``) in its own process; returns it and its base_url.
    ``trace``: a file for its per-request times (see ``tests.bench.trace``)."""
    env = python_env({"BENCH_TRACE": trace} if trace else None)
    proc, banner = spawn(name, python_argv(
        "-m", "tests.bench.upstream", "--spec", "openai", "--port", "0",
        "--api-key", UPSTREAM_KEY, "--text", ANSWER, "--chunks", str(pace.chunks),
        "--ttft-ms", str(pace.ttft_ms), "--gap-ms", str(pace.gap_ms)),
        logdir, env=env, banner="SIMULATOR base_url=")
    return proc, banner.split("=", 1)[1]


def start_switchboard(logdir: Path, *, loop: str = "uvloop", module: str = "",
                      extra_env: dict[str, str] | None = None, http: bool = False,
                      wrap: Sequence[str] = ()) -> tuple[Proc, str, int]:
    """``python -m server.main`` configured from SWITCHBOARD_* variables; returns it, its
    target and its HTTP port (0: none), as the banner reports them.
    ``http``: also serve the OpenAI-compatible front door, on any free port;
    ``wrap``: a command the server runs under (``valgrind --tool=callgrind``, see edge_cost).

    ``loop="asyncio"`` runs the same main on the standard event loop (an A/B knob);
    ``module`` runs another entry point with the same settings (``tests.bench.trace``)."""
    key = base64.urlsafe_b64encode(os.urandom(32)).decode().rstrip("=")
    env = python_env({
        "SWITCHBOARD_HOST": "127.0.0.1",
        "SWITCHBOARD_GRPC_PORT": "0",
        "SWITCHBOARD_HTTP_PORT": "auto" if http else "0",
        "SWITCHBOARD_DATABASE": str(logdir / "switchboard.db"),
        "SWITCHBOARD_API_KEYS": API_KEY,
        "SWITCHBOARD_MASTER_KEYS": f"bench:{key}",
        "SWITCHBOARD_ALLOW_HTTP_UPSTREAMS": "true",
        "SWITCHBOARD_UPSTREAM_ALLOW_CIDRS": "127.0.0.0/8",
        "SWITCHBOARD_LOG_FORMAT": "json",
        "SWITCHBOARD_GRACE_PERIOD_S": "2",
        **(extra_env or {}),
    })
    module = module or ("server.main" if loop == "uvloop" else "tests.bench.serve_asyncio")
    proc, banner = spawn("switchboard", [*wrap, *python_argv("-m", module)], logdir, env=env,
                         banner='{"event": "SWITCHBOARD listening on',
                         timeout_s=300 if wrap else 60)  # JSON logs: the banner is JSON too
    ports = json.loads(banner)
    return proc, ports["address"], int(ports.get("http_port", 0))


FLOOR_BANNER = "FLOOR listening on"  # printed by tests.bench.relay_floor once it serves


def start_floor(upstream_base_url: str, logdir: Path) -> tuple[Proc, str]:
    """The grpc.aio relay floor (``tests.bench.relay_floor``) over ``upstream_base_url``;
    returns it and its gRPC target."""
    proc, banner = spawn("floor", python_argv(
        "-m", "tests.bench.relay_floor", "--upstream", upstream_base_url), logdir,
        banner=FLOOR_BANNER)
    return proc, banner.rsplit(" ", 1)[1]


HTTP_FLOOR_BANNER = "HTTP FLOOR listening on"  # printed by tests.bench.http_floor


def start_http_floor(upstream_base_url: str, logdir: Path) -> tuple[Proc, str]:
    """The aiohttp relay floor (``tests.bench.http_floor``) over ``upstream_base_url``;
    returns it and its OpenAI base URL."""
    proc, banner = spawn("http-floor", python_argv(
        "-m", "tests.bench.http_floor", "--upstream", upstream_base_url), logdir,
        banner=HTTP_FLOOR_BANNER)
    return proc, banner.rsplit(" ", 1)[1]


def start_litellm(upstream_base_url: str, logdir: Path) -> Proc:
    """The LiteLLM proxy, offline: local cost map, master key, no database, one worker, on
    port 0; ``wait_litellm`` returns its root URL once it is up."""
    config = logdir / "litellm.yaml"
    config.write_text(
        "model_list:\n"
        f"  - model_name: {MODEL}\n"
        "    litellm_params:\n"
        f"      model: openai/{MODEL}\n"
        f"      api_base: {upstream_base_url}\n"
        f"      api_key: {UPSTREAM_KEY}\n"
        "litellm_settings:\n"
        "  telemetry: false\n"
        "general_settings:\n"
        f"  master_key: {LITELLM_KEY}\n")
    env = python_env({"LITELLM_LOCAL_MODEL_COST_MAP": "True", "LITELLM_TELEMETRY": "False",
                      "LITELLM_MASTER_KEY": LITELLM_KEY})
    env.pop("DATABASE_URL", None)
    litellm = Path(python_argv()[0]).with_name("litellm")
    proc, _ = spawn("litellm", [str(litellm), "--config", str(config), "--host", "127.0.0.1",
                                "--port", "0", "--num_workers", "1",
                                "--telemetry", "False"], logdir, env=env)
    return proc


_UVICORN_LISTENING = re.compile(r"Uvicorn running on (http://127\.0\.0\.1:\d+)")


def wait_litellm(proc: Proc, timeout_s: float = 120.0) -> str:
    """The proxy's root URL (``http://127.0.0.1:PORT``: the port uvicorn logs it bound), once
    ``/health/liveliness`` answers."""
    deadline = time.monotonic() + timeout_s
    while (bound := _UVICORN_LISTENING.search(proc.tail(10_000))) is None:
        if not proc.alive() or time.monotonic() > deadline:
            proc.stop(2)
            raise RuntimeError(f"{proc.name} did not report its port:\n{proc.tail()}")
        time.sleep(0.25)
    root = bound.group(1)
    wait_http_ok(root + "/health/liveliness", proc, max(deadline - time.monotonic(), 1.0))
    return root
