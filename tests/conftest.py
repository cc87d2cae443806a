"""The slow suites, in one place: ``make test-fast`` (``pytest -m "not slow"``) skips them,
``make test`` and CI run everything.

A suite is slow when it builds or starts a third-party program (Go, Node, LiteLLM, llama.cpp,
a browser), installs packages, fuzzes, loads or floods the server, or runs for a fixed time
(the soak and bench smokes, the demo).
"""

from __future__ import annotations

from pathlib import Path

import pytest

_ROOT = Path(__file__).resolve().parent.parent
SLOW_FILES = frozenset({
    "tests/integration/test_go_client.py",
    "tests/integration/test_node_client.py",
    "tests/integration/test_litellm.py",
    "tests/integration/test_bench_smoke.py",
    "tests/integration/test_lab_browser.py",
    "tests/integration/test_readme.py",
    "tests/integration/test_client_package.py",  # installs the client into a fresh venv
    "tests/integration/test_demo.py",  # the whole demo, as `make demo` runs it
})
SLOW_DIRS = ("tests/llama/", "tests/unit/fuzz/")  # fuzz: atheris and the hypothesis fuzzers
SLOW_TESTS = frozenset({
    "tests/integration/test_faults.py::test_soak_smoke_30s",
    # Load and attack runs: 14 s of hung upstreams, 2,300 calls past the limit, a metadata flood.
    "tests/integration/test_routing.py::test_a_failing_endpoint_costs_little_and_every_turn_succeeds",
    "tests/security/test_overload.py::test_every_caller_beyond_the_limit_gets_retry_info",
    "tests/security/test_metadata_flood.py::test_metadata_flood_keeps_rss_bounded",
    # Minutes of outage and recovery played through the router, turn by turn.
    "tests/integration/test_faults.py::test_a_recovered_endpoint_rejoins_its_tier_under_stateless_traffic",
    "tests/integration/test_faults.py::test_an_endpoint_down_for_60s_costs_the_trickle_nothing",
})


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "slow: a slow suite (third-party programs, fuzzing, timed smokes); "
        "`make test-fast` deselects it")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        path = item.path.resolve().relative_to(_ROOT).as_posix()
        node = f"{path}::{item.name.split('[')[0]}"
        if path in SLOW_FILES or path.startswith(SLOW_DIRS) or node in SLOW_TESTS:
            item.add_marker(pytest.mark.slow)
