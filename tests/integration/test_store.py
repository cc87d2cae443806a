"""Store conformance: SQLite and PostgreSQL behave the same for everything the services use.

Each test runs against a fresh SQLite file and a fresh PostgreSQL schema (see ``tests/pg.py``).
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import AsyncIterator
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from server.store import postgres, sqlite
from server.store.base import ApiKeyRecord, LlmRecord, SessionRecord, Store
from server.store.open import open_store

T0 = datetime(2025, 3, 1, 12, 0, 0, 123456, tzinfo=UTC)
US = timedelta(microseconds=1)


@dataclass(frozen=True)
class Backend:
    name: str
    location: str  # a SQLite path or a postgresql:// DSN

    async def open(self) -> Store:
        store = await open_store(self.location)
        expected = postgres.PostgresStore if self.name == "postgres" else sqlite.SqliteStore
        assert isinstance(store, expected)
        return store

    def migration_count(self) -> int:
        return len(postgres.MIGRATIONS if self.name == "postgres" else sqlite.MIGRATIONS)

    async def set_schema_version(self, version: int) -> None:
        """Writes the schema version behind the store's back."""
        if self.name == "sqlite":
            with sqlite3.connect(self.location) as db:
                db.execute("UPDATE schema_version SET version = ?", (version,))
            return
        dsn, schema, _ = postgres.parse_dsn(self.location)
        conn = await asyncpg.connect(dsn)
        try:
            await conn.execute(f'UPDATE "{schema}".schema_version SET version = $1', version)
        finally:
            await conn.close()


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Backend:
    if request.param == "postgres":
        return Backend("postgres", request.getfixturevalue("pg_dsn"))
    return Backend("sqlite", str(tmp_path / "store.db"))


@pytest.fixture
async def store(backend: Backend) -> AsyncIterator[Store]:
    s = await backend.open()
    yield s
    await s.close()


def llm(llm_id: str, account: str = "acct_a", at: datetime = T0, etag: str = "e1",
        body: dict[str, Any] | None = None) -> LlmRecord:
    return LlmRecord(id=llm_id, account_id=account, display_name=f"LLM {llm_id}",
                     body=body or {"endpoints": []}, create_time=at, update_time=at, etag=etag)


def session(session_id: str, llm_id: str, account: str = "acct_a",
            expire: datetime = T0 + timedelta(hours=1)) -> SessionRecord:
    return SessionRecord(id=session_id, account_id=account, llm_id=llm_id,
                         system_prompt="Be brief.", generation={"temperature": 0.2},
                         idle_ttl_s=1800.0, create_time=T0, expire_time=expire, turn_count=0,
                         messages=[], version=0)


def key(key_id: str, account: str = "acct_a", at: datetime = T0, **fields: Any) -> ApiKeyRecord:
    return ApiKeyRecord(key_id=key_id, account_id=account, key_hash=f"hash-{key_id}",
                        create_time=at, revoked=False, **fields)


def msg(role: str, text: str) -> dict[str, Any]:
    return {"role": role, "parts": [{"text": text}]}


# -- LLMs ----------------------------------------------------------------------------------------


async def test_llm_round_trips_with_its_json_body(store: Store) -> None:
    body = {
        "endpoints": [{"id": "ep_1", "api_key": "v1:k1:c2VhbGVk", "priority": 0,
                       "extra_headers": [["X-Team", "ünïcødé ✓ 🚀"]]}],
        "generation": {"temperature": 0.7, "top_p": 1.0, "max_output_tokens": 2**40,
                       "stop": [], "seed": None},
        "routing": {"failover_after_first_token": True},
    }
    record = llm("llm_1", body=body)
    await store.create_llm(record)
    got = await store.get_llm("acct_a", "llm_1")
    assert got == record
    assert got is not None and got.create_time.utcoffset() == timedelta(0)
    assert await store.get_llm("acct_b", "llm_1") is None  # someone else's reads as missing
    assert await store.get_llm("acct_a", "llm_missing") is None


