"""Vault failures.

Runtime failures (a stored secret that cannot be opened) are ``Internal`` errors: the caller
did nothing wrong and cannot fix it. Messages and metadata name the record and the master key
id, never secret bytes. Configuration failures (bad key file, bad environment) are
``KeyringError``, a ``ValueError`` raised at start-up with a message that says how to fix it.
"""

from __future__ import annotations

from server.errors import Internal


class VaultError(Internal):
    """Base of vault runtime failures."""

    reason = "VAULT_ERROR"


class UnknownKeyId(VaultError):
    """The master key that wrapped a secret is not in the keyring."""

    reason = "MASTER_KEY_UNKNOWN"


class DecryptionError(VaultError):
    """A stored secret does not authenticate: tampered, moved between records or wrong key."""

    reason = "SECRET_DECRYPTION_FAILED"


class MalformedSealedSecret(VaultError):
    """Stored bytes are not a sealed secret this build can read."""

    reason = "SEALED_SECRET_MALFORMED"


class KeyringError(ValueError):
    """Master-key configuration is missing or invalid; the message says how to fix it."""
