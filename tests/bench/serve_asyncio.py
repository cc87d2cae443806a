"""``python -m server.main`` on the standard asyncio event loop instead of uvloop.

Only for the bench's event-loop A/B (``--server-loop asyncio``); production runs server.main.
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Coroutine
from typing import Any

import uvloop

from server import main as server_main


def _run(coro: Coroutine[Any, Any, int], **_: Any) -> int:
    return asyncio.run(coro)


if __name__ == "__main__":
    uvloop.run = _run  # type: ignore[assignment]  # server.main calls uvloop.run(serve(...))
    sys.exit(server_main.main())
