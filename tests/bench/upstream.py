"""The bench's upstream: ``python -m server.simulator`` with a bounded request log.

Same options as the simulator CLI. The simulator keeps every request it served (a test tool);
over a bench run that is hundreds of thousands of records, whose growth and garbage-collector
passes would slow the upstream down as the run goes on, for the direct baseline and
Switchboard alike. This process drops the log every half second.
"""

from __future__ import annotations

import asyncio
import signal
import sys

import uvloop

from server.simulator.__main__ import behavior_from, parse_args
from server.simulator.simulator import Simulator


async def serve(argv: list[str]) -> None:
    args = parse_args(argv)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    async with Simulator(args.spec, behavior_from(args), host=args.host, port=args.port,
                         api_key=args.api_key, seed=args.seed) as sim:
        print(f"SIMULATOR base_url={sim.base_url}", flush=True)
        while not stop.is_set():
            sim.requests.clear()
            try:
                await asyncio.wait_for(stop.wait(), 0.5)
            except TimeoutError:
                pass


if __name__ == "__main__":
    uvloop.run(serve(sys.argv[1:]))
