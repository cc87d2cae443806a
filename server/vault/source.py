"""Where a running server gets its master keys, and how it notices that they changed.

``StaticKeys`` wraps a keyring that never changes (``SWITCHBOARD_MASTER_KEYS``: the
environment of a running process is fixed; rotate by restarting replicas).

``KeyFileKeys`` watches a key file so that ``switchboard keys rotate`` (another process) takes
effect without a restart:

- ``current()`` returns the keyring, and at most once per ``check_interval_s`` (1 s) first
  ``stat``s the file; when its modification time, size or inode changed, the file is read
  again. Between checks it costs one clock reading.
- ``refresh()`` checks now, whatever the interval. ``VaultSealer`` calls it when a stored
  secret names a key id the keyring does not have (it was re-wrapped under a new primary by
  another process a moment ago) and then tries once more.

A file that cannot be loaded after a change (bad permissions, half-written by hand, invalid
TOML) does not take the server down: the previous keyring stays in use and an error is logged
once per change. Key material is never logged, only key ids.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Protocol

import structlog

from server.clock import Clock, SystemClock
from server.vault.envelope import Keyring
from server.vault.errors import KeyringError
from server.vault.keys import load_key_file, load_keyring

log = structlog.get_logger("switchboard.vault")

DEFAULT_CHECK_INTERVAL_S = 1.0

_Signature = tuple[int, int, int, int]  # (inode, size, mtime ns, ctime ns)
_MISSING: _Signature = (-1, -1, -1, -1)


class KeySource(Protocol):
    """The keyring in force now."""

    def current(self) -> Keyring:
        """The keyring to use for this operation (cheap; may re-check its source)."""
        ...

    def refresh(self) -> bool:
        """Re-checks the source now; True if the keyring changed."""
        ...


class StaticKeys:
    """A keyring that never changes."""

    __slots__ = ("_keyring",)

    def __init__(self, keyring: Keyring) -> None:
        self._keyring = keyring

    def current(self) -> Keyring:
        return self._keyring

    def refresh(self) -> bool:
        return False

    def __repr__(self) -> str:
        return f"StaticKeys({self._keyring!r})"


class KeyFileKeys:
    """A key file, re-read when it changes (see the module docs)."""

    __slots__ = (
        "_bad_signature",
        "_checked_at",
        "_clock",
        "_interval",
        "_keyring",
        "_path",
        "_signature",
    )

    def __init__(self, path: str | os.PathLike[str], clock: Clock | None = None,
                 check_interval_s: float = DEFAULT_CHECK_INTERVAL_S) -> None:
        """Loads the file now; ``KeyringError`` if it cannot be used."""
        self._path = Path(path)
        self._clock = clock or SystemClock()
        self._interval = check_interval_s
        self._signature = self._stat()
        self._keyring = load_key_file(self._path)
        self._checked_at = self._clock.monotonic()
        self._bad_signature: _Signature | None = None

    def __repr__(self) -> str:
        return f"KeyFileKeys({str(self._path)!r}, {self._keyring!r})"

    def current(self) -> Keyring:
        if self._clock.monotonic() - self._checked_at >= self._interval:
            self.refresh()
        return self._keyring

    def refresh(self) -> bool:
        self._checked_at = self._clock.monotonic()
        try:
            signature = self._stat()
        except KeyringError as exc:
            self._report(_MISSING, exc)
            return False
        if signature == self._signature or signature == self._bad_signature:
            return False
        try:
            keyring = load_key_file(self._path)
        except KeyringError as exc:
            self._report(signature, exc)
            return False
        old, self._keyring, self._signature = self._keyring, keyring, signature
        self._bad_signature = None
        log.info("master keys reloaded", key_file=str(self._path),
                 primary=keyring.primary_key_id, key_ids=list(keyring.key_ids),
                 previous_primary=old.primary_key_id)
        return True

    def _stat(self) -> _Signature:
        try:
            st = os.stat(self._path)
        except OSError as exc:
            raise KeyringError(f"cannot stat master key file {self._path}: "
                               f"{exc.strerror or type(exc).__name__}") from None
        return (st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)

    def _report(self, signature: _Signature, exc: KeyringError) -> None:
        if signature == self._bad_signature:
            return
        self._bad_signature = signature
        log.error("master key file changed but cannot be loaded; still using the keys loaded "
                  "before", key_file=str(self._path), error=str(exc),
                  key_ids=list(self._keyring.key_ids))


def open_key_source(*, master_keys: str = "", key_file: str = "", primary_key_id: str = "",
                    clock: Clock | None = None) -> KeySource:
    """The configured source: a watched key file, or the static env keys.

    Validates the configuration exactly as ``load_keyring`` does (``KeyringError``).
    """
    keyring = load_keyring(master_keys=master_keys, key_file=key_file,
                           primary_key_id=primary_key_id or None)
    if master_keys.strip():
        return StaticKeys(keyring)
    return KeyFileKeys(key_file, clock)
