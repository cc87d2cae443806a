"""A string that must never be printed.

Provider API keys live in memory as ``Secret`` from the moment they are decrypted (or read
from a request) until the upstream HTTP call. ``repr``/``str``/``format`` are redacted, so a
secret that slips into a log line, an f-string or an exception shows ``Secret('...a1b2')`` at
most. Only ``reveal()`` returns the value, and only transport code calls it.
"""

from __future__ import annotations

from typing import Any


class Secret:
    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def reveal(self) -> str:
        return self._value

    @property
    def hint(self) -> str:
        """The last four characters, as ``...a1b2``; safe to return to the owner.

        Empty for an empty secret, ``...`` for one too short to show any of it."""
        if not self._value:
            return ""
        return "..." + self._value[-4:] if len(self._value) >= 8 else "..."

    def __repr__(self) -> str:
        return "Secret('***')"

    __str__ = __repr__

    def __format__(self, spec: str) -> str:
        return repr(self)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other._value == self._value

    def __hash__(self) -> int:
        return hash(self._value)

    def __bool__(self) -> bool:
        return bool(self._value)

    def __reduce__(self) -> Any:
        raise TypeError("Secret values cannot be pickled")
