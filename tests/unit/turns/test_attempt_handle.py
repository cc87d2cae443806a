"""The attempt handle: admitted or not, reported once, to the router and the observer alike."""

from __future__ import annotations

import os
import random
from pathlib import Path

from server.chat import FinishReason, Usage
from server.clock import FakeClock
from server.providers.base import ErrorKind, UpstreamError
from server.providers.transport import UpstreamClient
from server.registry.llm import ApiSpec, Endpoint
from server.registry.service import RegistryService
from server.routing.router import Router
from server.secret import Secret
from server.simulator import Behavior, Simulator
from server.store.open import open_store
from server.timeouts import Timeouts
from server.turns.probe_runner import ProbeRunner
from server.vault.envelope import Keyring
from server.vault.redact import KnownSecrets
from server.vault.sealer import VaultSealer


class Recorder:
    """An AttemptObserver that writes down what it hears."""

    def __init__(self) -> None:
        self.calls: list[str] = []

    def first_token(self, ttft_s: float) -> None:
        self.calls.append("first_token")

    def succeeded(self, usage: Usage, reason: FinishReason) -> None:
        self.calls.append(f"succeeded:{reason.value}")

    def failed(self, error: UpstreamError) -> None:
        self.calls.append(f"failed:{error.kind.value}")

    def cancelled(self) -> None:
        self.calls.append("cancelled")


def open_circuit(router: Router, endpoint_id: str) -> None:
    for _ in range(3):
        attempt = router.admit(endpoint_id)
        assert attempt is not None
        attempt.failed(UpstreamError(ErrorKind.SERVER_ERROR, "503"))


def test_an_attempt_reports_its_outcome_once_to_the_router_and_its_observer() -> None:
    router = Router(FakeClock(), random.Random(0))
    attempt = router.admit("a")
    assert attempt is not None
    attempt.observer = recorder = Recorder()
    assert router.snapshot("a").in_flight == 1
    attempt.first_token(0.1, 500)
    attempt.first_token(0.2, 500)  # a second first token is not a second sample
    attempt.succeeded(Usage(), FinishReason.STOP)
    attempt.failed(UpstreamError(ErrorKind.SERVER_ERROR, "late"))  # already over: ignored
    attempt.cancelled()
    assert recorder.calls == ["first_token", "succeeded:stop"]
    health = router.snapshot("a")
    assert health.in_flight == 0 and health.samples == 1 and health.consecutive_failures == 0


def test_leaving_the_block_without_an_outcome_cancels_and_frees_a_half_open_trial() -> None:
    clock = FakeClock()
    router = Router(clock, random.Random(0))
    open_circuit(router, "a")
    clock.advance(router.snapshot("a").open_remaining_s)
    trial = router.admit("a")
    assert trial is not None
    assert router.admit("a") is None  # the one trial is taken
    with trial:
        trial.observer = recorder = Recorder()
    assert recorder.calls == ["cancelled"]
    assert router.admit("a") is not None  # the trial is free again


def endpoint(sim: Simulator) -> Endpoint:
    return Endpoint("ep-probe", ApiSpec.OPENAI, sim.base_url, "sim-model", Secret("sk-test"))


async def test_a_probe_the_router_refuses_is_not_sent(tmp_path: Path) -> None:
    clock = FakeClock()
    router = Router(clock, random.Random(0))
    runner = ProbeRunner(router, clock, probes_per_hour=4)
    store = await open_store(str(tmp_path / "registry.db"))
    keys = Keyring({"k1": os.urandom(32)}, "k1")
    registry = RegistryService(store, VaultSealer(keys, KnownSecrets()))
    async with Simulator("openai", Behavior(text="pong"), api_key="sk-test") as sim, \
            UpstreamClient() as client:
        ep = endpoint(sim)
        runner.bind(registry, client, Timeouts())
        open_circuit(router, ep.id)  # open: admit refuses
        await runner.probe(ep)
        assert runner.sent == 0 and sim.requests == []
        clock.advance(router.snapshot(ep.id).open_remaining_s)
        await runner.probe(ep)  # half open: the probe is the trial
        assert runner.sent == 1 and len(sim.requests) == 1
        assert router.snapshot(ep.id).state.value == "closed"
    await store.close()
