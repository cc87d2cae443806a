"""Process entry point: settings, logging, event loop, serve until SIGTERM/SIGINT."""

from __future__ import annotations

import sys
from collections.abc import Sequence

import uvloop

from server import logs
from server.app import serve
from server.config import ConfigError, load
from server.vault.redact import Redactor


def main(argv: Sequence[str] | None = None) -> int:
    try:
        settings = load()
    except ConfigError as exc:
        print(f"switchboard: configuration error: {exc}", file=sys.stderr)
        return 2
    logs.configure(settings.log_level, settings.log_format, Redactor())
    try:
        return uvloop.run(serve(settings))
    except ConfigError as exc:
        print(f"switchboard: configuration error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