async def test_list_llms_is_newest_first_with_a_cursor(store: Store) -> None:
    # Same create_time ties break on id, bytewise (so "llm_B" < "llm__" < "llm_a").
    records = [llm("llm_old", at=T0), llm("llm_1us", at=T0 + US),
               llm("llm_B", at=T0 + timedelta(seconds=5)),
               llm("llm__", at=T0 + timedelta(seconds=5)),
               llm("llm_a", at=T0 + timedelta(seconds=5)),
               llm("llm_new", at=T0 + timedelta(days=1))]
    for r in reversed(records):
        await store.create_llm(r)
    await store.create_llm(llm("llm_other", account="acct_b", at=T0 + timedelta(seconds=3)))
    expected = ["llm_new", "llm_a", "llm__", "llm_B", "llm_1us", "llm_old"]

    first = await store.list_llms("acct_a", 100, None)
    assert [r.id for r in first] == expected
    pages: list[list[str]] = []
    after: tuple[datetime, str] | None = None
    while True:
        page = await store.list_llms("acct_a", 2, after)
        if not page:
            break
        assert len(page) <= 2
        pages.append([r.id for r in page])
        after = (page[-1].create_time, page[-1].id)
    assert pages == [expected[0:2], expected[2:4], expected[4:6]]
    assert [r.id for r in await store.list_llms("acct_b", 10, None)] == ["llm_other"]
    assert await store.list_llms("acct_none", 10, None) == []


async def test_replace_llm_is_compare_and_set_on_the_etag(store: Store) -> None:
    await store.create_llm(llm("llm_1", etag="e1"))
    later = T0 + timedelta(minutes=1)
    new = replace(llm("llm_1", etag="e2", body={"changed": True}), display_name="renamed",
                  update_time=later)

    assert not await store.replace_llm(new, "stale")
    assert await store.get_llm("acct_a", "llm_1") == llm("llm_1", etag="e1")
    assert not await store.replace_llm(replace(new, account_id="acct_b"), "e1")

    assert await store.replace_llm(new, "e1")
    got = await store.get_llm("acct_a", "llm_1")
    assert got == replace(new, create_time=T0)
    assert not await store.replace_llm(new, "e1")  # the old etag no longer matches


async def test_delete_llm_checks_etag_and_owner(store: Store) -> None:
    await store.create_llm(llm("llm_1", etag="e1"))
    await store.create_llm(llm("llm_2", etag="e2"))
    assert not await store.delete_llm("acct_a", "llm_1", "stale")
    assert not await store.delete_llm("acct_b", "llm_1", "e1")
    assert not await store.delete_llm("acct_b", "llm_1", "")
    assert await store.get_llm("acct_a", "llm_1") is not None

    assert await store.delete_llm("acct_a", "llm_1", "e1")
    assert await store.delete_llm("acct_a", "llm_2", "")  # empty etag: any
    assert await store.get_llm("acct_a", "llm_1") is None
    assert not await store.delete_llm("acct_a", "llm_1", "")
    assert await store.all_llms() == []


async def test_delete_llm_deletes_its_sessions(store: Store) -> None:
    await store.create_llm(llm("llm_1"))
    await store.create_llm(llm("llm_2"))
    await store.create_session(session("ses_1", "llm_1"))
    await store.create_session(session("ses_2", "llm_1"))
    await store.create_session(session("ses_3", "llm_2"))

    assert await store.delete_llm("acct_a", "llm_1", "")
    assert await store.get_session("acct_a", "ses_1") is None
    assert await store.get_session("acct_a", "ses_2") is None
    assert await store.get_session("acct_a", "ses_3") is not None
    assert not await store.save_turn("ses_1", -1, [msg("user", "hi")], T0)


async def test_all_llms_spans_accounts(store: Store) -> None:
    await store.create_llm(llm("llm_1", account="acct_a"))
    await store.create_llm(llm("llm_2", account="acct_b"))
    assert sorted(r.id for r in await store.all_llms()) == ["llm_1", "llm_2"]


# -- sessions ------------------------------------------------------------------------------------


async def test_session_round_trips_and_is_scoped_to_its_account(store: Store) -> None:
    await store.create_llm(llm("llm_1"))
    record = session("ses_1", "llm_1")
    await store.create_session(record)
    assert await store.get_session("acct_a", "ses_1") == record
    assert await store.get_session("acct_b", "ses_1") is None
    assert await store.get_session("acct_a", "ses_missing") is None


