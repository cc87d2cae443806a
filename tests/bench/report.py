"""Tables (Markdown) and the issue's targets, checked against one run's points.

The gRPC targets are also checked, on lines of their own, for the grpc.aio relay floor
(``tests.bench.relay_floor``): a target the floor misses too is out of reach of any grpc.aio
relay on this host. The gRPC targets are reported for both load generators, the Python grpc.aio
client and the compiled Go one (``tests.bench.goclient``), each on its own line."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from tests.bench.stats import Point

NAMES = {"direct": "direct (baseline)",
         "tensorzero": "TensorZero embedded (in-process)",
         "switchboard": "Switchboard gRPC (Python client)",
         "switchboard-go": "Switchboard gRPC (Go client)",
         "session": "Switchboard gRPC, session turns (Python client)",
         "session-go": "Switchboard gRPC, session turns (Go client)",
         "switchboard-history":
             "Switchboard gRPC, stateless with the session's history (Python client)",
         "frontdoor": "Switchboard OpenAI front door",
         "connect": "Switchboard Converse over Connect (HTTP port)",
         "floor": "grpc.aio relay floor", "http-floor": "aiohttp relay floor",
         "litellm": "LiteLLM proxy"}


def _f(value: float, digits: int = 1) -> str:
    return "-" if value is None or math.isnan(value) else f"{value:.{digits}f}"


def _find(points: Sequence[Point], target: str, shape: str, load: float) -> Point | None:
    for p in points:
        if p.target == target and p.shape == shape and p.load == load:
            return p
    return None


def _errors(p: Point) -> str:
    if not p.errors:
        return "0"
    kinds = ", ".join(f"{k} x{v}" for k, v in sorted(p.error_kinds.items()))
    return f"{p.errors} ({kinds})"


def points_table(points: Sequence[Point], shape: str,
                 missing: dict[str, str] | None = None) -> str:
    """One row per point; "added" columns compare with the direct point of the same load.
    ``missing``: targets that did not run, each with a row saying why."""
    load_name = "concurrency" if shape == "closed" else "rate/s"
    lines = [
        f"| {load_name} | target | turns/s | vs direct | ttft p50 ms | ttft p99 ms | "
        "added ttft p50 ms | added ttft p99 ms | gap p99 ms | added gap p99 ms | "
        "CPU s / 1k turns | RSS MB | errors |",
        "|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    loads = sorted({p.load for p in points if p.shape == shape})
    for load in loads:
        base = _find(points, "direct", shape, load)
        for target in NAMES:
            p = _find(points, target, shape, load)
            if p is None:
                continue
            rel = added50 = added99 = addgap = math.nan
            if base is not None and target != "direct":
                rel = p.turns_per_s / base.turns_per_s if base.turns_per_s else math.nan
                added50 = p.ttft_p50_ms - base.ttft_p50_ms
                added99 = p.ttft_p99_ms - base.ttft_p99_ms
                addgap = p.gap_p99_ms - base.gap_p99_ms
            lines.append(
                f"| {load:g} | {NAMES[target]} | {_f(p.turns_per_s)} | "
                f"{'-' if math.isnan(rel) else f'{rel:.0%}'} | {_f(p.ttft_p50_ms, 2)} | "
                f"{_f(p.ttft_p99_ms, 2)} | {_f(added50, 2)} | {_f(added99, 2)} | "
                f"{_f(p.gap_p99_ms, 2)} | {_f(addgap, 2)} | {_f(p.proxy_cpu_s_per_1k, 2)} | "
                f"{_f(p.proxy_rss_mb, 0)} | {_errors(p)} |")
    for target, why in (missing or {}).items():
        lines.append(f"| - | {NAMES.get(target, target)} | not run: {why.replace('|', '/')} |"
                     + " - |" * 10)
    return "\n".join(lines)


def litellm_table(points: Sequence[Point]) -> str:
    lines = ["| concurrency | turns/s Switchboard ÷ LiteLLM | added ttft p50 ms: Switchboard / "
             "LiteLLM | LiteLLM ÷ Switchboard (added ttft p50) |", "|---:|---:|---:|---:|"]
    for load in sorted({p.load for p in points if p.target == "litellm"}):
        sb, ll = _find(points, "switchboard", "closed", load), _find(points, "litellm", "closed",
                                                                       load)
        base = _find(points, "direct", "closed", load)
        if sb is None or ll is None or base is None or not ll.turns_per_s:
            continue
        sb_add, ll_add = sb.ttft_p50_ms - base.ttft_p50_ms, ll.ttft_p50_ms - base.ttft_p50_ms
        ratio = ll_add / sb_add if sb_add > 0 else math.inf
        lines.append(f"| {load:g} | {sb.turns_per_s / ll.turns_per_s:.1f}x | "
                     f"{sb_add:.2f} / {ll_add:.2f} | {ratio:.0f}x |")
    return "\n".join(lines)


@dataclass(frozen=True, slots=True)
class Check:
    name: str
    target: str
    measured: str
    ok: bool | None  # None: not measured in this run
    floor: bool = False  # measured on the relay floor, not on Switchboard


def checks(points: Sequence[Point], streams: dict[str, Any] | None) -> list[Check]:
    """Issue 16's targets, each measured in this run; gRPC ones also for the relay floor."""
    out: list[Check] = []

    def at(target: str, load: float) -> Point | None:
        return _find(points, target, "closed", load)

    def added(target: str, limit: float) -> None:
        base, got = at("direct", 1), at(target, 1)
        if base and got:
            a50 = got.ttft_p50_ms - base.ttft_p50_ms
            out.append(Check(f"c=1 added ttft p50: {NAMES[target]}", f"≤ {limit:g} ms",
                             f"{a50:.2f} ms", a50 <= limit, floor="floor" in target))

    grpc, t0, front = at("switchboard", 50), at("tensorzero", 50), at("frontdoor", 50)
    floor, session, direct = at("floor", 50), at("session", 50), at("direct", 50)
    grpc_go, session_go = at("switchboard-go", 50), at("session-go", 50)
    connect = at("connect", 50)  # the same Converse on the HTTP port: not a target, a reference
    for relay in (grpc, grpc_go, floor, connect):
        if relay and t0:
            out.append(Check(f"c=50 turns/s: {NAMES[relay.target]} vs TensorZero",
                             "≥ TensorZero's", f"{relay.turns_per_s:.1f} vs "
                             f"{t0.turns_per_s:.1f}", relay.turns_per_s >= t0.turns_per_s,
                             floor=relay is floor))
    for relay in (grpc, grpc_go, floor, connect):
        if relay and front:
            ratio = relay.proxy_cpu_s_per_1k / front.proxy_cpu_s_per_1k
            out.append(Check(f"c=50 CPU per turn: {NAMES[relay.target]} vs the front door",
                             "≤ 1.3x", f"{relay.proxy_cpu_s_per_1k:.2f} vs "
                             f"{front.proxy_cpu_s_per_1k:.2f} ms ({ratio:.2f}x)", ratio <= 1.3,
                             floor=relay is floor))
    for sessions, stateless, client in ((session, grpc, "Python"), (session_go, grpc_go, "Go")):
        if sessions and stateless:
            rel = sessions.turns_per_s / stateless.turns_per_s
            out.append(Check(f"c=50 session turns/s vs stateless ({client} client)", "≥ 95%",
                             f"{rel:.0%} ({sessions.turns_per_s:.1f} vs "
                             f"{stateless.turns_per_s:.1f})", rel >= 0.95))
    history = at("switchboard-history", 50)  # the same conversation, resent by the client
    if session and history:
        rel = session.turns_per_s / history.turns_per_s
        out.append(Check("c=50 session turns vs stateless turns carrying the same history "
                         "(Python client)", "≥ 95%", f"{rel:.0%} ({session.turns_per_s:.1f} vs "
                         f"{history.turns_per_s:.1f})", rel >= 0.95))
    added("frontdoor", 1.0)
    added("http-floor", 1.0)  # the thinnest HTTP relay: is the front door's target in reach?
    for target in ("switchboard", "switchboard-go", "session", "session-go", "floor"):
        added(target, 1.3)
    for relay in (front, at("http-floor", 50)):
        if relay and direct:
            rel = relay.turns_per_s / direct.turns_per_s
            out.append(Check(f"c=50 turns/s: {NAMES[relay.target]} vs direct", "≥ 90%",
                             f"{rel:.0%}", rel >= 0.9, floor=relay.target == "http-floor"))
    if streams:
        kb = streams["rss_per_stream_kb"]
        out.append(Check(f"{streams['streams']} concurrent streams", "0 errors, < 60 KB each",
                         f"{streams['errors']} errors, {kb:.1f} KB each",
                         streams["errors"] == 0 and kb < 60))
    return out


