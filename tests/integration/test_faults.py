"""Issue 9: fault injection, deadlines and cancellation against real simulators.

Every scenario asserts four things: what moved the turn on (the route reasons the caller saw,
and which timer fired: an upstream's error, the hedge delay, a retry backoff, a timeout phase),
the attempts each endpoint received (from the simulators' request logs), that no truncated
answer is reported as a success, and that a healthy turn works afterwards. None measures the
host's wall time: a busy CI machine makes every turn slower, not different. The server runs
on a ``FakeClock`` for its routing decisions, so "afterwards" means "once breakers and
cooldowns allow", reached by advancing the clock instead of sleeping. Timeouts are small
(``first_token_timeout_s`` 0.5 s) and hedge and stall bounds are derived from a few warm-up
turns, so nothing waits for the 20 s or 30 s the faults would take.

The outage-then-recovery scenario under a steady trickle and a 30 s soak smoke run are at the
end; ``tests/integration/test_routing.py`` has the routing basics these build on.
"""

from __future__ import annotations

import asyncio
import dataclasses
import itertools
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
import pytest
from switchboard.v1 import conversations_pb2 as cpb
from switchboard.v1 import llm_pb2 as lpb
from switchboard_client import AsyncClient, Reply

from server.app import Switchboard
from server.clock import FakeClock
from server.simulator import Behavior, Fault, FaultKind, RecordedRequest, Simulator, Usage
from tests.support import API_KEY, create_llm, endpoint, reason_and_retry, settings

WORDS = " ".join(f"w{i}" for i in range(60))
HEALTHY = Behavior(text=WORDS, chunks=60, chunk_gap_s=0.001)
FIRST_TOKEN_S = 0.5
GUARD_S = 10.0  # how long an awaited event may take before the test gives up: not a bound


@dataclass
class Env:
    app: Switchboard
    clock: FakeClock
    client: AsyncClient


@asynccontextmanager
async def fake_clock_env(tmp_path: Path, **overrides: Any) -> AsyncIterator[Env]:
    clock = FakeClock()
    overrides.setdefault("probes_per_hour", 4)
    app = Switchboard(settings(tmp_path, **overrides), clock=clock)
    await app.start()
    await app.pause_background()  # no probes unless a test ticks them: logs count turns
    try:
        async with AsyncClient(f"127.0.0.1:{app.port}", API_KEY) as client:
            yield Env(app, clock, client)
    finally:
        await app.stop(grace_s=1.0)


@pytest.fixture
async def env(tmp_path: Path) -> AsyncIterator[Env]:
    async with fake_clock_env(tmp_path, first_token_timeout_s=FIRST_TOKEN_S) as e:
        yield e


# -- helpers ---------------------------------------------------------------------------------


@dataclass
class Outcome:
    reply: Reply
    events: list[Any]
    error: grpc.aio.AioRpcError | None

    @property
    def code(self) -> grpc.StatusCode:
        return grpc.StatusCode.OK if self.error is None else self.error.code()

    @property
    def details(self) -> str:
        return "" if self.error is None else self.error.details() or ""

    def info(self) -> tuple[str, float | None]:
        """(ErrorInfo.reason, RetryInfo delay in seconds or None)."""
        assert self.error is not None
        return reason_and_retry(self.error)

    @property
    def served_by(self) -> str:
        assert self.reply.finished is not None
        return self.reply.finished.endpoint_id

    def hedged_to(self, endpoint_id: str) -> bool:
        """A hedge was started on ``endpoint_id``: the turn waited out another endpoint's
        hedge delay before trying it."""
        return any(r.reason == cpb.ROUTE_REASON_HEDGE and r.endpoint_id == endpoint_id
                   for r in self.reply.routes)

    @property
    def reasons(self) -> list[str]:
        """Why each attempt was started, in order: ``["FASTEST", "HEDGE"]`` says the hedge
        timer fired; ``["FASTEST", "FAILOVER"]`` that the first endpoint's error came back
        first; ``RETRY`` that a backoff was waited."""
        return [cpb.RouteReason.Name(r.reason).removeprefix("ROUTE_REASON_")
                for r in self.reply.routes]


async def turn(client: AsyncClient, text: str = "hi", *, deadline_s: float | None = None,
               **target: Any) -> Outcome:
    """One turn, checked against the stream contract: an OK status always comes with a
    ``finished`` event; an error never follows one (no in-band error after a clean finish)."""
    reply, events, error = Reply(), [], None
    try:
        async for event in client.converse(text, timeout=deadline_s, **target):
            events.append(event)
            reply.apply(event)
    except grpc.aio.AioRpcError as exc:
        error = exc
    finished = [e for e in events if isinstance(e, cpb.TurnFinished)]
    if error is None:
        assert len(finished) == 1 and isinstance(events[-1], cpb.TurnFinished), events[-3:]
    else:
        assert not finished, "a failed turn must not carry a finished event"
    return Outcome(reply, events, error)


