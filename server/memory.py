"""Keeping the heap small under a metadata flood, and returning freed memory to the OS.

A caller can make the server parse many calls with megabytes of metadata each (see
``server.edge.interceptor.refusal``). Refused at once, that memory is freed, but glibc's
allocator keeps freed heap pages for reuse, so the process would stay at its peak size.
``MemoryTrimmer`` watches the count of such refusals and, after it moves, calls glibc's
``malloc_trim(0)`` (in a thread: it walks the heap), which gives the free pages back. Nothing
happens while no call is refused, and nothing at all where the C library has no
``malloc_trim`` (musl, macOS).

The heap itself stays smaller when glibc's mmap threshold is pinned at start-up with the
environment variable ``MALLOC_MMAP_THRESHOLD_=131072`` (the Docker image sets it): glibc
otherwise raises the threshold up to 32 MiB after large blocks are freed, so multi-megabyte
metadata values move into the heap. Pinning it later with ``mallopt`` from Python measured
worse than not pinning, so this module does not. (Measurements of the flood on the shared
2-core development machine vary by a factor of two from run to run; README has the figures.)
"""

from __future__ import annotations

import asyncio
import ctypes
import ctypes.util
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