def cpu_table(points: Sequence[Point]) -> str:
    """CPU milliseconds per completed turn, per process, behind each closed-loop row. The
    target's own process (Switchboard, the floor, LiteLLM) is read from /proc; TensorZero's
    embedded gateway runs inside the load generator, so its cost is in that column. Text
    deltas per turn: how many the client received (fewer when deltas read together were sent
    as one, which happens more the busier the host is): CPU per turn moves with it."""
    lines = ["| concurrency | target | target process | simulator | load generator | all three | "
             "text deltas per turn |", "|---:|---|---:|---:|---:|---:|---:|"]
    for load in sorted({p.load for p in points if p.shape == "closed"}):
        for target in NAMES:
            p = _find(points, target, "closed", load)
            if p is None:
                continue
            own = 0.0 if math.isnan(p.proxy_cpu_s_per_1k) else p.proxy_cpu_s_per_1k
            total = own + p.upstream_cpu_s_per_1k + p.loadgen_cpu_s_per_1k
            lines.append(f"| {load:g} | {NAMES[target]} | {_f(p.proxy_cpu_s_per_1k, 2)} | "
                         f"{_f(p.upstream_cpu_s_per_1k, 2)} | {_f(p.loadgen_cpu_s_per_1k, 2)} | "
                         f"{_f(total, 2)} | {_f(p.deltas_per_turn)} |")
    return "\n".join(lines)


