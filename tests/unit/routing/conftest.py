"""Fixtures for the routing tests: a fake clock, a seeded router, LLM and traffic helpers."""

from __future__ import annotations

import random
from collections.abc import Callable, Mapping

import pytest

from server.clock import FakeClock
from server.registry.llm import ApiSpec, Endpoint, Llm
from server.routing.router import Router
from server.secret import Secret

MakeLlm = Callable[..., Llm]
Serve = Callable[..., None]


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def router(clock: FakeClock) -> Router:
    return Router(clock, random.Random(1234))


@pytest.fixture
def make_llm() -> MakeLlm:
    """``make_llm("a", "b", priority={"b": 1}, window={"a": 8000})``."""

    def make(
        *ids: str,
        priority: Mapping[str, int] | None = None,
        window: Mapping[str, int] | None = None,
        llm_id: str = "llm-1",
    ) -> Llm:
        endpoints = tuple(
            Endpoint(
                id=i,
                api_spec=ApiSpec.OPENAI,
                base_url=f"https://{i}.invalid/v1",
                model="m",
                api_key=Secret("sk-test-0000"),
                priority=(priority or {}).get(i, 0),
                context_window_tokens=(window or {}).get(i, 0),
            )
            for i in ids
        )
        return Llm(id=llm_id, account_id="acct", display_name=llm_id, endpoints=endpoints)

    return make


@pytest.fixture
def serve(router: Router) -> Serve:
    """One successful attempt on ``endpoint_id`` with the given TTFT, as the engine reports it."""

    def run(endpoint_id: str, ttft_s: float, prompt_tokens: int = 500, probe: bool = False) -> None:
        attempt = router.admit(endpoint_id, probe=probe)
        assert attempt
        attempt.first_token(ttft_s, prompt_tokens)
        attempt.succeeded()

    return run
