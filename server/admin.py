"""Operator commands that act on the database directly: accounts, caller keys, master keys.

``switchboard keys ...`` (master keys of the credential vault):

- ``rotate``: adds a fresh key to the key file and makes it primary (``--use-existing``: keep
  the keys as configured, e.g. with ``SWITCHBOARD_MASTER_KEYS``), then re-wraps every stored
  secret's data key under the primary. Safe while servers run: each LLM is rewritten with a
  compare-and-set on its etag (the etag is kept: the LLM's content does not change), a record
  changed concurrently is read again and re-wrapped in the next pass, and running servers
  re-read the key file within a second (``server.vault.source``).
- ``list``: the configured keys and how many stored secrets each one wraps.
- ``remove KEY_ID``: drops a retired key from the key file, refusing while any stored secret
  still names it (and refusing the primary).

``switchboard admin ...``: ``create-account NAME``, ``create-key ACCOUNT``, ``revoke-key KEY_ID``,
``list-keys ACCOUNT``. Caller keys are shown once and stored as hashes.
"""

from __future__ import annotations

import argparse
import sys
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

from server.accounts import AccountAdmin
from server.config import ConfigError, Settings, load
from server.errors import SwitchboardError
from server.registry.codec import resealed, sealed_secrets
from server.store.base import LlmRecord, Store
from server.store.open import open_store
from server.vault.checks import verify_key_material
from server.vault.envelope import Keyring
from server.vault.errors import KeyringError, VaultError
from server.vault.keys import (
    ENV_KEY_FILE,
    ENV_KEYS,
    add_key,
    generate_key_file,
    load_keyring,
    remove_key,
)
from server.vault.redact import KnownSecrets
from server.vault.sealer import VaultSealer

MAX_PASSES = 5
MALFORMED = "<malformed>"


@dataclass(frozen=True, slots=True)
class Rotation:
    """What ``rotate_keys`` did."""

    primary: str
    added: bool  # a new key was added to the key file
    rewrapped: int  # LLMs whose secrets were re-wrapped
    remaining: dict[str, int] = field(default_factory=dict)  # old key id -> secrets still under it
    failures: tuple[str, ...] = ()  # records that could not be re-wrapped, and why


def _keyring(settings: Settings) -> Keyring:
    return load_keyring(master_keys=settings.master_keys, key_file=settings.master_key_file,
                        primary_key_id=settings.primary_key_id or None)


async def key_usage(store: Store) -> Counter[str]:
    """How many stored secrets each master key id wraps (``MALFORMED``: unreadable ones)."""
    usage: Counter[str] = Counter()
    for record in await store.all_llms():
        for e in record.body.get("endpoints", ()):
            for _, sealed in sealed_secrets(e):
                try:
                    usage[VaultSealer.key_id_of(sealed)] += 1
                except VaultError:
                    usage[MALFORMED] += 1
    return usage


def _rewrapped(record: LlmRecord, sealer: VaultSealer) -> dict[str, Any] | None:
    """The record's body with every secret under the primary key; None if nothing changed."""
    endpoints = []
    for e in record.body.get("endpoints", ()):
        endpoint_id = e["id"]

        def rewrap(field: str, sealed: str, endpoint_id: str = endpoint_id) -> str:
            return sealer.rewrap(sealed, record.account_id, record.id, endpoint_id, field)

        endpoints.append(resealed(e, rewrap))
    body = {**record.body, "endpoints": endpoints}
    return None if body == record.body else body


async def rewrap_all(store: Store, sealer: VaultSealer) -> tuple[int, list[str]]:
    """Re-wraps every stored secret under the primary key; (LLMs changed, failure messages).

    A compare-and-set that loses to a concurrent update is retried in the next pass (at most
    ``MAX_PASSES``) on the record as it is now.
    """
    changed = 0
    failures: dict[str, str] = {}
    for _ in range(MAX_PASSES):
        conflicts = 0
        for record in await store.all_llms():
            try:
                body = _rewrapped(record, sealer)
            except VaultError as exc:  # names the record, never the secret
                failures[record.id] = exc.message
                continue
            failures.pop(record.id, None)
            if body is None:
                continue
            if await store.replace_llm(replace(record, body=body), record.etag):
                changed += 1
            else:
                conflicts += 1
        if not conflicts:
            break
    return changed, list(failures.values())


async def rotate_keys(settings: Settings, *, use_existing: bool = False,
                      new_key_id: str | None = None) -> Rotation:
    """``switchboard keys rotate``: a new primary key (unless ``use_existing``), then re-wrap."""
    added = False
    if not use_existing:
        if not settings.master_key_file:
            raise KeyringError(
                f"master keys come from {ENV_KEYS}, which this command cannot change: add the "
                f"new key there on every replica (first as a non-primary key, then as primary), "
                "then run `switchboard keys rotate --use-existing`")
        add_key(settings.master_key_file, key_id=new_key_id)
        added = True
    keyring = _keyring(settings)
    sealer = VaultSealer(keyring, KnownSecrets())
    store = await open_store(settings.database)
    try:
        await verify_key_material(store, keyring, settings.database.split("@")[-1])
        changed, failures = await rewrap_all(store, sealer)
        usage = await key_usage(store)
    finally:
        await store.close()
    remaining = {k: n for k, n in usage.items() if k != keyring.primary_key_id}
    return Rotation(keyring.primary_key_id, added, changed, remaining, tuple(failures))