def checks_table(items: Sequence[Check]) -> str:
    """A floor line says whether the thinnest grpc.aio relay (``relay_floor``) or aiohttp relay
    (``http_floor``) meets the target in the same run: where even it misses, no such server on
    this host is likely to."""
    lines = ["| target | goal | measured | |", "|---|---|---|---|"]
    for c in items:
        if c.ok is None:
            verdict = "-"
        elif c.floor:
            verdict = "floor meets it" if c.ok else "FLOOR MISSES IT TOO"
        else:
            verdict = "met" if c.ok else "MISSED"
        lines.append(f"| {c.name} | {c.target} | {c.measured} | {verdict} |")
    return "\n".join(lines)


def streams_table(s: dict[str, Any]) -> str:
    return "\n".join([
        "| streams | held at once (peak) | stream length s | server RSS before MB | "
        "at peak MB | RSS per stream KB | CPU s | errors |",
        "|---:|---:|---:|---:|---:|---:|---:|---|",
        f"| {s['streams']} | {s['peak_in_flight']} | {s['stream_s']:.1f} | "
        f"{s['rss_before_kb'] / 1024:.0f} | {s['rss_peak_kb'] / 1024:.0f} | "
        f"{s['rss_per_stream_kb']:.1f} | {s['cpu_s']:.2f} | "
        f"{s['errors']}{' (' + s['error_kinds'] + ')' if s['errors'] else ''} |",
    ])
