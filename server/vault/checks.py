"""Master key check values: a server whose key material does not match the database's refuses
to start.

The trap: ``SWITCHBOARD_MASTER_KEYS="k1:$(...random...)"`` run again in a new shell makes a
different ``k1``; the server would start cleanly on the old database and every turn would
fail with "cannot decrypt". So the first server to use a key id records that key's check value
(``Keyring.check_value``: an HMAC of a fixed label, which reveals nothing about the key) in the
store, and every later start compares the loaded material with it.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

from server.store.base import Store
from server.vault.envelope import Keyring
from server.vault.errors import KeyringError


async def verify_key_material(store: Store, keyring: Keyring, database: str,
                              opens_sample: Mapping[str, Callable[[], bool]] | None = None
                              ) -> None:
    """Raises ``KeyringError`` naming the key id whose material differs from the recorded one;
    records the check value of every loaded key id that has none yet.

    ``opens_sample`` maps a key id to a test that opens the data key of one stored secret under
    it: a database from before check values (secrets, no value recorded) gets its value only
    from material that opens what is stored, never from a wrong key."""
    recorded = await store.master_key_checks()
    samples = opens_sample or {}
    for key_id in keyring.key_ids:
        expected = recorded.get(key_id)
        if expected is None:
            sample = samples.get(key_id)
            if sample is not None and not sample():
                raise _mismatch(key_id, database)
            await store.add_master_key_check(key_id, keyring.check_value(key_id))
        elif expected != keyring.check_value(key_id):
            raise _mismatch(key_id, database)


def _mismatch(key_id: str, database: str) -> KeyringError:
    return KeyringError(
        f"master key {key_id!r} is not the key {key_id!r} that sealed the secrets in "
        f"{database}: the same key id was given other key material, e.g. by generating "
        "SWITCHBOARD_MASTER_KEYS again in a new shell. Start with the original "
        f"{key_id!r} (the key file or value first used with this database); if it is lost, "
        "so are the provider keys sealed under it: delete those LLMs and register them again")
