"""Configuration: defaults, then an optional TOML file, then environment variables.

Every setting has one name. In TOML it is a key (``grpc_port = 50051``); in the environment it
is ``SWITCHBOARD_`` plus the upper-case name (``SWITCHBOARD_GRPC_PORT=50051``). The TOML file is
named by ``SWITCHBOARD_CONFIG``. Bad values fail at startup with a message that names the
setting, where it came from, and what is accepted.
"""

from __future__ import annotations

import dataclasses
import os
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from server.timeouts import DEFAULT_TIMEOUTS

ENV_PREFIX = "SWITCHBOARD_"
# ``http_port = "auto"`` / ``metrics_port = "auto"``: listen on any free port the OS picks
# (0 keeps meaning "off"); the serving log line and the banner report the bound port.
AUTO_PORT = -1


class ConfigError(ValueError):
    """A setting has a bad value; the message says which, where from, and what is accepted."""


@dataclass(frozen=True, slots=True)
class Settings:
    # Network
    host: str = "127.0.0.1"
    grpc_port: int = 50051
    http_port: int = 0  # OpenAI-compatible front door; 0 = off, AUTO_PORT = any free port
    # A request head (request line and headers) must arrive within this time of the
    # connection opening or of the previous response, or the connection is closed.
    http_header_timeout_s: float = 10.0
    # Prometheus /metrics, on its own listener (never the tenant ports); 0 = off,
    # AUTO_PORT = any free port.
    metrics_port: int = 0
    metrics_host: str = ""  # "" = the same as host
    tls_cert_file: str = ""
    tls_key_file: str = ""
    grace_period_s: float = 10.0
    # Storage: a SQLite path, or a postgresql:// DSN
    database: str = "var/switchboard.db"
    # Callers: static API keys (comma separated) mapped to the "default" account, for
    # development; real deployments create accounts and keys with `switchboard admin`.
    api_keys: tuple[str, ...] = ()
    # Master keys for the credential vault: an env value (kid:base64,...) or a key file.
    master_keys: str = field(default="", repr=False)
    master_key_file: str = ""
    primary_key_id: str = ""
    # Upstream timeouts by phase
    connect_timeout_s: float = DEFAULT_TIMEOUTS.connect_s
    first_token_timeout_s: float = DEFAULT_TIMEOUTS.first_token_s
    between_chunks_timeout_s: float = DEFAULT_TIMEOUTS.between_chunks_s
    turn_timeout_s: float = DEFAULT_TIMEOUTS.total_s
    # Routing
    max_attempts: int = 4
    probes_per_hour: int = 4
    # Limits
    max_concurrent_streams: int = 2000
    max_request_bytes: int = 4 * 1024 * 1024
    max_metadata_bytes: int = 16 * 1024  # a call's gRPC metadata (headers); larger is refused
    max_message_bytes: int = 256 * 1024
    max_messages: int = 500
    max_upstream_event_bytes: int = 8 * 1024 * 1024
    max_output_tokens: int = 0  # 0 = no server-wide cap
    default_idle_ttl_s: float = 1800.0
    # Network guard: upstream base URLs
    allow_http_upstreams: bool = False
    upstream_allow_hosts: tuple[str, ...] = ()
    upstream_allow_cidrs: tuple[str, ...] = ()
    # Logging
    log_level: str = "info"
    log_format: str = "auto"  # auto | json | console
    # Tracing: an OTLP/HTTP collector (http://host:4318); empty = no tracing at all
    otlp_endpoint: str = ""

    def replace(self, **changes: Any) -> Settings:
        return dataclasses.replace(self, **changes)


