"""One corpus of key shapes, for every redaction test (and the canary suite).

Each entry is a realistic key of a provider or of ours; ``canary(shape)`` makes a fresh one of
that shape so that a test can grep for it without matching anything else.
"""

from __future__ import annotations

import base64
import secrets
import string
from collections.abc import Callable

_ALNUM = string.ascii_letters + string.digits


def _rand(n: int, alphabet: str = _ALNUM) -> str:
    return "".join(secrets.choice(alphabet) for _ in range(n))


def _jwt() -> str:
    def part(raw: bytes) -> str:
        return base64.urlsafe_b64encode(raw).decode().rstrip("=")

    return ".".join((part(b'{"alg":"RS256","typ":"JWT"}'),
                     part(b'{"sub":"' + _rand(16).encode() + b'"}'), part(secrets.token_bytes(32))))


SHAPES: dict[str, Callable[[], str]] = {
    "openai": lambda: "sk-" + _rand(48),
    "openai-project": lambda: "sk-proj-" + _rand(40) + "T3BlbkFJ" + _rand(20),
    "groq": lambda: "gsk_" + _rand(52),
    "huggingface": lambda: "hf_" + _rand(34),
    "gemini": lambda: "AIza" + _rand(35, _ALNUM + "-_"),
    "jwt": _jwt,
    "switchboard": lambda: f"sb_{secrets.token_hex(8)}_{secrets.token_urlsafe(32)}",
    "azure": lambda: secrets.token_hex(16),
}


def canary(shape: str) -> str:
    return SHAPES[shape]()


def all_canaries() -> dict[str, str]:
    return {shape: make() for shape, make in SHAPES.items()}


def fragments(key: str) -> list[str]:
    """What must never be found: the key, and every 12-character piece of it except those
    inside its last four characters' hint."""
    body = key.split("_", 2)[2] if key.startswith("sb_") else key  # sb_<id>_: the id is public
    body = body[:-4]
    return [body, *(body[i:i + 12] for i in range(0, max(1, len(body) - 11), 6))]
