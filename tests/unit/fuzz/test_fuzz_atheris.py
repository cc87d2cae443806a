"""A short, bounded coverage-guided run of every atheris target (see atheris_targets.py).

Skipped when atheris is not installed (``pip install atheris``; wheels exist for CPython
3.11 on x86-64 Linux). It runs in a child process, because libFuzzer exits the process when
it is done.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("atheris")

SCRIPT = Path(__file__).with_name("atheris_targets.py")
SECONDS = int(os.environ.get("ATHERIS_SECONDS", "6"))


def test_atheris_finds_no_crash(tmp_path: Path) -> None:
    """The SSE parser and the four decoders, one process, ``ATHERIS_SECONDS`` (default 6)."""
    result = subprocess.run(
        [sys.executable, str(SCRIPT), "all", f"-max_total_time={SECONDS}",
         "-rss_limit_mb=1024", f"-artifact_prefix={tmp_path}/", "-print_final_stats=1"],
        capture_output=True, text=True, timeout=SECONDS + 60, check=False)
    crashes = [p.name for p in tmp_path.iterdir() if p.name.startswith(("crash-", "oom-"))]
    assert result.returncode == 0 and not crashes, \
        f"{crashes}\n{result.stdout[-3000:]}\n{result.stderr[-6000:]}"
    assert "stat::number_of_executed_units" in result.stderr
