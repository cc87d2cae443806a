"""The registry's turn-time cache, over a real SQLite file shared by two "replicas".

What is promised: a turn never waits for the store while its cached LLM is at most
``max_stale_s`` old: past ``cache_ttl_s`` the cached LLM is used at once and one background
read refreshes it (a write by another replica shows on the following turns; a delete makes
the following turns NOT_FOUND); past ``max_stale_s``, or with nothing cached, the turn waits
for the read; a failing store does not fail turns that have a cached LLM and is asked again
at most once a second, not once per turn.
"""

from __future__ import annotations

import asyncio
import base64
import os
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from server.clock import FakeClock
from server.errors import NotFound
from server.registry.drafts import EndpointDraft, LlmDraft
from server.registry.llm import ApiSpec, Llm
from server.registry.service import RegistryService
from server.secret import Secret
from server.store.base import LlmRecord, Store
from server.store.open import open_store
from server.vault.envelope import Keyring
from server.vault.redact import KnownSecrets
from server.vault.sealer import VaultSealer

ACCOUNT = "acct_cache"
TTL_S = 0.05
MAX_STALE_S = 1.0


class GatedStore:
    """The real store, with ``get_llm`` held while ``gate`` is clear (a slow database) or
    failing while ``failing`` is set; counts the reads."""

    def __init__(self, inner: Store) -> None:
        self._inner = inner
        self.gate = asyncio.Event()
        self.gate.set()
        self.failing = False
        self.reads = 0
        self.entered = asyncio.Event()  # a read has reached the (possibly slow) database

    async def get_llm(self, account_id: str, llm_id: str) -> LlmRecord | None:
        self.reads += 1
        self.entered.set()
        await self.gate.wait()
        if self.failing:
            raise ConnectionError("the database is unreachable")
        return await self._inner.get_llm(account_id, llm_id)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[Store]:
    s = await open_store(str(tmp_path / "registry.db"))
    try:
        yield s
    finally:
        await s.close()


def registry(store: Any, keys: Keyring, clock: FakeClock) -> RegistryService:
    return RegistryService(store, VaultSealer(keys, KnownSecrets()), cache_ttl_s=TTL_S,
                           max_stale_s=MAX_STALE_S, clock=clock)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


async def settle(reg: RegistryService) -> None:
    """Waits until the background refreshes in flight have finished (no sleeping)."""
    await asyncio.gather(*reg._refreshing.values(), return_exceptions=True)


@pytest.fixture
def keys() -> Keyring:
    return Keyring({"k1": os.urandom(32)}, "k1")


async def create(reg: RegistryService, name: str = "cached") -> Llm:
    draft = LlmDraft(name, (EndpointDraft("", ApiSpec.OPENAI, "https://llm.example.com/v1",
                                          "m", Secret("sk-" + base64.b32encode(
                                              os.urandom(10)).decode())),))
    return await reg.store_new(await reg.prepare_new(ACCOUNT, draft))


async def rename(reg: RegistryService, llm: Llm, name: str) -> Llm:
    existing, updated = await reg.prepare_update(
        ACCOUNT, llm.id, LlmDraft(name, ()), frozenset({"display_name"}))
    return await reg.store_update(existing, updated)


async def test_a_stale_llm_is_used_at_once_while_one_read_refreshes_it(
        store: Store, keys: Keyring, clock: FakeClock) -> None:
    a, gated = registry(store, keys, clock), GatedStore(store)
    b = registry(gated, keys, clock)
    llm = await create(a)
    assert (await b.resolve(ACCOUNT, llm.id)).display_name == "cached"
    await rename(a, llm, "renamed on A")
    clock.advance(TTL_S * 2)

    gated.gate.clear()  # the database is slow now
    reads = gated.reads
    for _ in range(5):  # none of these turns waits for it
        got = await asyncio.wait_for(b.resolve(ACCOUNT, llm.id), 0.5)
        assert got.display_name == "cached"
    assert gated.reads == reads + 1, "one background read, shared"
    gated.gate.set()
    await settle(b)
    assert (await b.resolve(ACCOUNT, llm.id)).display_name == "renamed on A"


async def test_a_delete_on_another_replica_stops_turns_after_the_refresh(
        store: Store, keys: Keyring, clock: FakeClock) -> None:
    a, b = registry(store, keys, clock), registry(store, keys, clock)
    llm = await create(a)
    await b.resolve(ACCOUNT, llm.id)
    await a.delete(ACCOUNT, llm.id, llm.etag)
    clock.advance(TTL_S * 2)
    await b.resolve(ACCOUNT, llm.id)  # the stale copy, one last time; the refresh starts
    await settle(b)
    with pytest.raises(NotFound):
        await b.resolve(ACCOUNT, llm.id)


async def test_past_max_stale_the_turn_waits_for_the_store(store: Store, keys: Keyring,
                                                           clock: FakeClock) -> None:
    a, gated = registry(store, keys, clock), GatedStore(store)
    b = registry(gated, keys, clock)
    llm = await create(a)
    await b.resolve(ACCOUNT, llm.id)
    await rename(a, llm, "renamed on A")
    clock.advance(MAX_STALE_S + 0.05)
    gated.gate.clear()
    gated.entered.clear()
    turn = asyncio.ensure_future(b.resolve(ACCOUNT, llm.id))
    reading = asyncio.ensure_future(gated.entered.wait())
    await asyncio.wait({turn, reading}, return_when=asyncio.FIRST_COMPLETED)
    assert not turn.done(), "too old to use: the turn waits for the read"
    gated.gate.set()
    assert (await turn).display_name == "renamed on A"


async def test_a_failing_store_does_not_fail_cached_turns_nor_get_asked_per_turn(
        store: Store, keys: Keyring, clock: FakeClock) -> None:
    a, gated = registry(store, keys, clock), GatedStore(store)
    b = registry(gated, keys, clock)
    llm = await create(a)
    await b.resolve(ACCOUNT, llm.id)
    clock.advance(TTL_S * 2)
    gated.failing = True
    reads = gated.reads
    for _ in range(20):
        assert (await b.resolve(ACCOUNT, llm.id)).id == llm.id
        await settle(b)  # the background read fails; the next one is due in a second
        clock.advance(0.005)
    assert gated.reads == reads + 1, "asked again only after a second"
    gated.failing = False
    clock.advance(1.0)
    await b.resolve(ACCOUNT, llm.id)  # the retry is due: it reads, and succeeds
    assert gated.reads == reads + 2


async def test_nothing_cached_waits_for_the_read_and_not_found_is_raised(
        store: Store, keys: Keyring, clock: FakeClock) -> None:
    b = registry(store, keys, clock)
    with pytest.raises(NotFound):
        await b.resolve(ACCOUNT, "llm_missing")
    other = await create(registry(store, keys, clock))
    assert (await b.resolve(ACCOUNT, other.id)).id == other.id
    with pytest.raises(NotFound):  # another account's LLM is not found, cached or not
        await b.resolve("acct_other", other.id)
