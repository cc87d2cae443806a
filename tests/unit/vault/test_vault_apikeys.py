"""Caller API keys: shape, lookup id, hash-only storage, verification."""

from __future__ import annotations

import pytest

from server.errors import Unauthenticated
from server.secret import Secret
from server.vault import apikeys
from server.vault.redact import scrub


def test_generate_shape_and_hash() -> None:
    key = apikeys.generate()
    plaintext = key.plaintext.reveal()
    assert plaintext.startswith(f"sb_{key.key_id}_")
    assert len(plaintext) == 63 and len(key.key_id) == 16
    assert key.key_hash.startswith("sha256:") and len(key.key_hash) == 7 + 64
    assert plaintext not in key.key_hash
    assert plaintext not in repr(key)  # the plaintext is a Secret
    plaintext_b, key_id_b, hash_b = apikeys.generate()  # unpacks as a tuple
    assert key_id_b != key.key_id and hash_b != key.key_hash and plaintext_b != key.plaintext


def test_parse_extracts_the_key_id() -> None:
    key = apikeys.generate()
    assert apikeys.parse(key.plaintext) == key.key_id
    assert apikeys.parse(f"  {key.plaintext.reveal()}\n") == key.key_id


@pytest.mark.parametrize(
    "bad",
    [
        "",
        "sk-proj-abcdef",
        "sb_0123456789abcdef",
        "sb_0123456789ABCDEF_" + "a" * 43,
        "sb_0123456789abcdef_" + "a" * 42,
        "sb_0123456789abcdef_" + "a" * 42 + "!",
        "sb_0123456789abcdef_" + "a" * 4000,
    ],
)
def test_parse_rejects_malformed_keys_without_echoing(bad: str) -> None:
    with pytest.raises(Unauthenticated) as info:
        apikeys.parse(bad)
    assert info.value.reason == "API_KEY_INVALID"
    if bad:
        assert bad not in str(info.value) and bad not in repr(info.value)


def test_verify() -> None:
    key = apikeys.generate()
    other = apikeys.generate()
    assert apikeys.verify(key.plaintext, key.key_hash)
    assert apikeys.verify(key.plaintext.reveal(), key.key_hash)
    assert not apikeys.verify(other.plaintext, key.key_hash)
    tampered = key.plaintext.reveal()[:-1] + ("A" if key.plaintext.reveal()[-1] != "A" else "B")
    assert not apikeys.verify(tampered, key.key_hash)
    assert not apikeys.verify(key.plaintext, "md5:" + key.key_hash[7:])
    assert not apikeys.verify(key.plaintext, "")
    assert not apikeys.verify(Secret("x" * 10_000), key.key_hash)


def test_caller_keys_are_redacted_but_keep_their_id() -> None:
    key = apikeys.generate()
    out = scrub(f"rejected caller key {key.plaintext.reveal()}")
    assert key.plaintext.reveal() not in out
    assert f"sb_{key.key_id}_[REDACTED]" in out
