"""The server's error model as one typed exception.

Every failed call raises ``SwitchboardError`` (a ``grpc.RpcError``, never a bare one), decoded
from the ``grpc-status-details-bin`` trailer: the status code, the one ``ErrorInfo`` (reason,
domain, metadata), ``RetryInfo``'s delay, ``BadRequest``'s field violations, ``RequestInfo``'s
request id, and any other detail (a refused registration carries its ``ValidationReport``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import cast

import grpc
from google.protobuf import any_pb2
from google.protobuf.message import DecodeError
from google.rpc import error_details_pb2, status_pb2
from switchboard.v1 import registry_pb2 as rpb

DETAILS_KEY = "grpc-status-details-bin"


@dataclass(frozen=True, slots=True)
class FieldViolation:
    """One bad field of a request: its path (``llm.endpoints[0].base_url``) and what is wrong."""

    field: str
    description: str


class SwitchboardError(grpc.aio.AioRpcError):
    """A failed Switchboard call, with the server's rich status decoded.

    It is a ``grpc.RpcError`` (and ``AioRpcError``): ``code()``, ``details()`` and
    ``trailing_metadata()`` answer as for any failed call, so code written against grpc keeps
    working; the decoded fields are attributes.
    """

    def __init__(self, code: grpc.StatusCode, message: str, *, reason: str = "",
                 domain: str = "", metadata: dict[str, str] | None = None,
                 retry_delay_s: float | None = None,
                 field_violations: Sequence[FieldViolation] = (), request_id: str = "",
                 validation: rpb.ValidationReport | None = None,
                 details: Sequence[any_pb2.Any] = (),
                 trailing_metadata: tuple[tuple[str, str | bytes], ...] = ()) -> None:
        # grpc keeps both metadata values as given; its stubs call them Metadata.
        super().__init__(code, cast("grpc.aio.Metadata", ()),
                         cast("grpc.aio.Metadata", trailing_metadata), message)
        self.message = message
        self.reason = reason  # ErrorInfo.reason, e.g. "API_KEY_INVALID"
        self.domain = domain
        self.metadata = dict(metadata or {})
        self.retry_delay_s = retry_delay_s  # RetryInfo: wait this long before retrying
        self.field_violations = tuple(field_violations)
        self.request_id = request_id  # quote it when reporting a problem
        self.validation = validation  # the report of a refused CreateLlm / UpdateLlm
        self.rich_details = tuple(details)  # every google.rpc.Status detail, as sent

    @property
    def status_code(self) -> grpc.StatusCode:
        """The gRPC status code (also ``code()``)."""
        return self.code()

    def __str__(self) -> str:
        text = f"{self.code().name}: {self.message}"
        if self.reason:
            text += f" [{self.reason}]"
        if self.retry_delay_s is not None:
            text += f" (retry in {self.retry_delay_s:g} s)"
        if self.request_id:
            text += f" (request id {self.request_id})"
        return text

    def __repr__(self) -> str:
        return (f"SwitchboardError(code={self.code().name}, reason={self.reason!r}, "
                f"message={self.message!r}, request_id={self.request_id!r})")

    @classmethod
    def from_status(cls, code: grpc.StatusCode, message: str, status_bytes: bytes | None,
                    trailing_metadata: tuple[tuple[str, str | bytes], ...] = ()
                    ) -> SwitchboardError:
        """Decodes a ``google.rpc.Status`` (the trailer's bytes); tolerates none or garbage."""
        status = status_pb2.Status()
        if status_bytes:
            try:
                status.ParseFromString(status_bytes)
            except DecodeError:
                status = status_pb2.Status()
        fields: dict[str, object] = {}
        violations: list[FieldViolation] = []
        for detail in status.details:
            if detail.Is(error_details_pb2.ErrorInfo.DESCRIPTOR):
                info = error_details_pb2.ErrorInfo()
                detail.Unpack(info)
                fields.update(reason=info.reason, domain=info.domain,
                              metadata=dict(info.metadata))
            elif detail.Is(error_details_pb2.RetryInfo.DESCRIPTOR):
                retry = error_details_pb2.RetryInfo()
                detail.Unpack(retry)
                fields["retry_delay_s"] = retry.retry_delay.ToNanoseconds() / 1e9
            elif detail.Is(error_details_pb2.BadRequest.DESCRIPTOR):
                bad = error_details_pb2.BadRequest()
                detail.Unpack(bad)
                violations.extend(FieldViolation(v.field, v.description)
                                  for v in bad.field_violations)
            elif detail.Is(error_details_pb2.RequestInfo.DESCRIPTOR):
                request = error_details_pb2.RequestInfo()
                detail.Unpack(request)
                fields["request_id"] = request.request_id
            elif detail.Is(rpb.ValidationReport.DESCRIPTOR):
                report = rpb.ValidationReport()
                detail.Unpack(report)
                fields["validation"] = report
        return cls(code, message, field_violations=violations, details=status.details,
                   trailing_metadata=trailing_metadata, **fields)  # type: ignore[arg-type]

    @classmethod
    def from_rpc_error(cls, exc: grpc.RpcError) -> SwitchboardError:
        """The typed error of a failed call (sync ``grpc.RpcError`` or ``AioRpcError``)."""
        if isinstance(exc, SwitchboardError):
            return exc
        code = exc.code() if hasattr(exc, "code") else grpc.StatusCode.UNKNOWN
        message = (exc.details() if hasattr(exc, "details") else "") or ""
        trailers = cast("tuple[tuple[str, str | bytes], ...]", tuple(
            exc.trailing_metadata() or ()) if hasattr(exc, "trailing_metadata") else ())
        raw = next((v for k, v in trailers if k == DETAILS_KEY), None)
        return cls.from_status(code, message, raw if isinstance(raw, bytes) else None,
                               trailers)


__all__ = ["DETAILS_KEY", "FieldViolation", "SwitchboardError"]