_BOUNDS: dict[str, tuple[float, float]] = {
    "grpc_port": (0, 65535),
    "http_port": (0, 65535),
    "metrics_port": (0, 65535),
    "http_header_timeout_s": (0.1, 3600),
    "grace_period_s": (0, 3600),
    "connect_timeout_s": (0.01, 600),
    "first_token_timeout_s": (0.01, 3600),
    "between_chunks_timeout_s": (0.01, 3600),
    "turn_timeout_s": (0.1, 86400),
    "max_attempts": (1, 16),
    "probes_per_hour": (0, 3600),  # above 60 for tests and small fleets; default 4
    "max_concurrent_streams": (1, 1_000_000),
    "max_request_bytes": (1024, 1 << 30),
    "max_metadata_bytes": (1024, 1 << 20),
    "max_message_bytes": (16, 1 << 30),
    "max_messages": (1, 100_000),
    "max_upstream_event_bytes": (1024, 1 << 30),
    "max_output_tokens": (0, 10_000_000),
    "default_idle_ttl_s": (1, 86400),
}
_CHOICES: dict[str, tuple[str, ...]] = {
    "log_level": ("debug", "info", "warning", "error"),
    "log_format": ("auto", "json", "console"),
}


_MEANING: dict[str, str] = {
    "host": "gRPC (and HTTP) listen address",
    "grpc_port": "gRPC port (0 or auto: any free port)",
    "http_port": "OpenAI-compatible front door (0: off; auto: any free port)",
    "http_header_timeout_s": "time a connection has to send a complete HTTP request head",
    "metrics_port": "Prometheus /metrics, own listener, off the tenant ports "
                    "(0: off; auto: any free port)",
    "metrics_host": "metrics listen address (empty: host)",
    "tls_cert_file": "PEM certificate: serve TLS",
    "tls_key_file": "PEM private key of tls_cert_file",
    "grace_period_s": "drain time on SIGTERM/SIGINT",
    "database": "SQLite path or postgresql:// DSN",
    "api_keys": "static development caller keys, comma separated (account default)",
    "master_keys": "vault master keys kid:base64url,... (or master_key_file)",
    "master_key_file": "vault master key file (TOML, mode 0600; switchboard keys init)",
    "primary_key_id": "which master key seals new secrets (default: the first)",
    "connect_timeout_s": "upstream connect timeout",
    "first_token_timeout_s": "upstream time to first token",
    "between_chunks_timeout_s": "upstream silence allowed between chunks",
    "turn_timeout_s": "a whole turn",
    "max_attempts": "attempts per turn, hedges and retries included",
    "probes_per_hour": "latency probes per endpoint per hour while a session is active",
    "max_concurrent_streams": "beyond it: RESOURCE_EXHAUSTED",
    "max_request_bytes": "largest gRPC request",
    "max_metadata_bytes": "largest gRPC metadata of a call (refused at once beyond it)",
    "max_message_bytes": "largest message in a request",
    "max_messages": "most messages in a request",
    "max_upstream_event_bytes": "largest SSE event from an upstream",
    "max_output_tokens": "server-wide output token cap (0: none)",
    "default_idle_ttl_s": "session idle time to live",
    "allow_http_upstreams": "allow http:// upstream URLs",
    "upstream_allow_hosts": "upstream host names admitted past the SSRF guard",
    "upstream_allow_cidrs": "upstream networks admitted past the SSRF guard",
    "log_level": "debug | info | warning | error",
    "log_format": "auto (JSON when not a TTY) | json | console",
    "otlp_endpoint": "OpenTelemetry traces, OTLP/HTTP (empty: off)",
}


def settings_help() -> str:
    """One line per setting: its environment name, default and meaning."""
    lines = []
    for f in fields(Settings):
        default = getattr(Settings(), f.name)
        if isinstance(default, tuple):
            default = ",".join(default)
        shown = "" if f.name == "master_keys" else str(default)
        lines.append(f"  {ENV_PREFIX + f.name.upper():<42} {shown or '-':<20} "
                     f"{_MEANING.get(f.name, '')}")
    return "\n".join(lines)


# SWITCHBOARD_* variables that are not server settings: the CLI's and clients' own, the file
# name of the settings, and the test harness's.
NOT_SETTINGS = frozenset({
    "CONFIG", "API_KEY", "TARGET", "LLM_ID", "UPSTREAM_URL", "GRPCURL", "EXPECT_REASONING",
    "EXPECT_TEXT", "TEST_POSTGRES_DSN", "GO_WORK", "GOCODE",
})


