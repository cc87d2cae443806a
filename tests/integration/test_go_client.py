"""The Go client (clients/go) against a real Switchboard and simulator.

clients/go/offline.sh builds cmd/example and the switchboard package's test binary offline,
in GOPATH mode over the Go sources Debian packages in /usr/share/gocode (`make go-deps`
installs them). The build cache lives in .tools/go, so only the first build compiles grpc.
Without those packages the tests skip, except in CI (`CI` set), where that is a failure.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from switchboard.v1 import conversations_pb2 as cpb
from switchboard_client import AsyncClient

from server.app import Switchboard
from server.simulator import Behavior, Fault, FaultKind, Simulator
from tests.support import API_KEY, create_llm, endpoint, running, settings

ROOT = Path(__file__).resolve().parents[2]
OFFLINE = ROOT / "clients" / "go" / "offline.sh"
GOCODE = Path("/usr/share/gocode/src")
TEXT = "Hello from the Go client test."
REASONING = "The user greets me; greet back."
WORDS = "one two three four five six seven eight"  # TestLiveVoiceTurns' liveWords
# Compiling the example and `go test` take minutes on a busy two-core machine: the build has
# its own 300 s bound (_offline), so the per-test limit must not cut it first.
pytestmark = pytest.mark.timeout(600)


def _unavailable(reason: str) -> None:
    if os.environ.get("CI"):
        pytest.fail(f"{reason} (required in CI)")
    pytest.skip(reason)


def _offline(*args: str, timeout: float = 300) -> str:
    result = subprocess.run([str(OFFLINE), *args], cwd=ROOT, capture_output=True, text=True,
                            timeout=timeout, check=False)
    if result.returncode != 0:
        raise AssertionError(
            f"offline.sh {' '.join(args)} failed:\n{result.stdout}\n{result.stderr}")
    return result.stdout


def _debian_go_missing() -> str | None:
    if shutil.which("go") is None:
        return "go is not installed (make go-deps)"
    for package in ("google.golang.org/grpc", "google.golang.org/protobuf",
                    "google.golang.org/genproto/googleapis/rpc/status", "golang.org/x/net/http2"):
        if not (GOCODE / package).is_dir():
            return f"{GOCODE / package} is missing (make go-deps)"
    golang_protobuf = GOCODE / "github.com/golang/protobuf/go.mod"
    if "google.golang.org/protobuf" not in (golang_protobuf.read_text()
                                            if golang_protobuf.exists() else ""):
        return ("github.com/golang/protobuf is older than 1.4 "
                "(install golang-github-golang-protobuf-1-5-dev)")
    return None


@pytest.fixture(scope="module")
def example(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    if (reason := _debian_go_missing()) is not None:
        _unavailable(reason)
    binary = tmp_path_factory.mktemp("go") / "example"
    _offline("build", str(binary))
    yield binary


@pytest.fixture(scope="module")
def go_tests(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """The switchboard package's `go test -c` binary, built outside the clone."""
    if (reason := _debian_go_missing()) is not None:
        _unavailable(reason)
    binary = tmp_path_factory.mktemp("go") / "switchboard.test"
    _offline("build-tests", str(binary))
    yield binary


def test_go_stubs_match_the_protos() -> None:
    missing = [tool for tool in ("protoc", "protoc-gen-go", "protoc-gen-go-grpc")
               if shutil.which(tool) is None]
    if missing:
        _unavailable(f"{', '.join(missing)} not installed (make go-deps)")
    header = (ROOT / "clients/go/switchboardv1/llm.pb.go").read_text()[:400]
    protoc = subprocess.run(["protoc", "--version"], capture_output=True, text=True,
                            check=True).stdout.split()[-1]
    if f"protoc        v{protoc}" not in header:
        _unavailable(f"protoc {protoc} is not the version the stubs were generated with")
    _offline("check-generated")


def test_go_reply_aggregates_like_python(example: Path) -> None:
    assert "ok" in _offline("test")


