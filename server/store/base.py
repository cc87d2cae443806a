"""The store interface and its records.

Records are plain data: the registry and session services translate between them and the
domain types, and the vault seals secrets before they get here, so a store never sees a
plaintext key. Writes are atomic; updates are compare-and-set on an etag or version.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol


@dataclass(frozen=True, slots=True)
class LlmRecord:
    id: str
    account_id: str
    display_name: str
    body: dict[str, Any]  # endpoints (keys sealed), generation, routing: JSON-serialisable
    create_time: datetime
    update_time: datetime
    etag: str


@dataclass(frozen=True, slots=True)
class SessionRecord:
    id: str
    account_id: str
    llm_id: str
    system_prompt: str
    generation: dict[str, Any]
    idle_ttl_s: float
    create_time: datetime
    expire_time: datetime
    turn_count: int
    messages: list[dict[str, Any]]
    version: int


@dataclass(frozen=True, slots=True)
class ApiKeyRecord:
    key_id: str
    account_id: str
    key_hash: str
    create_time: datetime
    revoked: bool
    description: str = ""


class Store(Protocol):
    async def open(self) -> None: ...

    async def close(self) -> None: ...

    # LLMs ------------------------------------------------------------------------------------
    async def create_llm(self, record: LlmRecord) -> None: ...

    async def get_llm(self, account_id: str, llm_id: str) -> LlmRecord | None: ...

    async def list_llms(
        self, account_id: str, limit: int, after: tuple[datetime, str] | None
    ) -> list[LlmRecord]:
        """Newest first; ``after`` is the (create_time, id) of the last record seen."""
        ...

    async def replace_llm(self, record: LlmRecord, expected_etag: str) -> bool:
        """Stores ``record`` if the stored etag equals ``expected_etag``; False otherwise."""
        ...

    async def delete_llm(self, account_id: str, llm_id: str, expected_etag: str) -> bool:
        """Deletes the LLM and its sessions; ``expected_etag`` empty means any."""
        ...

    async def all_llms(self) -> list[LlmRecord]: ...

    # Sessions --------------------------------------------------------------------------------
    async def create_session(self, record: SessionRecord) -> None: ...

    async def get_session(self, account_id: str, session_id: str) -> SessionRecord | None: ...

    async def session_version(self, account_id: str, session_id: str) -> int | None:
        """The session's version if it exists and has not expired (one indexed read, no
        history: what a replica's session cache is checked against)."""
        ...

    async def save_turn(
        self,
        session_id: str,
        expected_version: int,
        new_messages: list[dict[str, Any]],
        expire_time: datetime,
    ) -> bool:
        """Appends messages, bumps turn count and version atomically.

        Returns False if the session is gone, or if ``expected_version`` is not -1 and the
        stored version differs.
        """
        ...

    async def touch_session(self, session_id: str, expire_time: datetime) -> None: ...

    async def delete_session(self, account_id: str, session_id: str) -> bool: ...

    async def delete_expired_sessions(self, now: datetime) -> int: ...

    # Accounts and caller API keys --------------------------------------------------------------
    async def create_account(self, account_id: str, name: str, create_time: datetime) -> None: ...

    async def list_accounts(self) -> list[tuple[str, str]]: ...

    async def create_api_key(self, record: ApiKeyRecord) -> None: ...

    async def get_api_key(self, key_id: str) -> ApiKeyRecord | None: ...

    async def list_api_keys(self, account_id: str) -> list[ApiKeyRecord]: ...

    async def revoke_api_key(self, key_id: str) -> bool: ...
