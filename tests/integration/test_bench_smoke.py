"""The benchmark harness works end to end: ``python -m tests.bench.run --quick`` (no timings)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from tests.bench.procs import ROOT, python_env


def test_quick_bench_runs_every_process_and_reports_each_target(tmp_path: Path) -> None:
    out = tmp_path / "bench.json"
    done = subprocess.run(
        [sys.executable, "-m", "tests.bench.run", "--quick", "--duration", "2",
         "--json", str(out)],
        cwd=ROOT, env=python_env(), capture_output=True, text=True, timeout=110)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    report = json.loads(out.read_text())
    points = {(p["target"], p["load"]): p for p in report["points"]}
    assert set(points) == {("direct", 1), ("switchboard", 1), ("session", 1)}
    for point in points.values():
        assert point["turns"] > 0 and point["errors"] == 0, point
        assert point["ttft_p50_ms"] is not None
    assert points[("switchboard", 1)]["proxy_rss_mb"] > 0, "server RSS read from /proc"
    assert "### Targets" in done.stdout