def complete(outcome: Outcome, text: str = WORDS) -> None:
    """A success is a complete answer: never a truncated one."""
    assert outcome.error is None, f"{outcome.code}: {outcome.details}"
    assert outcome.reply.complete, outcome.reply.finished
    assert outcome.reply.text == text


def counts(*sims: Simulator) -> list[int]:
    return [len(s.requests) for s in sims]


def hedge_delay_s(env: Env, ep: lpb.Endpoint) -> float:
    """How long a turn now waits for ``ep``'s first token before starting the next endpoint."""
    assert env.app.router is not None
    return env.app.router.hedge_delay_s(ep.id)


def stall_timeout_s(env: Env, ep: lpb.Endpoint) -> float:
    """How long a gap in ``ep``'s stream may last before the stream counts as stalled."""
    assert env.app.router is not None
    return env.app.router.stall_timeout_s(ep.id)


def backoffs(env: Env) -> list[float]:
    """Records every retry backoff the router computes, in order; a RETRY route waited the
    one computed for it (the only sleep in a turn). After the last failure of a turn one
    more is computed and not used when nothing is left to retry."""
    router = env.app.router
    assert router is not None
    waits: list[float] = []
    real: Callable[[int], float] = router.backoff_s

    def spy(attempt: int) -> float:
        waits.append(real(attempt))
        return waits[-1]

    router.backoff_s = spy  # type: ignore[method-assign]
    return waits


async def healthy_afterwards(env: Env, llm: lpb.Llm, *sims: Simulator) -> None:
    """Faults cleared and cooldowns over (fake time): the preferred endpoint serves again."""
    for sim in sims:
        sim.behavior = HEALTHY
    env.clock.advance(120.0)  # past any breaker cooldown (<= 24 s) and Retry-After used here
    outcome = await turn(env.client, llm_id=llm.id)
    complete(outcome)
    preferred = llm.endpoints[0].id
    assert outcome.reply.routes[0].endpoint_id == preferred
    assert not {"FAILOVER", "RETRY"} & set(outcome.reasons), outcome.reasons  # nothing failed
    # served by it, unless a slow host delayed its first token past the hedge delay
    assert outcome.served_by == preferred or outcome.reasons[-1] == "HEDGE", outcome.reasons


async def warm_up(env: Env, llm: lpb.Llm, turns: int = 3) -> None:
    """A few turns so hedge delay (3 x p95 TTFT, floor 0.25 s) and stall bound (4 x p99 gap,
    floor 2 s) are derived from samples instead of the 2 s / 10 s defaults."""
    for _ in range(turns):
        complete(await turn(env.client, llm_id=llm.id))


async def two(env: Env, a: Simulator, b: Simulator, **fields: Any) -> lpb.Llm:
    """An LLM with ``a`` preferred (priority 0) and ``b`` as the fallback (priority 1)."""
    return await create_llm(env.client, endpoint(a, priority=0, model="model-a"),
                            endpoint(b, priority=1, model="model-b"), **fields)


# -- failures before the first token ---------------------------------------------------------


@pytest.mark.parametrize("retry_after_s", [30.0, None], ids=["retry-after", "no-retry-after"])
async def test_429_fails_over_and_the_endpoint_cools_down(env: Env,
                                                          retry_after_s: float | None) -> None:
    limited = Fault(FaultKind.RATE_LIMITED, retry_after_s=retry_after_s)
    async with Simulator("openai", dataclasses.replace(HEALTHY, fault=limited)) as a, \
            Simulator("openai", HEALTHY) as b:
        llm = await two(env, a, b)
        first = await turn(env.client, llm_id=llm.id)
        complete(first)
        assert first.served_by == llm.endpoints[1].id
        assert first.reasons == ["FASTEST", "FAILOVER"], "on the 429, not after any wait"
        assert counts(a, b) == [1, 1]
        second = await turn(env.client, llm_id=llm.id)  # A is cooling down: not even tried
        complete(second)
        assert counts(a, b) == [1, 2]
        assert [r.endpoint_id for r in second.reply.routes] == [llm.endpoints[1].id]
        await healthy_afterwards(env, llm, a, b)  # once the cooldown is over, A again


@pytest.mark.parametrize("retry_after_s", [30.0, None], ids=["retry-after", "no-retry-after"])
async def test_429_on_the_only_endpoint_is_unavailable_with_the_upstreams_wait(
        env: Env, retry_after_s: float | None) -> None:
    limited = Fault(FaultKind.RATE_LIMITED, retry_after_s=retry_after_s)
    async with Simulator("openai", dataclasses.replace(HEALTHY, fault=limited)) as a:
        llm = await create_llm(env.client, endpoint(a))
        first = await turn(env.client, llm_id=llm.id)
        assert first.code == grpc.StatusCode.UNAVAILABLE
        assert first.reasons == ["ONLY_AVAILABLE"], "no retry: the upstream said when"
        reason, delay = first.info()
        assert reason == "UPSTREAM_UNAVAILABLE"
        # without the header, OpenAI's message still says "Please try again in 20s"
        wait = retry_after_s or 20.0
        assert delay == pytest.approx(wait)
        # during the cooldown the turn fails fast without touching the upstream
        second = await turn(env.client, llm_id=llm.id)
        assert second.code == grpc.StatusCode.UNAVAILABLE and second.reasons == []
        reason, delay = second.info()
        assert reason == "NO_ENDPOINT_AVAILABLE"
        assert delay is not None and 0 < delay <= wait
        assert counts(a) == [1]
        await healthy_afterwards(env, llm, a)


