"""Runs the documentation: every fenced block of README.md and clients/README.md as printed.

Each fenced block with a language is preceded by a marker comment saying what the test does:

    <!-- readme: run -->               a shell block, run in the session (in document order)
    <!-- readme: run, fails -->        the same, and its last command must fail
    <!-- readme: run python -->        a Python program, run with .venv/bin/python
    <!-- readme: run ts -->            a TypeScript program, compiled with tsc and run with node
                                       (``@switchboard/client`` is clients/typescript, built)
    <!-- readme: output -->            what the previous run block prints (ids, times normalized)
    <!-- readme: not run: REASON -->   not run here, and why

All run blocks of both files form one session: one bash process in a temporary directory (with
``.venv`` linked to the clone's) where variables, exports and background jobs carry over from
block to block, as when a reader pastes them one after another. The session runs in its own
network namespace (``unshare -rn``), so the documented fixed ports (50051, 8001) cannot collide
with anything else on the machine; where namespaces are not allowed, the ports are rewritten to
free ones instead (the only change made to the text).
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import signal
import socket
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DOCS = (ROOT / "README.md", ROOT / "clients" / "README.md")
DOC_PORTS = (50051, 50052, 8001)
_FENCE = re.compile(r"^```(\w*)\s*$")
_MARKER = re.compile(r"^<!-- readme: (.+?) -->\s*$")


@dataclass
class Block:
    doc: str  # README.md or clients/README.md
    line: int  # the line of the opening fence
    lang: str
    text: str
    marker: str  # "run", "run, fails", "run python", "output", "not run: ...", "" if none

    @property
    def where(self) -> str:
        return f"{self.doc}:{self.line}"


def blocks(path: Path) -> list[Block]:
    """Every fenced block of ``path`` with its marker (fences without a language included)."""
    lines = path.read_text().splitlines()
    found: list[Block] = []
    i = 0
    while i < len(lines):
        opening = _FENCE.match(lines[i])
        if opening is None:
            i += 1
            continue
        previous = next((lines[j] for j in range(i - 1, -1, -1) if lines[j].strip()), "")
        marker = _MARKER.match(previous)
        end = next(j for j in range(i + 1, len(lines)) if lines[j].startswith("```"))
        found.append(Block(str(path.relative_to(ROOT)), i + 1, opening.group(1),
                           "\n".join(lines[i + 1:end]) + "\n",
                           marker.group(1) if marker else ""))
        i = end + 1
    return found


def all_blocks() -> list[Block]:
    return [b for doc in DOCS for b in blocks(doc)]


_NORMALIZE = (
    (re.compile(r"\b(llm|ep|turn|ses)_[0-9a-f]{8,}"), r"\1_…"),
    (re.compile(r'"(request_id|requestId|etag)":\s*"[0-9a-f]+"'), r'"\1": "…"'),
    (re.compile(r'"-?\d+(\.\d+)?s"'), '"…s"'),
    (re.compile(r'("\w*(_ms|Ms|_seconds)": )\d+(\.\d+)?(e-?\d+)?'), r"\1…"),
    (re.compile(r'"\d{4}-\d\d-\d\dT[\d:.]+Z"'), '"…"'),
)


def normalize(text: str) -> str:
    """Output with what changes from run to run (ids, times, durations) replaced by ``…``."""
    for pattern, replacement in _NORMALIZE:
        text = pattern.sub(replacement, text)
    return "\n".join(line.rstrip() for line in text.strip().splitlines())


@dataclass
class Transcript:
    outputs: dict[str, str] = field(default_factory=dict)  # block.where -> stdout+stderr
    codes: dict[str, int] = field(default_factory=dict)  # block.where -> exit status
    log: str = ""  # everything the session printed


def _netns_works() -> bool:
    if not shutil.which("unshare") or not shutil.which("ip"):
        return False
    done = subprocess.run(["unshare", "-rn", "ip", "link", "set", "lo", "up"],
                          capture_output=True, timeout=10, check=False)
    return done.returncode == 0


def _free_port() -> int:
    """A port free now, for the fallback only (no network namespace, as where unprivileged user
    namespaces are restricted): the README's own commands bind the documented ports and name
    them in later commands, so the port must be known before anything binds it; port 0 and a
    reported port cannot express that. Racy by nature, hence the namespace first."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


