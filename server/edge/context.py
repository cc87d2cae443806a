"""Per-RPC context shared between the interceptor and the servicers (contextvars, no globals)."""

from __future__ import annotations

import contextvars
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TypeAlias

import grpc
from google.protobuf.message import Message as PbMessage

if TYPE_CHECKING:  # grpc's stubs are generic in request and response; the edge serves all RPCs
    ServicerContext: TypeAlias = grpc.aio.ServicerContext[Any, Any]
    Handler: TypeAlias = grpc.RpcMethodHandler[Any, Any]
    # What an interceptor's continuation returns: None for a method no servicer implements.
    Continuation: TypeAlias = Callable[[grpc.HandlerCallDetails], Awaitable[Handler | None]]
else:  # at run time the classes are not subscriptable
    ServicerContext = grpc.aio.ServicerContext
    Handler = grpc.RpcMethodHandler
    Continuation = Callable


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