async def test_500_once_then_healthy_is_retried_on_the_same_endpoint(env: Env) -> None:
    once = dataclasses.replace(HEALTHY, fault=Fault(FaultKind.SERVER_ERROR), fault_times=1)
    async with Simulator("openai", once) as a:
        llm = await create_llm(env.client, endpoint(a))
        waits = backoffs(env)
        outcome = await turn(env.client, llm_id=llm.id)
        complete(outcome)
        assert outcome.reply.finished is not None and outcome.reply.finished.attempts == 2
        assert outcome.reasons == ["ONLY_AVAILABLE", "RETRY"]
        assert counts(a) == [2] and len(waits) == 1 and waits[0] <= 0.1  # one short backoff
        await healthy_afterwards(env, llm, a)


async def test_500_once_with_a_fallback_fails_over_at_once(env: Env) -> None:
    once = dataclasses.replace(HEALTHY, fault=Fault(FaultKind.SERVER_ERROR), fault_times=1)
    async with Simulator("openai", once) as a, Simulator("openai", HEALTHY) as b:
        llm = await two(env, a, b)
        outcome = await turn(env.client, llm_id=llm.id)
        complete(outcome)
        assert outcome.served_by == llm.endpoints[1].id
        assert outcome.reasons == ["FASTEST", "FAILOVER"], "at once: no backoff, no retry"
        assert counts(a, b) == [1, 1]
        await healthy_afterwards(env, llm, a, b)


async def test_503_persistent_stops_reaching_the_endpoint(env: Env) -> None:
    down = dataclasses.replace(HEALTHY, fault=Fault(FaultKind.UNAVAILABLE))
    async with Simulator("openai", down) as a, Simulator("openai", HEALTHY) as b:
        llm = await two(env, a, b)
        for i in range(8):
            outcome = await turn(env.client, llm_id=llm.id)
            complete(outcome)
            assert outcome.served_by == llm.endpoints[1].id
            # A's 503 moves the turn on (no timer), then A's open circuit keeps it out
            assert outcome.reasons == (["FASTEST", "FAILOVER"] if i < 3 else ["ONLY_AVAILABLE"])
        assert counts(a, b) == [3, 8], "the breaker opens after 3 consecutive failures"
        await healthy_afterwards(env, llm, a, b)


async def test_503_persistent_on_the_only_endpoint_is_bounded(env: Env) -> None:
    down = dataclasses.replace(HEALTHY, fault=Fault(FaultKind.UNAVAILABLE))
    async with Simulator("openai", down) as a:
        llm = await create_llm(env.client, endpoint(a))
        waits = backoffs(env)
        first = await turn(env.client, llm_id=llm.id)
        assert first.code == grpc.StatusCode.UNAVAILABLE
        assert "503" in first.details or "overloaded" in first.details.lower()
        assert counts(a) == [3], "retried with backoff until the breaker opened"
        assert first.reasons == ["ONLY_AVAILABLE", "RETRY", "RETRY"]
        assert sum(waits[:2]) <= 0.3, waits  # the two RETRYs waited 0.1 s, then 0.2 s at most
        again = await turn(env.client, llm_id=llm.id)
        assert again.code == grpc.StatusCode.UNAVAILABLE and again.reasons == []
        assert again.info()[1] is not None and counts(a) == [3]
        await healthy_afterwards(env, llm, a)


@pytest.mark.parametrize("kind", [FaultKind.RESET_BEFORE_HEADERS, FaultKind.GARBAGE,
                                  FaultKind.HTML_ERROR_PAGE], ids=lambda k: k.value)
async def test_broken_transport_fails_over_before_any_output(env: Env, kind: FaultKind) -> None:
    broken = dataclasses.replace(HEALTHY, fault=Fault(kind))
    async with Simulator("openai", broken) as a, Simulator("openai", HEALTHY) as b:
        llm = await two(env, a, b)
        outcome = await turn(env.client, llm_id=llm.id)
        complete(outcome)
        assert not outcome.reply.failovers, "nothing was streamed, so nothing to discard"
        assert outcome.reasons == ["FASTEST", "FAILOVER"], "on the broken reply, no timer"
        assert counts(a, b) == [1, 1]
        await healthy_afterwards(env, llm, a, b)


@pytest.mark.parametrize("fault", [Fault(FaultKind.HANG), Fault(FaultKind.SLOW, seconds=20.0)],
                         ids=["no-response", "first-token-after-20s"])
