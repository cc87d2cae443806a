"""The Connect protocol on the HTTP listener: ``LlmRegistry`` and ``Conversations`` for
browsers (the Lab) and any Connect client, over the same servicers and interceptor as gRPC."""

from server.connect.routes import ConnectRoutes

__all__ = ["ConnectRoutes"]