async def test_save_turn_appends_and_bumps_version(store: Store) -> None:
    await store.create_llm(llm("llm_1"))
    await store.create_session(session("ses_1", "llm_1"))
    turn1 = [msg("user", "Hi!"), msg("assistant", "Hello.")]
    turn2 = [msg("user", "Again"), msg("assistant", "Sure.")]
    e1, e2 = T0 + timedelta(hours=2), T0 + timedelta(hours=3)

    assert await store.save_turn("ses_1", 0, turn1, e1)
    assert not await store.save_turn("ses_1", 0, turn2, e2)  # stale version: no change
    got = await store.get_session("acct_a", "ses_1")
    assert got is not None
    assert (got.messages, got.turn_count, got.version, got.expire_time) == (turn1, 1, 1, e1)

    assert await store.save_turn("ses_1", -1, turn2, e2)  # -1: any version
    got = await store.get_session("acct_a", "ses_1")
    assert got is not None
    assert (got.messages, got.turn_count, got.version, got.expire_time) == (
        turn1 + turn2, 2, 2, e2)
    assert got.system_prompt == "Be brief." and got.generation == {"temperature": 0.2}

    assert not await store.save_turn("ses_missing", -1, turn1, e1)


async def test_concurrent_turns_are_all_appended(store: Store) -> None:
    await store.create_llm(llm("llm_1"))
    await store.create_session(session("ses_1", "llm_1"))
    results = await asyncio.gather(*(
        store.save_turn("ses_1", -1, [msg("user", f"m{i}")], T0 + timedelta(hours=2))
        for i in range(20)))
    assert all(results)
    got = await store.get_session("acct_a", "ses_1")
    assert got is not None
    assert (got.turn_count, got.version) == (20, 20)
    assert sorted(m["parts"][0]["text"] for m in got.messages) == sorted(
        f"m{i}" for i in range(20))


async def test_concurrent_compare_and_set_has_one_winner(store: Store) -> None:
    await store.create_llm(llm("llm_1"))
    await store.create_session(session("ses_1", "llm_1"))
    results = await asyncio.gather(*(
        store.save_turn("ses_1", 0, [msg("user", f"m{i}")], T0) for i in range(10)))
    assert results.count(True) == 1
    got = await store.get_session("acct_a", "ses_1")
    assert got is not None and len(got.messages) == 1 and got.version == 1


async def test_delete_session_checks_owner(store: Store) -> None:
    await store.create_llm(llm("llm_1"))
    await store.create_session(session("ses_1", "llm_1"))
    assert not await store.delete_session("acct_b", "ses_1")
    assert await store.delete_session("acct_a", "ses_1")
    assert not await store.delete_session("acct_a", "ses_1")
    assert await store.get_session("acct_a", "ses_1") is None


async def test_sweep_deletes_only_expired_sessions(store: Store) -> None:
    now = T0 + timedelta(hours=1)
    await store.create_llm(llm("llm_1"))
    await store.create_session(session("ses_old", "llm_1", expire=now - timedelta(minutes=5)))
    await store.create_session(session("ses_just", "llm_1", expire=now - US))
    await store.create_session(session("ses_now", "llm_1", expire=now))  # not before now
    await store.create_session(session("ses_live", "llm_1", expire=now + timedelta(hours=1)))
    assert await store.delete_expired_sessions(now) == 2
    for sid, alive in (("ses_old", False), ("ses_just", False), ("ses_now", True),
                       ("ses_live", True)):
        assert (await store.get_session("acct_a", sid) is not None) == alive, sid
    assert await store.delete_expired_sessions(now) == 0


# -- accounts and API keys -----------------------------------------------------------------------


async def test_accounts_list_in_creation_order(store: Store) -> None:
    await store.create_account("acct_2", "Second", T0 + timedelta(seconds=1))
    await store.create_account("acct_1", "First", T0)
    assert await store.list_accounts() == [("acct_1", "First"), ("acct_2", "Second")]


async def test_api_keys_create_get_list_revoke(store: Store) -> None:
    k2 = key("k2", at=T0 + timedelta(seconds=2), description="ci")
    k1 = key("k1", at=T0)
    other = key("k3", account="acct_b")
    for k in (k2, k1, other):
        await store.create_api_key(k)
    assert await store.get_api_key("k1") == k1
    assert k1.description == "" and (await store.get_api_key("k2")) == k2
    assert await store.get_api_key("k_missing") is None
    assert await store.list_api_keys("acct_a") == [k1, k2]
    assert await store.list_api_keys("acct_none") == []

    assert await store.revoke_api_key("k1")
    assert await store.get_api_key("k1") == replace(k1, revoked=True)
    assert await store.revoke_api_key("k1")  # revoking twice still finds the key
    assert not await store.revoke_api_key("k_missing")
    assert await store.get_api_key("k3") == other