async def test_a_silent_endpoint_is_hedged_and_its_request_closed(env: Env,
                                                                  fault: Fault) -> None:
    async with Simulator("openai", HEALTHY) as a, Simulator("openai", HEALTHY) as b:
        llm = await two(env, a, b)
        await warm_up(env, llm)
        assert hedge_delay_s(env, llm.endpoints[0]) < FIRST_TOKEN_S  # 0.25 s, the floor
        a.behavior = dataclasses.replace(HEALTHY, fault=fault)
        outcome = await turn(env.client, llm_id=llm.id)
        complete(outcome)
        assert outcome.served_by == llm.endpoints[1].id
        # B was started by A's hedge timer; had A's 0.5 s first-token timeout fired first,
        # B's route would read FAILOVER
        assert outcome.reasons == ["FASTEST", "HEDGE"]
        assert counts(a, b) == [4, 1]
        record = await a.wait_for_disconnect(index=-1, timeout=GUARD_S)
        assert record.first_chunk_at is None  # it never spoke; the gateway hung up on it
        await healthy_afterwards(env, llm, a, b)


async def test_a_failed_hedge_moves_on_instead_of_waiting_for_the_silent_endpoint(
        tmp_path: Path) -> None:
    """A goes silent, the hedge to B fails at once (503): C must be tried right away, not
    after A's first-token timeout (found by the soak: a 30 s turn). The production-like
    30 s first-token timeout makes waiting on A obvious."""
    async with fake_clock_env(tmp_path) as env, Simulator("openai", HEALTHY) as a, \
            Simulator("openai", HEALTHY) as b, Simulator("openai", HEALTHY) as c:
        llm = await create_llm(env.client, endpoint(a, priority=0), endpoint(b, priority=1),
                               endpoint(c, priority=2))
        await warm_up(env, llm)  # A's hedge delay: 0.25 s (at most 5 s), its timeout 30 s
        a.behavior = dataclasses.replace(HEALTHY, fault=Fault(FaultKind.HANG))
        b.behavior = dataclasses.replace(HEALTHY, fault=Fault(FaultKind.UNAVAILABLE))
        outcome = await turn(env.client, llm_id=llm.id)
        complete(outcome)
        assert outcome.served_by == llm.endpoints[2].id
        # C was started by A's re-armed hedge timer, not after A's 30 s first-token timeout
        # (then its route would read FAILOVER)
        assert outcome.reasons == ["FASTEST", "HEDGE", "HEDGE"], "C tried when the hedge failed"
        assert counts(a, b, c) == [4, 1, 1]
        assert (await a.wait_for_disconnect(index=-1, timeout=GUARD_S)).disconnected
        await healthy_afterwards(env, llm, a, b, c)


@pytest.mark.parametrize("fault", [Fault(FaultKind.HANG), Fault(FaultKind.SLOW, seconds=20.0)],
                         ids=["no-response", "first-token-after-20s"])
async def test_a_silent_only_endpoint_times_out_at_the_first_token_deadline(
        env: Env, fault: Fault) -> None:
    async with Simulator("openai", dataclasses.replace(HEALTHY, fault=fault)) as a:
        llm = await create_llm(env.client, endpoint(a))
        waits = backoffs(env)
        outcome = await turn(env.client, llm_id=llm.id)
        assert outcome.code == grpc.StatusCode.UNAVAILABLE
        # three attempts ended by the 0.5 s first-token timer (then the breaker opens), with
        # short backoffs between them: the configured phase, not the 20 s the upstream takes
        assert f"sent no content within {FIRST_TOKEN_S:g}s (first_token timeout)" in \
            outcome.details
        assert counts(a) == [3] and outcome.reasons == ["ONLY_AVAILABLE", "RETRY", "RETRY"]
        assert sum(waits[:2]) <= 0.3, waits
        for i in range(3):
            assert (await a.wait_for_disconnect(index=i, timeout=GUARD_S)).disconnected
        await healthy_afterwards(env, llm, a)


# -- failures after output -------------------------------------------------------------------


@pytest.mark.parametrize("fault", [
    Fault(FaultKind.CUT_AFTER, chunk=40),
    Fault(FaultKind.CUT_AFTER, chunk=40, abrupt=False),
    Fault(FaultKind.CUT_AFTER, chunk=999, abrupt=False),  # all text, no finish/[DONE]
    Fault(FaultKind.MALFORMED_CHUNK_AT, chunk=30),
    Fault(FaultKind.MIDSTREAM_ERROR_AT, chunk=30),
    Fault(FaultKind.STALL_AFTER, chunk=30, seconds=30.0),
], ids=["cut-40-of-60", "clean-close-at-40", "eof-without-finish", "malformed-chunk",
        "in-band-error", "stall-30s"])
