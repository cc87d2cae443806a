"""Process entry point: settings, logging, event loop, serve until SIGTERM/SIGINT."""

from __future__ import annotations

import sys

import structlog
import uvloop

from server import logs
from server.app import serve
from server.config import ConfigError, load, unknown_variables
from server.memory import limit_malloc_arenas
from server.vault.redact import KnownSecrets, Redactor


def main() -> int:
    limit_malloc_arenas()  # before any thread allocates: grpc core's threads start later
    try:
        settings = load()
    except ConfigError as exc:
        print(f"switchboard: configuration error: {exc}", file=sys.stderr)
        return 2
    known = KnownSecrets()  # the server registers every key it opens; the redactor masks them
    json_lines = logs.configure(settings.log_level, settings.log_format, Redactor(known))
    for variable, closest in unknown_variables():
        structlog.get_logger("switchboard.config").warning(
            f"{variable} is not a setting and is ignored"
            + (f"; did you mean {closest}?" if closest else "; `switchboard serve --help` "
               "lists the settings"), variable=variable, closest=closest or None)
    try:
        return uvloop.run(serve(settings, known, json_lines))
    except ConfigError as exc:
        print(f"switchboard: configuration error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