def unknown_variables(environ: Mapping[str, str] | None = None) -> list[tuple[str, str]]:
    """(variable, closest setting variable or "") for each SWITCHBOARD_* variable that is not
    a setting: a misspelled one would otherwise be ignored without a word."""
    import difflib

    env = os.environ if environ is None else environ
    names = [ENV_PREFIX + f.name.upper() for f in fields(Settings)]
    found = []
    for variable in sorted(env):
        rest = variable.removeprefix(ENV_PREFIX)
        if rest == variable or variable in names or rest in NOT_SETTINGS:
            continue
        close = difflib.get_close_matches(variable, names, n=1, cutoff=0.75)
        found.append((variable, close[0] if close else ""))
    return found


def load(environ: Mapping[str, str] | None = None, **overrides: Any) -> Settings:
    """Builds settings from the TOML file (if any), the environment, then ``overrides``."""
    env = os.environ if environ is None else environ
    raw: dict[str, tuple[Any, str]] = {}
    path = env.get(ENV_PREFIX + "CONFIG", "")
    if path:
        for key, value in _read_toml(Path(path)).items():
            raw[key] = (value, f"{path}: {key}")
    known = {f.name for f in fields(Settings)}
    for name in known:
        env_name = ENV_PREFIX + name.upper()
        if env_name in env:
            raw[name] = (env[env_name], env_name)
    unknown = sorted(k for k in raw if k not in known)
    if unknown:
        raise ConfigError(
            f"unknown setting {unknown[0]!r} in {raw[unknown[0]][1]}; "
            f"known settings: {', '.join(sorted(known))}"
        )
    values = {name: _coerce(name, value, source) for name, (value, source) in raw.items()}
    values.update(overrides)
    return Settings(**values)


def _read_toml(path: Path) -> dict[str, Any]:
    try:
        with path.open("rb") as fh:
            return tomllib.load(fh)
    except FileNotFoundError:
        raise ConfigError(f"config file {path} (from SWITCHBOARD_CONFIG) does not exist") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"config file {path} is not valid TOML: {exc}") from None


# The port settings that take ``auto`` (any free port), and what it is stored as: the gRPC
# port's 0 already means that; the others' 0 means "off".
_AUTO_PORTS = {"grpc_port": 0, "http_port": AUTO_PORT, "metrics_port": AUTO_PORT}


def _coerce(name: str, value: Any, source: str) -> Any:
    if name in _AUTO_PORTS and isinstance(value, str) and value.strip().lower() == "auto":
        return _AUTO_PORTS[name]
    default = getattr(Settings(), name)
    try:
        result = _convert(default, value)
    except (TypeError, ValueError):
        kind = type(default).__name__ if not isinstance(default, tuple) else "comma-separated list"
        if name in _AUTO_PORTS:
            kind = "int or auto"
        raise ConfigError(f"{source}: expected {kind} for {name}, got {value!r}") from None
    if name in _BOUNDS:
        low, high = _BOUNDS[name]
        if not low <= result <= high:
            raise ConfigError(
                f"{source}: {name} must be between {low:g} and {high:g}, got {result}")
    if name in _CHOICES and result not in _CHOICES[name]:
        raise ConfigError(f"{source}: {name} must be one of {', '.join(_CHOICES[name])}")
    return result


def _convert(default: Any, value: Any) -> Any:
    if isinstance(default, bool):
        if isinstance(value, bool):
            return value
        text = str(value).strip().lower()
        if text in ("1", "true", "yes", "on"):
            return True
        if text in ("0", "false", "no", "off"):
            return False
        raise ValueError(value)
    if isinstance(default, int):
        if isinstance(value, float) or (isinstance(value, str) and "." in value):
            raise ValueError(value)
        return int(value)
    if isinstance(default, float):
        return float(value)
    if isinstance(default, tuple):
        if isinstance(value, list):
            return tuple(str(v) for v in value)
        return tuple(v.strip() for v in str(value).split(",") if v.strip())
    if not isinstance(value, str):
        raise TypeError(value)
    return value