# -- lifecycle -----------------------------------------------------------------------------------


async def test_data_survives_close_and_reopen(backend: Backend) -> None:
    first = await backend.open()
    await first.create_llm(llm("llm_1", body={"answer": 42}))
    await first.create_session(session("ses_1", "llm_1"))
    await first.save_turn("ses_1", 0, [msg("user", "remember me")], T0 + timedelta(hours=2))
    await first.create_account("acct_a", "A", T0)
    await first.create_api_key(key("k1"))
    await first.revoke_api_key("k1")
    await first.close()

    second = await backend.open()  # migrations see the current version and do nothing
    try:
        assert await second.get_llm("acct_a", "llm_1") == llm("llm_1", body={"answer": 42})
        got = await second.get_session("acct_a", "ses_1")
        assert got is not None and got.messages == [msg("user", "remember me")]
        assert got.version == 1
        assert await second.list_accounts() == [("acct_a", "A")]
        assert await second.get_api_key("k1") == replace(key("k1"), revoked=True)
    finally:
        await second.close()


async def test_a_closed_store_refuses_calls(backend: Backend) -> None:
    s = await backend.open()
    await s.close()
    with pytest.raises(RuntimeError):  # SQLite: executor shut down; PostgreSQL: not open
        await s.get_llm("acct_a", "llm_1")


async def test_refuses_a_schema_newer_than_it_knows(backend: Backend) -> None:
    s = await backend.open()
    await s.close()
    await backend.set_schema_version(backend.migration_count() + 1)
    with pytest.raises(RuntimeError, match="newer than this server knows"):
        await backend.open()


# -- PostgreSQL only -----------------------------------------------------------------------------


@pytest.mark.postgres
async def test_replicas_starting_together_migrate_once(pg_dsn: str) -> None:
    stores = [postgres.PostgresStore(pg_dsn) for _ in range(5)]
    await asyncio.gather(*(s.open() for s in stores))
    try:
        await stores[0].create_llm(llm("llm_1"))
        for s in stores:
            assert await s.get_llm("acct_a", "llm_1") is not None
    finally:
        await asyncio.gather(*(s.close() for s in stores))
    dsn, schema, _ = postgres.parse_dsn(pg_dsn)
    conn = await asyncpg.connect(dsn)
    try:
        rows = await conn.fetch(f'SELECT version FROM "{schema}".schema_version')
    finally:
        await conn.close()
    assert [r["version"] for r in rows] == [len(postgres.MIGRATIONS)]


@pytest.mark.postgres
async def test_schemas_keep_databases_apart(pg_dsn: str) -> None:
    from tests import pg

    other = pg.new_schema_name()
    a = postgres.PostgresStore(pg_dsn)
    b = postgres.PostgresStore(pg.with_schema(pg.base_dsn(), other))
    await a.open()
    await b.open()
    try:
        await a.create_llm(llm("llm_1"))
        assert await b.get_llm("acct_a", "llm_1") is None
        assert await b.all_llms() == []
    finally:
        await a.close()
        await b.close()
        await pg.drop_schema(pg.base_dsn(), other)


# -- one turn at a time per session ---------------------------------------------------------------


async def test_a_turn_claims_a_session_and_writes_its_history_at_the_claimed_version(
        store: Store) -> None:
    await store.create_llm(llm("llm_1"))
    await store.create_session(session("ses_1", "llm_1"))
    hold = T0 + timedelta(minutes=5)
    first = await store.claim_turn("ses_1", "turn_a", T0, hold)
    assert first is not None and first.claimed and first.version == 1
    busy = await store.claim_turn("ses_1", "turn_b", T0 + timedelta(seconds=1), hold)
    assert busy is not None and (busy.claimed, busy.running_turn_id) == (False, "turn_a")
    assert busy.running_until == hold
    # Only the holder writes, and only at the version its claim produced.
    assert not await store.end_turn("ses_1", "turn_b", 1, [msg("user", "lost?")], hold)
    assert not await store.end_turn("ses_1", "turn_a", 0, [msg("user", "stale")], hold)
    assert await store.end_turn("ses_1", "turn_a", 1, [msg("user", "hi")], hold)
    got = await store.get_session("acct_a", "ses_1")
    assert got is not None and (got.messages, got.turn_count, got.version) == (
        [msg("user", "hi")], 1, 2)
    assert got.running_turn_id == ""
    # Freed: the next turn claims at once; a turn that writes nothing is not counted.
    again = await store.claim_turn("ses_1", "turn_b", T0, hold)
    assert again is not None and again.claimed and again.version == 3
    assert await store.end_turn("ses_1", "turn_b", 3, [], hold)
    got = await store.get_session("acct_a", "ses_1")
    assert got is not None and (got.turn_count, got.version) == (1, 4)
    assert await store.claim_turn("ses_missing", "turn_c", T0, hold) is None


