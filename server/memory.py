"""Returning freed memory to the operating system after a metadata flood.

A caller can make the server parse many calls with megabytes of metadata each (see
``server.edge.interceptor.refusal``). Refused at once, that memory is freed, but glibc's
allocator keeps freed heap pages for reuse, so the process would stay at its peak size.
``MemoryTrimmer`` watches the count of such refusals and, after it moves, calls glibc's
``malloc_trim(0)`` (in a thread: it walks the heap), which gives the free pages back. Nothing
happens while no call is refused, and nothing at all where the C library has no
``malloc_trim`` (musl, macOS).
"""

from __future__ import annotations

import asyncio
import ctypes
import ctypes.util
from collections.abc import Callable

import structlog

log = structlog.get_logger("switchboard.memory")


def _malloc_trim() -> Callable[[], None] | None:
    name = ctypes.util.find_library("c")
    if name is None:
        return None
    try:
        trim = ctypes.CDLL(name).malloc_trim
    except (OSError, AttributeError):
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
