"""``pip install ./clients/python`` installs the client on its own: grpcio, protobuf and the
google.rpc types, none of the server's dependencies; the client and its CLI then talk to a
real server."""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
import sys
from pathlib import Path

from server.app import Switchboard
from tests.support import API_KEY, ROOT

PROGRAM = """
import importlib.util, sys
from switchboard_client import Client, SwitchboardError
for server_side in ("server", "aiohttp", "cryptography", "structlog", "grpc_status"):
    assert importlib.util.find_spec(server_side) is None, server_side
with Client(sys.argv[1], sys.argv[2]) as sb:
    try:
        sb.get_llm("llm_missing")
    except SwitchboardError as exc:
        print(exc.code().name, exc.reason)
"""


def _install(tmp: Path) -> Path:
    # A copy, so that the build writes nothing into the checkout.
    shutil.copytree(ROOT / "clients" / "python", tmp / "clients" / "python",
                    ignore=shutil.ignore_patterns("__pycache__", "*.egg-info", "build"))
    shutil.copytree(ROOT / "generated", tmp / "generated",
                    ignore=shutil.ignore_patterns("__pycache__"))
    venv = tmp / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=120)
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    done = subprocess.run([str(venv / "bin" / "pip"), "install", "-q",
                           str(tmp / "clients" / "python")], env=env, capture_output=True,
                          text=True, timeout=600, check=False)
    assert done.returncode == 0, done.stderr
    return venv


async def test_the_client_installs_alone_and_talks_to_a_server(
        server: Switchboard, tmp_path: Path) -> None:
    venv = await asyncio.to_thread(_install, tmp_path)
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    target = f"127.0.0.1:{server.port}"
    ran = await asyncio.to_thread(
        subprocess.run, [str(venv / "bin" / "python"), "-c", PROGRAM, target, API_KEY],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60, check=False)
    assert ran.returncode == 0, ran.stderr
    assert ran.stdout.split() == ["NOT_FOUND", "LLM_NOT_FOUND"]
    listed = await asyncio.to_thread(
        subprocess.run, [str(venv / "bin" / "switchboard"), "--target", target, "--api-key",
                         API_KEY, "llm", "list"],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60, check=False)
    assert listed.returncode == 0, listed.stderr
    serve = await asyncio.to_thread(
        subprocess.run, [str(venv / "bin" / "switchboard"), "serve"], cwd=tmp_path, env=env,
        capture_output=True, text=True, timeout=60, check=False)
    assert serve.returncode == 2
    assert serve.stderr.strip().splitlines() == [
        "switchboard: `switchboard serve` needs the server, which this installation does not "
        "have: install the repository's root package (pip install .)"]