async def test_a_broken_stream_restarts_on_the_fallback(env: Env, fault: Fault) -> None:
    async with Simulator("openai", HEALTHY) as a, Simulator("openai", HEALTHY) as b:
        llm = await two(env, a, b)
        await warm_up(env, llm)
        stall_s = stall_timeout_s(env, llm.endpoints[0])
        assert stall_s < 10.0  # learned from the warm-up's gaps (2 s floor), not the default
        a.behavior = dataclasses.replace(HEALTHY, fault=fault)
        outcome = await turn(env.client, llm_id=llm.id)
        complete(outcome)
        assert outcome.served_by == llm.endpoints[1].id
        assert counts(a, b) == [4, 1]
        (failover,) = outcome.reply.failovers
        assert failover.discard_message_ids and failover.cause
        # which timer fired: none when the stream broke, the learned stall bound (not the
        # 30 s stall, nor the 30 s between-chunks timeout) when it went silent
        if fault.kind is FaultKind.STALL_AFTER:
            assert f"sent nothing for {stall_s:g}s" in failover.cause, failover.cause
        else:
            assert "timeout" not in failover.cause, failover.cause
        broken_ids = {e.message_id for e in outcome.events if isinstance(e, cpb.TextDelta)}
        assert set(failover.discard_message_ids) < broken_ids  # only the broken answer goes
        await healthy_afterwards(env, llm, a, b)


async def test_a_stream_without_done_but_with_a_finish_reason_is_complete(env: Env) -> None:
    no_done = dataclasses.replace(HEALTHY, fault=Fault(FaultKind.NO_DONE))
    async with Simulator("openai", no_done) as a, Simulator("openai", HEALTHY) as b:
        llm = await two(env, a, b)
        outcome = await turn(env.client, llm_id=llm.id)
        complete(outcome)
        assert outcome.served_by == llm.endpoints[0].id
        assert counts(a, b) == [1, 0] and outcome.reasons == ["FASTEST"]
        await healthy_afterwards(env, llm, a, b)


async def test_a_fallback_that_rejects_the_restarted_turn_ends_with_a_clear_error(
        env: Env) -> None:
    cut = dataclasses.replace(HEALTHY, fault=Fault(FaultKind.CUT_AFTER, chunk=40))
    rejects = dataclasses.replace(HEALTHY, fault=Fault(FaultKind.HTTP_STATUS, status=400))
    async with Simulator("openai", cut) as a, Simulator("openai", rejects) as b:
        llm = await two(env, a, b)
        outcome = await turn(env.client, llm_id=llm.id)
        # not INVALID_ARGUMENT: the request was fine where the answer began; retry the turn
        assert outcome.code == grpc.StatusCode.UNAVAILABLE
        assert outcome.info() == ("UPSTREAM_STREAM_BROKEN", 1.0)
        assert outcome.reply.failovers, "the caller was told to discard the partial answer"
        assert outcome.reply.text == "", "nothing of the broken answer survives the failover"
        details = outcome.details
        assert "broke after output" in details and "HTTP 400" in details
        assert "restart" in details and "retry the turn" in details
        assert counts(a, b) == [1, 1] and outcome.reasons == ["FASTEST", "FAILOVER"]
        await healthy_afterwards(env, llm, a, b)


async def test_accounting_after_a_failover_reports_only_the_serving_endpoint(env: Env) -> None:
    a_usage, b_usage = Usage(500, 400, 0), Usage(11, 22, 5)
    cut = dataclasses.replace(HEALTHY, usage=a_usage, model="upstream-a",
                              fault=Fault(FaultKind.CUT_AFTER, chunk=40))
    served = Behavior(text="the real answer", usage=b_usage, model="upstream-b",
                      reasoning="thinking it over")
    async with Simulator("openai", cut) as a, Simulator("openai", served) as b:
        llm = await two(env, a, b)
        session = await env.client.create_session(llm.id)
        outcome = await turn(env.client, "question", session_id=session.id)
        complete(outcome, "the real answer")
        finished = outcome.reply.finished
        assert finished is not None
        assert (finished.endpoint_id, finished.model) == (llm.endpoints[1].id, "model-b")
        assert finished.attempts == 2
        usage = outcome.reply.usage
        assert usage is not None
        assert (usage.input_tokens, usage.output_tokens, usage.reasoning_tokens) == (11, 22, 5)
        assert len([e for e in outcome.events if isinstance(e, cpb.Usage)]) == 1
        assert outcome.reply.reasoning_history == ["thinking it over"]
        stored = await env.client.get_session(session.id)
        assert [m.role for m in stored.messages] == [cpb.ROLE_USER, cpb.ROLE_ASSISTANT]
        assert stored.messages[1].parts[0].text == "the real answer"
        assert counts(a, b) == [1, 1]
        await healthy_afterwards(env, llm, a, b)


# -- errors another endpoint cannot fix ------------------------------------------------------


