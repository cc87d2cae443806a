"""Opens the store a database setting names: a SQLite path, or a ``postgresql://`` DSN."""

from __future__ import annotations

from server.store.base import Store


async def open_store(database: str) -> Store:
    store: Store
    if database.startswith(("postgres://", "postgresql://")):
        from server.store.postgres import PostgresStore

        store = PostgresStore(database)
    else:
        from server.store.sqlite import SqliteStore

        store = SqliteStore(database)
    await store.open()
    return store
