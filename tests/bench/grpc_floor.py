"""The floor under Switchboard: what a bare grpc.aio server costs to stream a turn's messages.

    python -m tests.bench.grpc_floor [--concurrency 1] [--messages 24] [--gap-ms 2]
                                     [--mode yield|write|prebuilt|layers] [--option K=V]

A ``Conversations`` servicer that does nothing else: it waits ``--ttft-ms``, then yields
``--messages`` small text deltas ``--gap-ms`` apart (a turn's shape). It runs in its own process
(uvloop, like ``server.main``); this process is the client. Prints CPU per call of both, and
the time from sending a call to its first message when the server answers at once.

``--mode`` is how the servicer sends (the levers of issue 16, each measured on its own):
``yield`` from an async generator (a new message each time), ``write`` with
``context.write`` from a coroutine, ``prebuilt`` (yield one message built once), ``layers``
(yield through two pass-through async generators, as two interceptors do). ``--option``:
a grpc server option (``grpc.optimization_target=throughput``), repeatable.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Sequence
from pathlib import Path
from typing import Any, TypeAlias

import grpc
import uvloop
from switchboard.v1 import conversations_pb2 as cpb
from switchboard.v1 import conversations_pb2_grpc as cgrpc

from tests.bench.procs import Proc, python_env

_ENV = "BENCH_GRPC_FLOOR"  # "ttft_s,messages,gap_s,mode": this process is the server
_OPTIONS_ENV = "BENCH_GRPC_FLOOR_OPTIONS"  # "k=v;k=v": server options
MODES = ("yield", "write", "prebuilt", "layers")


Context: TypeAlias = "grpc.aio.ServicerContext[Any, Any]"


class _Echo(cgrpc.ConversationsServicer):
    def __init__(self, ttft_s: float, messages: int, gap_s: float) -> None:
        self._ttft_s, self._messages, self._gap_s = ttft_s, messages, gap_s
        self._prebuilt = cpb.ConverseResponse(text=cpb.TextDelta(message_id="turn_0.m1",
                                                                 delta="word "))

    async def _deltas(self, request: cpb.ConverseRequest, prebuilt: bool
                      ) -> AsyncIterator[cpb.ConverseResponse]:
        ttft_s = 0.0 if request.llm_id == "now" else self._ttft_s
        if ttft_s:
            await asyncio.sleep(ttft_s)
        for _ in range(1 if request.llm_id == "now" else self._messages):
            yield self._prebuilt if prebuilt else cpb.ConverseResponse(
                text=cpb.TextDelta(message_id="turn_0.m1", delta="word "))
            if self._gap_s:
                await asyncio.sleep(self._gap_s)


class _Yield(_Echo):
    async def Converse(self, request: cpb.ConverseRequest, context: Context
                       ) -> AsyncIterator[cpb.ConverseResponse]:
        async for message in self._deltas(request, False):
            yield message


class _Prebuilt(_Echo):
    async def Converse(self, request: cpb.ConverseRequest, context: Context
                       ) -> AsyncIterator[cpb.ConverseResponse]:
        async for message in self._deltas(request, True):
            yield message


class _Write(_Echo):
    async def Converse(self, request: cpb.ConverseRequest,  # type: ignore[override]
                       context: Context) -> None:
        async for message in self._deltas(request, False):
            await context.write(message)


async def _passthrough(inner: AsyncIterator[cpb.ConverseResponse]
                       ) -> AsyncIterator[cpb.ConverseResponse]:
    async for message in inner:
        yield message


class _Layers(_Echo):
    async def Converse(self, request: cpb.ConverseRequest, context: Context
                       ) -> AsyncIterator[cpb.ConverseResponse]:
        async for message in _passthrough(_passthrough(self._deltas(request, False))):
            yield message


_SERVICERS = {"yield": _Yield, "write": _Write, "prebuilt": _Prebuilt, "layers": _Layers}


async def _serve(ttft_s: float, messages: int, gap_s: float, mode: str) -> None:
    raw = os.environ.get(_OPTIONS_ENV, "")
    options = [(k, int(v) if v.isdigit() else v)
               for k, _, v in (item.partition("=") for item in raw.split(";") if item)]
    server = grpc.aio.server(options=options)
    echo = _SERVICERS[mode](ttft_s, messages, gap_s)  # type: ignore[abstract]  # Converse only
    cgrpc.add_ConversationsServicer_to_server(echo, server)
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    print(f"PORT {port}", flush=True)
    await server.wait_for_termination()


async def _load(target: str, concurrency: int, seconds: float) -> int:
    async with grpc.aio.insecure_channel(target) as channel:
        stub = cgrpc.ConversationsStub(channel)
        request = cpb.ConverseRequest(llm_id="paced")
        calls = 0
        stop = time.perf_counter() + seconds

        async def worker() -> None:
            nonlocal calls
            while time.perf_counter() < stop:
                async for _ in stub.Converse(request):
                    pass
                calls += 1

        await asyncio.gather(*(worker() for _ in range(concurrency)))
        return calls


async def _first_message(target: str, n: int) -> list[float]:
    async with grpc.aio.insecure_channel(target) as channel:
        stub = cgrpc.ConversationsStub(channel)
        request = cpb.ConverseRequest(llm_id="now")
        out = []
        for _ in range(n):
            start = time.perf_counter()
            async for _ in stub.Converse(request):
                out.append(time.perf_counter() - start)
        return out[n // 5:]  # the first ones warm up


def main(argv: Sequence[str] | None = None) -> int:
    if os.environ.get(_ENV):
        ttft, messages, gap, mode = os.environ[_ENV].split(",")
        uvloop.run(_serve(float(ttft), int(messages), float(gap), mode))
        return 0
    p = argparse.ArgumentParser(prog="python -m tests.bench.grpc_floor", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--concurrency", type=int, default=1)
    p.add_argument("--messages", type=int, default=24)
    p.add_argument("--ttft-ms", type=float, default=20.0)
    p.add_argument("--gap-ms", type=float, default=2.0)
    p.add_argument("--seconds", type=float, default=5.0)
    p.add_argument("--mode", choices=MODES, default="yield")
    p.add_argument("--option", action="append", default=[], metavar="KEY=VALUE")
    args = p.parse_args(argv)
    env = python_env({_ENV: f"{args.ttft_ms / 1e3},{args.messages},{args.gap_ms / 1e3},"
                            f"{args.mode}", _OPTIONS_ENV: ";".join(args.option)})
    popen = subprocess.Popen([sys.executable, "-m", "tests.bench.grpc_floor"], env=env,
                             stdout=subprocess.PIPE)
    server = Proc("grpc-floor", popen, Path(os.devnull))
    try:
        assert popen.stdout is not None
        target = f"127.0.0.1:{popen.stdout.readline().split()[1].decode()}"
        uvloop.run(_load(target, args.concurrency, 1.0))  # warm-up
        cpu0, own0 = server.cpu_s(), time.process_time()
        calls = uvloop.run(_load(target, args.concurrency, args.seconds))
        cpu1, own1 = server.cpu_s(), time.process_time()
        firsts = sorted(uvloop.run(_first_message(target, 250)))
    finally:
        server.stop()
    print(f"mode {args.mode} {' '.join(args.option)}: "
          f"{calls / args.seconds:.0f} calls/s at concurrency {args.concurrency}, "
          f"{args.messages} messages {args.gap_ms:g} ms apart after {args.ttft_ms:g} ms: "
          f"server {1e3 * (cpu1 - cpu0) / calls:.2f} ms CPU per call, client "
          f"{1e3 * (own1 - own0) / calls:.2f} ms")
    print(f"send -> first message, server answering at once: median "
          f"{1e3 * statistics.median(firsts):.3f} ms, p90 "
          f"{1e3 * firsts[int(0.9 * len(firsts))]:.3f} ms")
    return 0


if __name__ == "__main__":
    sys.exit(main())
