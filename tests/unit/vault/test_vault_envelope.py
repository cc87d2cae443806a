"""Envelope encryption: round trips, binding to the record, rotation, and clean failures."""

from __future__ import annotations

import dataclasses
import os
import pickle

import pytest

from server.errors import Internal
from server.secret import Secret
from server.vault.envelope import Keyring, SealedSecret, SecretContext
from server.vault.errors import (
    DecryptionError,
    KeyringError,
    MalformedSealedSecret,
    UnknownKeyId,
    VaultError,
)

CANARY = "sk-proj-CANARY0123456789abcdefghijklmnop"
CTX = SecretContext("acct-1", "llm-1", "ep-1")
OTHER_ENDPOINT = SecretContext("acct-1", "llm-1", "ep-2")
K1, K2 = os.urandom(32), os.urandom(32)


def flip(data: bytes, index: int = 0) -> bytes:
    return data[:index] + bytes([data[index] ^ 0x01]) + data[index + 1 :]


def assert_clean(exc: BaseException, *, record: SecretContext = CTX, key_id: str = "k1") -> None:
    text = str(exc) + repr(exc) + repr(getattr(exc, "metadata", {}))
    assert CANARY not in text
    for raw in (K1, K2):
        assert raw.hex() not in text
    for part in (record.account_id, record.llm_id, record.endpoint_id, record.field, key_id):
        assert repr(part) in str(exc)
    assert isinstance(exc, Internal)


@pytest.fixture
def ring() -> Keyring:
    return Keyring({"k1": K1}, "k1")


def test_round_trip_returns_a_secret(ring: Keyring) -> None:
    sealed = ring.seal(CANARY, CTX)
    opened = ring.open(sealed, CTX)
    assert isinstance(opened, Secret)
    assert opened.reveal() == CANARY
    assert ring.open(ring.seal(Secret(CANARY), CTX), CTX).reveal() == CANARY


def test_each_seal_uses_fresh_key_and_nonces(ring: Keyring) -> None:
    a, b = ring.seal(CANARY, CTX), ring.seal(CANARY, CTX)
    assert a.ciphertext != b.ciphertext
    assert a.nonce != b.nonce and a.key_nonce != b.key_nonce
    assert a.wrapped_key != b.wrapped_key


def test_unicode_and_empty_plaintexts(ring: Keyring) -> None:
    for value in ("", "ключ-🔑", "x" * 10_000):
        assert ring.open(ring.seal(value, CTX), CTX).reveal() == value


def test_bytes_and_text_storage_round_trip(ring: Keyring) -> None:
    sealed = ring.seal(CANARY, CTX)
    raw = sealed.to_bytes()
    assert raw[0] == 1 and raw[1] == 2 and raw[2:4] == b"k1"
    assert len(raw) == 90 + 2 + len(CANARY)
    assert SealedSecret.from_bytes(raw) == sealed
    text = sealed.to_text()
    assert text.isascii() and "=" not in text
    assert ring.open(SealedSecret.from_text(text, CTX), CTX).reveal() == CANARY


def test_sealed_secret_repr_shows_no_bytes(ring: Keyring) -> None:
    sealed = ring.seal(CANARY, CTX)
    assert repr(sealed) == f"SealedSecret(v1, key_id='k1', {len(CANARY) + 16} ciphertext bytes)"
    assert "K1" not in repr(ring) and K1.hex() not in repr(ring)
    assert repr(ring) == "Keyring(primary='k1', key_ids=('k1',))"


@pytest.mark.parametrize("part", ["ciphertext", "nonce", "tag"])
def test_tampered_secret_fails_cleanly(ring: Keyring, part: str) -> None:
    sealed = ring.seal(CANARY, CTX)
    if part == "nonce":
        bad = dataclasses.replace(sealed, nonce=flip(sealed.nonce))
    elif part == "tag":
        bad = dataclasses.replace(sealed, ciphertext=flip(sealed.ciphertext, -1))
    else:
        bad = dataclasses.replace(sealed, ciphertext=flip(sealed.ciphertext, 3))
    with pytest.raises(DecryptionError, match="secret ciphertext does not authenticate") as info:
        ring.open(bad, CTX)
    assert_clean(info.value)


@pytest.mark.parametrize("part", ["wrapped_key", "key_nonce"])
def test_tampered_wrapped_key_fails_cleanly(ring: Keyring, part: str) -> None:
    sealed = ring.seal(CANARY, CTX)
    if part == "wrapped_key":
        bad = dataclasses.replace(sealed, wrapped_key=flip(sealed.wrapped_key, 5))
    else:
        bad = dataclasses.replace(sealed, key_nonce=flip(sealed.key_nonce, 5))
    with pytest.raises(DecryptionError, match="wrapped data key does not authenticate") as info:
        ring.open(bad, CTX)
    assert_clean(info.value)


def test_every_stored_byte_is_authenticated(ring: Keyring) -> None:
    raw = ring.seal(CANARY, CTX).to_bytes()
    for i in range(4, len(raw)):  # past version, key id length and key id
        with pytest.raises(VaultError):
            ring.open(SealedSecret.from_bytes(flip(raw, i)), CTX)


