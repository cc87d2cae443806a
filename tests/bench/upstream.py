"""The bench's upstream: ``python -m server.simulator`` with a bounded request log.

Same options as the simulator CLI. The simulator keeps every request it served (a test tool);
over a bench run that is hundreds of thousands of records, whose growth and garbage-collector
passes would slow the upstream down as the run goes on, for the direct baseline and
Switchboard alike. This process drops finished records every tick. With ``BENCH_TRACE=path``
it first appends, per request, when it arrived and when its first chunk went out
(``tests.bench.trace`` lines up those times with the client's and the server's).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sys
from typing import TextIO

import uvloop

from server.simulator.__main__ import behavior_from, parse_args
from server.simulator.simulator import Simulator


def _drain(sim: Simulator, trace: TextIO | None) -> None:
    if trace is None:
        sim.requests.clear()
        return
    done = [r for r in sim.requests if r.ended]
    for r in done:
        trace.write(f"sim {r.received_at} {r.first_chunk_at}\n")
        sim.requests.remove(r)
    trace.flush()


async def serve(argv: list[str], trace: TextIO | None) -> None:
    args = parse_args(argv)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    async with Simulator(args.spec, behavior_from(args), host=args.host, port=args.port,
                         api_key=args.api_key, seed=args.seed) as sim:
        print(f"SIMULATOR base_url={sim.base_url}", flush=True)
        while not stop.is_set():
            _drain(sim, trace)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), 0.05 if trace else 0.5)


def main() -> None:
    path = os.environ.get("BENCH_TRACE", "")
    if not path:
        uvloop.run(serve(sys.argv[1:], None))
        return
    with open(path, "a") as trace:
        uvloop.run(serve(sys.argv[1:], trace))


if __name__ == "__main__":
    main()
