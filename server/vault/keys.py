"""Loading, creating and rotating master keys.

Two sources, exactly one per process:

- ``SWITCHBOARD_MASTER_KEYS=kid1:<base64url 32 bytes>,kid2:...``; the first key is primary
  unless ``SWITCHBOARD_PRIMARY_KEY_ID`` names another. Suits secret managers that inject env.
- a key file (``SWITCHBOARD_MASTER_KEY_FILE``), TOML, mode 0600::

      primary = "k20250101-3f9a"

      [keys]
      "k20250101-3f9a" = "<base64url 32 bytes>"

Keys are accepted in base64url or standard base64, padded or not. Rotation: ``add_key`` adds a
new primary key, a job calls ``Keyring.rewrap`` on every stored secret, then ``remove_key``
drops the old key. Errors are ``KeyringError`` with a message that says how to fix the setup
and never echo key material.
"""

from __future__ import annotations

import base64
import binascii
import os
import re
import secrets
import stat
import tomllib
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path

from server.vault.envelope import KEY_BYTES, Keyring, check_key_id
from server.vault.errors import KeyringError

__all__ = [
    "ENV_KEYS",
    "ENV_KEY_FILE",
    "ENV_PRIMARY",
    "KeyringError",
    "add_key",
    "generate_key_file",
    "keyring_from_env",
    "load_key_file",
    "load_keyring",
    "new_key_id",
    "parse_master_keys",
    "remove_key",
]

ENV_KEYS = "SWITCHBOARD_MASTER_KEYS"
ENV_PRIMARY = "SWITCHBOARD_PRIMARY_KEY_ID"
ENV_KEY_FILE = "SWITCHBOARD_MASTER_KEY_FILE"
_B64_RE = re.compile(r"[A-Za-z0-9_-]+")
_FILE_HEADER = (
    "# Switchboard master keys. Keep this file private (chmod 600) and backed up: secrets\n"
    "# sealed under a key cannot be recovered without it. Rotate with add_key/remove_key.\n"
)


def new_key_id() -> str:
    """A fresh, sortable key id such as ``k20250101-3f9a``."""
    return f"k{datetime.now(UTC):%Y%m%d}-{secrets.token_hex(2)}"


def _decode_key(key_id: str, text: str, source: str) -> bytes:
    normalized = text.strip().translate(str.maketrans("+/", "-_")).rstrip("=")
    if not _B64_RE.fullmatch(normalized):
        raise KeyringError(
            f"{source}: master key {key_id!r} is not base64; generate one with "
            "`python -c 'import os,base64; print(base64.urlsafe_b64encode(os.urandom(32))"
            ".decode())'`"
        )
    try:
        raw = base64.urlsafe_b64decode(normalized + "=" * (-len(normalized) % 4))
    except (binascii.Error, ValueError):
        raise KeyringError(f"{source}: master key {key_id!r} is not valid base64") from None
    if len(raw) != KEY_BYTES:
        raise KeyringError(
            f"{source}: master key {key_id!r} decodes to {len(raw)} bytes; it must be exactly "
            f"{KEY_BYTES} bytes (AES-256)"
        )
    return raw


def _keyring(keys: dict[str, bytes], primary: str, source: str) -> Keyring:
    try:
        return Keyring(keys, primary)
    except KeyringError as exc:
        raise KeyringError(f"{source}: {exc}") from None


def parse_master_keys(value: str, primary: str | None = None, *, source: str = ENV_KEYS) -> Keyring:
    """Parses ``kid1:base64,kid2:base64``; the first key is primary unless ``primary`` is set."""
    keys: dict[str, bytes] = {}
    entries = [e.strip() for e in value.split(",")]
    if not any(entries):
        raise KeyringError(f"{source} is empty; expected kid1:<base64url 32 bytes>,kid2:...")
    for n, entry in enumerate(entries, start=1):
        key_id, sep, encoded = entry.partition(":")
        key_id = key_id.strip()
        if not entry or not sep or not key_id or not encoded.strip():
            # Never echo the entry: it may be key material.
            raise KeyringError(
                f"{source}: entry {n} is not of the form kid:<base64url 32 bytes> "
                "(entries are separated by commas)"
            )
        try:
            check_key_id(key_id)
        except KeyringError as exc:
            raise KeyringError(f"{source}: entry {n}: {exc}") from None
        if key_id in keys:
            raise KeyringError(f"{source}: master key id {key_id!r} appears twice")
        keys[key_id] = _decode_key(key_id, encoded, source)
    return _keyring(keys, primary or next(iter(keys)), source)


def load_key_file(path: str | os.PathLike[str]) -> Keyring:
    """Loads a TOML key file; refuses one that group or others can access."""
    primary, keys = _read_key_file(Path(path))
    return _keyring(keys, primary, str(path))


def keyring_from_env(environ: Mapping[str, str]) -> Keyring:
    """The keyring configured by ``SWITCHBOARD_MASTER_KEYS`` or ``SWITCHBOARD_MASTER_KEY_FILE``."""
    return load_keyring(
        master_keys=environ.get(ENV_KEYS, ""),
        key_file=environ.get(ENV_KEY_FILE, ""),
        primary_key_id=environ.get(ENV_PRIMARY) or None,
    )


