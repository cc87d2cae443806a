"""A running server follows its key file: rotation in another process without a restart."""

from __future__ import annotations

import base64
import os
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
import structlog

from server.clock import FakeClock
from server.secret import Secret
from server.vault.errors import DecryptionError, KeyringError, UnknownKeyId
from server.vault.keys import add_key, generate_key_file, load_key_file, remove_key
from server.vault.redact import KnownSecrets
from server.vault.sealer import VaultSealer
from server.vault.source import KeyFileKeys, StaticKeys, open_key_source

IDS = ("acct-1", "llm-1", "ep-1", "api_key")


@pytest.fixture
def key_file(tmp_path: Path) -> Path:
    path = tmp_path / "keys.toml"
    generate_key_file(path, key_id="k1")
    return path


def test_key_file_is_checked_at_most_once_per_interval(key_file: Path) -> None:
    clock = FakeClock()
    keys = KeyFileKeys(key_file, clock)
    assert keys.current().primary_key_id == "k1"
    add_key(key_file, key_id="k2")
    clock.advance(0.5)
    assert keys.current().primary_key_id == "k1"  # not re-checked yet
    clock.advance(0.5)
    assert keys.current().primary_key_id == "k2"
    assert keys.current().key_ids == ("k1", "k2")


def test_refresh_checks_now_and_reports_a_change(key_file: Path) -> None:
    keys = KeyFileKeys(key_file, FakeClock())
    assert keys.refresh() is False
    add_key(key_file, key_id="k2")
    assert keys.refresh() is True
    assert keys.refresh() is False
    assert keys.current().primary_key_id == "k2"


def test_a_broken_key_file_keeps_the_old_keys(key_file: Path) -> None:
    clock = FakeClock()
    keys = KeyFileKeys(key_file, clock)
    with structlog.testing.capture_logs() as logs:
        key_file.chmod(0o644)  # readable by others: refused
        assert keys.refresh() is False
        clock.advance(5)
        assert keys.current().primary_key_id == "k1"
        key_file.unlink()
        assert keys.refresh() is False
    errors = [e for e in logs if e["log_level"] == "error"]
    assert len(errors) == 2, "one error per change, not one per check"
    assert "chmod 600" in errors[0]["error"]
    generate_key_file(key_file, key_id="k9")
    assert keys.refresh() is True
    assert keys.current().primary_key_id == "k9"


def test_sealer_opens_a_secret_rewrapped_by_another_process(key_file: Path) -> None:
    clock = FakeClock()
    server = VaultSealer(KeyFileKeys(key_file, clock), KnownSecrets())
    sealed = server.seal(Secret("sk-live-0123456789"), *IDS)
    # Another process: `switchboard keys rotate` adds k2 and re-wraps under it.
    add_key(key_file, key_id="k2")
    rotated = VaultSealer(load_key_file(key_file), KnownSecrets()).rewrap(sealed, *IDS)
    assert VaultSealer.key_id_of(rotated) == "k2"
    # The server has not re-checked the file (no time passed): UnknownKeyId -> reload, retry.
    assert server.open(rotated, *IDS).reveal() == "sk-live-0123456789"
    # New secrets go under the new primary.
    assert VaultSealer.key_id_of(server.seal(Secret("sk-new-0123456789"), *IDS)) == "k2"
    # The old key can go; everything still opens, now and after a restart.
    remove_key(key_file, "k1")
    clock.advance(1)
    assert server.open(rotated, *IDS).reveal() == "sk-live-0123456789"
    restarted = VaultSealer(KeyFileKeys(key_file, FakeClock()), KnownSecrets())
    assert restarted.open(rotated, *IDS).reveal() == "sk-live-0123456789"


def test_unknown_key_id_still_fails_when_the_file_has_not_changed(key_file: Path,
                                                                  tmp_path: Path) -> None:
    other = tmp_path / "other.toml"
    generate_key_file(other, key_id="elsewhere")
    sealed = VaultSealer(load_key_file(other), KnownSecrets()).seal(Secret("sk-x-0123456789"),
                                                                   *IDS)
    server = VaultSealer(KeyFileKeys(key_file, FakeClock()), KnownSecrets())
    with pytest.raises(UnknownKeyId) as info:
        server.open(sealed, *IDS)
    assert "'elsewhere'" in info.value.message and "llm-1" in info.value.message


def test_opened_secrets_are_registered_for_redaction(key_file: Path) -> None:
    known = KnownSecrets()
    sealer = VaultSealer(KeyFileKeys(key_file), known)
    sealed = VaultSealer(load_key_file(key_file), KnownSecrets()).seal(
        Secret("0123456789abcdef0123456789abcdef"), *IDS)
    sealer.open(sealed, *IDS)
    assert known.mask("key 0123456789abcdef0123456789abcdef!") == "key [REDACTED]!"


def test_open_key_source_picks_the_configured_source(key_file: Path) -> None:
    env = "e1:" + base64.urlsafe_b64encode(os.urandom(32)).decode()
    assert isinstance(open_key_source(master_keys=env), StaticKeys)
    assert isinstance(open_key_source(key_file=str(key_file)), KeyFileKeys)
    with pytest.raises(KeyringError, match="configure only one"):
        open_key_source(master_keys=env, key_file=str(key_file))
    with pytest.raises(KeyringError, match="set the primary in the key file only"):
        open_key_source(key_file=str(key_file), primary_key_id="k0")
    assert "k1" in repr(open_key_source(key_file=str(key_file)))


class _CountingKeys:
    """A KeySource over one keyring at a time that counts the data keys unwrapped."""

    def __init__(self, key_file: Path) -> None:
        self.unwrapped = 0
        self.use(key_file)

    def use(self, key_file: Path) -> None:
        self._keyring = load_key_file(key_file)
        self._current = SimpleNamespace(seal=self._keyring.seal, data_key=self._data_key)

    def _data_key(self, *args: Any) -> Any:
        self.unwrapped += 1
        return self._keyring.data_key(*args)

    def current(self) -> Any:
        return self._current

    def refresh(self) -> bool:
        return False


def test_a_secret_opened_again_reuses_its_data_key_while_the_keyring_stays(
        key_file: Path, tmp_path: Path) -> None:
    keys = _CountingKeys(key_file)
    sealer = VaultSealer(keys, KnownSecrets())
    sealed = sealer.seal(Secret("sk-live-0123456789"), *IDS)
    assert [sealer.open(sealed, *IDS).reveal() for _ in range(3)] == ["sk-live-0123456789"] * 3
    assert keys.unwrapped == 1
    # The same ciphertext for another record still fails: the binding is checked every time.
    with pytest.raises(DecryptionError):
        sealer.open(sealed, "acct-1", "llm-1", "ep-2", "api_key")
    # Another keyring (the key file changed) starts over: without k1 the secret stays shut.
    other = tmp_path / "other.toml"
    generate_key_file(other, key_id="k2")
    keys.use(other)
    with pytest.raises(UnknownKeyId):
        sealer.open(sealed, *IDS)
