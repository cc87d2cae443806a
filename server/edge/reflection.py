"""Server reflection, v1 and v1alpha, answering everything grpcurl and ``buf curl`` ask.

grpcio-reflection's servicer has two gaps that break ``grpcurl describe``:
- it looks symbols up with ``DescriptorPool.FindFileContainingSymbol``, which does not know
  method names (``switchboard.v1.Conversations.Converse`` is "Symbol not found"); a method
  resolves here to the file of its service;
- it ships only the v1alpha proto, so a server that lists ``grpc.reflection.v1.ServerReflection``
  (the name grpcurl tries first) cannot describe it. The v1 file is the v1alpha file with its
  package renamed (same messages, same field numbers), registered in the pool once.
"""

from __future__ import annotations

from collections.abc import Iterable

import grpc
from google.protobuf import descriptor_pb2, descriptor_pool
from grpc_reflection.v1alpha import reflection, reflection_pb2
from grpc_reflection.v1alpha._async import ReflectionServicer

V1 = "grpc.reflection.v1.ServerReflection"
V1_FILE = "grpc/reflection/v1/reflection.proto"
_ALPHA_PACKAGE = "grpc.reflection.v1alpha"


def _register_v1(pool: descriptor_pool.DescriptorPool) -> None:
    """Adds grpc/reflection/v1/reflection.proto to ``pool`` unless it is there already."""
    try:
        pool.FindFileByName(V1_FILE)
        return
    except KeyError:
        pass
    proto = descriptor_pb2.FileDescriptorProto()
    reflection_pb2.DESCRIPTOR.CopyToProto(proto)
    proto.name = V1_FILE
    proto.package = "grpc.reflection.v1"
    proto.options.java_package = "io.grpc.reflection.v1"
    proto.options.go_package = "google.golang.org/grpc/reflection/grpc_reflection_v1"
    alpha, v1 = f".{_ALPHA_PACKAGE}.", ".grpc.reflection.v1."
    for message in proto.message_type:
        for f in message.field:
            if f.type_name:
                f.type_name = f.type_name.replace(alpha, v1)
    for service in proto.service:
        for m in service.method:
            m.input_type = m.input_type.replace(alpha, v1)
            m.output_type = m.output_type.replace(alpha, v1)
    pool.Add(proto)


class Reflection(ReflectionServicer):  # type: ignore[misc]
    """The asyncio reflection servicer, plus method symbols."""

    def __init__(self, service_names: Iterable[str],
                 pool: descriptor_pool.DescriptorPool | None = None) -> None:
        self._pool_ = pool or descriptor_pool.Default()
        _register_v1(self._pool_)
        super().__init__(tuple(service_names), self._pool_)

    def _file_containing_symbol(self, request: reflection_pb2.ServerReflectionRequest,
                                fully_qualified_name: str
                                ) -> reflection_pb2.ServerReflectionResponse:
        service_name, _, method = fully_qualified_name.rpartition(".")
        try:
            self._pool_.FindFileContainingSymbol(fully_qualified_name)
        except KeyError:
            try:
                service = self._pool_.FindServiceByName(service_name)
            except KeyError:
                service = None
            if service is not None and method in service.methods_by_name:
                fully_qualified_name = service.full_name
        return super()._file_containing_symbol(request, fully_qualified_name)


def add_reflection(server: grpc.aio.Server, service_names: Iterable[str]) -> tuple[str, ...]:
    """Serves reflection v1 and v1alpha for ``service_names`` plus both reflection services;
    returns every name listed. Each listed service's file is in the pool (a test checks)."""
    names = (*service_names, reflection.SERVICE_NAME, V1)
    servicer = Reflection(names)
    handler = grpc.stream_stream_rpc_method_handler(
        servicer.ServerReflectionInfo,
        request_deserializer=reflection_pb2.ServerReflectionRequest.FromString,
        response_serializer=reflection_pb2.ServerReflectionResponse.SerializeToString,
    )
    server.add_generic_rpc_handlers(tuple(
        grpc.method_handlers_generic_handler(name, {"ServerReflectionInfo": handler})
        for name in (reflection.SERVICE_NAME, V1)))
    return names
