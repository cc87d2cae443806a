"""Operator commands that act on the database directly: accounts, caller keys, key rotation."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import Any

from server.accounts import AccountAdmin
from server.config import load
from server.store.open import open_store
from server.vault.keys import load_keyring
from server.vault.redact import KnownSecrets
from server.vault.sealer import VaultSealer


async def rotate(database: str, sealer: VaultSealer) -> int:
    """Re-wraps every stored secret's data key under the primary master key.

    Safe while servers run: each LLM is rewritten with a compare-and-set on its etag, and the
    etag is kept, so a concurrent update simply wins and its keys are sealed anew anyway.
    """
    store = await open_store(database)
    changed = 0
    try:
        for record in await store.all_llms():
            body: dict[str, Any] = {**record.body, "endpoints": [
                {**e, "api_key": sealer.rewrap(e["api_key"], record.account_id, record.id,
                                               e["id"], "api_key")}
                for e in record.body["endpoints"]
            ]}
            if body != record.body:
                from dataclasses import replace

                if await store.replace_llm(replace(record, body=body), record.etag):
                    changed += 1
    finally:
        await store.close()
    return changed


async def run_admin(args: argparse.Namespace) -> int:
    settings = load()
    if args.admin == "rotate":
        keyring = load_keyring(master_keys=settings.master_keys,
                               key_file=settings.master_key_file,
                               primary_key_id=settings.primary_key_id or None)
        changed = await rotate(settings.database, VaultSealer(keyring, KnownSecrets()))
        print(f"re-wrapped the secrets of {changed} LLM(s) under master key "
              f"{keyring.primary_key_id}; keys no longer named by any secret can be removed")
        return 0
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
            print(f"revoked {args.arg}")
        elif args.admin == "list-keys":
            for k in await admin.list_keys(args.arg):
                state = "revoked" if k.revoked else "active"
                print(f"{k.key_id}  {state}  {k.create_time.isoformat()}  {k.description}")
    finally:
        await store.close()
    return 0


async def check_endpoint(args: argparse.Namespace, endpoint: Any,
                         show: Callable[[Any], None]) -> int:
    from server.validation.cli import check_endpoint as run

    return await run(endpoint, show)