async def test_context_length_goes_only_to_a_larger_window(env: Env) -> None:
    too_long = dataclasses.replace(HEALTHY, fault=Fault(FaultKind.CONTEXT_LENGTH))
    async with Simulator("openai", too_long) as a, Simulator("openai", HEALTHY) as small, \
            Simulator("openai", HEALTHY) as large:
        llm = await create_llm(
            env.client, endpoint(a, priority=0, context_window_tokens=8000),
            endpoint(small, priority=1, context_window_tokens=4000),
            endpoint(large, priority=2, context_window_tokens=200_000))
        outcome = await turn(env.client, llm_id=llm.id)
        complete(outcome)
        assert outcome.served_by == llm.endpoints[2].id
        assert outcome.reasons == ["FASTEST", "LARGER_CONTEXT_WINDOW"]
        assert counts(a, small, large) == [1, 0, 1]
        await healthy_afterwards(env, llm, a, small, large)


async def test_context_length_without_a_larger_window_is_invalid_argument(env: Env) -> None:
    too_long = dataclasses.replace(HEALTHY, fault=Fault(FaultKind.CONTEXT_LENGTH))
    async with Simulator("openai", too_long) as a, Simulator("openai", HEALTHY) as b:
        llm = await create_llm(env.client, endpoint(a, priority=0, context_window_tokens=8000),
                               endpoint(b, priority=1, context_window_tokens=8000))
        outcome = await turn(env.client, llm_id=llm.id)
        assert outcome.code == grpc.StatusCode.INVALID_ARGUMENT
        assert outcome.info()[0] == "CONTEXT_LENGTH_EXCEEDED"
        assert "128000" in outcome.details  # the limit the provider named
        assert counts(a, b) == [1, 0] and outcome.reasons == ["FASTEST"]
        await healthy_afterwards(env, llm, a, b)


@pytest.mark.parametrize("spec", ["openai", "azure_openai", "gemini"])
async def test_content_filter_fails_with_the_providers_reason_and_is_not_retried(
        env: Env, spec: str) -> None:
    filtered = dataclasses.replace(HEALTHY, fault=Fault(FaultKind.CONTENT_FILTER))
    async with Simulator(spec, filtered) as a, Simulator(spec, HEALTHY) as b:
        llm = await create_llm(env.client, endpoint(a, spec, priority=0),
                               endpoint(b, spec, priority=1))
        outcome = await turn(env.client, llm_id=llm.id)
        assert outcome.code in (grpc.StatusCode.FAILED_PRECONDITION,
                                grpc.StatusCode.INVALID_ARGUMENT)
        assert outcome.info()[0] == "CONTENT_FILTERED"
        provider_words = ("content management policy", "ResponsibleAIPolicyViolation",
                          "blockReason", "SAFETY", "filter")
        assert any(w in outcome.details for w in provider_words), outcome.details
        assert counts(a, b) == [1, 0] and outcome.reasons == ["FASTEST"]
        await healthy_afterwards(env, llm, a, b)


# -- an outage under a steady trickle of turns -----------------------------------------------


async def test_an_endpoint_down_for_60s_costs_the_trickle_nothing(env: Env) -> None:
    """Two callers every simulated second; A resets every connection for 60 s, then recovers.

    test_routing.py checks that A is back within 30 s; this checks what the callers see: no
    turn fails, none waits on A (A's reset moves it on, never the hedge timer), at most two
    attempts each, A is contacted only at the breaker's growing intervals, and after recovery
    A takes all traffic again."""
    fast = Behavior(text="ok", ttft_s=0.01)
    async with Simulator("openai", fast) as a, \
            Simulator("openai", dataclasses.replace(fast, ttft_s=0.03)) as b:
        llm = await two(env, a, b)
        a_id, b_id = (e.id for e in llm.endpoints)
        a.behavior = dataclasses.replace(fast, fault=Fault(FaultKind.RESET_BEFORE_HEADERS))
        contacted: list[float] = []
        for _ in range(60):
            seen = len(a.requests)
            outcomes = await asyncio.gather(*(turn(env.client, llm_id=llm.id) for _ in range(2)))
            for o in outcomes:
                complete(o, "ok")
                # A's reset moves a turn on, never A's hedge delay (a hedge on A's half-open
                # trial, when B itself was slow, waits for B, not for A)
                assert o.served_by == b_id and not o.hedged_to(b_id), o.reasons
                assert o.reply.finished is not None and o.reply.finished.attempts <= 2
            contacted += [env.clock.monotonic()] * (len(a.requests) - seen)
            env.clock.advance(1.0)
        gaps = [y - x for x, y in itertools.pairwise(contacted) if y > x]
        assert len(contacted) <= 12, contacted
        # the breaker's cooldown doubles (1, 2, 4, 8, 16, 20 s, +-20 %): growing gaps
        assert all(b >= 0.75 * a for a, b in itertools.pairwise(gaps)), gaps
        assert max(gaps) >= 15.0, gaps
        a.behavior = fast
        recovered_at = env.clock.monotonic()
        served: list[str] = []
        while env.clock.monotonic() - recovered_at < 60.0:
            outcomes = await asyncio.gather(*(turn(env.client, llm_id=llm.id) for _ in range(2)))
            for o in outcomes:
                complete(o, "ok")
            served += [o.served_by for o in outcomes]
            env.clock.advance(1.0)
        back = served.index(a_id)
        assert back <= 2 * 25, "back in use within the breaker's longest cooldown"
        assert set(served[back + 2:]) == {a_id}, "once closed, A takes all traffic again"


