"""Resource ids: ``<prefix>_<20 hex digits>`` (``llm_``, ``ep_``, ``ses_``, ``acct_``)."""

from __future__ import annotations

import secrets


def new_id(prefix: str) -> str:
    """A fresh random id with ``prefix`` (80 random bits: never reused, never guessable)."""
    return f"{prefix}_{secrets.token_hex(10)}"