TS_CLIENT = ROOT / "clients" / "typescript"
TSC = TS_CLIENT / "node_modules" / "typescript" / "bin" / "tsc"
TSC_FLAGS = ("--module commonjs --target es2022 --moduleResolution node --esModuleInterop "
             "--strict --skipLibCheck --types node --outDir .")


def link_ts_client(workdir: Path) -> None:
    """node_modules in ``workdir`` as an app that installed @switchboard/client would have."""
    modules = workdir / "node_modules"
    (modules / "@switchboard").mkdir(parents=True)
    (modules / "@switchboard" / "client").symlink_to(TS_CLIENT)
    for scope in ("@grpc", "@types"):
        (modules / scope).symlink_to(TS_CLIENT / "node_modules" / scope)


def session_script(run: list[Block], workdir: Path, ports: dict[int, int]) -> str:
    """The bash program of a session: each block sourced from its own file, as printed."""
    parts = ["set -u", "ip link set lo up 2>/dev/null || true"]
    for n, block in enumerate(run):
        text = block.text
        for old, new in ports.items():
            text = text.replace(str(old), str(new))
        ext = {"run python": "py", "run ts": "ts"}.get(block.marker, "sh")
        name = f"block{n:02d}.{ext}"
        (workdir / name).write_text(text)
        command = {"py": f".venv/bin/python {name}",
                   "ts": f"node {TSC} {TSC_FLAGS} {name} && node block{n:02d}.js",
                   }.get(ext, f"source {name}")
        parts += [f"echo '@@begin {block.where}@@'",
                  f"set -e; {command} 2>&1; set +e" if "fails" not in block.marker
                  else f"{command} 2>&1",
                  f"echo \"@@end {block.where} $?@@\""]
    parts.append("echo '@@session done@@'")
    return "\n".join(parts) + "\n"


def run_session(workdir: Path, env: dict[str, str], stdin: str,
                timeout_s: float = 240.0, isolate: bool = True) -> Transcript:
    """Runs every run block of both documents in one session; returns what each printed."""
    run = [b for b in all_blocks() if b.marker.startswith("run")]
    (workdir / ".venv").symlink_to(ROOT / ".venv")
    if any(b.marker == "run ts" for b in run):
        link_ts_client(workdir)
    isolated = isolate and _netns_works()
    ports = {} if isolated else {p: _free_port() for p in DOC_PORTS}
    if not isolated:
        env = {**env, "SWITCHBOARD_GRPC_PORT": str(ports[50051]),  # the defaults, moved too
               "SWITCHBOARD_TARGET": f"127.0.0.1:{ports[50051]}"}
    script = workdir / "session.sh"
    script.write_text(session_script(run, workdir, ports))
    command = ["unshare", "-rn", "bash", str(script)] if isolated else ["bash", str(script)]
    proc = subprocess.Popen(command, cwd=workdir, env=env, stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            start_new_session=True)
    try:
        out, _ = proc.communicate(stdin, timeout=timeout_s)
    finally:  # the session's background servers share its process group
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
    for old, new in ports.items():  # outputs as they read with the documented ports
        out = out.replace(f":{new}", f":{old}")
    transcript = Transcript(log=out)
    for match in re.finditer(r"@@begin (\S+)@@\n(.*?)@@end \1 (\d+)@@", out, flags=re.S):
        transcript.outputs[match.group(1)] = match.group(2)
        transcript.codes[match.group(1)] = int(match.group(3))
    return transcript


def merge_deltas(text: str) -> str:
    """A grpcurl Converse stream with consecutive deltas of one message merged into one
    event (the server coalesces deltas when its client is behind), then normalized."""
    decoder = json.JSONDecoder()
    events: list[dict[str, dict[str, object]]] = []
    rest = text.strip()
    while rest:
        event, end = decoder.raw_decode(rest)
        rest = rest[end:].strip()
        kind = next(iter(event))
        last = events[-1] if events else None
        if (last is not None and kind in ("text", "reasoning") and kind in last
                and {k: v for k, v in last[kind].items() if k != "delta"}
                == {k: v for k, v in event[kind].items() if k != "delta"}):
            last[kind]["delta"] = str(last[kind]["delta"]) + str(event[kind]["delta"])
        else:
            events.append(event)
    return normalize("\n".join(json.dumps(e, indent=2) for e in events))
