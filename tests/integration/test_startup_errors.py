"""Startup mistakes get one-line answers: a port in use, a misspelled setting."""

from __future__ import annotations

import json
import signal
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support import ROOT, server_env


def _serve(env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "server.main"], env=env, cwd=ROOT,
                          capture_output=True, text=True, timeout=60, check=False)


@pytest.mark.parametrize(("variable", "any_port"), [
    ("SWITCHBOARD_GRPC_PORT", "0"), ("SWITCHBOARD_HTTP_PORT", "auto"),
    ("SWITCHBOARD_METRICS_PORT", "auto")])
def test_a_port_in_use_is_one_line_naming_the_address_and_setting(
        tmp_path: Path, variable: str, any_port: str) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        done = _serve({**server_env(tmp_path), variable: str(port)})
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert lines == [f"switchboard: configuration error: cannot listen on 127.0.0.1:{port}: "
                     f"address already in use; stop what is using it, or set {variable} to a "
                     f"free port ({any_port}: any free port)"], done.stderr


def test_a_misspelled_setting_is_warned_about_with_the_closest_name(tmp_path: Path) -> None:
    env = {**server_env(tmp_path), "SWITCHBOARD_GRACE_PERIOD": "3",
           "SWITCHBOARD_API_KEY": "a client's variable, not a setting"}
    proc = subprocess.Popen([sys.executable, "-m", "server.main"], env=env, cwd=ROOT,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    assert proc.stdout is not None
    seen = []
    for line in proc.stdout:  # up to the line that says the server listens
        seen.append(line)
        if '"event": "serving"' in line or line.startswith("SWITCHBOARD listening"):
            break
    proc.send_signal(signal.SIGTERM)
    out = "".join(seen) + proc.communicate(timeout=30)[0]
    warnings = [json.loads(line) for line in out.splitlines()
                if line.startswith("{") and '"level": "warning"' in line]
    assert [(w["variable"], w["closest"]) for w in warnings] == [
        ("SWITCHBOARD_GRACE_PERIOD", "SWITCHBOARD_GRACE_PERIOD_S")]
    assert "did you mean SWITCHBOARD_GRACE_PERIOD_S?" in warnings[0]["event"]
