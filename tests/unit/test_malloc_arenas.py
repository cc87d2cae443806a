"""``limit_malloc_arenas``: threads that allocate share glibc's one arena, unless the operator
set ``MALLOC_ARENA_MAX``. Each case runs in a fresh interpreter, as ``server.main`` does it:
first thing, before any thread has allocated."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

# Twelve threads allocate at once (each would get an arena of its own), then glibc prints
# one "Arena N:" block per arena to stderr.
PROGRAM = """
import ctypes, sys, threading
from server.memory import limit_malloc_arenas
print(limit_malloc_arenas() if sys.argv[1] == "limit" else None)
libc = ctypes.CDLL("libc.so.6")
libc.malloc.restype = ctypes.c_void_p
start = threading.Barrier(12)
def allocate():
    start.wait()
    for _ in range(200):
        libc.free(ctypes.c_void_p(libc.malloc(100_000)))
threads = [threading.Thread(target=allocate) for _ in range(12)]
for t in threads: t.start()
for t in threads: t.join()
libc.malloc_stats()
"""

glibc_only = pytest.mark.skipif(not sys.platform.startswith("linux") or
                                os.confstr("CS_GNU_LIBC_VERSION") is None,
                                reason="glibc's mallopt and malloc_stats")


def arenas(mode: str, **env: str) -> tuple[str, int]:
    clean = {k: v for k, v in os.environ.items() if k != "MALLOC_ARENA_MAX"}
    out = subprocess.run([sys.executable, "-c", PROGRAM, mode], cwd=ROOT, env={**clean, **env},
                         capture_output=True, text=True, timeout=60, check=True)
    return out.stdout.strip(), len(re.findall(r"^Arena \d+:", out.stderr, re.MULTILINE))


@glibc_only
def test_threads_share_one_arena() -> None:
    assert arenas("limit") == ("True", 1)
    assert arenas("none")[1] > 1  # what the cap prevents: arenas of their own


@glibc_only
def test_the_operators_malloc_arena_max_wins() -> None:
    assert arenas("limit", MALLOC_ARENA_MAX="3") == ("False", 3)
