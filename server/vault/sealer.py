"""The registry's ``Sealer`` over the master keys: secrets stored as text, bound to their record.

Every opened secret is registered with ``KnownSecrets`` so that the log redactor masks its
exact value even when it has no recognisable shape.

The keys come from a ``KeySource`` (``server.vault.source``), so a running server follows
``switchboard keys rotate``: new secrets are sealed under whatever key is primary now, and a
secret that names a key id this process has not loaded yet (re-wrapped a moment ago by the
rotation in another process) makes the source re-check the key file once before failing.
"""

from __future__ import annotations

from collections.abc import Callable

from server.secret import Secret
from server.vault.envelope import DataKey, Keyring, SealedSecret, SecretContext
from server.vault.errors import UnknownKeyId
from server.vault.redact import KnownSecrets
from server.vault.source import KeySource, StaticKeys


class SealedKey(Secret):
    """A stored secret that is decrypted only when revealed, i.e. for the upstream call.

    Reading an LLM (GetLlm, ListLlms, the turn engine's cache) never decrypts its keys; the
    adapter's ``build_request`` calls ``reveal()`` right before the HTTP request, and the
    plaintext lives only as long as that call's header dict (the sealer keeps the unwrapped
    data key, not the plaintext: see ``VaultSealer``).
    """

    __slots__ = ("_hint", "_open", "sealed", "where")

    def __init__(self, sealed: str, where: tuple[str, str, str, str], hint: str,
                 opener: Callable[[], Secret]) -> None:
        super().__init__("")
        self.sealed = sealed
        self.where = where
        self._hint = hint
        self._open = opener

    def reveal(self) -> str:
        return self._open().reveal()

    @property
    def hint(self) -> str:
        return self._hint

    def __bool__(self) -> bool:
        return self._hint != ""  # the hint of an empty secret is empty

    def __eq__(self, other: object) -> bool:
        return isinstance(other, SealedKey) and other.sealed == self.sealed

    def __hash__(self) -> int:
        return hash(self.sealed)


_Where = tuple[str, str, str, str, str]  # sealed text, account, llm, endpoint, field


class VaultSealer:
    """Seals and opens the registry's secrets.

    ``open`` keeps each opened secret's unwrapped data key (never its plaintext) while the
    keyring in force stays the same (``MAX_DATA_KEYS`` at most): the next request to the
    endpoint decrypts its key with one AES-GCM open instead of parsing the envelope and
    unwrapping the data key under the master key again (about 57 us per upstream request).
    The ciphertext and its record binding are checked on every open. A process that holds
    the master keys gains nothing an attacker of its memory did not already have; a rotated
    or changed key file is a new keyring, which starts the cache over."""

    MAX_DATA_KEYS = 4096

    def __init__(self, keys: Keyring | KeySource, known: KnownSecrets) -> None:
        self._keys: KeySource = StaticKeys(keys) if isinstance(keys, Keyring) else keys
        self._known = known
        self._data_keys: tuple[Keyring | None, dict[_Where, DataKey]] = (None, {})

    @property
    def keyring(self) -> Keyring:
        """The keyring in force now."""
        return self._keys.current()

    def seal(self, plaintext: Secret, account_id: str, llm_id: str, endpoint_id: str,
             field: str) -> str:
        if isinstance(plaintext, SealedKey) and plaintext.where == (account_id, llm_id,
                                                                    endpoint_id, field):
            return plaintext.sealed  # unchanged key of the same record: keep its envelope
        self._known.add(plaintext)
        ctx = SecretContext(account_id, llm_id, endpoint_id, field)
        return self._keys.current().seal(plaintext, ctx).to_text()

    def open(self, sealed: str, account_id: str, llm_id: str, endpoint_id: str,
             field: str) -> Secret:
        keyring = self._keys.current()
        cached_for, data_keys = self._data_keys
        if cached_for is not keyring:
            data_keys = {}
        where = (sealed, account_id, llm_id, endpoint_id, field)
        data_key = data_keys.get(where)
        if data_key is not None:
            return data_key.open()  # registered with the redactor when it was first opened
        ctx = SecretContext(account_id, llm_id, endpoint_id, field)
        parsed = SealedSecret.from_text(sealed, ctx)
        try:
            data_key = keyring.data_key(parsed, ctx)
        except UnknownKeyId:
            if not self._keys.refresh():
                raise
            keyring, data_keys = self._keys.current(), {}
            data_key = keyring.data_key(parsed, ctx)
        secret = data_key.open()
        self._known.add(secret)
        if len(data_keys) >= self.MAX_DATA_KEYS:
            data_keys = {}
        data_keys[where] = data_key
        self._data_keys = (keyring, data_keys)
        return secret

    def lazy(self, sealed: str, account_id: str, llm_id: str, endpoint_id: str, field: str,
             hint: str) -> Secret:
        """The stored secret as a ``SealedKey``: opened on ``reveal()``, not now."""
        where = (account_id, llm_id, endpoint_id, field)
        return SealedKey(sealed, where, hint, lambda: self.open(sealed, *where))

    def rewrap(self, sealed: str, account_id: str, llm_id: str, endpoint_id: str,
               field: str) -> str:
        """``sealed`` with its data key wrapped under the primary key (itself if it already is)."""
        ctx = SecretContext(account_id, llm_id, endpoint_id, field)
        old = SealedSecret.from_text(sealed, ctx)
        new = self._keys.current().rewrap(old, ctx)
        return sealed if new is old else new.to_text()

    def unwraps(self, sealed: str, account_id: str, llm_id: str, endpoint_id: str,
                field: str) -> bool:
        """True if the loaded key opens the secret's data key (the secret stays sealed)."""
        ctx = SecretContext(account_id, llm_id, endpoint_id, field)
        return self._keys.current().unwraps(SealedSecret.from_text(sealed, ctx), ctx)

    @staticmethod
    def key_id_of(sealed: str) -> str:
        """The master key id a sealed secret names (``MalformedSealedSecret`` if unreadable)."""
        return SealedSecret.from_text(sealed).key_id