async def test_a_recovered_endpoint_rejoins_its_tier_under_stateless_traffic(env: Env) -> None:
    """The same outage with A and B in ONE tier and stateless turns only (no session).

    Recent stateless turns keep the LLM active for probes (issue 19), so a probe or, after
    ``live_trial_after_s``, a live turn takes A's half-open trial (ranked by A's latency
    score). A, the faster endpoint, must be back in use within 30 s of recovering, and then
    keep every turn routed by preference.

    What was wrong (loaded CI runs: A served 21 turns after rejoining, then B the last 3): one
    late first token flipped routing for good. A hedge that B won booked A's wait (0.25 s hedge
    delay + B's 40 ms) as a full TTFT sample, raising A's 12 ms estimate to ~95 ms, above B's;
    the ranking then sent A nothing, so no sample could correct it. A busy host, not A, had
    made that first token late. Here the blip is made on purpose (A answers one turn after
    5 s, B's hedge wins it); the router bounds each sample's pull on the estimate
    (``LatencyConfig.outlier_factor``), see tests/unit/routing/test_rejoin.py."""
    router, probes = env.app.router, env.app.probes
    assert router is not None and probes is not None
    fast = Behavior(text="ok", ttft_s=0.01)
    async with Simulator("openai", fast) as a, \
            Simulator("openai", dataclasses.replace(fast, ttft_s=0.04)) as b:
        llm = await create_llm(env.client, endpoint(a), endpoint(b))
        a_id, b_id = (e.id for e in llm.endpoints)
        for _ in range(6):
            complete(await turn(env.client, llm_id=llm.id), "ok")
        a.behavior = dataclasses.replace(fast, fault=Fault(FaultKind.UNAVAILABLE))
        for _ in range(60):
            outcome = await turn(env.client, llm_id=llm.id)
            complete(outcome, "ok")
            assert outcome.served_by == b_id
            # A's 503 moved the turn on, not a timer: no hedge away from A, no timeout
            assert not outcome.hedged_to(b_id), outcome.reasons
            await probes.tick()
            env.clock.advance(1.0)
        a.behavior = fast
        served: list[Outcome] = []
        back: int | None = None
        blip: Outcome | None = None
        for i in range(40):
            if back is not None and i == back + 5:  # one first token late: B's hedge wins it
                a.behavior = dataclasses.replace(fast, ttft_s=5.0)
            outcome = await turn(env.client, llm_id=llm.id)
            a.behavior = fast
            complete(outcome, "ok")
            served.append(outcome)
            if back is None and outcome.served_by == a_id:
                back = i
            elif back is not None and i == back + 5:
                blip = outcome
            await probes.tick()
            env.clock.advance(1.0)
        assert back is not None and back < 30, "A is back in use within 30 s of recovering"
        # B rescued the blip: by its hedge (or, should a very slow host push A's hedge delay
        # past its 0.5 s first-token timeout, by a failover)
        assert blip is not None and blip.served_by == b_id
        assert blip.reasons in (["FASTEST", "HEDGE"], ["FASTEST", "FAILOVER"]), blip.reasons
        # Keeps its traffic: every later turn routed by preference goes to A first and is
        # served by A, unless a hedge rescued it (an exploration turn may refresh B).
        for i, o in enumerate(served[back + 1:], start=back + 1):
            first = o.reply.routes[0]
            if first.reason == cpb.ROUTE_REASON_EXPLORATION:
                continue
            rescued = o.reply.routes[-1].reason == cpb.ROUTE_REASON_HEDGE
            assert first.endpoint_id == a_id, (i, "routed to B", router.snapshot(a_id))
            assert o.served_by == a_id or rescued, (i, [r.reason for r in o.reply.routes])


# -- deadlines and cancellation --------------------------------------------------------------


SILENT = dataclasses.replace(HEALTHY, ttft_s=30.0)  # would answer long after any guard


def hung_up(record: RecordedRequest, *, before_first_chunk: bool = False) -> bool:
    """The gateway closed this upstream request before the upstream had finished it."""
    cut_early = record.first_chunk_at is None if before_first_chunk else record.chunks_sent < 60
    return record.disconnected and record.completed_at is None and cut_early


async def _all_closed(env: Env, sims: Sequence[Simulator]) -> None:
    """Every recorded request has ended and the turn has left the server (both awaited as
    events; how each request ended is for the caller to assert)."""
    assert env.app.turns is not None
    for sim in sims:
        for i in range(len(sim.requests)):
            await sim.wait_for_end(index=i, timeout=GUARD_S)
    await asyncio.wait_for(env.app.turns.idle(), GUARD_S)
    assert env.app.turns.in_flight == 0


