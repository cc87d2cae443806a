"""Per-RPC context shared between the interceptor and the servicers (contextvars, no globals)."""

from __future__ import annotations

import contextvars
from dataclasses import dataclass, field
from typing import Any

from google.protobuf.message import Message as PbMessage


@dataclass(slots=True)
class Call:
    """What one RPC knows about itself; the interceptor logs it as the summary line."""

    request_id: str
    method: str
    account_id: str = ""
    summary: dict[str, Any] = field(default_factory=dict)
    error_details: tuple[PbMessage, ...] = ()


current: contextvars.ContextVar[Call] = contextvars.ContextVar("switchboard_call")


def call() -> Call:
    return current.get()
