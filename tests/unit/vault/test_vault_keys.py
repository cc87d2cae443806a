"""Master keys from the environment and from key files; rotation through the key file."""

from __future__ import annotations

import base64
import os
import stat
from pathlib import Path

import pytest

from server.vault.envelope import SecretContext
from server.vault.keys import (
    KeyringError,
    add_key,
    generate_key_file,
    keyring_from_env,
    load_key_file,
    load_keyring,
    parse_master_keys,
    remove_key,
)

CTX = SecretContext("acct-1", "llm-1", "ep-1")
RAW1, RAW2 = os.urandom(32), os.urandom(32)
B64URL1 = base64.urlsafe_b64encode(RAW1).decode().rstrip("=")
B64STD2 = base64.b64encode(RAW2).decode()


def test_env_first_key_is_primary() -> None:
    ring = parse_master_keys(f"k1:{B64URL1}, k2:{B64STD2}")
    assert ring.key_ids == ("k1", "k2")
    assert ring.primary_key_id == "k1"


def test_env_primary_override() -> None:
    env = {
        "SWITCHBOARD_MASTER_KEYS": f"k1:{B64URL1},k2:{B64STD2}",
        "SWITCHBOARD_PRIMARY_KEY_ID": "k2",
    }
    assert keyring_from_env(env).primary_key_id == "k2"


def test_env_and_file_keys_interoperate(tmp_path: Path) -> None:
    path = tmp_path / "keys.toml"
    kid = generate_key_file(path)
    from_file = load_key_file(path)
    sealed = from_file.seal("sk-secret-value-123456", CTX)
    encoded = _read_keys(path)[kid]
    from_env = parse_master_keys(f"{kid}:{encoded}")
    assert from_env.open(sealed, CTX).reveal() == "sk-secret-value-123456"


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("", "is empty"),
        ("k1", "entry 1 is not of the form"),
        (f"k1:{B64URL1},", "entry 2 is not of the form"),
        (f":{B64URL1}", "entry 1 is not of the form"),
        (f"bad id:{B64URL1}", "entry 1: invalid master key id"),
        (f"k1:{B64URL1},k1:{B64STD2}", "'k1' appears twice"),
        ("k1:not*base64", "'k1' is not base64"),
        (f"k1:{base64.urlsafe_b64encode(os.urandom(16)).decode()}", "'k1' decodes to 16 bytes"),
        (f"k1:{base64.urlsafe_b64encode(os.urandom(33)).decode()}", "exactly 32 bytes"),
    ],
)
def test_env_errors_are_actionable_and_never_echo_keys(value: str, message: str) -> None:
    with pytest.raises(KeyringError, match=message) as info:
        parse_master_keys(value)
    assert str(info.value).startswith("SWITCHBOARD_MASTER_KEYS")
    assert B64URL1 not in str(info.value) and B64STD2 not in str(info.value)


def test_env_unknown_primary() -> None:
    with pytest.raises(KeyringError, match="primary master key id 'k3' is not among"):
        parse_master_keys(f"k1:{B64URL1}", "k3")


def test_nothing_configured_says_how_to_fix() -> None:
    with pytest.raises(KeyringError, match=r"no master keys configured.*make demo"):
        keyring_from_env({})


def test_both_sources_refused(tmp_path: Path) -> None:
    path = tmp_path / "keys.toml"
    generate_key_file(path)
    with pytest.raises(KeyringError, match="configure only one"):
        load_keyring(master_keys=f"k1:{B64URL1}", key_file=str(path))


def test_generated_file_is_private_and_loads(tmp_path: Path) -> None:
    path = tmp_path / "sub" / "keys.toml"
    kid = generate_key_file(path, key_id="dev-1")
    assert kid == "dev-1"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    ring = load_keyring(key_file=str(path))
    assert ring.key_ids == ("dev-1",) and ring.primary_key_id == "dev-1"


def test_generated_file_respects_no_umask(tmp_path: Path) -> None:
    old = os.umask(0)
    try:
        path = tmp_path / "keys.toml"
        generate_key_file(path)
        add_key(path)
    finally:
        os.umask(old)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


