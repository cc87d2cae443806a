"""Typed domain errors.

Domain code raises these; the gRPC edge (``server.edge.interceptor``, ``server.edge.status``)
maps each one to a ``google.rpc.Status`` with exactly one ``ErrorInfo`` plus the details that
apply. The gRPC status code is carried as a plain string name (``"NOT_FOUND"``) so that
domain modules never import grpc.

Messages are actionable English for developers and never carry secrets or raw upstream bodies.
"""

from __future__ import annotations

from dataclasses import dataclass, field

ERROR_DOMAIN = "switchboard.dev"


@dataclass(frozen=True, slots=True)
class FieldViolation:
    """One invalid request field, named by its path (``endpoints[0].base_url``)."""

    field: str
    description: str


class SwitchboardError(Exception):
    """Base of every error that is meant to reach a caller.

    Subclasses set ``code`` (a gRPC status code name) and ``reason`` (an UPPER_SNAKE
    ``ErrorInfo.reason``). ``metadata`` becomes ``ErrorInfo.metadata``; it must hold no secrets.
    """

    code: str = "INTERNAL"
    reason: str = "INTERNAL"

    def __init__(
        self,
        message: str,
        *,
        reason: str | None = None,
        metadata: dict[str, str] | None = None,
        violations: list[FieldViolation] | None = None,
        retry_after_s: float | None = None,
        resource_type: str | None = None,
        resource_name: str | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        if reason is not None:
            self.reason = reason
        self.metadata = dict(metadata or {})
        self.violations = list(violations or [])
        self.retry_after_s = retry_after_s
        self.resource_type = resource_type
        self.resource_name = resource_name

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.reason}: {self.message})"


class InvalidArgument(SwitchboardError):
    code = "INVALID_ARGUMENT"
    reason = "INVALID_ARGUMENT"


class NotFound(SwitchboardError):
    code = "NOT_FOUND"
    reason = "NOT_FOUND"



class Aborted(SwitchboardError):
    """Optimistic concurrency failure (etag mismatch)."""

    code = "ABORTED"
    reason = "ETAG_MISMATCH"


class FailedPrecondition(SwitchboardError):
    code = "FAILED_PRECONDITION"
    reason = "FAILED_PRECONDITION"


class Unauthenticated(SwitchboardError):
    code = "UNAUTHENTICATED"
    reason = "UNAUTHENTICATED"



class ResourceExhausted(SwitchboardError):
    code = "RESOURCE_EXHAUSTED"
    reason = "RESOURCE_EXHAUSTED"


class Unavailable(SwitchboardError):
    code = "UNAVAILABLE"
    reason = "UNAVAILABLE"


class DeadlineExceeded(SwitchboardError):
    code = "DEADLINE_EXCEEDED"
    reason = "DEADLINE_EXCEEDED"



class Internal(SwitchboardError):
    code = "INTERNAL"
    reason = "INTERNAL"


@dataclass(slots=True)
class Violations:
    """Collects field violations and raises one ``InvalidArgument`` for all of them."""

    items: list[FieldViolation] = field(default_factory=list)

    def add(self, path: str, description: str) -> None:
        self.items.append(FieldViolation(path, description))

    def raise_if_any(self, summary: str = "The request has invalid fields") -> None:
        if self.items:
            first = self.items[0]
            detail = f"{first.field}: {first.description}"
            more = f" (and {len(self.items) - 1} more)" if len(self.items) > 1 else ""
            raise InvalidArgument(f"{summary}: {detail}{more}", violations=self.items)
