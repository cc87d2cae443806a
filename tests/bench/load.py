"""Load shapes: closed loop at a fixed concurrency, open loop at a fixed arrival rate.

Both run a warm-up (not recorded), then a measured window of ``duration_s``. Throughput is the
number of turns that completed inside the window divided by its length. Latencies come from
the turns that started inside it (including those that end after it: they are waited for).
The caller samples server CPU/RSS around ``window`` via the ``on_window`` callback.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from tests.bench.drivers import Driver, TurnResult

DRAIN_S = 30.0


@dataclass(slots=True)
class Run:
    """What one point produced: its window and every turn recorded in it."""

    started: float = 0.0
    ended: float = 0.0
    completed: int = 0  # turns that ended inside the window without error
    results: list[TurnResult] = field(default_factory=list)

    @property
    def seconds(self) -> float:
        return self.ended - self.started


class _Window:
    def __init__(self, on_window: Callable[[str], None] | None) -> None:
        self.run = Run()
        self.open = False
        self._cb = on_window

    def begin(self) -> None:
        if self._cb:
            self._cb("begin")
        self.run.started = time.perf_counter()
        self.open = True

    def end(self) -> None:
        self.run.ended = time.perf_counter()
        self.open = False
        if self._cb:
            self._cb("end")

    def record(self, r: TurnResult) -> None:
        run = self.run
        if run.started and r.start >= run.started and (not run.ended or r.start < run.ended):
            run.results.append(r)
        if (run.started and not r.error and r.end >= run.started
                and (not run.ended or r.end < run.ended)):
            run.completed += 1


def replay(started: float, ended: float, results: Iterable[TurnResult]) -> Run:
    """The run a window ``[started, ended)`` records of turns timed elsewhere (the Go load
    generator, ``tests.bench.goclient``), by the same rules as the loops below."""
    window = _Window(None)
    window.run.started, window.run.ended = started, ended
    for r in results:
        window.record(r)
    return window.run


async def closed_loop(driver: Driver, concurrency: int, duration_s: float, warmup_s: float,
                      on_window: Callable[[str], None] | None = None) -> Run:
    """``concurrency`` workers, each starting its next turn when the previous one ends."""
    window = _Window(on_window)
    stop = False

    async def worker() -> None:
        w = driver.worker()
        while not stop:
            window.record(await w.turn())

    async with asyncio.TaskGroup() as tg:
        tasks = []
        for i in range(concurrency):
            tasks.append(tg.create_task(worker()))
            if concurrency > 50 and i % 50 == 49:
                await asyncio.sleep(0.01)  # ramp up a large fleet instead of a thundering herd
        await asyncio.sleep(warmup_s)
        window.begin()
        await asyncio.sleep(duration_s)
        window.end()
        stop = True
        try:
            async with asyncio.timeout(DRAIN_S):
                await asyncio.gather(*tasks)
        except TimeoutError:
            for t in tasks:
                t.cancel()
    return window.run


async def open_loop(driver: Driver, rate: float, duration_s: float, warmup_s: float,
                    on_window: Callable[[str], None] | None = None) -> Run:
    """Turns start at ``rate`` per second, evenly spaced, whatever the previous ones do."""
    window = _Window(on_window)
    w = driver.worker()
    pending: set[asyncio.Task[None]] = set()

    async def one(scheduled: float) -> None:
        window.record(await w.turn(scheduled))

    loop_start = time.perf_counter()
    begin_at = loop_start + warmup_s
    end_at = begin_at + duration_s
    interval = 1.0 / rate
    n = 0
    while True:
        scheduled = loop_start + n * interval
        now = time.perf_counter()
        if not window.open and not window.run.started and now >= begin_at:
            window.begin()
        if scheduled >= end_at:
            break
        if scheduled > now:
            await asyncio.sleep(scheduled - now)
        task = asyncio.create_task(one(scheduled))
        pending.add(task)
        task.add_done_callback(pending.discard)
        n += 1
    delay = end_at - time.perf_counter()
    if delay > 0:
        await asyncio.sleep(delay)
    window.end()
    if pending:
        _, late = await asyncio.wait(pending, timeout=DRAIN_S)
        for t in late:
            t.cancel()
    return window.run
