"""README.md and clients/README.md, run as printed (see tests/readme.py for the markers).

One session runs every block in document order with the real server, the simulator, the CLI,
the Python client and the real grpcurl; each documented output must be what was printed."""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from tests import grpcurl, readme

KNOWN = {"run", "run, fails", "run python", "run ts", "output", "output, deltas vary"}


def test_every_block_says_how_it_is_tested() -> None:
    unmarked = [b.where for b in readme.all_blocks()
                if b.lang and not (b.marker in KNOWN or b.marker.startswith("not run: "))]
    assert not unmarked, f"fenced blocks without a <!-- readme: ... --> marker: {unmarked}"
    blocks = readme.all_blocks()
    for i, block in enumerate(blocks):
        if block.marker.startswith("output"):
            assert i > 0 and blocks[i - 1].marker.startswith("run"), block.where
        if block.marker == "output, deltas vary":
            assert readme.merge_deltas(block.text), block.where


def _build_ts_client() -> None:
    """clients/typescript installed (npm ci, keyed by the lockfile) and built, as
    tests/integration/test_node_client.py does; skipped without node, failed in CI."""
    node, npm = shutil.which("node"), shutil.which("npm")
    if node is None or npm is None:
        if os.environ.get("CI"):
            pytest.fail("node and npm are needed for the TypeScript snippet (required in CI)")
        pytest.skip("node and npm are needed for the TypeScript snippet")
    package = readme.TS_CLIENT
    stamp = package / "node_modules" / ".switchboard-lock-sha256"
    lock = hashlib.sha256((package / "package-lock.json").read_bytes()).hexdigest()
    if not stamp.exists() or stamp.read_text() != lock:
        subprocess.run([npm, "ci", "--no-audit", "--no-fund"], cwd=package, check=True,
                       capture_output=True, timeout=600)
        stamp.write_text(lock)
    subprocess.run([node, str(readme.TSC), "-p", "tsconfig.json"], cwd=package, check=True,
                   capture_output=True, timeout=300)


@pytest.fixture(scope="module")
def transcript(tmp_path_factory: pytest.TempPathFactory) -> readme.Transcript:
    _build_ts_client()
    tool = Path(grpcurl.grpcurl_path())
    bin_dir = tmp_path_factory.mktemp("bin")
    (bin_dir / "grpcurl").symlink_to(tool)
    env = {k: v for k, v in os.environ.items()
           if not k.startswith("SWITCHBOARD_") and k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    env["PATH"] = f"{bin_dir}{os.pathsep}{env.get('PATH', '')}"
    workdir = tmp_path_factory.mktemp("readme")
    return readme.run_session(workdir, env, stdin="Hello!\n\n")


def test_every_run_block_succeeds(transcript: readme.Transcript) -> None:
    for block in readme.all_blocks():
        if not block.marker.startswith("run"):
            continue
        assert block.where in transcript.codes, (
            f"{block.where} did not finish:\n{transcript.log[-4000:]}")
        code = transcript.codes[block.where]
        output = transcript.outputs[block.where]
        if "fails" in block.marker:
            assert code != 0, f"{block.where} was expected to fail:\n{output}"
        else:
            assert code == 0, f"{block.where} exited {code}:\n{output}"


def test_documented_outputs_are_what_was_printed(transcript: readme.Transcript) -> None:
    blocks = readme.all_blocks()
    for i, block in enumerate(blocks):
        if not block.marker.startswith("output"):
            continue
        printed = transcript.outputs.get(blocks[i - 1].where, "")
        same = readme.merge_deltas if "deltas" in block.marker else readme.normalize
        assert same(printed) == same(block.text), block.where


def test_the_session_did_what_the_readme_says(transcript: readme.Transcript) -> None:
    outputs = {b.text: transcript.outputs.get(b.where, "") for b in readme.all_blocks()}
    using = next(o for t, o in outputs.items() if "switchboard chat" in t)
    assert "[reasoning] Let me think." in using and "[answer]" in using
    assert "[finished] FINISH_REASON_STOP" in using
    python = next(o for t, o in outputs.items() if "sb.reply(" in t)
    assert "TextDelta" in python and "NOT_FOUND" in python
    check = next(o for t, o in outputs.items() if "check-endpoint" in t)
    assert check.rstrip().endswith("PASSED")
    rotated = next(o for t, o in outputs.items() if "keys rotate" in t)
    assert "removed master key" in rotated
    tls = next(o for t, o in outputs.items() if "ssl_channel_credentials" in t)
    assert "demo" in tls
    ts = next(o for t, o in outputs.items() if "SwitchboardClient(" in t)
    assert "Hello! How can I help you today?" in ts and "5 SESSION_NOT_FOUND" in ts