def test_generate_refuses_to_overwrite(tmp_path: Path) -> None:
    path = tmp_path / "keys.toml"
    generate_key_file(path)
    before = path.read_bytes()
    with pytest.raises(KeyringError, match="already exists; use add_key"):
        generate_key_file(path)
    assert path.read_bytes() == before


@pytest.mark.parametrize("mode", [0o640, 0o604, 0o660, 0o606, 0o620, 0o601])
def test_key_file_readable_by_others_is_refused(tmp_path: Path, mode: int) -> None:
    path = tmp_path / "keys.toml"
    generate_key_file(path)
    path.chmod(mode)
    with pytest.raises(KeyringError, match="group or others") as info:
        load_key_file(path)
    assert f"chmod 600 {path}" in str(info.value)
    assert f"{mode:04o}" in str(info.value)


def test_key_file_errors(tmp_path: Path) -> None:
    path = tmp_path / "keys.toml"
    with pytest.raises(KeyringError, match="does not exist"):
        load_key_file(path)
    cases = {
        'primary = "k1"\n': "needs a \\[keys\\] table",
        f'[keys]\nk1 = "{B64URL1}"\n': "needs primary",
        f'primary = "k2"\n[keys]\nk1 = "{B64URL1}"\n': "primary 'k2' is not in",
        'primary = "k1"\n[keys]\nk1 = "AAAA"\n': "'k1' decodes to 3 bytes",
        'primary = "k1"\n[keys]\nk1 = 5\n': "must be a string",
        f'primery = "k1"\n[keys]\nk1 = "{B64URL1}"\n': "unknown setting 'primery'",
        "primary = \n": "not valid TOML",
    }
    for text, message in cases.items():
        path.unlink(missing_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT, 0o600)
        os.write(fd, text.encode())
        os.close(fd)
        with pytest.raises(KeyringError, match=message) as info:
            load_key_file(path)
        assert str(path) in str(info.value)
        assert B64URL1 not in str(info.value)


def test_rotation_through_the_key_file(tmp_path: Path) -> None:
    path = tmp_path / "keys.toml"
    old_kid = generate_key_file(path, key_id="k-old")
    sealed = load_key_file(path).seal("sk-rotate-me-0123456789", CTX)

    new_kid = add_key(path, key_id="k-new")
    rotating = load_key_file(path)
    assert rotating.primary_key_id == new_kid and set(rotating.key_ids) == {old_kid, new_kid}
    rewrapped = rotating.rewrap(sealed, CTX)
    assert rewrapped.key_id == new_kid

    with pytest.raises(KeyringError, match="is the primary key"):
        remove_key(path, new_kid)
    remove_key(path, old_kid)
    after = load_key_file(path)
    assert after.key_ids == (new_kid,)
    assert after.open(rewrapped, CTX).reveal() == "sk-rotate-me-0123456789"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert [p.name for p in tmp_path.iterdir()] == ["keys.toml"]  # no temp files left


def test_add_key_refuses_a_file_readable_by_others(tmp_path: Path) -> None:
    path = tmp_path / "keys.toml"
    generate_key_file(path)
    path.chmod(0o644)
    with pytest.raises(KeyringError, match="chmod 600"):
        add_key(path)


def test_add_and_remove_errors(tmp_path: Path) -> None:
    path = tmp_path / "keys.toml"
    generate_key_file(path, key_id="k1")
    with pytest.raises(KeyringError, match="already exists"):
        add_key(path, key_id="k1")
    with pytest.raises(KeyringError, match="no master key 'k9'"):
        remove_key(path, "k9")


def _read_keys(path: Path) -> dict[str, str]:
    import tomllib

    return dict(tomllib.loads(path.read_text())["keys"])


def test_owner_only_modes_are_accepted(tmp_path: Path) -> None:
    path = tmp_path / "keys.toml"
    generate_key_file(path)
    for mode in (0o400, 0o600, 0o700):
        path.chmod(mode)
        load_key_file(path)
