"""Tables (Markdown) and the issue's targets, checked against one run's points.

Each target is checked for Switchboard and, on a line of its own, for the grpc.aio relay floor
(``tests.bench.relay_floor``): a target the floor misses too is out of reach of any grpc.aio
relay on this host."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any

from tests.bench.stats import Point

NAMES = {"direct": "direct (baseline)", "switchboard": "Switchboard",
         "floor": "grpc.aio relay floor", "session": "Switchboard, session turns",
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


def points_table(points: Sequence[Point], shape: str) -> str:
    """One row per point; "added" columns compare with the direct point of the same load."""
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
    return "\n".join(lines)


def litellm_table(points: Sequence[Point]) -> str:
    lines = ["| concurrency | turns/s Switchboard ÷ LiteLLM | added ttft p50 ms: Switchboard / "
             "LiteLLM | LiteLLM ÷ Switchboard (added ttft p50) |", "|---:|---:|---:|---:|"]
    for load in sorted({p.load for p in points if p.target == "litellm"}):
        sb, ll = _find(points, "switchboard", "closed", load), _find(points, "litellm", "closed",
                                                                       load)
        base = _find(points, "direct", "closed", load)
        if sb is None or ll is None or base is None:
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
    """Switchboard's targets; under each, the same target for the relay floor."""
    out: list[Check] = []
    sb = {c.name: c for c in _relay_checks(points, "switchboard")}
    floor = {c.name: c for c in _relay_checks(points, "floor")}
    for name in dict.fromkeys([*sb, *floor]):
        if name in sb:
            out.append(sb[name])
        if name in floor:
            out.append(replace(floor[name], name=f"{name}: {NAMES['floor']}", floor=True))
    if streams:
        kb = streams["rss_per_stream_kb"]
        out.append(Check(f"{streams['streams']} concurrent streams", "0 errors, < 100 KB each",
                         f"{streams['errors']} errors, {kb:.1f} KB each",
                         streams["errors"] == 0 and kb < 100))
    return out


def _relay_checks(points: Sequence[Point], relay: str) -> list[Check]:
    """The targets, measured on ``relay`` ("switchboard" or "floor")."""
    out: list[Check] = []

    def pair(load: float) -> tuple[Point | None, Point | None]:
        return _find(points, "direct", "closed", load), _find(points, relay, "closed", load)

    base, got = pair(1)
    if base and got:
        a50, a99 = got.ttft_p50_ms - base.ttft_p50_ms, got.ttft_p99_ms - base.ttft_p99_ms
        out.append(Check("c=1 added ttft p50", "≤ 1.0 ms", f"{a50:.2f} ms", a50 <= 1.0))
        out.append(Check("c=1 added ttft p99", "≤ 3 ms", f"{a99:.2f} ms", a99 <= 3.0))
    base, got = pair(50)
    if base and got:
        rel = got.turns_per_s / base.turns_per_s
        a50 = got.ttft_p50_ms - base.ttft_p50_ms
        out.append(Check("c=50 turns/s vs direct", "≥ 75%", f"{rel:.0%}", rel >= 0.75))
        out.append(Check("c=50 added ttft p50", "≤ 5 ms", f"{a50:.2f} ms", a50 <= 5.0))
    ll50, got50 = _find(points, "litellm", "closed", 50), _find(points, relay, "closed", 50)
    if ll50 and got50:
        x = got50.turns_per_s / ll50.turns_per_s
        out.append(Check("c=50 turns/s vs LiteLLM", "≥ 15x", f"{x:.1f}x", x >= 15))
    base, got = pair(1)
    ll1 = _find(points, "litellm", "closed", 1)
    if base and got and ll1:
        got_add, ll_add = got.ttft_p50_ms - base.ttft_p50_ms, ll1.ttft_p50_ms - base.ttft_p50_ms
        out.append(Check("c=1 added ttft p50 vs LiteLLM", "≤ 1/10 of LiteLLM's",
                         f"{got_add:.2f} ms vs {ll_add:.2f} ms", got_add <= ll_add / 10))
    return out


def checks_table(items: Sequence[Check]) -> str:
    """A floor line says whether the thinnest grpc.aio relay (``relay_floor``) meets the target
    in the same run: where even it misses, no grpc.aio server on this host is likely to."""
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
