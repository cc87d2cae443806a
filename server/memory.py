"""Keeping the heap small under a metadata flood, and returning freed memory to the OS.

A caller can make the server parse many calls with megabytes of metadata each (see
``server.edge.interceptor.refusal``). Refused at once, that memory is freed, but glibc's
allocator keeps freed heap pages for reuse, so the process would stay at its peak size.
``MemoryTrimmer`` watches the count of such refusals and, after it moves, calls glibc's
``malloc_trim(0)`` (in a thread: it walks the heap), which gives the free pages back. Nothing
happens while no call is refused, and nothing at all where the C library has no
``malloc_trim`` (musl, macOS).

Two allocator settings keep the peak of such a flood down (measured with
``tests/security/test_metadata_flood.py``; README has the figures). glibc's mmap threshold
stays adaptive: pinned at 128 KiB (``MALLOC_MMAP_THRESHOLD_``, which the Docker image used to
set), every multi-megabyte value became a fresh mapping whose page faults slowed the server
so much that refused calls piled up, and the peak doubled. And glibc gets one malloc arena
(``limit_malloc_arenas``, first thing in ``server.main``): with one arena per grpc core
thread, the blocks freed in one arena are not reused by the next call's allocations in
another and stay resident until the next trim.
"""

from __future__ import annotations

import asyncio
import ctypes
import ctypes.util
import os
from collections.abc import Callable

import structlog

log = structlog.get_logger("switchboard.memory")


def _libc() -> ctypes.CDLL | None:
    name = ctypes.util.find_library("c")
    if name is None:
        return None
    try:
        return ctypes.CDLL(name)
    except OSError:
        return None


# glibc's mallopt parameter for the most malloc arenas (malloc.h).
_M_ARENA_MAX = -8
MALLOC_ARENAS = 1


def limit_malloc_arenas(arenas: int = MALLOC_ARENAS) -> bool:
    """Caps glibc's malloc arenas, unless ``MALLOC_ARENA_MAX`` was set; True if it did.

    Call it before any thread allocates (``server.main`` does, first thing), or the threads
    already have arenas of their own (glibc allows up to 8 per core). Unlike setting the mmap
    or trim threshold, this leaves glibc's adaptive mmap threshold in place."""
    if "MALLOC_ARENA_MAX" in os.environ:  # glibc read the operator's choice at start-up
        return False
    mallopt = getattr(_libc(), "mallopt", None)
    if mallopt is None:
        return False
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    mallopt.restype = ctypes.c_int
    return bool(mallopt(_M_ARENA_MAX, arenas))


def _malloc_trim() -> Callable[[], None] | None:
    trim = getattr(_libc(), "malloc_trim", None)
    if trim is None:
        return None
    trim.argtypes = [ctypes.c_size_t]
    trim.restype = ctypes.c_int
    return lambda: trim(0)


class MemoryTrimmer:
    def __init__(self, pressure: Callable[[], int], interval_s: float = 0.25) -> None:
        """``pressure()``: a count that moves when large allocations were freed."""
        self._pressure = pressure
        self._interval_s = interval_s
        self._trim = _malloc_trim()
        self._seen = 0
        self.trims = 0

    async def run(self) -> None:
        if self._trim is None:
            return
        trim = self._trim
        while True:
            await asyncio.sleep(self._interval_s)
            now = self._pressure()
            if now != self._seen:
                self._seen = now
                await asyncio.to_thread(trim)
                self.trims += 1
                log.debug("memory trimmed", refused_oversized=now)

