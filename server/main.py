"""Process entry point: settings, logging, event loop, serve until SIGTERM/SIGINT."""

from __future__ import annotations

import sys
from collections.abc import Sequence

import uvloop

from server import logs
from server.app import serve
from server.config import ConfigError, load
from server.vault.redact import KnownSecrets, Redactor


def main(argv: Sequence[str] | None = None) -> int:
    try:
        settings = load()
    except ConfigError as exc:
        print(f"switchboard: configuration error: {exc}", file=sys.stderr)
        return 2
    known = KnownSecrets()  # the server registers every key it opens; the redactor masks them
    logs.configure(settings.log_level, settings.log_format, Redactor(known))
    try:
        return uvloop.run(serve(settings, known))
    except ConfigError as exc:
        print(f"switchboard: configuration error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