def load_keyring(
    *, master_keys: str = "", key_file: str = "", primary_key_id: str | None = None
) -> Keyring:
    """The keyring from exactly one of an env-style key list or a key file."""
    if master_keys.strip() and key_file:
        raise KeyringError(
            f"both {ENV_KEYS} and a master key file ({key_file}) are set; configure only one"
        )
    if master_keys.strip():
        return parse_master_keys(master_keys, primary_key_id)
    if key_file:
        keyring = load_key_file(key_file)
        if primary_key_id and primary_key_id != keyring.primary_key_id:
            raise KeyringError(
                f"{ENV_PRIMARY}={primary_key_id!r} but {key_file} names primary "
                f"{keyring.primary_key_id!r}; set the primary in the key file only"
            )
        return keyring
    raise KeyringError(
        f"no master keys configured: set {ENV_KEYS} (kid:<base64url 32 bytes>) or "
        f"{ENV_KEY_FILE} (a TOML key file); for local development `make demo` creates one"
    )


def generate_key_file(path: str | os.PathLike[str], *, key_id: str | None = None) -> str:
    """Creates a new key file (mode 0600) with one fresh primary key; returns its key id.

    Refuses to overwrite an existing file: losing a master key loses every secret under it.
    """
    target = Path(path)
    key_id = key_id or new_key_id()
    check_key_id(key_id)
    target.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    text = _render(key_id, {key_id: secrets.token_bytes(KEY_BYTES)})
    try:
        fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        raise KeyringError(
            f"{target} already exists; use add_key to rotate, or move it away first "
            "(deleting it makes the secrets sealed under its keys unrecoverable)"
        ) from None
    _write_fd(fd, text)
    return key_id


def add_key(path: str | os.PathLike[str], *, key_id: str | None = None) -> str:
    """Adds a fresh key to an existing key file and makes it primary; returns its key id."""
    target = Path(path)
    _, keys = _read_key_file(target)
    key_id = key_id or new_key_id()
    check_key_id(key_id)
    if key_id in keys:
        raise KeyringError(f"{target}: master key id {key_id!r} already exists")
    keys[key_id] = secrets.token_bytes(KEY_BYTES)
    _replace(target, _render(key_id, keys))
    return key_id


def remove_key(path: str | os.PathLike[str], key_id: str) -> None:
    """Removes a retired key from a key file. Rewrap every secret sealed under it first."""
    target = Path(path)
    primary, keys = _read_key_file(target)
    if key_id not in keys:
        raise KeyringError(f"{target}: no master key {key_id!r} (keys: {', '.join(keys)})")
    if key_id == primary:
        raise KeyringError(
            f"{target}: {key_id!r} is the primary key; add_key a new primary before removing it"
        )
    del keys[key_id]
    _replace(target, _render(primary, keys))


def _read_key_file(path: Path) -> tuple[str, dict[str, bytes]]:
    try:
        fd = os.open(path, os.O_RDONLY)
    except FileNotFoundError:
        raise KeyringError(
            f"master key file {path} does not exist; create one with generate_key_file "
            "(`make demo` does this for development)"
        ) from None
    except PermissionError:
        raise KeyringError(f"cannot read master key file {path}: permission denied") from None
    with os.fdopen(fd, "rb") as fh:
        st = os.fstat(fh.fileno())
        if not stat.S_ISREG(st.st_mode):
            raise KeyringError(f"master key file {path} is not a regular file")
        if st.st_mode & 0o077:
            raise KeyringError(
                f"master key file {path} is accessible by group or others "
                f"(mode {stat.S_IMODE(st.st_mode):04o}); run `chmod 600 {path}`"
            )
        try:
            data = tomllib.load(fh)
        except tomllib.TOMLDecodeError as exc:
            raise KeyringError(f"master key file {path} is not valid TOML: {exc}") from None
    unknown = sorted(set(data) - {"primary", "keys"})
    if unknown:
        raise KeyringError(
            f"master key file {path}: unknown setting {unknown[0]!r}; "
            'expected primary = "kid" and a [keys] table'
        )
    primary, table = data.get("primary"), data.get("keys")
    if not isinstance(table, dict) or not table:
        raise KeyringError(f'master key file {path}: needs a [keys] table with kid = "base64..."')
    if not isinstance(primary, str) or not primary:
        raise KeyringError(f'master key file {path}: needs primary = "<one of the key ids>"')
    keys: dict[str, bytes] = {}
    for key_id, encoded in table.items():
        try:
            check_key_id(key_id)
        except KeyringError as exc:
            raise KeyringError(f"master key file {path}: {exc}") from None
        if not isinstance(encoded, str):
            raise KeyringError(f"master key file {path}: key {key_id!r} must be a string")
        keys[key_id] = _decode_key(key_id, encoded, f"master key file {path}")
    if primary not in keys:
        raise KeyringError(
            f"master key file {path}: primary {primary!r} is not in [keys] ({', '.join(keys)})"
        )
    return primary, keys


def _render(primary: str, keys: Mapping[str, bytes]) -> str:
    lines = [_FILE_HEADER, f'primary = "{primary}"\n', "\n[keys]\n"]
    for key_id, raw in keys.items():
        encoded = base64.urlsafe_b64encode(raw).decode("ascii").rstrip("=")
        lines.append(f'"{key_id}" = "{encoded}"\n')
    return "".join(lines)


def _replace(target: Path, text: str) -> None:
    """Atomically replaces ``target`` with a 0600 file holding ``text``."""
    tmp = target.with_name(f".{target.name}.{secrets.token_hex(4)}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        _write_fd(fd, text)
        os.replace(tmp, target)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def _write_fd(fd: int, text: str) -> None:
    with os.fdopen(fd, "w", encoding="ascii") as fh:
        os.fchmod(fh.fileno(), 0o600)  # exactly 0600 whatever the umask
        fh.write(text)
        fh.flush()
        os.fsync(fh.fileno())
