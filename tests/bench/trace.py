"""Where the time to first token goes, one turn at a time (concurrency 1).

    python -m tests.bench.trace [--turns 200] [--edge grpc|http]

Runs sequential turns through Switchboard, then directly, and lines up timestamps taken in
the three processes (all ``time.monotonic()``, i.e. CLOCK_MONOTONIC, so they compare across
processes on one host): the client's send and first text; Switchboard's interceptor entry,
upstream POST and first text event (this module, run as the server with BENCH_TRACE_SERVE=1, patches
those three points and writes them out); the simulator's request arrival and first chunk.
Prints the median and p90 of each leg. ``--edge http`` traces the OpenAI-compatible front door
instead: the middleware's entry (``begin``), the handler after authentication (``handler``), the
body parsed (``servicer``), then the same routing, request-building and POST points.
"""

from __future__ import annotations

import argparse
import asyncio
import atexit
import functools
import shutil
import statistics
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any, TextIO

import uvloop


def _patch_server(out: TextIO) -> None:
    """Wraps the three points of the server's first-token path that the trace reports."""
    from server.edge.conversations_servicer import ConversationsServicer
    from server.edge.interceptor import EdgeInterceptor
    from server.providers.openai import OpenAIAdapter
    from server.providers.transport import UpstreamClient
    from server.routing.router import Router
    from server.turns.events import AnswerText

    begin, send, event = EdgeInterceptor._begin, UpstreamClient._send, ConversationsServicer._event
    check, plan, build = ConversationsServicer._check, Router.plan, OpenAIAdapter.build_request

    def traced_check(self: Any, request: Any) -> Any:
        out.write(f"servicer {time.monotonic()}\n")
        return check(self, request)

    def traced_plan(self: Any, *args: Any, **kwargs: Any) -> Any:
        out.write(f"plan {time.monotonic()}\n")
        return plan(self, *args, **kwargs)

    def traced_build(self: Any, *args: Any) -> Any:
        out.write(f"upstream_task {time.monotonic()}\n")
        return build(self, *args)

    async def traced_begin(self: Any, method: str, metadata: Any) -> Any:
        if method.endswith("/Converse"):
            out.write(f"begin {time.monotonic()}\n")
        return await begin(self, method, metadata)

    async def traced_send(self: Any, *args: Any, **kwargs: Any) -> Any:
        out.write(f"post {time.monotonic()}\n")
        return await send(self, *args, **kwargs)

    def traced_event(ev: object, call: Any) -> Any:
        if isinstance(ev, AnswerText):
            out.write(f"text {time.monotonic()}\n")
        return event(ev, call)

    from server.http import completions
    from server.http.app import FrontDoor
    from server.http.response import Chunks

    edge, handle, parse, chunk_text = (FrontDoor._edge, completions.Completions.handle,
                                       completions.parse, Chunks.text)  # type: ignore[attr-defined]

    @functools.wraps(edge)  # keeps aiohttp's middleware marker
    async def traced_edge(self: Any, request: Any, handler: Any) -> Any:
        if request.path.endswith("/chat/completions"):
            out.write(f"begin {time.monotonic()}\n")
        return await edge(self, request, handler)

    async def traced_handle(self: Any, *args: Any) -> Any:
        out.write(f"handler {time.monotonic()}\n")
        return await handle(self, *args)

    def traced_parse(*args: Any) -> Any:
        out.write(f"servicer {time.monotonic()}\n")
        return parse(*args)

    def traced_chunk_text(self: Any, delta: str) -> bytes:
        out.write(f"text {time.monotonic()}\n")
        return chunk_text(self, delta)

    FrontDoor._edge = traced_edge  # type: ignore[method-assign]
    completions.Completions.handle = traced_handle  # type: ignore[method-assign,assignment]
    completions.parse = traced_parse  # type: ignore[attr-defined,assignment]
    Chunks.text = traced_chunk_text  # type: ignore[method-assign]
    EdgeInterceptor._begin = traced_begin  # type: ignore[method-assign]
    ConversationsServicer._check = traced_check  # type: ignore[method-assign]
    Router.plan = traced_plan  # type: ignore[method-assign]
    OpenAIAdapter.build_request = traced_build  # type: ignore[method-assign,assignment]
    UpstreamClient._send = traced_send  # type: ignore[method-assign]
    ConversationsServicer._event = staticmethod(traced_event)  # type: ignore[method-assign,assignment]


SERVE_ENV = "BENCH_TRACE_SERVE"  # set: this process is the traced server, not the driver


def serve() -> int:
    """``server.main`` with the trace points patched in (run with ``BENCH_TRACE_SERVE=1``)."""
    import os

    from server import main as server_main

    out = open(os.environ["BENCH_TRACE"], "a")  # noqa: SIM115 - closed at exit
    atexit.register(out.close)
    _patch_server(out)
    return server_main.main()


def _firsts(lines: list[tuple[str, float]], start: str, after: Sequence[str]
            ) -> list[dict[str, float]]:
    """Per ``start`` mark, the first of each ``after`` mark that follows it."""
    turns: list[dict[str, float]] = []
    for kind, t in lines:
        if kind == start:
            turns.append({start: t})
        elif turns and kind in after and kind not in turns[-1]:
            turns[-1][kind] = t
    return turns


