"""The store interface and its records.

Records are plain data: the registry and session services translate between them and the
domain types, and the vault seals secrets before they get here, so a store never sees a
plaintext key. Writes are atomic; updates are compare-and-set on an etag or version.
"""

from __future__ import annotations

from collections.abc import Callable
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
    running_turn_id: str = ""  # the turn that holds the session, "" when none
    running_until: datetime | None = None  # when that hold lapses (its replica may be gone)


@dataclass(frozen=True, slots=True)
class TurnClaim:
    """The outcome of ``claim_turn``: claimed (``version`` is the session's version now, to
    compare-and-set the turn's history write on), or the turn that holds the session."""

    claimed: bool
    version: int
    running_turn_id: str
    running_until: datetime | None


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

    async def claim_turn(self, session_id: str, turn_id: str, now: datetime,
                         hold_until: datetime) -> TurnClaim | None:
        """Makes ``turn_id`` the session's running turn unless another turn holds it (and its
        hold has not lapsed at ``now``); bumps the version when claimed. None: no session."""
        ...

    async def end_turn(self, session_id: str, turn_id: str, expected_version: int,
                       new_messages: list[dict[str, Any]], expire_time: datetime) -> bool:
        """Appends the turn's messages (maybe none), counts the turn when there are any, bumps
        the version and frees the session, if ``turn_id`` still holds it at
        ``expected_version``; False otherwise (nothing changes)."""
        ...

    async def replace_session(self, record: SessionRecord, expected_version: int) -> bool:
        """Stores the record's system prompt, generation, TTL, expiry and messages, bumping the
        version, if the version is ``expected_version`` (a turn's claim bumps it too)."""
        ...

    async def notify(self, channel: str, payload: str) -> None:
        """Sends ``payload`` to every listener of ``channel`` on every replica of the store."""
        ...

    async def listen(self, channel: str, callback: Callable[[str], None]) -> None:
        """Calls ``callback(payload)`` for each notification on ``channel`` until close."""
        ...

    async def delete_session(self, account_id: str, session_id: str) -> bool: ...

    async def delete_expired_sessions(self, now: datetime) -> int: ...

    # Accounts and caller API keys --------------------------------------------------------------
    async def create_account(self, account_id: str, name: str, create_time: datetime) -> None: ...

    async def list_accounts(self) -> list[tuple[str, str]]: ...

    async def create_api_key(self, record: ApiKeyRecord) -> None: ...

    async def get_api_key(self, key_id: str) -> ApiKeyRecord | None: ...

    async def list_api_keys(self, account_id: str) -> list[ApiKeyRecord]: ...

    async def revoke_api_key(self, key_id: str) -> bool: ...

    # Master key check values: one per key id, recorded when a server first uses the key.
    async def master_key_checks(self) -> dict[str, str]: ...

    async def add_master_key_check(self, key_id: str, check_value: str) -> None:
        """Records ``check_value`` for ``key_id`` unless one is recorded already."""
        ...