async def remove_master_key(settings: Settings, key_id: str) -> None:
    """``switchboard keys remove KEY_ID``; refuses while a stored secret names the key."""
    if not settings.master_key_file:
        raise KeyringError(
            f"master keys come from {ENV_KEYS}: remove the key from that variable on every "
            "replica once `switchboard keys list` shows no secret under it")
    store = await open_store(settings.database)
    try:
        usage = await key_usage(store)
    finally:
        await store.close()
    if usage.get(key_id):
        raise KeyringError(
            f"{usage[key_id]} stored secret(s) are still sealed under master key {key_id!r}; "
            "run `switchboard keys rotate --use-existing` first, then remove it")
    remove_key(settings.master_key_file, key_id)


async def list_master_keys(settings: Settings) -> list[str]:
    """One line per key id: configured or only named by stored secrets, and its usage."""
    keyring = _keyring(settings)
    store = await open_store(settings.database)
    try:
        usage = await key_usage(store)
    finally:
        await store.close()
    lines = []
    for key_id in keyring.key_ids:
        role = "primary" if key_id == keyring.primary_key_id else "old"
        lines.append(f"{key_id}  {role:<7}  {usage.get(key_id, 0)} secret(s)")
    for key_id, count in sorted(usage.items()):
        if key_id not in keyring.key_ids:
            lines.append(f"{key_id}  MISSING  {count} secret(s) cannot be opened")
    return lines


def _rotation_text(r: Rotation, settings: Settings) -> list[str]:
    lines = []
    if r.added:
        lines.append(f"added master key {r.primary} to {settings.master_key_file} as the primary; "
                     "servers using this key file pick it up within a second (no restart)")
    lines.append(f"re-wrapped the secrets of {r.rewrapped} LLM(s) under {r.primary}")
    lines.extend(f"could not re-wrap: {f}" for f in r.failures)
    if r.remaining:
        left = ", ".join(f"{k} ({n})" for k, n in sorted(r.remaining.items()))
        lines.append(f"secrets still under other keys: {left}; run "
                     "`switchboard keys rotate --use-existing` again before removing those keys")
    else:
        lines.append("every stored secret is now under the primary key. Next: back up the key "
                     "file, then remove each old key with `switchboard keys remove KEY_ID` "
                     "(`switchboard keys list` shows them)")
    return lines


async def _keys(args: argparse.Namespace, settings: Settings) -> int:
    if args.action == "rotate":
        rotation = await rotate_keys(settings, use_existing=args.use_existing,
                                     new_key_id=args.new_key_id)
        print("\n".join(_rotation_text(rotation, settings)))
        return 1 if rotation.failures else 0
    if args.action == "list":
        print("\n".join(await list_master_keys(settings)))
        return 0
    if not args.key_id:
        raise KeyringError("name the key to remove: switchboard keys remove KEY_ID")
    await remove_master_key(settings, args.key_id)
    print(f"removed master key {args.key_id} from {settings.master_key_file}")
    return 0


async def _accounts(args: argparse.Namespace, settings: Settings) -> int:
    store = await open_store(settings.database)
    admin = AccountAdmin(store)
    try:
        if args.admin == "create-account":
            print(await admin.create_account(args.arg))
        elif args.admin == "create-key":
            issued = await admin.create_key(args.arg, args.description)
            print(f"key id {issued.key_id} for account {issued.account_id}; shown once:")
            print(issued.plaintext.reveal())
        elif args.admin == "revoke-key":
            await admin.revoke_key(args.arg)
            print(f"revoked {args.arg}; servers refuse it within "
                  f"{AccountAdmin.REVOCATION_DELAY_S:g}s")
        elif args.admin == "list-keys":
            for k in await admin.list_keys(args.arg):
                state = "revoked" if k.revoked else "active"
                print(f"{k.key_id}  {state}  {k.create_time.isoformat()}  {k.description}")
    finally:
        await store.close()
    return 0


def init_key_file(path: str, key_id: str | None) -> str:
    """``switchboard keys init FILE``: a new key file with one primary key (never overwrites)."""
    if not path:
        raise KeyringError("name the key file to create: switchboard keys init FILE")
    created = generate_key_file(path, key_id=key_id)
    return (f"created {path} with master key {created} (mode 0600). Back it up: the provider "
            f"keys stored under it cannot be opened without it. Use it with "
            f"{ENV_KEY_FILE}={path}")


async def run_admin(args: argparse.Namespace) -> int:
    """``switchboard keys ...`` and ``switchboard admin ...``; 0 on success."""
    try:
        if args.admin == "keys" and args.action == "init":
            print(init_key_file(args.key_id or "", args.new_key_id))
            return 0
        settings = load()
        if args.admin == "keys":
            return await _keys(args, settings)
        return await _accounts(args, settings)
    except (ConfigError, KeyringError, SwitchboardError) as exc:
        message = exc.message if isinstance(exc, SwitchboardError) else str(exc)
        print(f"switchboard: {message}", file=sys.stderr)
        return 2 if isinstance(exc, ConfigError | KeyringError) else 1


async def check_endpoint(args: argparse.Namespace, endpoint: Any,
                         show: Callable[[Any], None]) -> int:
    from server.edge.check_endpoint import check_endpoint as run

    return await run(endpoint, show)
