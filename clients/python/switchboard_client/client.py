"""Typed async and sync clients for Switchboard.

``AsyncClient`` and ``Client`` have the same methods with the same arguments; both build their
requests in ``_Requests`` (so they cannot drift), every unary call takes ``timeout`` (seconds,
default ``DEFAULT_TIMEOUT_S``; ``None``: no deadline) and every failed call raises
``SwitchboardError`` with the server's rich status decoded.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator, Sequence
from typing import Any

import grpc
from google.protobuf import field_mask_pb2
from switchboard.v1 import conversations_pb2 as cpb
from switchboard.v1 import conversations_pb2_grpc as cgrpc
from switchboard.v1 import llm_pb2 as lpb
from switchboard.v1 import registry_pb2 as rpb
from switchboard.v1 import registry_pb2_grpc as rgrpc

from switchboard_client.errors import SwitchboardError
from switchboard_client.reply import Event, Reply

MessageLike = cpb.Message | str
DEFAULT_TIMEOUT_S = 30.0  # unary calls; a registration that validates its endpoints included


def user(text: str) -> cpb.Message:
    return cpb.Message(role=cpb.ROLE_USER, parts=[cpb.ContentPart(text=text)])


def system(text: str) -> cpb.Message:
    return cpb.Message(role=cpb.ROLE_SYSTEM, parts=[cpb.ContentPart(text=text)])


def _messages(messages: Sequence[MessageLike] | MessageLike) -> list[cpb.Message]:
    if isinstance(messages, (str, cpb.Message)):
        messages = [messages]
    return [user(m) if isinstance(m, str) else m for m in messages]


def _converse_request(session_id: str, llm_id: str, messages: Sequence[MessageLike] | MessageLike,
                      **kwargs: Any) -> cpb.ConverseRequest:
    if bool(session_id) == bool(llm_id):
        raise ValueError("give exactly one of session_id or llm_id")
    request = cpb.ConverseRequest(messages=_messages(messages), **kwargs)
    if session_id:
        request.session_id = session_id
    else:
        request.llm_id = llm_id
    return request


def _update_session_request(session_id: str, session: cpb.Session, paths: Sequence[str]
                            ) -> cpb.UpdateSessionRequest:
    return cpb.UpdateSessionRequest(session_id=session_id, session=session,
                                    update_mask=field_mask_pb2.FieldMask(paths=list(paths)))


def event_of(response: cpb.ConverseResponse) -> Event:
    kind = response.WhichOneof("event")
    return getattr(response, kind)  # type: ignore[no-any-return, arg-type]


class _Requests:
    """Request building shared by both clients (one place for every default)."""

    @staticmethod
    def create_llm(llm: lpb.Llm, skip_validation: bool, validate_only: bool
                   ) -> rpb.CreateLlmRequest:
        return rpb.CreateLlmRequest(llm=llm, skip_validation=skip_validation,
                                    validate_only=validate_only)

    @staticmethod
    def update_llm(llm: lpb.Llm, paths: Sequence[str], skip_validation: bool,
                   validate_only: bool) -> rpb.UpdateLlmRequest:
        return rpb.UpdateLlmRequest(llm=llm, update_mask=field_mask_pb2.FieldMask(
            paths=list(paths)), skip_validation=skip_validation, validate_only=validate_only)

    @staticmethod
    def validate_llm(llm_id: str, llm: lpb.Llm | None, endpoint_id: str
                     ) -> rpb.ValidateLlmRequest:
        request = (rpb.ValidateLlmRequest(llm=llm) if llm is not None
                   else rpb.ValidateLlmRequest(llm_id=llm_id))
        request.endpoint_id = endpoint_id
        return request

    @staticmethod
    def create_session(llm_id: str, system_prompt: str, idle_ttl_s: float | None
                       ) -> cpb.CreateSessionRequest:
        request = cpb.CreateSessionRequest(llm_id=llm_id, system_prompt=system_prompt)
        if idle_ttl_s is not None:
            request.idle_ttl.FromNanoseconds(int(idle_ttl_s * 1e9))
        return request


class AsyncClient:
    """``async with AsyncClient("127.0.0.1:50051", api_key="sb_...") as sb: ...``"""

    def __init__(self, target: str, api_key: str, *,
                 credentials: grpc.ChannelCredentials | None = None,
                 channel: grpc.aio.Channel | None = None) -> None:
        if channel is None:
            channel = (grpc.aio.secure_channel(target, credentials) if credentials
                       else grpc.aio.insecure_channel(target))
        self._channel = channel
        self._metadata = (("authorization", f"Bearer {api_key}"),)
        self.registry = rgrpc.LlmRegistryStub(channel)
        self.conversations = cgrpc.ConversationsStub(channel)

    async def __aenter__(self) -> AsyncClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def close(self) -> None:
        await self._channel.close()

    async def _call(self, method: Any, request: Any, timeout: float | None) -> Any:  # noqa: ASYNC109
        try:
            return await method(request, metadata=self._metadata, timeout=timeout)
        except grpc.RpcError as exc:
            raise SwitchboardError.from_rpc_error(exc) from None

    # LLMs
    async def create_llm(self, llm: lpb.Llm, *, skip_validation: bool = False,
                         validate_only: bool = False, timeout: float | None = DEFAULT_TIMEOUT_S,  # noqa: ASYNC109
                         ) -> rpb.CreateLlmResponse:
        return await self._call(  # type: ignore[no-any-return]
            self.registry.CreateLlm, _Requests.create_llm(llm, skip_validation, validate_only),
            timeout)

    async def get_llm(self, llm_id: str, *, timeout: float | None = DEFAULT_TIMEOUT_S  # noqa: ASYNC109
                      ) -> lpb.Llm:
        response = await self._call(self.registry.GetLlm, rpb.GetLlmRequest(llm_id=llm_id),
                                    timeout)
        return response.llm  # type: ignore[no-any-return]

    async def list_llms(self, page_size: int = 0, *,
                        timeout: float | None = DEFAULT_TIMEOUT_S  # noqa: ASYNC109
                        ) -> AsyncIterator[lpb.Llm]:
        """Every LLM, page by page (``timeout`` applies to each page's call)."""
        token = ""
        while True:
            page = await self._call(self.registry.ListLlms, rpb.ListLlmsRequest(
                page_size=page_size, page_token=token), timeout)
            for llm in page.llms:
                yield llm
            token = page.next_page_token
            if not token:
                return

    async def update_llm(self, llm: lpb.Llm, paths: Sequence[str], *,
                         skip_validation: bool = False, validate_only: bool = False,
                         timeout: float | None = DEFAULT_TIMEOUT_S,  # noqa: ASYNC109
                         ) -> rpb.UpdateLlmResponse:
        return await self._call(  # type: ignore[no-any-return]
            self.registry.UpdateLlm,
            _Requests.update_llm(llm, paths, skip_validation, validate_only), timeout)

    async def delete_llm(self, llm_id: str, etag: str = "", *,
                         timeout: float | None = DEFAULT_TIMEOUT_S) -> None:  # noqa: ASYNC109
        await self._call(self.registry.DeleteLlm, rpb.DeleteLlmRequest(llm_id=llm_id, etag=etag),
                         timeout)

    async def validate_llm(self, llm_id: str = "", llm: lpb.Llm | None = None, *,
                           endpoint_id: str = "",
                           timeout: float | None = DEFAULT_TIMEOUT_S,  # noqa: ASYNC109
                           ) -> AsyncIterator[rpb.ValidateLlmResponse]:
        """The checks as they finish, then the report."""
        call = self.registry.ValidateLlm(_Requests.validate_llm(llm_id, llm, endpoint_id),
                                         metadata=self._metadata, timeout=timeout)
        try:
            async for event in call:
                yield event
        except grpc.RpcError as exc:
            raise SwitchboardError.from_rpc_error(exc) from None
        finally:
            call.cancel()

    # Sessions
    async def create_session(self, llm_id: str, system_prompt: str = "",
                             idle_ttl_s: float | None = None, *,
                             timeout: float | None = DEFAULT_TIMEOUT_S,  # noqa: ASYNC109
                             ) -> cpb.Session:
        response = await self._call(self.conversations.CreateSession, _Requests.create_session(
            llm_id, system_prompt, idle_ttl_s), timeout)
        return response.session  # type: ignore[no-any-return]

    async def get_session(self, session_id: str, *,
                          timeout: float | None = DEFAULT_TIMEOUT_S) -> cpb.Session:  # noqa: ASYNC109
        response = await self._call(self.conversations.GetSession,
                                    cpb.GetSessionRequest(session_id=session_id), timeout)
        return response.session  # type: ignore[no-any-return]

    async def end_session(self, session_id: str, *,
                          timeout: float | None = DEFAULT_TIMEOUT_S) -> None:  # noqa: ASYNC109
        await self._call(self.conversations.EndSession,
                         cpb.EndSessionRequest(session_id=session_id), timeout)

    async def update_session(self, session_id: str, session: cpb.Session, paths: Sequence[str],
                             *, timeout: float | None = DEFAULT_TIMEOUT_S  # noqa: ASYNC109
                             ) -> cpb.Session:
        """Replaces the fields named in ``paths`` (``system_prompt``, ``generation``,
        ``idle_ttl``, ``messages``) with those of ``session``."""
        response = await self._call(self.conversations.UpdateSession,
                                    _update_session_request(session_id, session, paths), timeout)
        return response.session  # type: ignore[no-any-return]

    async def truncate_turn(self, session_id: str, turn_id: str, heard_text_chars: int, *,
                            timeout: float | None = DEFAULT_TIMEOUT_S  # noqa: ASYNC109
                            ) -> cpb.Session:
        """Keeps only the first ``heard_text_chars`` characters of a turn's answer (what the
        user heard before barging in); returns the session with its history."""
        response = await self._call(self.conversations.TruncateTurn, cpb.TruncateTurnRequest(
            session_id=session_id, turn_id=turn_id, heard_text_chars=heard_text_chars), timeout)
        return response.session  # type: ignore[no-any-return]

    # Conversations
    async def converse(self, messages: Sequence[MessageLike] | MessageLike, *,
                       session_id: str = "", llm_id: str = "", timeout: float | None = None,  # noqa: ASYNC109
                       **kwargs: Any) -> AsyncIterator[Event]:
        """Streams one turn's events (TurnStarted, RouteDecision, TextDelta, ...)."""
        request = _converse_request(session_id, llm_id, messages, **kwargs)
        call = self.conversations.Converse(request, metadata=self._metadata, timeout=timeout)
        try:
            async for response in call:
                yield event_of(response)
        except grpc.RpcError as exc:
            raise SwitchboardError.from_rpc_error(exc) from None
        finally:
            call.cancel()

    async def reply(self, messages: Sequence[MessageLike] | MessageLike, **kwargs: Any
                    ) -> Reply:
        """Runs one turn and returns the assembled reply."""
        reply = Reply()
        async for event in self.converse(messages, **kwargs):
            reply.apply(event)
        return reply


class Client:
    """The synchronous client, for scripts and tools: ``AsyncClient``'s methods, blocking."""

    def __init__(self, target: str, api_key: str, *,
                 credentials: grpc.ChannelCredentials | None = None,
                 channel: grpc.Channel | None = None) -> None:
        if channel is None:
            channel = (grpc.secure_channel(target, credentials) if credentials
                       else grpc.insecure_channel(target))
        self._channel = channel
        self._metadata = (("authorization", f"Bearer {api_key}"),)
        self.registry = rgrpc.LlmRegistryStub(channel)
        self.conversations = cgrpc.ConversationsStub(channel)

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._channel.close()

    def _call(self, method: Any, request: Any, timeout: float | None) -> Any:
        try:
            return method(request, metadata=self._metadata, timeout=timeout)
        except grpc.RpcError as exc:
            raise SwitchboardError.from_rpc_error(exc) from None

    def create_llm(self, llm: lpb.Llm, *, skip_validation: bool = False,
                   validate_only: bool = False, timeout: float | None = DEFAULT_TIMEOUT_S
                   ) -> rpb.CreateLlmResponse:
        return self._call(  # type: ignore[no-any-return]
            self.registry.CreateLlm, _Requests.create_llm(llm, skip_validation, validate_only),
            timeout)

    def get_llm(self, llm_id: str, *, timeout: float | None = DEFAULT_TIMEOUT_S) -> lpb.Llm:
        return self._call(  # type: ignore[no-any-return]
            self.registry.GetLlm, rpb.GetLlmRequest(llm_id=llm_id), timeout).llm

    def list_llms(self, page_size: int = 0, *, timeout: float | None = DEFAULT_TIMEOUT_S
                  ) -> Iterator[lpb.Llm]:
        token = ""
        while True:
            page = self._call(self.registry.ListLlms, rpb.ListLlmsRequest(
                page_size=page_size, page_token=token), timeout)
            yield from page.llms
            token = page.next_page_token
            if not token:
                return

    def update_llm(self, llm: lpb.Llm, paths: Sequence[str], *, skip_validation: bool = False,
                   validate_only: bool = False, timeout: float | None = DEFAULT_TIMEOUT_S
                   ) -> rpb.UpdateLlmResponse:
        return self._call(  # type: ignore[no-any-return]
            self.registry.UpdateLlm,
            _Requests.update_llm(llm, paths, skip_validation, validate_only), timeout)

    def delete_llm(self, llm_id: str, etag: str = "", *,
                   timeout: float | None = DEFAULT_TIMEOUT_S) -> None:
        self._call(self.registry.DeleteLlm, rpb.DeleteLlmRequest(llm_id=llm_id, etag=etag),
                   timeout)

    def validate_llm(self, llm_id: str = "", llm: lpb.Llm | None = None, *,
                     endpoint_id: str = "", timeout: float | None = DEFAULT_TIMEOUT_S
                     ) -> Iterator[rpb.ValidateLlmResponse]:
        call = self.registry.ValidateLlm(_Requests.validate_llm(llm_id, llm, endpoint_id),
                                         metadata=self._metadata, timeout=timeout)
        try:
            yield from call
        except grpc.RpcError as exc:
            raise SwitchboardError.from_rpc_error(exc) from None
        finally:
            call.cancel()

    def create_session(self, llm_id: str, system_prompt: str = "",
                       idle_ttl_s: float | None = None, *,
                       timeout: float | None = DEFAULT_TIMEOUT_S) -> cpb.Session:
        return self._call(  # type: ignore[no-any-return]
            self.conversations.CreateSession,
            _Requests.create_session(llm_id, system_prompt, idle_ttl_s), timeout).session

    def get_session(self, session_id: str, *,
                    timeout: float | None = DEFAULT_TIMEOUT_S) -> cpb.Session:
        return self._call(  # type: ignore[no-any-return]
            self.conversations.GetSession, cpb.GetSessionRequest(session_id=session_id),
            timeout).session

    def end_session(self, session_id: str, *, timeout: float | None = DEFAULT_TIMEOUT_S) -> None:
        self._call(self.conversations.EndSession, cpb.EndSessionRequest(session_id=session_id),
                   timeout)

    def update_session(self, session_id: str, session: cpb.Session, paths: Sequence[str], *,
                       timeout: float | None = DEFAULT_TIMEOUT_S) -> cpb.Session:
        return self._call(  # type: ignore[no-any-return]
            self.conversations.UpdateSession,
            _update_session_request(session_id, session, paths), timeout).session

    def truncate_turn(self, session_id: str, turn_id: str, heard_text_chars: int, *,
                      timeout: float | None = DEFAULT_TIMEOUT_S) -> cpb.Session:
        return self._call(  # type: ignore[no-any-return]
            self.conversations.TruncateTurn, cpb.TruncateTurnRequest(
                session_id=session_id, turn_id=turn_id, heard_text_chars=heard_text_chars),
            timeout).session

    def converse(self, messages: Sequence[MessageLike] | MessageLike, *, session_id: str = "",
                 llm_id: str = "", timeout: float | None = None, **kwargs: Any
                 ) -> Iterator[Event]:
        """Streams one turn's events (TurnStarted, RouteDecision, TextDelta, ...)."""
        request = _converse_request(session_id, llm_id, messages, **kwargs)
        call = self.conversations.Converse(request, metadata=self._metadata, timeout=timeout)
        try:
            for response in call:
                yield event_of(response)
        except grpc.RpcError as exc:
            raise SwitchboardError.from_rpc_error(exc) from None
        finally:
            call.cancel()

    def reply(self, messages: Sequence[MessageLike] | MessageLike, **kwargs: Any) -> Reply:
        """Runs one turn and returns the assembled reply."""
        reply = Reply()
        for event in self.converse(messages, **kwargs):
            reply.apply(event)
        return reply
