from __future__ import annotations

from pathlib import Path

import pytest

from server.config import AUTO_PORT, ConfigError, load


def test_defaults_then_toml_then_env(tmp_path: Path) -> None:
    toml = tmp_path / "sb.toml"
    toml.write_text('grpc_port = 6000\nlog_level = "debug"\napi_keys = ["a", "b"]\n')
    s = load({"SWITCHBOARD_CONFIG": str(toml), "SWITCHBOARD_GRPC_PORT": "7000"})
    assert s.grpc_port == 7000  # env wins over the file
    assert s.log_level == "debug" and s.api_keys == ("a", "b")
    assert load({}).grpc_port == 50051


def test_auto_asks_for_any_free_port_and_0_keeps_meaning_off(tmp_path: Path) -> None:
    toml = tmp_path / "sb.toml"
    toml.write_text('metrics_port = "auto"\n')
    s = load({"SWITCHBOARD_CONFIG": str(toml), "SWITCHBOARD_HTTP_PORT": "Auto",
              "SWITCHBOARD_GRPC_PORT": "auto"})
    assert (s.http_port, s.metrics_port, s.grpc_port) == (AUTO_PORT, AUTO_PORT, 0)
    assert (load({}).http_port, load({}).metrics_port) == (0, 0)  # the defaults: off
    with pytest.raises(ConfigError, match="between 0 and 65535"):
        load({"SWITCHBOARD_HTTP_PORT": "-1"})  # the stored value is not a spelling of auto
    with pytest.raises(ConfigError, match="expected int or auto for metrics_port"):
        load({"SWITCHBOARD_METRICS_PORT": "any"})


@pytest.mark.parametrize(("env", "needle"), [
    ({"SWITCHBOARD_GRPC_PORT": "abc"}, "SWITCHBOARD_GRPC_PORT: expected int"),
    ({"SWITCHBOARD_GRPC_PORT": "70000"}, "between 0 and 65535"),
    ({"SWITCHBOARD_MAX_ATTEMPTS": "2.5"}, "expected int"),
    ({"SWITCHBOARD_LOG_LEVEL": "loud"}, "must be one of debug, info, warning, error"),
    ({"SWITCHBOARD_ALLOW_HTTP_UPSTREAMS": "maybe"}, "expected bool"),
    ({"SWITCHBOARD_CONFIG": "/nonexistent.toml"}, "does not exist"),
])
def test_bad_values_name_the_setting_and_what_is_accepted(env: dict[str, str],
                                                          needle: str) -> None:
    with pytest.raises(ConfigError) as err:
        load(env)
    assert needle in str(err.value)


def test_unknown_key_in_toml_is_refused(tmp_path: Path) -> None:
    toml = tmp_path / "sb.toml"
    toml.write_text("grpc_prot = 1\n")
    with pytest.raises(ConfigError, match="unknown setting 'grpc_prot'"):
        load({"SWITCHBOARD_CONFIG": str(toml)})


def test_invalid_toml(tmp_path: Path) -> None:
    toml = tmp_path / "sb.toml"
    toml.write_text("grpc_port = = 1\n")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load({"SWITCHBOARD_CONFIG": str(toml)})


def test_server_exits_2_with_a_clear_message_on_bad_config() -> None:
    import subprocess
    import sys

    done = subprocess.run([sys.executable, "-m", "server.main"], capture_output=True, text=True,
                          env={"SWITCHBOARD_GRPC_PORT": "nope", "PATH": "/usr/bin:/bin"},
                          timeout=60, cwd=Path(__file__).resolve().parents[2])
    assert done.returncode == 2
    assert "SWITCHBOARD_GRPC_PORT: expected int" in done.stderr
    assert "Traceback" not in done.stderr
