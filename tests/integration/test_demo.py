"""``make demo`` (``python -m server.demo``): every turn it runs is reported, and it leaves
nothing behind (its key and database live in a temporary directory it removes)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

from tests.support import ROOT


def test_demo_reports_every_turn_and_removes_its_directory(tmp_path: Path) -> None:
    env = {**os.environ, "TMPDIR": str(tmp_path)}
    done = subprocess.run([sys.executable, "-m", "server.demo"], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stdout + done.stderr
    out = re.sub(r"\x1b\[[0-9;]*m", "", done.stdout)
    streamed = re.findall(r"^== turn (\d+):", out, flags=re.M)
    warmed = re.findall(r"^turn (\d+): answered by", out, flags=re.M)
    turns = sorted(int(t) for t in streamed + warmed)
    assert turns == list(range(1, len(turns) + 1)) and len(turns) == 8
    held = re.search(r"holds (\d+) messages from (\d+) turns", out)
    assert held is not None, out
    assert int(held.group(2)) == len(turns)  # the server counted no turn the output hid
    assert int(held.group(1)) == 2 * len(turns)
    assert "continuing the same answer, nothing discarded" in out  # a continued failover
    assert "['FAILOVER_MODE_CONTINUE', 'FAILOVER_MODE_RESTART']" in out  # a refused one
    # Barge-in: cancelled, truncated to what was heard, and the next turn builds on that.
    assert "(interrupted=True)" in out
    assert "assistant: Our plans are Basic at ten euros | user: What does the next" in out
    assert list(tmp_path.iterdir()) == []
