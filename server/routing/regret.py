"""Routing regret on a simulated fleet: ``python -m server.routing.regret`` (``make bench-router``).

A fleet of endpoints whose mean time to first token drifts (a mean-reverting random walk in log
space), with occasional latency spikes and outages, all from a seed. Turns arrive as a Poisson
process; the fleet's state and each endpoint's would-be TTFT for every turn are drawn once and
shared by every policy (common random numbers), so policies are compared on the same traffic.

The ``Router`` is driven as the turn engine drives it, on a ``FakeClock``: plan, attempt, hedge
after ``hedge_delay_s``, fail over with ``next_after``, probes from a ``ProbeScheduler``, and
every bookkeeping callback. Baselines: ``random`` (uniform choice, fail over on error) and
``oracle`` (always the endpoint with the lowest current mean; the noise floor).

Regret of a turn = achieved TTFT - the lowest current mean TTFT among endpoints that are up.
Reported: its mean and p95, the share of turns whose first choice was that best endpoint, and
turns that found nothing to serve them.
"""

from __future__ import annotations

import argparse
import math
import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from server.clock import FakeClock
from server.providers.base import ErrorKind, UpstreamError
from server.registry.llm import ApiSpec, Endpoint, Llm
from server.routing.attempt import Attempt
from server.routing.probe_prompt import PROBE_PROMPT_TOKENS
from server.routing.probe_schedule import ProbeScheduler
from server.routing.router import Router
from server.secret import Secret

_PROMPT_TOKENS = 1_200
_FAIL_AFTER_S = 0.08  # a down endpoint answers 503 after this long


@dataclass(frozen=True, slots=True)
class SimConfig:
    turns: int = 20_000
    seed: int = 7
    centers_s: tuple[float, ...] = (0.30, 0.38, 0.50, 0.80)
    mean_turn_gap_s: float = 0.5
    drift_sigma: float = 0.15  # log-space volatility per sqrt(minute)
    reversion_per_min: float = 0.05
    noise_sigma: float = 0.25  # per-request lognormal spread
    spikes_per_hour: float = 2.0
    spike_s: tuple[float, float] = (20.0, 90.0)
    spike_factor: tuple[float, float] = (3.0, 8.0)
    outages_per_hour: float = 0.5
    outage_s: tuple[float, float] = (30.0, 180.0)
    hedging: bool = True


@dataclass(frozen=True, slots=True)
class RegretReport:
    policy: str
    turns: int
    mean_regret_ms: float
    p95_regret_ms: float
    best_share: float
    unserved: int
    mean_ttft_ms: float


class _SimEndpoint:
    __slots__ = ("center", "log_mean", "outage_until", "spike_factor", "spike_until")

    def __init__(self, center_s: float) -> None:
        self.center = math.log(center_s)
        self.log_mean = self.center
        self.spike_until = -1.0
        self.spike_factor = 1.0
        self.outage_until = -1.0


@dataclass(frozen=True, slots=True)
class _SimTurn:
    at: float
    means: tuple[float, ...]  # current mean TTFT per endpoint, s
    up: tuple[bool, ...]
    ttft: tuple[float, ...]  # this turn's would-be TTFT per endpoint, s


def fleet_trace(config: SimConfig) -> list[_SimTurn]:
    """The fleet's evolution and every turn's would-be TTFTs, from ``config.seed``."""
    rng = random.Random(config.seed)
    eps = [_SimEndpoint(c) for c in config.centers_s]
    now, out = 0.0, []
    for _ in range(config.turns):
        dt = rng.expovariate(1.0 / config.mean_turn_gap_s)
        now += dt
        for e in eps:
            _evolve(e, config, rng, now, dt / 60.0)
        means = tuple(_mean_s(e, now) for e in eps)
        s = config.noise_sigma
        ttft = tuple(m * math.exp(rng.gauss(-s * s / 2.0, s)) for m in means)
        out.append(_SimTurn(now, means, tuple(e.outage_until <= now for e in eps), ttft))
    return out


def _evolve(e: _SimEndpoint, c: SimConfig, rng: random.Random, now: float, dt_min: float) -> None:
    e.log_mean += c.reversion_per_min * (e.center - e.log_mean) * dt_min
    e.log_mean += c.drift_sigma * math.sqrt(dt_min) * rng.gauss(0.0, 1.0)
    if now >= e.spike_until and rng.random() < c.spikes_per_hour * dt_min / 60.0:
        e.spike_until = now + rng.uniform(*c.spike_s)
        e.spike_factor = rng.uniform(*c.spike_factor)
    if now >= e.outage_until and rng.random() < c.outages_per_hour * dt_min / 60.0:
        e.outage_until = now + rng.uniform(*c.outage_s)