async def test_turns_append_to_the_stored_history_whatever_it_holds(store: Store) -> None:
    """``end_turn`` appends to the history as stored (SQLite appends to the JSON text in
    place): after turns, an empty turn and a replaced history, the history reads back whole."""
    await store.create_llm(llm("llm_1"))
    await store.create_session(session("ses_1", "llm_1"))
    hold = T0 + timedelta(minutes=5)

    async def turn(turn_id: str, messages: list[dict[str, Any]]) -> None:
        claim = await store.claim_turn("ses_1", turn_id, T0, hold)
        assert claim is not None and claim.claimed
        assert await store.end_turn("ses_1", turn_id, claim.version, messages, hold)

    tricky = [msg("user", 'a "quoted" ], [nested] \\ and ünïcödé 🎙'), msg("assistant", "[]")]
    await turn("turn_1", tricky)
    await turn("turn_2", [])
    await turn("turn_3", [msg("user", "second")])
    got = await store.get_session("acct_a", "ses_1")
    assert got is not None and got.messages == [*tricky, msg("user", "second")]
    assert got.turn_count == 2
    replaced = replace(got, messages=[msg("user", "only")])
    assert await store.replace_session(replaced, got.version)
    await turn("turn_4", [msg("assistant", "after")])
    got = await store.get_session("acct_a", "ses_1")
    assert got is not None and got.messages == [msg("user", "only"), msg("assistant", "after")]
    emptied = replace(got, messages=[])
    assert await store.replace_session(emptied, got.version)
    await turn("turn_5", [msg("user", "fresh")])
    got = await store.get_session("acct_a", "ses_1")
    assert got is not None and got.messages == [msg("user", "fresh")]


async def test_a_lapsed_hold_can_be_taken_over(store: Store) -> None:
    await store.create_llm(llm("llm_1"))
    await store.create_session(session("ses_1", "llm_1"))
    hold = T0 + timedelta(minutes=5)
    assert (await store.claim_turn("ses_1", "turn_dead", T0, hold)).claimed  # type: ignore[union-attr]
    later = hold + timedelta(seconds=1)
    taken = await store.claim_turn("ses_1", "turn_new", later, later + timedelta(minutes=5))
    assert taken is not None and taken.claimed and taken.version == 2
    # The replica that died comes back: its write is refused, nothing is lost.
    assert not await store.end_turn("ses_1", "turn_dead", 1, [msg("user", "late")], later)


async def test_concurrent_claims_have_one_winner(store: Store) -> None:
    await store.create_llm(llm("llm_1"))
    await store.create_session(session("ses_1", "llm_1"))
    hold = T0 + timedelta(minutes=5)
    claims = await asyncio.gather(*(store.claim_turn("ses_1", f"turn_{i}", T0, hold)
                                    for i in range(8)))
    assert sum(1 for c in claims if c is not None and c.claimed) == 1


async def test_notifications_reach_every_listener(backend: Backend) -> None:
    """PostgreSQL: across connections (replicas); SQLite (one process): within the store."""
    b = await backend.open()
    a = await backend.open() if backend.name == "postgres" else b
    try:
        got: list[str] = []
        arrived = asyncio.Event()

        def heard(payload: str) -> None:
            got.append(payload)
            arrived.set()

        await b.listen("session_turns", heard)
        await a.notify("session_turns", "freed:ses_1")
        await arrived.wait()
        assert got == ["freed:ses_1"]
    finally:
        if a is not b:
            await a.close()
        await b.close()
