"""Caller API keys: ``sb_<key id>_<secret>``, shown once, stored only as a hash.

Format: ``sb_`` + 16 lowercase hex characters of key id + ``_`` + 32 random bytes in unpadded
base64url (43 characters), 63 characters in all. The prefix makes a leaked key recognisable
(``server.vault.redact`` masks it, secret scanners can match it); the key id is not secret and
is how the store finds the record (``parse``), so verification costs one lookup and one hash.

Stored hash: ``sha256:<hex>`` of the whole key. Plain SHA-256 rather than a slow password hash
or an HMAC with a server pepper, deliberately: the key carries 256 bits from ``secrets``, so
neither guessing nor a precomputed table can reach it, and a pepper would be one more secret to
manage whose loss locks out every caller. The algorithm prefix lets a later version change it.
Comparison is constant-time (``hmac.compare_digest``).
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from typing import NamedTuple

from server.errors import Unauthenticated
from server.secret import Secret

PREFIX = "sb_"
HASH_SCHEME = "sha256"
_KEY_RE = re.compile(r"sb_([0-9a-f]{16})_([A-Za-z0-9_-]{43})")
_MAX_LEN = 256


class InvalidApiKey(Unauthenticated):
    reason = "API_KEY_INVALID"


class GeneratedApiKey(NamedTuple):
    """A new caller key. ``plaintext`` is shown to the caller once, then dropped."""

    plaintext: Secret
    key_id: str
    key_hash: str


def generate() -> GeneratedApiKey:
    key_id = secrets.token_hex(8)
    plaintext = f"{PREFIX}{key_id}_{secrets.token_urlsafe(32)}"
    return GeneratedApiKey(Secret(plaintext), key_id, hash_key(plaintext))


def parse(plaintext: str | Secret) -> str:
    """The key id of a well-formed caller key; ``InvalidApiKey`` otherwise (never echoes it)."""
    value = plaintext.reveal() if isinstance(plaintext, Secret) else plaintext
    match = _KEY_RE.fullmatch(value.strip()) if len(value) <= _MAX_LEN else None
    if match is None:
        raise InvalidApiKey(
            "The API key is malformed: expected a Switchboard key of the form "
            "sb_<16 hex>_<43 base64url characters>, sent as `authorization: Bearer <key>`"
        )
    return match.group(1)


def hash_key(plaintext: str | Secret) -> str:
    value = plaintext.reveal() if isinstance(plaintext, Secret) else plaintext
    return f"{HASH_SCHEME}:{hashlib.sha256(value.strip().encode()).hexdigest()}"


def verify(plaintext: str | Secret, stored_hash: str) -> bool:
    """Whether ``plaintext`` matches ``stored_hash``, compared in constant time."""
    value = plaintext.reveal() if isinstance(plaintext, Secret) else plaintext
    scheme, _, _ = stored_hash.partition(":")
    if scheme != HASH_SCHEME or len(value) > _MAX_LEN:
        return False
    return hmac.compare_digest(hash_key(value).encode(), stored_hash.encode())
