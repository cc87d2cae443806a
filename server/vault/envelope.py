"""Envelope encryption of provider API keys (AES-256-GCM from ``cryptography``).

Each secret gets its own random 256-bit data key and 96-bit nonce. The data key is wrapped
(AES-256-GCM again, its own nonce) by a master key named by a key id. Both encryptions carry
associated data that binds them to their record, ``SecretContext(account_id, llm_id,
endpoint_id, field)``, so a ciphertext or a wrapped key copied onto another record fails to
open instead of yielding someone else's key:

- secret ciphertext AAD: ``"switchboard/vault/secret"``, version, context fields;
- wrapped data key AAD: ``"switchboard/vault/data-key"``, version, key id, context fields.

Every part is length-prefixed (4-byte big-endian length + UTF-8), so no two different contexts
encode alike. The key id is in the wrapped key's AAD only: ``rewrap`` re-wraps the data key under
the primary master key and leaves the secret ciphertext untouched.

Storage format (``SealedSecret.to_bytes``, version 1), 90 bytes + key id + plaintext length::

    0x01 | len(key_id) (1 byte, 1..64) | key_id (ASCII) | key_nonce (12)
         | wrapped_key (48 = 32-byte data key + 16-byte tag) | nonce (12)
         | ciphertext (plaintext length + 16-byte tag)

``to_text`` is the same bytes as unpadded base64url, for JSON bodies and TEXT columns.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import os
import re
import struct
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from server.secret import Secret
from server.vault.errors import (
    DecryptionError,
    KeyringError,
    MalformedSealedSecret,
    UnknownKeyId,
)

VERSION = 1
KEY_BYTES = 32
NONCE_BYTES = 12
TAG_BYTES = 16
WRAPPED_KEY_BYTES = KEY_BYTES + TAG_BYTES
KEY_ID_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
_B64URL_RE = re.compile(r"[A-Za-z0-9_-]+")

_SECRET_PURPOSE = b"switchboard/vault/secret"
_DATA_KEY_PURPOSE = b"switchboard/vault/data-key"


def check_key_id(key_id: str) -> None:
    """Raises ``KeyringError`` unless ``key_id`` is 1-64 of ``A-Z a-z 0-9 . _ -``."""
    if not KEY_ID_RE.fullmatch(key_id):
        raise KeyringError(
            f"invalid master key id {key_id!r}: use 1-64 characters from A-Z a-z 0-9 . _ - "
            "starting with a letter or digit"
        )


@dataclass(frozen=True, slots=True)
class SecretContext:
    """The record a secret belongs to; bound into the ciphertext as associated data."""

    account_id: str
    llm_id: str
    endpoint_id: str
    field: str = "api_key"

    def __post_init__(self) -> None:
        for name in ("account_id", "llm_id", "endpoint_id", "field"):
            if not getattr(self, name):
                raise ValueError(f"SecretContext.{name} must not be empty")

    def describe(self) -> str:
        return (
            f"account {self.account_id!r}, llm {self.llm_id!r}, "
            f"endpoint {self.endpoint_id!r}, field {self.field!r}"
        )

    def metadata(self) -> dict[str, str]:
        return {
            "account_id": self.account_id,
            "llm_id": self.llm_id,
            "endpoint_id": self.endpoint_id,
            "field": self.field,
        }

    def _aad(self, *prefix: bytes) -> bytes:
        parts = (
            *prefix,
            *(v.encode() for v in (self.account_id, self.llm_id, self.endpoint_id, self.field)),
        )
        return b"".join(struct.pack(">I", len(p)) + p for p in parts)

    def secret_aad(self, version: int) -> bytes:
        return self._aad(_SECRET_PURPOSE, str(version).encode())

    def data_key_aad(self, version: int, key_id: str) -> bytes:
        return self._aad(_DATA_KEY_PURPOSE, str(version).encode(), key_id.encode())


@dataclass(frozen=True, slots=True, repr=False)
class SealedSecret:
    """An encrypted secret as stored. Opaque; only a ``Keyring`` can open it."""

    version: int
    key_id: str
    wrapped_key: bytes
    key_nonce: bytes
    nonce: bytes
    ciphertext: bytes

    def __repr__(self) -> str:
        return (
            f"SealedSecret(v{self.version}, key_id={self.key_id!r}, "
            f"{len(self.ciphertext)} ciphertext bytes)"
        )

    def to_bytes(self) -> bytes:
        kid = self.key_id.encode("ascii")
        return b"".join(
            (
                bytes((self.version, len(kid))),
                kid,
                self.key_nonce,
                self.wrapped_key,
                self.nonce,
                self.ciphertext,
            )
        )

    @classmethod
    def from_bytes(cls, data: bytes, ctx: SecretContext | None = None) -> SealedSecret:
        """Parses ``to_bytes`` output; ``ctx`` only names the record in error messages."""

        def bad(why: str) -> MalformedSealedSecret:
            where = f" for {ctx.describe()}" if ctx else ""
            return MalformedSealedSecret(
                f"The stored secret{where} is not a valid sealed secret: {why}",
                metadata=ctx.metadata() if ctx else None,
            )

        if len(data) < 2:
            raise bad("it is truncated")
        if data[0] != VERSION:
            raise bad(f"format version {data[0]} is not supported (this build reads {VERSION})")
        kid_len = data[1]
        fixed = 2 + kid_len + NONCE_BYTES + WRAPPED_KEY_BYTES + NONCE_BYTES
        if len(data) < fixed + TAG_BYTES:
            raise bad("it is truncated")
        try:
            key_id = data[2 : 2 + kid_len].decode("ascii")
            check_key_id(key_id)
        except (UnicodeDecodeError, KeyringError):
            raise bad("its master key id is invalid") from None
        pos = 2 + kid_len
        key_nonce = data[pos : pos + NONCE_BYTES]
        pos += NONCE_BYTES
        wrapped = data[pos : pos + WRAPPED_KEY_BYTES]
        pos += WRAPPED_KEY_BYTES
        nonce = data[pos : pos + NONCE_BYTES]
        return cls(VERSION, key_id, wrapped, key_nonce, nonce, data[fixed:])

    def to_text(self) -> str:
        return base64.urlsafe_b64encode(self.to_bytes()).rstrip(b"=").decode("ascii")

    @classmethod
    def from_text(cls, text: str, ctx: SecretContext | None = None) -> SealedSecret:
        try:
            if not _B64URL_RE.fullmatch(text):
                raise ValueError("not base64url")
            raw = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
        except (binascii.Error, ValueError):
            where = f" for {ctx.describe()}" if ctx else ""
            raise MalformedSealedSecret(
                f"The stored secret{where} is not valid base64url text",
                metadata=ctx.metadata() if ctx else None,
            ) from None
        return cls.from_bytes(raw, ctx)


CHECK_LABEL = b"switchboard master key check v1"


def _check_value(key: bytes) -> str:
    digest = hmac.new(key, CHECK_LABEL, hashlib.sha256).digest()[:16]
    return base64.urlsafe_b64encode(digest).decode().rstrip("=")


class Keyring:
    """Master keys by key id, one of them primary. New secrets are sealed under the primary.

    Holds raw key bytes; its repr lists key ids only and it refuses to be pickled.
    """

    __slots__ = ("_aeads", "_checks", "_primary")

    def __init__(self, keys: Mapping[str, bytes], primary: str) -> None:
        if not keys:
            raise KeyringError("a keyring needs at least one master key")
        aeads: dict[str, AESGCM] = {}
        checks: dict[str, str] = {}
        for key_id, key in keys.items():
            check_key_id(key_id)
            if len(key) != KEY_BYTES:
                raise KeyringError(
                    f"master key {key_id!r} is {len(key)} bytes; it must be exactly "
                    f"{KEY_BYTES} bytes (AES-256)"
                )
            aeads[key_id] = AESGCM(key)
            checks[key_id] = _check_value(key)
        if primary not in aeads:
            raise KeyringError(
                f"primary master key id {primary!r} is not among the keys ({', '.join(aeads)})"
            )
        self._aeads = aeads
        self._checks = checks
        self._primary = primary

    def check_value(self, key_id: str) -> str:
        """A public fingerprint of the key material under ``key_id`` (an HMAC of a fixed label):
        stored once, it tells a later server with other material under the same id."""
        return self._checks[key_id]

    @property
    def key_ids(self) -> tuple[str, ...]:
        return tuple(self._aeads)

    @property
    def primary_key_id(self) -> str:
        return self._primary

    def __repr__(self) -> str:
        return f"Keyring(primary={self._primary!r}, key_ids={self.key_ids!r})"

    def __reduce__(self) -> str | tuple[Any, ...]:
        raise TypeError("Keyring objects cannot be pickled")

    def seal(self, plaintext: Secret | str, ctx: SecretContext) -> SealedSecret:
        value = plaintext.reveal() if isinstance(plaintext, Secret) else plaintext
        data_key = AESGCM.generate_key(bit_length=KEY_BYTES * 8)
        nonce = os.urandom(NONCE_BYTES)
        ciphertext = AESGCM(data_key).encrypt(nonce, value.encode(), ctx.secret_aad(VERSION))
        key_nonce, wrapped = self._wrap(data_key, ctx)
        return SealedSecret(VERSION, self._primary, wrapped, key_nonce, nonce, ciphertext)

    def open(self, sealed: SealedSecret, ctx: SecretContext) -> Secret:
        return self.data_key(sealed, ctx).open()

    def data_key(self, sealed: SealedSecret, ctx: SecretContext) -> DataKey:
        """The secret's data key, unwrapped (and checked against ``ctx``): it opens the secret
        again and again without the master key."""
        return DataKey(AESGCM(self._unwrap(sealed, ctx)), sealed, ctx)

    def rewrap(self, sealed: SealedSecret, ctx: SecretContext) -> SealedSecret:
        """Re-wraps the data key under the primary master key; the ciphertext is unchanged.

        Returns ``sealed`` itself when it already uses the primary key.
        """
        if sealed.key_id == self._primary:
            return sealed
        data_key = self._unwrap(sealed, ctx)
        key_nonce, wrapped = self._wrap(data_key, ctx)
        return SealedSecret(
            sealed.version, self._primary, wrapped, key_nonce, sealed.nonce, sealed.ciphertext
        )

    def unwraps(self, sealed: SealedSecret, ctx: SecretContext) -> bool:
        """True if this keyring's key for ``sealed`` opens its data key (the secret itself is
        not decrypted); False if the material is wrong or the bytes were tampered with."""
        try:
            self._unwrap(sealed, ctx)
        except DecryptionError:
            return False
        return True

    def _wrap(self, data_key: bytes, ctx: SecretContext) -> tuple[bytes, bytes]:
        key_nonce = os.urandom(NONCE_BYTES)
        aad = ctx.data_key_aad(VERSION, self._primary)
        return key_nonce, self._aeads[self._primary].encrypt(key_nonce, data_key, aad)

    def _unwrap(self, sealed: SealedSecret, ctx: SecretContext) -> bytes:
        if sealed.version != VERSION:
            raise MalformedSealedSecret(
                f"The stored secret for {ctx.describe()} has format version {sealed.version}; "
                f"this build reads version {VERSION}",
                metadata={**ctx.metadata(), "key_id": sealed.key_id},
            )
        aead = self._aeads.get(sealed.key_id)
        if aead is None:
            raise UnknownKeyId(
                f"The stored secret for {ctx.describe()} was sealed with master key "
                f"{sealed.key_id!r}, which is not configured (configured: "
                f"{', '.join(self._aeads)}); restore that key to the keyring",
                metadata={**ctx.metadata(), "key_id": sealed.key_id},
            )
        try:
            data_key = aead.decrypt(
                sealed.key_nonce, sealed.wrapped_key, ctx.data_key_aad(VERSION, sealed.key_id)
            )
        except (InvalidTag, ValueError):
            raise self._error(
                sealed,
                ctx,
                "its wrapped data key does not authenticate (wrong master key material for "
                "this key id, tampered, or copied from another record)",
            ) from None
        if len(data_key) != KEY_BYTES:  # cannot happen for authentic data; defensive
            raise self._error(sealed, ctx, "its data key has the wrong length")
        return data_key

    @staticmethod
    def _error(sealed: SealedSecret, ctx: SecretContext, why: str) -> DecryptionError:
        return _decryption_error(sealed, ctx, why)


def _decryption_error(sealed: SealedSecret, ctx: SecretContext, why: str) -> DecryptionError:
    return DecryptionError(
        f"Cannot decrypt the stored secret for {ctx.describe()} with master key "
        f"{sealed.key_id!r}: {why}",
        metadata={**ctx.metadata(), "key_id": sealed.key_id},
    )


class DataKey:
    """One sealed secret's unwrapped data key (``Keyring.data_key``): ``open()`` decrypts the
    secret with it, checking the ciphertext and its record binding every time. Like a
    ``Keyring`` it shows no key material in its repr and refuses to be pickled."""

    __slots__ = ("_aad", "_aead", "_ctx", "_sealed")

    def __init__(self, aead: AESGCM, sealed: SealedSecret, ctx: SecretContext) -> None:
        self._aead = aead
        self._sealed = sealed
        self._ctx = ctx
        self._aad = ctx.secret_aad(sealed.version)

    def open(self) -> Secret:
        sealed = self._sealed
        try:
            plain = self._aead.decrypt(sealed.nonce, sealed.ciphertext, self._aad)
            return Secret(plain.decode())
        except (InvalidTag, ValueError):
            raise _decryption_error(
                sealed,
                self._ctx,
                "the secret ciphertext does not authenticate (it was tampered with, or copied "
                "from another record)",
            ) from None

    def __repr__(self) -> str:
        return f"DataKey({self._ctx.describe()})"

    def __reduce__(self) -> str | tuple[Any, ...]:
        raise TypeError("DataKey objects cannot be pickled")