async def test_deadline_during_a_hedge_closes_both_requests(env: Env) -> None:
    async with Simulator("openai", HEALTHY) as a, Simulator("openai", HEALTHY) as b:
        llm = await two(env, a, b)
        await warm_up(env, llm)
        a.behavior = b.behavior = SILENT
        # the hedge starts at A's hedge delay (0.25 s unless the host is slow); both are
        # waiting when the deadline passes half a second later
        deadline_s = hedge_delay_s(env, llm.endpoints[0]) + 0.5
        outcome = await turn(env.client, llm_id=llm.id, deadline_s=deadline_s)
        assert outcome.code == grpc.StatusCode.DEADLINE_EXCEEDED
        assert outcome.reasons == ["FASTEST", "HEDGE"]
        assert counts(a, b) == [4, 1]
        await _all_closed(env, [a, b])
        assert hung_up(a.requests[-1], before_first_chunk=True)
        assert hung_up(b.requests[-1], before_first_chunk=True)
        await healthy_afterwards(env, llm, a, b)


async def test_deadline_during_backoff_between_retries(env: Env) -> None:
    assert env.app.router is not None
    env.app.router.backoff_s = lambda attempt: 30.0  # type: ignore[method-assign]
    once = dataclasses.replace(HEALTHY, fault=Fault(FaultKind.SERVER_ERROR), fault_times=1)
    async with Simulator("openai", once) as a:
        llm = await create_llm(env.client, endpoint(a))
        outcome = await turn(env.client, llm_id=llm.id, deadline_s=0.3)
        assert outcome.code == grpc.StatusCode.DEADLINE_EXCEEDED
        # the turn left the server inside the 30 s backoff, and sent no retry after it
        await _all_closed(env, [a])
        assert counts(a) == [1], "no retry after the deadline"
        del env.app.router.backoff_s
        await healthy_afterwards(env, llm, a)


async def test_deadline_mid_stream_closes_the_upstream(env: Env) -> None:
    paced = dataclasses.replace(HEALTHY, chunk_gap_s=0.05)  # 3 s of streaming
    async with Simulator("openai", paced) as a:
        llm = await create_llm(env.client, endpoint(a))
        outcome = await turn(env.client, llm_id=llm.id, deadline_s=0.5)
        assert outcome.code == grpc.StatusCode.DEADLINE_EXCEEDED
        assert outcome.reply.text and not outcome.reply.complete
        await _all_closed(env, [a])
        assert hung_up(a.requests[0]) and counts(a) == [1]
        await healthy_afterwards(env, llm, a)


async def test_deadline_after_a_failover_closes_the_restarted_stream(env: Env) -> None:
    cut = dataclasses.replace(HEALTHY, fault=Fault(FaultKind.CUT_AFTER, chunk=10))
    paced = dataclasses.replace(HEALTHY, chunk_gap_s=0.05)
    async with Simulator("openai", cut) as a, Simulator("openai", paced) as b:
        llm = await two(env, a, b)
        outcome = await turn(env.client, llm_id=llm.id, deadline_s=0.5)
        assert outcome.code == grpc.StatusCode.DEADLINE_EXCEEDED
        assert outcome.reply.failovers
        await _all_closed(env, [a, b])
        assert hung_up(b.requests[0])
        await healthy_afterwards(env, llm, a, b)


async def test_cancel_during_a_hedge_closes_both_requests(env: Env) -> None:
    async with Simulator("openai", HEALTHY) as a, Simulator("openai", HEALTHY) as b:
        llm = await two(env, a, b)
        await warm_up(env, llm)
        a.behavior = b.behavior = SILENT

        async def until_hedged() -> None:
            async for event in env.client.converse("hi", llm_id=llm.id):
                if isinstance(event, cpb.RouteDecision) and \
                        event.reason == cpb.ROUTE_REASON_HEDGE:
                    await b.wait_for_requests(1)
                    return  # leaving the stream cancels the call

        await asyncio.wait_for(until_hedged(), timeout=GUARD_S)
        await _all_closed(env, [a, b])
        assert counts(a, b) == [4, 1]
        assert hung_up(a.requests[-1], before_first_chunk=True)
        assert hung_up(b.requests[-1], before_first_chunk=True)
        await healthy_afterwards(env, llm, a, b)


# -- soak smoke ------------------------------------------------------------------------------


async def test_soak_smoke_30s() -> None:
    """30 s of the soak (tests/bench/soak.py): mixed traffic over a faulty fleet."""
    from tests.bench.soak import run_soak

    lines: list[str] = []
    results = await run_soak(0.5, concurrency=8, warmup_s=8.0, sample_every_s=10.0,
                             log=lines.append)
    report = results.report()
    assert results.total > 300, report
    assert results.fleet.get("requests", 0) > results.total // 2, report
    assert sum(v for k, v in results.fleet.items() if k != "requests") > 10, report
    assert not results.problems(), report

