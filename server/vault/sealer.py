"""The registry's ``Sealer`` over a ``Keyring``: secrets stored as text, bound to their record.

Every opened secret is registered with ``KnownSecrets`` so that the log redactor masks its
exact value even when it has no recognisable shape.
"""

from __future__ import annotations

from server.secret import Secret
from server.vault.envelope import Keyring, SealedSecret, SecretContext
from server.vault.redact import KnownSecrets


class VaultSealer:
    def __init__(self, keyring: Keyring, known: KnownSecrets) -> None:
        self.keyring = keyring
        self._known = known

    def seal(self, plaintext: Secret, account_id: str, llm_id: str, endpoint_id: str,
             field: str) -> str:
        self._known.add(plaintext)
        ctx = SecretContext(account_id, llm_id, endpoint_id, field)
        return self.keyring.seal(plaintext, ctx).to_text()

    def open(self, sealed: str, account_id: str, llm_id: str, endpoint_id: str,
             field: str) -> Secret:
        ctx = SecretContext(account_id, llm_id, endpoint_id, field)
        secret = self.keyring.open(SealedSecret.from_text(sealed, ctx), ctx)
        self._known.add(secret)
        return secret

    def rewrap(self, sealed: str, account_id: str, llm_id: str, endpoint_id: str,
               field: str) -> str:
        ctx = SecretContext(account_id, llm_id, endpoint_id, field)
        old = SealedSecret.from_text(sealed, ctx)
        new = self.keyring.rewrap(old, ctx)
        return sealed if new is old else new.to_text()

    def key_id_of(self, sealed: str) -> str:
        return SealedSecret.from_text(sealed).key_id
