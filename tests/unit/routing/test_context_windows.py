"""Issue 19: context windows are learned, and an unknown window is worth a try.

With a 256- and a 4,096-token llama-server and no declared windows, a long prompt failed
"too long for every endpoint" and the larger server was never tried.
"""

from __future__ import annotations

import orjson
import pytest

from server.providers.base import ErrorKind, UpstreamError
from server.providers.errors import classify_http_error, context_window_from
from server.routing.route_plan import Reason, StopReason
from server.routing.router import Router
from server.turns.failures import terminal

from .conftest import MakeLlm

LLAMA_CPP_400 = {"error": {"code": 400, "type": "exceed_context_size_error", "message": (
    "request (1240 tokens) exceeds the available context size (256 tokens), try increasing it")}}


@pytest.mark.parametrize(("message", "window"), [
    ("This model's maximum context length is 128000 tokens. However, your messages resulted "
     "in 130000 tokens. Please reduce the length of the messages.", 128_000),  # OpenAI, vLLM
    ("request (1240 tokens) exceeds the available context size (256 tokens), try increasing "
     "it", 256),  # llama.cpp
    ("The input token count (1200000) exceeds the maximum number of tokens allowed "
     "(1048576).", 1_048_576),  # Gemini
    ("This model's maximum context length is 8,192 tokens, however you requested 9,000 "
     "tokens.", 8_192),  # Azure OpenAI
    ("Input tokens exceed the configured limit of 272000 tokens.", 272_000),
    ("Please reduce the length of the messages.", 0),
])
def test_the_window_an_error_states_is_read(message: str, window: int) -> None:
    assert context_window_from(message) == window


def test_a_llama_cpp_context_error_carries_its_window() -> None:
    error = classify_http_error(400, {}, orjson.dumps(LLAMA_CPP_400), label="The endpoint")
    assert error.kind is ErrorKind.CONTEXT_LENGTH and error.context_window_tokens == 256


def _context_error(window: int) -> UpstreamError:
    return UpstreamError(ErrorKind.CONTEXT_LENGTH, "too long", context_window_tokens=window)


def _fail(router: Router, eid: str, error: UpstreamError) -> None:
    attempt = router.admit(eid)
    assert attempt
    attempt.failed(error)


def test_a_context_failure_reaches_an_endpoint_whose_window_is_unknown(
        router: Router, make_llm: MakeLlm) -> None:
    llm = make_llm("small", "big")  # no declared windows
    error = _context_error(256)
    _fail(router, "small", error)
    nxt = router.next_after(llm, 300, "small", error, ["small"])
    assert nxt.endpoint_ids == ("big",)
    assert nxt.candidates[0].reason is Reason.LARGER_CONTEXT_WINDOW


def test_a_learned_window_sends_the_next_long_prompt_elsewhere_first(
        router: Router, make_llm: MakeLlm) -> None:
    llm = make_llm("small", "big")
    _fail(router, "small", _context_error(256))
    plan = router.plan(llm, 1_000)
    assert plan.endpoint_ids == ("big", "small")  # "small" no longer fits: it goes last
    assert not plan.candidates[1].fits_context
    assert router.plan(llm, 100).candidates[0].fits_context


def test_the_failover_ends_when_no_larger_window_is_left(router: Router,
                                                         make_llm: MakeLlm) -> None:
    llm = make_llm("small", "big", "tiny")
    _fail(router, "tiny", _context_error(128))
    small, big = _context_error(256), _context_error(4_096)
    _fail(router, "small", small)
    assert router.next_after(llm, 5_000, "small", small, ["small"]).endpoint_ids == ("big",)
    _fail(router, "big", big)
    nxt = router.next_after(llm, 5_000, "big", big, ["small", "big"])
    assert nxt.candidates == () and nxt.stop is StopReason.NO_LARGER_CONTEXT_WINDOW


def test_every_endpoint_is_said_only_when_true() -> None:
    error = _context_error(256)
    assert "every endpoint of this LLM:" in terminal(error, every_endpoint=True).message
    narrower = terminal(error, every_endpoint=False).message
    assert "every endpoint of this LLM that supports what this turn needs" in narrower
