"""The regret simulation runs, is reproducible, and the router beats a random choice."""

from __future__ import annotations

import pytest

from server.routing.regret import SimConfig, fleet_trace, main, run


@pytest.fixture(scope="module")
def config() -> SimConfig:
    return SimConfig(turns=4_000, seed=11)


def test_router_beats_a_random_router(config: SimConfig) -> None:
    trace = fleet_trace(config)
    routed = run(config, "router", trace)
    randomly = run(config, "random", trace)
    oracle = run(config, "oracle", trace)
    assert routed.mean_regret_ms < randomly.mean_regret_ms / 3
    assert routed.p95_regret_ms < randomly.p95_regret_ms
    assert routed.best_share > 2 * randomly.best_share
    assert oracle.best_share == 1.0
    assert abs(oracle.mean_regret_ms) < 10.0  # the noise floor
    assert routed.unserved <= randomly.unserved + 5


def test_router_without_hedging_still_beats_random() -> None:
    config = SimConfig(turns=4_000, seed=12, hedging=False)
    trace = fleet_trace(config)
    assert run(config, "router", trace).mean_regret_ms < run(config, "random", trace).mean_regret_ms


def test_simulation_is_reproducible(config: SimConfig) -> None:
    small = SimConfig(turns=500, seed=config.seed)
    assert run(small, "router") == run(small, "router")


def test_unknown_policy_is_rejected() -> None:
    with pytest.raises(ValueError):
        run(SimConfig(turns=10), "psychic")


def test_command_line_prints_the_figures(capsys: pytest.CaptureFixture[str]) -> None:
    main(["--turns", "300", "--seed", "3"])
    out = capsys.readouterr().out
    assert "router" in out and "random" in out and "oracle" in out
    assert "mean regret" in out and "p95 regret" in out and "to best" in out
