"""Run a simulator from the command line until SIGTERM or SIGINT.

    python -m server.simulator --spec openai --port 0 --ttft-ms 20 --chunks 20 --gap-ms 2

The first stdout line is ``SIMULATOR base_url=<url>``, so scripts can read it and go on.
"""

from __future__ import annotations

import argparse
import asyncio
import signal
import sys
import time
from collections.abc import Sequence

from server.simulator.behavior import Behavior, Fault, FaultKind, ReasoningDialect, Spec, ToolCall
from server.simulator.simulator import Simulator


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog="python -m server.simulator",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--spec", default="openai", choices=[s.value for s in Spec] + ["azure"])
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=0)
    p.add_argument("--api-key", help="require this key, presented the provider's way")
    p.add_argument("--known-model", action="append", help="only these models (repeatable)")
    p.add_argument("--seed", type=int)
    g = p.add_argument_group("answer")
    g.add_argument("--text", help="the answer text (default: a short greeting)")
    g.add_argument("--echo", action="store_true", help="answer with the last user message")
    g.add_argument("--chunks", type=int, help="content chunks for the text (default: per word)")
    g.add_argument("--reasoning", default="", help="reasoning text, sent before the answer")
    g.add_argument("--reasoning-chunks", type=int)
    g.add_argument(
        "--reasoning-dialect",
        default=ReasoningDialect.REASONING_CONTENT.value,
        choices=[d.value for d in ReasoningDialect],
    )
    g.add_argument(
        "--tool-call", action="append", default=[], metavar="NAME=JSON", help="(repeatable)"
    )
    g.add_argument("--model", help="model name in responses (default: the requested one)")
    g.add_argument("--ttft-ms", type=float, default=0.0, help="time to first token")
    g.add_argument("--gap-ms", type=float, default=0.0, help="pause between chunks")
    g.add_argument("--headers-after-ttft", action="store_true")
    f = p.add_argument_group("fault")
    f.add_argument("--fault", choices=[k.value for k in FaultKind])
    f.add_argument("--fault-chunk", type=int, default=0, help="content chunks before the fault")
    f.add_argument("--fault-seconds", type=float, default=0.0, help="stall / slow duration")
    f.add_argument("--fault-status", type=int, default=0, help="status for http_status")
    f.add_argument("--retry-after-s", type=float)
    f.add_argument("--fault-clean-close", action="store_true", help="cut_after ends cleanly")
    f.add_argument("--fault-raw-tail", action="store_true", help="Gemini raw JSON error tail")
    f.add_argument("--fault-times", type=int, help="only the first N requests")
    f.add_argument("--fault-for-s", type=float, help="only for this long after start")
    return p.parse_args(argv)


def behavior_from(args: argparse.Namespace) -> Behavior:
    fault = None
    if args.fault:
        fault = Fault(
            FaultKind(args.fault),
            chunk=args.fault_chunk,
            seconds=args.fault_seconds,
            status=args.fault_status,
            retry_after_s=args.retry_after_s,
            abrupt=not args.fault_clean_close,
            raw_tail=args.fault_raw_tail,
        )
    calls = [ToolCall(*spec.split("=", 1)) for spec in args.tool_call]
    return Behavior(
        text=args.text,
        echo=args.echo,
        chunks=args.chunks,
        reasoning=args.reasoning,
        reasoning_chunks=args.reasoning_chunks,
        reasoning_dialect=ReasoningDialect(args.reasoning_dialect),
        tool_calls=calls,
        model=args.model,
        ttft_s=args.ttft_ms / 1000,
        chunk_gap_s=args.gap_ms / 1000,
        headers_after_ttft=args.headers_after_ttft,
        fault=fault,
        fault_times=args.fault_times,
        fault_until=time.monotonic() + args.fault_for_s if args.fault_for_s else None,
    )


async def serve(args: argparse.Namespace) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    simulator = Simulator(
        args.spec,
        behavior_from(args),
        host=args.host,
        port=args.port,
        api_key=args.api_key,
        known_models=args.known_model,
        seed=args.seed,
    )
    async with simulator as sim:
        print(f"SIMULATOR base_url={sim.base_url}", flush=True)
        await stop.wait()


def main(argv: Sequence[str] | None = None) -> None:
    args = parse_args(argv)
    try:
        import uvloop
    except ImportError:
        asyncio.run(serve(args))
    else:
        uvloop.run(serve(args))
    sys.exit(0)


if __name__ == "__main__":
    main()
