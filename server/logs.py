"""structlog setup: JSON lines when not on a TTY, context from contextvars, redaction last.

Never log keys, Authorization headers, URLs with ``key=``, or prompt and completion text.
The redaction processor (``server.vault.redact``) is the backstop for mistakes.
"""

from __future__ import annotations

import contextvars
import logging
import sys
from collections.abc import Callable
from typing import Any

import structlog

Processor = Callable[[Any, str, Any], Any]

# The summary of the request being served: each edge (gRPC interceptor, HTTP front door) sets
# it to the dict it logs as its one line per request; observers add to it.
request_summary: contextvars.ContextVar[dict[str, Any] | None] = contextvars.ContextVar(
    "switchboard_request_summary", default=None)


def configure(level: str = "info", fmt: str = "auto", redactor: Processor | None = None,
              stream: Any = None) -> bool:
    """Configures structlog; True when it writes JSON lines."""
    out = stream or sys.stderr
    use_json = fmt == "json" or (fmt == "auto" and not out.isatty())
    processors: list[Any] = [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        structlog.processors.format_exc_info,
    ]
    if redactor is not None:
        processors.append(redactor)
    processors.append(structlog.processors.JSONRenderer() if use_json
                      else structlog.dev.ConsoleRenderer(colors=False))
    structlog.configure(
        processors=processors,
        wrapper_class=structlog.make_filtering_bound_logger(
            logging.getLevelNamesMapping()[level.upper()]),
        logger_factory=structlog.PrintLoggerFactory(file=out),
        cache_logger_on_first_use=False,
    )
    return use_json
