"""The one timeout type: the named phases of one upstream exchange, with one set of defaults.

``connect`` (pool slot + TCP/TLS), ``first_token`` (from the request start until the first
text, reasoning or tool-call event), ``between_chunks`` (any gap after that) and ``total``.
Turns, probes and validation all use ``Timeouts``; the server's settings
(``connect_timeout_s``, ``first_token_timeout_s``, ``between_chunks_timeout_s``,
``turn_timeout_s``) default to ``DEFAULT_TIMEOUTS``. A caller's deadline caps ``total``.
"""

from __future__ import annotations

from dataclasses import dataclass, replace


@dataclass(frozen=True, slots=True)
class Timeouts:
    """Deadlines per phase of one upstream exchange, in seconds."""

    connect_s: float = 3.0
    first_token_s: float = 30.0
    between_chunks_s: float = 30.0
    total_s: float = 300.0

    def capped(self, remaining_s: float | None) -> Timeouts:
        """These timeouts with ``total_s`` cut to the caller's remaining time (if any)."""
        if remaining_s is None or remaining_s >= self.total_s:
            return self
        return replace(self, total_s=max(0.0, remaining_s))


DEFAULT_TIMEOUTS = Timeouts()