def _legs(name: str, pairs: list[tuple[float, float]]) -> str:
    ms = sorted((b - a) * 1e3 for a, b in pairs)
    if not ms:
        return f"  {name:44} -"
    p90 = ms[min(len(ms) - 1, int(0.9 * len(ms)))]
    return f"  {name:44} median {statistics.median(ms):7.3f} ms   p90 {p90:7.3f} ms"


async def _client(target: str, sim_url: str, turns: int, http_port: int
                  ) -> tuple[list[Any], list[Any]]:
    from switchboard.v1 import llm_pb2 as lpb
    from switchboard_client import AsyncClient

    from tests.bench.drivers import HttpSseDriver, SwitchboardDriver
    from tests.bench.services import API_KEY, MODEL, UPSTREAM_KEY

    async with AsyncClient(target, API_KEY) as admin:
        created = await admin.create_llm(lpb.Llm(display_name="trace", endpoints=[lpb.Endpoint(
            api_spec=lpb.API_SPEC_OPENAI, base_url=sim_url, model=MODEL,
            api_key=UPSTREAM_KEY)]), skip_validation=True)
    sb: Any = SwitchboardDriver("sb", target, API_KEY, created.llm.id) if not http_port else \
        HttpSseDriver("frontdoor", f"http://127.0.0.1:{http_port}/v1", created.llm.id, API_KEY)
    direct = HttpSseDriver("direct", sim_url, MODEL, UPSTREAM_KEY)
    try:
        out = []
        for driver in (sb, direct):
            w = driver.worker()
            for _ in range(20):  # warm-up, not traced separately (dropped below)
                await w.turn()
            out.append([await w.turn() for _ in range(turns)])
            await asyncio.sleep(0.3)  # let the simulator write its trace
        return out[0], out[1]
    finally:
        await sb.close()
        await direct.close()


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m tests.bench.trace", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--turns", type=int, default=200)
    p.add_argument("--edge", choices=("grpc", "http"), default="grpc")
    args = p.parse_args(argv)
    from tests.bench.services import Pace, start_simulator, start_switchboard

    work = Path(tempfile.mkdtemp(prefix="switchboard-trace-"))
    sim_trace, sb_trace = work / "sim.trace", work / "server.trace"
    sim, sim_url = start_simulator("simulator", Pace(), work, trace=str(sim_trace))
    try:
        server, target, http_port = start_switchboard(
            work, module="tests.bench.trace",
            extra_env={"BENCH_TRACE": str(sb_trace), SERVE_ENV: "1"}, http=args.edge == "http")
        try:
            sb_turns, direct_turns = uvloop.run(_client(target, sim_url, args.turns, http_port))
        finally:
            server.stop()
    finally:
        sim.stop()
    sims = [tuple(map(float, line.split()[1:])) for line in sim_trace.read_text().splitlines()]
    server_text = sb_trace.read_text()
    shutil.rmtree(work, ignore_errors=True)
    sims = sims[20:20 + args.turns] + sims[40 + args.turns:40 + 2 * args.turns]
    server_lines = [(k, float(v)) for k, v in (ln.split() for ln in server_text.splitlines())]
    marks = _firsts(server_lines, "begin",
                    ("handler", "servicer", "plan", "upstream_task", "post", "text"))[20:]
    n = min(len(marks), len(sb_turns), args.turns)
    sb_sim, direct_sim = sims[:args.turns], sims[args.turns:]
    errors = Counter(t.error for t in sb_turns if t.error)
    print(f"{n} Switchboard turns, {len(direct_turns)} direct turns (concurrency 1)"
          f"{'; errors: ' + str(dict(errors)) if errors else ''}")
    print(f"Switchboard ({args.edge}):")
    print(_legs("client send -> server interceptor", [(sb_turns[i].start, marks[i]["begin"])
                                                        for i in range(n)]))
    steps: tuple[tuple[str, str], ...] = (("begin", "servicer"), ("servicer", "plan"),
                                          ("plan", "upstream_task"), ("upstream_task", "post"))
    if args.edge == "http":
        steps = (("begin", "handler"), ("handler", "servicer"), *steps[1:])
    for a, b in steps:
        print(_legs(f"  {a} -> {b}", [(m[a], m[b]) for m in marks[:n]]))
    print(_legs("POST starts -> simulator has the request", [(marks[i]["post"], sb_sim[i][0])
                                                               for i in range(n)]))
    print(_legs("simulator: request -> first chunk written", [(s[0], s[1]) for s in sb_sim]))
    print(_legs("first chunk -> server's first text event", [(sb_sim[i][1], marks[i]["text"])
                                                                for i in range(n)]))
    print(_legs("server's first text -> client has it", [(marks[i]["text"], sb_turns[i].first)
                                                           for i in range(n)]))
    print(_legs("total (client ttft)", [(t.start, t.first) for t in sb_turns]))
    print("Direct:")
    print(_legs("client send -> simulator has the request", [(direct_turns[i].start,
                                                               direct_sim[i][0])
                                                              for i in range(len(direct_sim))]))
    print(_legs("simulator: request -> first chunk written", [(s[0], s[1]) for s in direct_sim]))
    print(_legs("first chunk -> client has it", [(direct_sim[i][1], direct_turns[i].first)
                                                 for i in range(len(direct_sim))]))
    print(_legs("total (client ttft)", [(t.start, t.first) for t in direct_turns]))
    return 0


if __name__ == "__main__":
    import os

    sys.exit(serve() if os.environ.get(SERVE_ENV) else main())