def _mean_s(e: _SimEndpoint, now: float) -> float:
    return math.exp(e.log_mean) * (e.spike_factor if now < e.spike_until else 1.0)


def sim_llm(n: int) -> Llm:
    endpoints = tuple(
        Endpoint(f"ep-{i}", ApiSpec.OPENAI, f"https://sim-{i}.invalid/v1", "sim", Secret("k"))
        for i in range(n)
    )
    return Llm("llm-sim", "acct-sim", "Simulated", endpoints)


class _RouterPolicy:
    """Drives a Router the way the turn engine does."""

    def __init__(self, config: SimConfig, llm: Llm) -> None:
        self.clock = FakeClock(0.0)
        self.router = Router(self.clock, random.Random(config.seed + 1))
        self.probes = ProbeScheduler(self.clock, random.Random(config.seed + 2), view=self.router)
        self.probe_rng = random.Random(config.seed + 3)
        self.llm = llm
        self.hedging = config.hedging
        self.index = {ep.id: i for i, ep in enumerate(llm.endpoints)}
        self.live: dict[str, Attempt] = {}  # admitted attempts of the current turn

    def __call__(self, turn: _SimTurn) -> tuple[float | None, int | None]:
        self.clock.advance(max(0.0, turn.at - self.clock.monotonic()))
        self.probes.touch(self.llm.id, turn.at + 60.0)
        for _, eid in self.probes.due(turn.at, [self.llm]):
            self._probe(eid, turn)
        plan = self.router.plan(self.llm, _PROMPT_TOKENS)
        if not plan.candidates:
            return None, None
        ids = plan.endpoint_ids
        first = self.index[ids[0]]
        if not self._admit(ids[0]):  # only under concurrency; turns here are not
            return None, first
        t1 = self._ttft(ids[0], turn)
        if t1 is None:
            return self._failover(turn, ids[0], [ids[0]], _FAIL_AFTER_S), first
        if self.hedging and len(ids) > 1:
            delay = self.router.hedge_delay_s(ids[0], _PROMPT_TOKENS)
            if t1 > delay and self._admit(ids[1]):
                return self._race(turn, ids[0], t1, ids[1], delay), first
        self._won(ids[0], t1)
        return t1, first

    def _race(self, turn: _SimTurn, a: str, ta: float, b: str, delay: float) -> float:
        tb = self._ttft(b, turn)
        if tb is not None and delay + tb < ta:
            self._won(b, tb)
            self._lost(a, delay + tb)
            return delay + tb
        self._won(a, ta)
        if tb is None:
            self._failed(b)
        else:
            self._lost(b, ta - delay)
        return ta

    def _failover(
        self, turn: _SimTurn, failed: str, attempted: list[str], elapsed: float
    ) -> float | None:
        error = UpstreamError(ErrorKind.SERVER_ERROR, "simulated outage", status=503)
        self._failed(failed)
        while True:
            plan = self.router.next_after(self.llm, _PROMPT_TOKENS, failed, error, attempted)
            if not plan.candidates:
                return None
            c = plan.candidates[0]
            attempted.append(c.endpoint_id)
            if not self._admit(c.endpoint_id):
                continue
            elapsed += c.backoff_s
            t = self._ttft(c.endpoint_id, turn)
            if t is not None:
                self._won(c.endpoint_id, t)
                return elapsed + t
            elapsed += _FAIL_AFTER_S
            failed = c.endpoint_id
            self._failed(failed)

    def _probe(self, eid: str, turn: _SimTurn) -> None:
        attempt = self.router.admit(eid, probe=True)
        if attempt is None:
            return
        i = self.index[eid]
        if turn.up[i]:
            t = turn.means[i] * math.exp(self.probe_rng.gauss(-0.03, 0.25))
            attempt.first_token(t, PROBE_PROMPT_TOKENS)
            attempt.succeeded()
        else:
            attempt.failed(UpstreamError(ErrorKind.SERVER_ERROR, "simulated outage", status=503))

    def _ttft(self, eid: str, turn: _SimTurn) -> float | None:
        i = self.index[eid]
        return turn.ttft[i] if turn.up[i] else None

    def _admit(self, eid: str) -> bool:
        attempt = self.router.admit(eid)
        if attempt is not None:
            self.live[eid] = attempt
        return attempt is not None

    def _won(self, eid: str, ttft: float) -> None:
        attempt = self.live.pop(eid)
        attempt.first_token(ttft, _PROMPT_TOKENS)
        attempt.succeeded()

    def _lost(self, eid: str, waited: float) -> None:
        attempt = self.live.pop(eid)
        attempt.first_token_missed(waited, _PROMPT_TOKENS)
        attempt.cancelled()

    def _failed(self, eid: str) -> None:
        err = UpstreamError(ErrorKind.SERVER_ERROR, "simulated outage", status=503)
        self.live.pop(eid).failed(err)


