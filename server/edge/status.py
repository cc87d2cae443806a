"""Domain errors -> ``google.rpc.Status`` with rich details.

Exactly one ``ErrorInfo`` per error (reason, domain, metadata), plus ``BadRequest`` field
violations, ``RetryInfo``, ``ResourceInfo`` and ``RequestInfo`` where they apply. Anything that
is not a ``SwitchboardError`` becomes INTERNAL with the request id, never UNKNOWN, and its
text is not shown (it may hold anything).
"""

from __future__ import annotations

import grpc
from google.protobuf import any_pb2
from google.protobuf.duration_pb2 import Duration
from google.protobuf.message import Message as PbMessage
from google.rpc import code_pb2, error_details_pb2, status_pb2
from grpc_status import rpc_status

from server.errors import ERROR_DOMAIN, SwitchboardError


def _pack(message: PbMessage) -> any_pb2.Any:
    packed = any_pb2.Any()
    packed.Pack(message)
    return packed


def to_status(error: BaseException, request_id: str,
              extra_details: tuple[PbMessage, ...] = ()) -> grpc.Status:
    if isinstance(error, SwitchboardError):
        code_name, message, reason = error.code, error.message, error.reason
    else:
        code_name = "INTERNAL"
        reason = "INTERNAL"
        message = f"internal error; quote request id {request_id} when reporting it"
    details = [
        _pack(error_details_pb2.ErrorInfo(
            reason=reason, domain=ERROR_DOMAIN,
            metadata=getattr(error, "metadata", None) or {},
        )),
        _pack(error_details_pb2.RequestInfo(request_id=request_id)),
    ]
    if isinstance(error, SwitchboardError):
        if error.violations:
            details.append(_pack(error_details_pb2.BadRequest(field_violations=[
                error_details_pb2.BadRequest.FieldViolation(field=v.field,
                                                            description=v.description)
                for v in error.violations
            ])))
        if error.retry_after_s is not None:
            delay = Duration()
            delay.FromNanoseconds(int(error.retry_after_s * 1e9))
            details.append(_pack(error_details_pb2.RetryInfo(retry_delay=delay)))
        if error.resource_type:
            details.append(_pack(error_details_pb2.ResourceInfo(
                resource_type=error.resource_type, resource_name=error.resource_name or "",
            )))
    details.extend(_pack(d) for d in extra_details)
    code = code_pb2.Code.Value(code_name)
    status: grpc.Status = rpc_status.to_status(
        status_pb2.Status(code=code, message=message, details=details))
    return status
