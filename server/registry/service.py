"""Registering, reading, changing and deleting LLMs for an account.

Input arrives as drafts (``server.registry.drafts``, translated from protos by the edge), is
checked field by field, gets its keys sealed by the vault, and is stored. Turns read LLMs
through ``resolve``, which keeps decrypted LLMs in a small cache so that the hot path neither
hits the database nor decrypts on every turn; the cache entry lives ``cache_ttl_s`` so that
replicas sharing one database see each other's changes within that time.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
from collections.abc import Callable, Mapping
from dataclasses import replace
from datetime import UTC, datetime

import orjson
import structlog

from server.clock import Clock, SystemClock
from server.errors import Aborted, InvalidArgument, NotFound, Violations
from server.ids import new_id
from server.registry.codec import Sealer, from_record, legacy_headers_sealed, to_record_body
from server.registry.drafts import (
    UPDATABLE,
    EndpointDraft,
    LlmDraft,
    UrlGuard,
    check_draft,
)
from server.registry.endpoint_capabilities import Capabilities
from server.registry.llm import Endpoint, HeaderValue, Llm
from server.secret import Secret
from server.store.base import LlmRecord, Store

log = structlog.get_logger("switchboard.registry")

MAX_PAGE_SIZE = 1000
DEFAULT_PAGE_SIZE = 50


def _etag(body: dict[str, object], display_name: str) -> str:
    digest = hashlib.sha256(orjson.dumps([display_name, body], option=orjson.OPT_SORT_KEYS))
    return digest.hexdigest()[:16]


def _encode_token(record: LlmRecord) -> str:
    raw = f"{record.create_time.isoformat()}|{record.id}".encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _decode_token(token: str) -> tuple[datetime, str]:
    try:
        raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)).decode()
        when, llm_id = raw.split("|", 1)
        return datetime.fromisoformat(when), llm_id
    except (ValueError, UnicodeDecodeError):
        raise InvalidArgument(
            "page_token is not a token returned by ListLlms; start again with an empty token",
            reason="INVALID_PAGE_TOKEN",
        ) from None


def _headers(e: EndpointDraft, old: Endpoint | None) -> tuple[tuple[str, HeaderValue], ...]:
    """The draft's headers, a kept value (None) taken from ``old`` (checked to exist)."""
    out: list[tuple[str, HeaderValue]] = []
    for name, value in e.extra_headers:
        if value is None:
            stored = old.stored_header(name) if old is not None else None
            assert stored is not None  # checked by check_draft
            value = stored
        out.append((name, value))
    return tuple(out)


def _identity(e: Endpoint) -> tuple[object, ...]:
    """What makes an endpoint the same upstream: a change of any of these is a new one."""
    return (e.api_spec, e.base_url, e.model, e.api_key.reveal(), e.api_version,
            e.extra_headers)


