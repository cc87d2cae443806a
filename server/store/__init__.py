"""Persistence behind one small interface: SQLite embedded, PostgreSQL for replicas."""

from server.store.base import ApiKeyRecord, LlmRecord, SessionRecord, Store

__all__ = ["ApiKeyRecord", "LlmRecord", "SessionRecord", "Store"]