async def test_go_example_streams_reasoning_apart_from_text(
        example: Path, server: Switchboard, client: AsyncClient) -> None:
    async with Simulator("openai", Behavior(text=TEXT, reasoning=REASONING,
                                            reasoning_chunks=3)) as sim:
        llm = await create_llm(client, endpoint(sim), name="go-client")
        # The server runs on this event loop, so the child must not block it.
        proc = await asyncio.create_subprocess_exec(
            str(example), "-target", f"127.0.0.1:{server.port}", "-llm", llm.id,
            "-prompt", "Hi!", "-timeout", "30s",
            env={**os.environ, "SWITCHBOARD_API_KEY": API_KEY},
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
        try:
            out_bytes, err_bytes = await asyncio.wait_for(proc.communicate(), timeout=60)
        finally:
            if proc.returncode is None:
                proc.kill()
                await proc.wait()
    out, err = out_bytes.decode(), err_bytes.decode()
    assert proc.returncode == 0, out + err
    lines = out.splitlines()
    kinds = [m.group(1) for line in lines if (m := re.match(r"\[(\w+)", line))]
    assert kinds == ["session", "started", "route", "reasoning", "text", "usage", "finished"], out
    assert re.search(r"^\[reasoning \S+\] " + re.escape(REASONING) + "$", out, re.M), out
    assert re.search(r"^\[text \S+\] " + re.escape(TEXT) + "$", out, re.M), out
    assert re.search(r"^\[finished\] reason=FINISH_REASON_STOP complete=true ", out, re.M), out
    assert f"reasoning: {json.dumps(REASONING)}" in lines
    assert f"text: {json.dumps(TEXT)}" in lines
    stored = await client.get_session(lines[0].split("id=")[1].split()[0])
    assert stored.messages[-1].parts[0].text == TEXT
    assert stored.messages[-1].reasoning == REASONING


async def test_go_example_reports_a_bad_key(example: Path, server: Switchboard) -> None:
    proc = await asyncio.create_subprocess_exec(
        str(example), "-target", f"127.0.0.1:{server.port}", "-llm", "llm_unknown",
        "-timeout", "30s", env={**os.environ, "SWITCHBOARD_API_KEY": "not-a-key"},
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    _, err = await asyncio.wait_for(proc.communicate(), timeout=60)
    assert proc.returncode == 1
    assert err.decode().startswith("error: Unauthenticated: ")


async def test_go_example_prints_the_rich_error_details(example: Path, server: Switchboard
                                                        ) -> None:
    proc = await asyncio.create_subprocess_exec(
        str(example), "-target", f"127.0.0.1:{server.port}", "-llm", "llm_missing",
        "-timeout", "30s", env={**os.environ, "SWITCHBOARD_API_KEY": API_KEY},
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    _, err_bytes = await asyncio.wait_for(proc.communicate(), timeout=60)
    err = err_bytes.decode()
    assert proc.returncode == 1, err
    lines = err.splitlines()
    assert lines[0].startswith("error: NotFound: "), err
    assert "  reason=LLM_NOT_FOUND domain=switchboard.dev" in lines, err
    assert any(re.fullmatch(r"  request_id=[0-9a-f]+", line) for line in lines), err



async def test_go_client_barges_in_cancels_and_truncates_turns(go_tests: Path, tmp_path: Path
                                                               ) -> None:
    """TestLiveVoiceTurns (clients/go/switchboard/live_test.go) against a real server: turn A
    stalls after "one two", turn B barges in (A ends ABORTED TURN_INTERRUPTED) and is cancelled
    by the caller after "one two", turn C finishes and TruncateTurn keeps "one two th" of it,
    then UpdateSession trims the history. The history is checked here too, via GetSession."""
    stalls = Behavior(text=WORDS, fault=Fault(FaultKind.STALL_AFTER, chunk=2, seconds=600),
                      fault_times=2)  # turns A and B; turn C answers in full
    async with running(settings(tmp_path, probes_per_hour=0)) as app, \
            AsyncClient(f"127.0.0.1:{app.port}", API_KEY) as client, \
            Simulator("openai", stalls) as sim:
        llm = await create_llm(client, endpoint(sim), name="go-voice")
        proc = await asyncio.create_subprocess_exec(
            str(go_tests), "-test.run", "^TestLiveVoiceTurns$", "-test.v", "-test.count=1",
            cwd=tmp_path, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
            env={**os.environ, "SWITCHBOARD_API_KEY": API_KEY, "SWITCHBOARD_LIVE_LLM_ID": llm.id,
                 "SWITCHBOARD_LIVE_TARGET": f"127.0.0.1:{app.port}"})
        try:
            out_bytes, _ = await asyncio.wait_for(proc.communicate(), timeout=180)
        finally:
            if proc.returncode is None:
                proc.kill()
                await proc.wait()
        out = out_bytes.decode()
        assert proc.returncode == 0, out
        assert "--- PASS: TestLiveVoiceTurns" in out, out  # ran, not skipped
        session_id = re.search(r"^session=(\S+)$", out, re.M)
        assert session_id is not None, out
        stored = await client.get_session(session_id.group(1))
        sent = [(m["role"], m["content"]) for m in sim.requests[-1].body["messages"]]
    assert len(sim.requests) == 3
    # Turn C's model saw both interrupted answers as they were streamed.
    assert sent == [("user", "Count."), ("assistant", "one two"), ("user", "Wait."),
                    ("assistant", "one two"), ("user", "Again.")]
    assert stored.system_prompt == "Be brief."
    assert [(m.role, "".join(p.text for p in m.parts), m.interrupted) for m in stored.messages] \
        == [(cpb.ROLE_USER, "Again.", False), (cpb.ROLE_ASSISTANT, "one two th", True)]