class RegistryService:
    def __init__(
        self,
        store: Store,
        sealer: Sealer,
        url_guard: UrlGuard | None = None,
        cache_ttl_s: float = 2.0,
        on_delete: Callable[[Llm], None] | None = None,
        max_stale_s: float = 30.0,
        on_endpoint_change: Callable[[str], None] | None = None,
        clock: Clock | None = None,
    ) -> None:
        """``cache_ttl_s``: how long a turn uses a cached LLM without asking the store;
        ``max_stale_s``: how long past that a turn may still use it while a background read
        refreshes it (the store being slow or down does not stall turns for that long).
        ``on_endpoint_change(endpoint_id)``: an endpoint's key, URL, model or spec changed, or
        it was removed, as this replica learns it (its own update, or a read of another
        replica's, such as the background refresh): its router state must start afresh.
        ``clock``: what the cache ages are read from (tests move a ``FakeClock``)."""
        self._clock = clock or SystemClock()
        self._store = store
        self._sealer = sealer
        self._url_guard = url_guard
        self._cache_ttl_s = cache_ttl_s
        self._max_stale_s = max(max_stale_s, cache_ttl_s)
        self._cache: dict[str, tuple[float, Llm]] = {}
        self._refreshing: dict[tuple[str, str], asyncio.Future[Llm]] = {}
        self._retry_at: dict[tuple[str, str], float] = {}  # after a failed background refresh
        self._on_delete = on_delete
        self._on_endpoint_change = on_endpoint_change

    def _cached(self, llm: Llm) -> None:
        """Caches ``llm``; tells ``on_endpoint_change`` which endpoints changed since the
        version this replica had."""
        old = self._cache.get(llm.id)
        self._cache[llm.id] = (self._clock.monotonic(), llm)
        if old is None or self._on_endpoint_change is None or old[1].etag == llm.etag:
            return
        now = {e.id: _identity(e) for e in llm.endpoints}
        for e in old[1].endpoints:
            if now.get(e.id) != _identity(e):
                self._on_endpoint_change(e.id)

    async def _guard_urls(self, draft: LlmDraft) -> None:
        if self._url_guard is not None:
            for i, e in enumerate(draft.endpoints):
                await self._url_guard(e.base_url, f"llm.endpoints[{i}].base_url")

    def _endpoints(self, draft: LlmDraft, existing: Llm | None) -> tuple[Endpoint, ...]:
        out = []
        for e in draft.endpoints:
            old = existing.endpoint(e.id) if existing and e.id else None
            key = e.api_key if e.api_key is not None else (old.api_key if old else Secret(""))
            assert e.api_spec is not None  # checked by check_draft
            out.append(
                Endpoint(
                    id=old.id if old else new_id("ep"),
                    api_spec=e.api_spec,
                    base_url=e.base_url.strip().rstrip("/"),
                    model=e.model.strip(),
                    api_key=key,
                    api_version=e.api_version,
                    label=e.label,
                    priority=e.priority,
                    context_window_tokens=e.context_window_tokens,
                    continues_partial_answer=e.continues_partial_answer,
                    extra_headers=_headers(e, old),
                    capabilities=old.capabilities if old else Capabilities(),
                )
            )
        return tuple(out)

    async def prepare_new(self, account_id: str, draft: LlmDraft) -> Llm:
        """Checks a draft and builds the LLM it describes, without storing it."""
        check_draft(draft, None, UPDATABLE)
        await self._guard_urls(draft)
        now = datetime.now(UTC)
        return Llm(
            id=new_id("llm"),
            account_id=account_id,
            display_name=draft.display_name.strip(),
            endpoints=self._endpoints(draft, None),
            generation=draft.generation,
            policy=draft.policy,
            create_time=now,
            update_time=now,
        )

    async def store_new(self, llm: Llm) -> Llm:
        body = to_record_body(llm, self._sealer)
        etag = _etag(body, llm.display_name)
        assert llm.create_time and llm.update_time
        await self._store.create_llm(
            LlmRecord(llm.id, llm.account_id, llm.display_name, body, llm.create_time,
                      llm.update_time, etag)
        )
        stored = replace(llm, etag=etag)
        self._cached(stored)
        return stored

    async def get(self, account_id: str, llm_id: str) -> Llm:
        record = await self._store.get_llm(account_id, llm_id) if llm_id else None
        if record is None:
            hit = self._cache.get(llm_id)
            if hit is not None and hit[1].account_id == account_id:
                del self._cache[llm_id]  # deleted (by another replica): turns stop using it
            raise NotFound(f"LLM {llm_id!r} not found", resource_type="llm",
                           resource_name=llm_id, reason="LLM_NOT_FOUND")
        llm = from_record(record, self._sealer)
        self._cached(llm)
        return llm

    async def resolve(self, account_id: str, llm_id: str) -> Llm:
        """The LLM for a turn, without waiting for the store on the hot path.

        Fresh (cached less than ``cache_ttl_s`` ago): returned as is. Stale, but less than
        ``max_stale_s`` old: returned at once while one background read refreshes it, so a
        turn never pays the store's round trip; a refresh that finds the LLM deleted drops it,
        and the next turn gets NOT_FOUND. Older or not cached: the turn waits for the read,
        which concurrent turns share (single flight).
        """
        hit = self._cache.get(llm_id)
        if hit is not None and hit[1].account_id == account_id:
            now = self._clock.monotonic()
            if now - hit[0] < self._cache_ttl_s:
                return hit[1]
            if now - hit[0] < self._max_stale_s:
                if self._retry_at.get((account_id, llm_id), 0.0) <= now:
                    self._refresh(account_id, llm_id)
                return hit[1]
        return await asyncio.shield(self._refresh(account_id, llm_id))

    def _refresh(self, account_id: str, llm_id: str) -> asyncio.Future[Llm]:
        key = (account_id, llm_id)
        task = self._refreshing.get(key)
        if task is None:
            task = asyncio.ensure_future(self.get(account_id, llm_id))
            self._refreshing[key] = task
            task.add_done_callback(lambda t: self._refreshed(key, t))
        return task

    def _refreshed(self, key: tuple[str, str], task: asyncio.Future[Llm]) -> None:
        self._refreshing.pop(key, None)
        if task.cancelled():
            return
        exc = task.exception()  # retrieved here: a background refresh may have no waiter
        if exc is None or isinstance(exc, NotFound):
            self._retry_at.pop(key, None)
        else:  # the store is failing: try again in a second, not on every turn
            self._retry_at[key] = self._clock.monotonic() + 1.0
            log.warning("registry read failed", llm_id=key[1], error_type=type(exc).__name__)

    async def list(self, account_id: str, page_size: int, page_token: str
                   ) -> tuple[list[Llm], str]:
        if page_size < 0:
            v = Violations()
            v.add("page_size", f"must not be negative (got {page_size}); 0 means the default "
                  f"of {DEFAULT_PAGE_SIZE}")
            v.raise_if_any()
        size = min(page_size or DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE)
        after = _decode_token(page_token) if page_token else None
        records = await self._store.list_llms(account_id, size + 1, after)
        page = records[:size]
        token = _encode_token(page[-1]) if len(records) > size else ""
        return [from_record(r, self._sealer) for r in page], token

    async def prepare_update(
        self, account_id: str, llm_id: str, draft: LlmDraft, mask: frozenset[str]
    ) -> tuple[Llm, Llm]:
        """Checks an update; returns (existing, updated) without storing."""
        unknown = mask - UPDATABLE
        if not mask or unknown:
            v = Violations()
            v.add("update_mask", f"unknown or output-only field {sorted(unknown)[0]!r}; "
                  f"updatable: {', '.join(sorted(UPDATABLE))}" if unknown
                  else f"is required; updatable: {', '.join(sorted(UPDATABLE))}")
            v.raise_if_any()
        existing = await self.get(account_id, llm_id)
        if draft.etag and draft.etag != existing.etag:
            raise Aborted(f"LLM {llm_id!r} changed since etag {draft.etag!r} was read; "
                          "get it again and retry the update")
        check_draft(draft, existing, mask)
        if "endpoints" in mask:
            await self._guard_urls(draft)
        updated = replace(
            existing,
            display_name=(draft.display_name.strip() if "display_name" in mask
                          else existing.display_name),
            endpoints=self._endpoints(draft, existing) if "endpoints" in mask
            else existing.endpoints,
            generation=draft.generation if "generation" in mask else existing.generation,
            policy=draft.policy if "routing" in mask else existing.policy,
            update_time=datetime.now(UTC),
        )
        return existing, updated

    async def store_update(self, existing: Llm, updated: Llm) -> Llm:
        body = to_record_body(updated, self._sealer)
        etag = _etag(body, updated.display_name)
        assert updated.create_time and updated.update_time
        record = LlmRecord(updated.id, updated.account_id, updated.display_name, body,
                           updated.create_time, updated.update_time, etag)
        if not await self._store.replace_llm(record, existing.etag):
            raise Aborted(f"LLM {updated.id!r} was changed concurrently; get it and retry")
        stored = replace(updated, etag=etag)
        self._cached(stored)
        return stored

    async def delete(self, account_id: str, llm_id: str, etag: str) -> None:
        existing = await self.get(account_id, llm_id)
        if etag and etag != existing.etag:
            raise Aborted(f"LLM {llm_id!r} changed since etag {etag!r} was read")
        if not await self._store.delete_llm(account_id, llm_id, etag):
            raise Aborted(f"LLM {llm_id!r} was changed concurrently; get it and retry")
        self._cache.pop(llm_id, None)
        if self._on_delete is not None:
            self._on_delete(existing)

    async def set_capabilities(self, account_id: str, llm_id: str,
                               capabilities: Mapping[str, Capabilities]) -> None:
        """Records what validation detected on each endpoint (best effort, last write wins)."""
        existing = await self.get(account_id, llm_id)
        endpoints = tuple(replace(e, capabilities=capabilities.get(e.id, e.capabilities))
                          for e in existing.endpoints)
        await self.store_update(existing, replace(existing, endpoints=endpoints))

    async def seal_legacy_headers(self) -> int:
        """Migrates extra headers stored before secret headers existed (at startup): those
        named like credentials are sealed (``codec.legacy_headers_sealed``). A record changed
        concurrently is left for the next start. Returns how many LLMs changed."""
        count = 0
        for record in await self._store.all_llms():
            body = legacy_headers_sealed(record.body, self._sealer, record.account_id,
                                         record.id)
            if body is not None and await self._store.replace_llm(replace(record, body=body),
                                                                  record.etag):
                count += 1
        if count:
            self._cache.clear()
            log.info("legacy extra headers migrated", llms=count)
        return count