def test_ciphertext_swapped_between_endpoints_fails(ring: Keyring) -> None:
    mine = ring.seal(CANARY, CTX)
    theirs = ring.seal("sk-other-endpoint-0123456789", OTHER_ENDPOINT)
    # Whole sealed blob moved onto another record: the wrapped key no longer authenticates.
    with pytest.raises(DecryptionError) as info:
        ring.open(mine, OTHER_ENDPOINT)
    assert_clean(info.value, record=OTHER_ENDPOINT)
    # Only the ciphertext moved (with its nonce), under the other record's valid wrapped key.
    spliced = dataclasses.replace(theirs, nonce=mine.nonce, ciphertext=mine.ciphertext)
    with pytest.raises(DecryptionError, match="secret ciphertext") as info:
        ring.open(spliced, OTHER_ENDPOINT)
    assert_clean(info.value, record=OTHER_ENDPOINT)


def test_wrapped_key_swapped_between_records_fails(ring: Keyring) -> None:
    mine = ring.seal(CANARY, CTX)
    theirs = ring.seal("sk-other-endpoint-0123456789", OTHER_ENDPOINT)
    spliced = dataclasses.replace(theirs, wrapped_key=mine.wrapped_key, key_nonce=mine.key_nonce)
    with pytest.raises(DecryptionError, match="wrapped data key") as info:
        ring.open(spliced, OTHER_ENDPOINT)
    assert_clean(info.value, record=OTHER_ENDPOINT)


@pytest.mark.parametrize(
    "other",
    [
        SecretContext("acct-2", "llm-1", "ep-1"),
        SecretContext("acct-1", "llm-2", "ep-1"),
        SecretContext("acct-1", "llm-1", "ep-1", "extra_header"),
        # Same concatenation, different split: the length prefixes keep them apart.
        SecretContext("acct-1l", "lm-1", "ep-1"),
    ],
)
def test_any_context_change_fails(ring: Keyring, other: SecretContext) -> None:
    with pytest.raises(DecryptionError):
        ring.open(ring.seal(CANARY, CTX), other)


def test_wrong_master_key_fails_cleanly(ring: Keyring) -> None:
    sealed = ring.seal(CANARY, CTX)
    impostor = Keyring({"k1": K2}, "k1")
    with pytest.raises(DecryptionError, match="wrong master key") as info:
        impostor.open(sealed, CTX)
    assert_clean(info.value)


def test_unknown_key_id_fails_cleanly(ring: Keyring) -> None:
    sealed = Keyring({"k9": K2}, "k9").seal(CANARY, CTX)
    with pytest.raises(UnknownKeyId, match="not configured") as info:
        ring.open(sealed, CTX)
    assert_clean(info.value, key_id="k9")
    assert info.value.metadata["key_id"] == "k9"
    assert info.value.reason == "MASTER_KEY_UNKNOWN"


def test_relabelled_key_id_fails(ring: Keyring) -> None:
    both = Keyring({"k1": K1, "k2": K1}, "k1")  # same bytes, different id
    sealed = both.seal(CANARY, CTX)
    with pytest.raises(DecryptionError):
        both.open(dataclasses.replace(sealed, key_id="k2"), CTX)


def test_rotation_rewrap_then_drop_old_key() -> None:
    old = Keyring({"k1": K1}, "k1")
    sealed = old.seal(CANARY, CTX)
    rotating = Keyring({"k1": K1, "k2": K2}, "k2")
    assert rotating.open(sealed, CTX).reveal() == CANARY  # old secrets still open
    rewrapped = rotating.rewrap(sealed, CTX)
    assert rewrapped.key_id == "k2"
    assert rewrapped.ciphertext == sealed.ciphertext and rewrapped.nonce == sealed.nonce
    assert rewrapped.wrapped_key != sealed.wrapped_key
    assert rotating.rewrap(rewrapped, CTX) is rewrapped  # already under the primary
    new_only = Keyring({"k2": K2}, "k2")
    assert new_only.open(rewrapped, CTX).reveal() == CANARY
    with pytest.raises(UnknownKeyId):
        new_only.open(sealed, CTX)


def test_rewrap_refuses_a_wrapped_key_from_another_record() -> None:
    rotating = Keyring({"k1": K1, "k2": K2}, "k2")
    sealed = Keyring({"k1": K1}, "k1").seal(CANARY, CTX)
    with pytest.raises(DecryptionError):
        rotating.rewrap(sealed, OTHER_ENDPOINT)


def test_malformed_bytes_fail_cleanly(ring: Keyring) -> None:
    raw = ring.seal(CANARY, CTX).to_bytes()
    with pytest.raises(MalformedSealedSecret, match="truncated"):
        SealedSecret.from_bytes(raw[:40], CTX)
    with pytest.raises(MalformedSealedSecret, match="version 7") as info:
        SealedSecret.from_bytes(b"\x07" + raw[1:], CTX)
    assert "'ep-1'" in str(info.value)
    with pytest.raises(MalformedSealedSecret, match="key id"):
        SealedSecret.from_bytes(raw[:2] + b"k!" + raw[4:])
    with pytest.raises(MalformedSealedSecret, match="base64url"):
        SealedSecret.from_text("not base64 at all!", CTX)


def test_keyring_validation() -> None:
    with pytest.raises(KeyringError, match="'short' is 16 bytes"):
        Keyring({"short": os.urandom(16)}, "short")
    with pytest.raises(KeyringError, match="primary"):
        Keyring({"k1": K1}, "k2")
    with pytest.raises(KeyringError, match="invalid master key id"):
        Keyring({"bad id": K1}, "bad id")
    with pytest.raises(KeyringError):
        Keyring({}, "k1")
    with pytest.raises(ValueError, match="endpoint_id"):
        SecretContext("a", "l", "")


def test_keyring_cannot_be_pickled(ring: Keyring) -> None:
    with pytest.raises(TypeError):
        pickle.dumps(ring)
