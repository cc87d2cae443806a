"""Accounts and caller API keys: who is calling, and which account owns what.

``StoreAuthenticator`` checks ``sb_<id>_<secret>`` keys against their stored hashes (never
the keys themselves). A valid key's verdict is cached for ``cache_ttl_s`` (``AUTH_CACHE_TTL_S``,
1 s) so that a stream of calls does not hit the database on every one; a revoked key is
therefore refused within that time on every replica, without a restart. Unknown, malformed
and revoked keys are never cached. Time comes from an injected ``Clock`` so that tests move
it forward instead of sleeping. Static development keys from the configuration map to the
``default`` account.
"""

from __future__ import annotations

import hmac
from dataclasses import dataclass
from datetime import UTC, datetime

from server.clock import Clock, SystemClock
from server.errors import NotFound, Unauthenticated
from server.ids import new_id
from server.secret import Secret
from server.store.base import ApiKeyRecord, Store
from server.vault import apikeys

DEFAULT_ACCOUNT = "default"
AUTH_CACHE_TTL_S = 1.0
_MAX_CACHED = 10_000


@dataclass(frozen=True, slots=True)
class IssuedKey:
    key_id: str
    account_id: str
    plaintext: Secret  # shown once


class StoreAuthenticator:
    def __init__(self, store: Store, static_keys: tuple[str, ...] = (),
                 cache_ttl_s: float = AUTH_CACHE_TTL_S, clock: Clock | None = None) -> None:
        self._store = store
        self._static = tuple(static_keys)
        self._ttl = cache_ttl_s
        self._clock = clock or SystemClock()
        self._cache: dict[str, tuple[float, str]] = {}  # key hash -> (checked at, account)

    async def authenticate(self, api_key: str) -> str:
        for static in self._static:
            if hmac.compare_digest(static.encode(), api_key.encode()):
                return DEFAULT_ACCOUNT
        digest = apikeys.hash_key(api_key)
        hit = self._cache.get(digest)
        now = self._clock.monotonic()
        if hit is not None and now - hit[0] < self._ttl:
            return hit[1]
        try:
            key_id = apikeys.parse(api_key)
        except Unauthenticated:
            raise Unauthenticated(
                "the API key is not valid: use a key from `switchboard admin create-key` "
                "(sb_...) or one of the server's SWITCHBOARD_API_KEYS",
                reason="API_KEY_INVALID") from None
        record = await self._store.get_api_key(key_id)
        if record is None or record.revoked or not apikeys.verify(api_key, record.key_hash):
            self._cache.pop(digest, None)
            raise Unauthenticated("the API key is unknown or revoked", reason="API_KEY_INVALID")
        if len(self._cache) >= _MAX_CACHED:
            self._cache = {k: v for k, v in self._cache.items() if now - v[0] < self._ttl}
        self._cache[digest] = (now, record.account_id)
        return record.account_id


class AccountAdmin:
    """What ``switchboard admin`` does."""

    REVOCATION_DELAY_S = AUTH_CACHE_TTL_S  # how long a revoked key may still be accepted

    def __init__(self, store: Store) -> None:
        self._store = store

    async def create_account(self, name: str) -> str:
        account_id = new_id("acct")
        await self._store.create_account(account_id, name, datetime.now(UTC))
        return account_id

    async def create_key(self, account_id: str, description: str = "") -> IssuedKey:
        accounts = {a for a, _ in await self._store.list_accounts()}
        if account_id not in accounts and account_id != DEFAULT_ACCOUNT:
            raise NotFound(f"account {account_id!r} not found")
        key = apikeys.generate()
        await self._store.create_api_key(ApiKeyRecord(
            key_id=key.key_id, account_id=account_id, key_hash=key.key_hash,
            create_time=datetime.now(UTC), revoked=False, description=description))
        return IssuedKey(key.key_id, account_id, key.plaintext)

    async def revoke_key(self, key_id: str) -> None:
        if not await self._store.revoke_api_key(key_id):
            raise NotFound(f"API key {key_id!r} not found")

    async def list_keys(self, account_id: str) -> list[ApiKeyRecord]:
        return await self._store.list_api_keys(account_id)