def _random_policy(seed: int, n: int) -> Callable[[_SimTurn], tuple[float | None, int | None]]:
    rng = random.Random(seed + 4)

    def turn_fn(turn: _SimTurn) -> tuple[float | None, int | None]:
        order = rng.sample(range(n), n)
        elapsed = 0.0
        for i in order[:4]:
            if turn.up[i]:
                return elapsed + turn.ttft[i], order[0]
            elapsed += _FAIL_AFTER_S
        return None, order[0]

    return turn_fn


def _oracle(turn: _SimTurn) -> tuple[float | None, int | None]:
    best = _best(turn)
    return (None, None) if best is None else (turn.ttft[best], best)


def _best(turn: _SimTurn) -> int | None:
    up = [i for i in range(len(turn.means)) if turn.up[i]]
    return min(up, key=turn.means.__getitem__) if up else None


def run(config: SimConfig, policy: str, trace: Sequence[_SimTurn] | None = None) -> RegretReport:
    """Simulate ``policy`` ("router", "random" or "oracle") and measure its regret."""
    trace = fleet_trace(config) if trace is None else trace
    n = len(config.centers_s)
    step: Callable[[_SimTurn], tuple[float | None, int | None]]
    if policy == "router":
        step = _RouterPolicy(config, sim_llm(n))
    elif policy == "random":
        step = _random_policy(config.seed, n)
    elif policy == "oracle":
        step = _oracle
    else:
        raise ValueError(f"unknown policy {policy!r}")
    regrets: list[float] = []
    achieved_sum, best_hits, unserved = 0.0, 0, 0
    for turn in trace:
        achieved, first = step(turn)
        best = _best(turn)
        if achieved is None or best is None:
            unserved += 1
            continue
        regrets.append(achieved - turn.means[best])
        achieved_sum += achieved
        best_hits += first == best
    regrets.sort()
    served = max(1, len(regrets))
    return RegretReport(
        policy=policy,
        turns=len(trace),
        mean_regret_ms=1000.0 * sum(regrets) / served,
        p95_regret_ms=1000.0 * regrets[int(0.95 * (len(regrets) - 1))] if regrets else 0.0,
        best_share=best_hits / served,
        unserved=unserved,
        mean_ttft_ms=1000.0 * achieved_sum / served,
    )


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    defaults = SimConfig()
    parser.add_argument("--turns", type=int, default=defaults.turns)
    parser.add_argument("--seed", type=int, default=defaults.seed)
    parser.add_argument("--no-hedging", action="store_true")
    args = parser.parse_args(argv)
    config = SimConfig(turns=args.turns, seed=args.seed, hedging=not args.no_hedging)
    trace = fleet_trace(config)
    hedging = "on" if config.hedging else "off"
    n = len(config.centers_s)
    print(f"{config.turns} turns, {n} endpoints, seed {config.seed}, hedging {hedging}")
    print("regret = achieved TTFT - best current mean TTFT among endpoints that are up")
    header = ("policy", "mean regret", "p95 regret", "to best", "mean ttft", "unserved")
    print("{:<8} {:>12} {:>11} {:>8} {:>10} {:>9}".format(*header))
    for policy in ("router", "random", "oracle"):
        r = run(config, policy, trace)
        print(
            f"{r.policy:<8} {r.mean_regret_ms:>9.1f} ms {r.p95_regret_ms:>8.1f} ms "
            f"{r.best_share:>8.1%} {r.mean_ttft_ms:>7.1f} ms {r.unserved:>9d}"
        )


if __name__ == "__main__":
    main()
