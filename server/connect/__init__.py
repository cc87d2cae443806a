"""The Connect protocol and gRPC-Web on the HTTP listener: ``LlmRegistry`` and
``Conversations`` for browsers (the Lab) and any Connect or gRPC-Web client, over the same
servicers and interceptor as gRPC."""

from server.connect.routes import ConnectRoutes

__all__ = ["ConnectRoutes"]
