"""Typed async and sync clients for Switchboard."""

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

from switchboard_client.reply import Event, Reply

MessageLike = cpb.Message | str


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

    # LLMs
    async def create_llm(self, llm: lpb.Llm, *, skip_validation: bool = False,
                         validate_only: bool = False) -> rpb.CreateLlmResponse:
        return await self.registry.CreateLlm(  # type: ignore[no-any-return]
            rpb.CreateLlmRequest(llm=llm, skip_validation=skip_validation,
                                 validate_only=validate_only), metadata=self._metadata)

    async def get_llm(self, llm_id: str) -> lpb.Llm:
        response = await self.registry.GetLlm(rpb.GetLlmRequest(llm_id=llm_id),
                                              metadata=self._metadata)
        return response.llm  # type: ignore[no-any-return]

    async def list_llms(self, page_size: int = 0) -> AsyncIterator[lpb.Llm]:
        token = ""
        while True:
            page = await self.registry.ListLlms(
                rpb.ListLlmsRequest(page_size=page_size, page_token=token),
                metadata=self._metadata)
            for llm in page.llms:
                yield llm
            token = page.next_page_token
            if not token:
                return

    async def update_llm(self, llm: lpb.Llm, paths: Sequence[str], *,
                         skip_validation: bool = False) -> lpb.Llm:
        response = await self.registry.UpdateLlm(rpb.UpdateLlmRequest(
            llm=llm, update_mask=field_mask_pb2.FieldMask(paths=list(paths)),
            skip_validation=skip_validation), metadata=self._metadata)
        return response.llm  # type: ignore[no-any-return]

    async def delete_llm(self, llm_id: str, etag: str = "") -> None:
        await self.registry.DeleteLlm(rpb.DeleteLlmRequest(llm_id=llm_id, etag=etag),
                                      metadata=self._metadata)

    async def validate_llm(self, llm_id: str = "", llm: lpb.Llm | None = None
                           ) -> AsyncIterator[rpb.ValidateLlmResponse]:
        request = rpb.ValidateLlmRequest(llm=llm) if llm is not None \
            else rpb.ValidateLlmRequest(llm_id=llm_id)
        async for event in self.registry.ValidateLlm(request, metadata=self._metadata):
            yield event

    # Sessions
    async def create_session(self, llm_id: str, system_prompt: str = "",
                             idle_ttl_s: float | None = None) -> cpb.Session:
        request = cpb.CreateSessionRequest(llm_id=llm_id, system_prompt=system_prompt)
        if idle_ttl_s is not None:
            request.idle_ttl.FromNanoseconds(int(idle_ttl_s * 1e9))
        response = await self.conversations.CreateSession(request, metadata=self._metadata)
        return response.session  # type: ignore[no-any-return]

    async def get_session(self, session_id: str) -> cpb.Session:
        response = await self.conversations.GetSession(
            cpb.GetSessionRequest(session_id=session_id), metadata=self._metadata)
        return response.session  # type: ignore[no-any-return]

    async def end_session(self, session_id: str) -> None:
        await self.conversations.EndSession(cpb.EndSessionRequest(session_id=session_id),
                                            metadata=self._metadata)

    async def update_session(self, session_id: str, session: cpb.Session, paths: Sequence[str]
                             ) -> cpb.Session:
        """Replaces the fields named in ``paths`` (``system_prompt``, ``generation``,
        ``idle_ttl``, ``messages``) with those of ``session``."""
        response = await self.conversations.UpdateSession(
            _update_session_request(session_id, session, paths), metadata=self._metadata)
        return response.session  # type: ignore[no-any-return]

    async def truncate_turn(self, session_id: str, turn_id: str, heard_text_chars: int
                            ) -> cpb.Session:
        """Keeps only the first ``heard_text_chars`` characters of a turn's answer (what the
        user heard before barging in); returns the session with its history."""
        response = await self.conversations.TruncateTurn(cpb.TruncateTurnRequest(
            session_id=session_id, turn_id=turn_id, heard_text_chars=heard_text_chars),
            metadata=self._metadata)
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
    """The synchronous client, for scripts and tools."""

    def __init__(self, target: str, api_key: str, *,
                 credentials: grpc.ChannelCredentials | None = None) -> None:
        self._channel = (grpc.secure_channel(target, credentials) if credentials
                         else grpc.insecure_channel(target))
        self._metadata = (("authorization", f"Bearer {api_key}"),)
        self.registry = rgrpc.LlmRegistryStub(self._channel)
        self.conversations = cgrpc.ConversationsStub(self._channel)

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._channel.close()

    def create_llm(self, llm: lpb.Llm, *, skip_validation: bool = False) -> lpb.Llm:
        response = self.registry.CreateLlm(
            rpb.CreateLlmRequest(llm=llm, skip_validation=skip_validation),
            metadata=self._metadata)
        return response.llm  # type: ignore[no-any-return]

    def get_llm(self, llm_id: str) -> lpb.Llm:
        return self.registry.GetLlm(  # type: ignore[no-any-return]
            rpb.GetLlmRequest(llm_id=llm_id), metadata=self._metadata).llm

    def list_llms(self, page_size: int = 0) -> Iterator[lpb.Llm]:
        token = ""
        while True:
            page = self.registry.ListLlms(rpb.ListLlmsRequest(page_size=page_size,
                                                              page_token=token),
                                          metadata=self._metadata)
            yield from page.llms
            token = page.next_page_token
            if not token:
                return

    def delete_llm(self, llm_id: str, etag: str = "") -> None:
        self.registry.DeleteLlm(rpb.DeleteLlmRequest(llm_id=llm_id, etag=etag),
                                metadata=self._metadata)

    def validate_llm(self, llm_id: str = "", llm: lpb.Llm | None = None
                     ) -> Iterator[rpb.ValidateLlmResponse]:
        request = rpb.ValidateLlmRequest(llm=llm) if llm is not None \
            else rpb.ValidateLlmRequest(llm_id=llm_id)
        yield from self.registry.ValidateLlm(request, metadata=self._metadata)

    def create_session(self, llm_id: str, system_prompt: str = "") -> cpb.Session:
        return self.conversations.CreateSession(  # type: ignore[no-any-return]
            cpb.CreateSessionRequest(llm_id=llm_id, system_prompt=system_prompt),
            metadata=self._metadata).session

    def get_session(self, session_id: str) -> cpb.Session:
        return self.conversations.GetSession(  # type: ignore[no-any-return]
            cpb.GetSessionRequest(session_id=session_id), metadata=self._metadata).session

    def end_session(self, session_id: str) -> None:
        self.conversations.EndSession(cpb.EndSessionRequest(session_id=session_id),
                                      metadata=self._metadata)

    def update_session(self, session_id: str, session: cpb.Session, paths: Sequence[str]
                       ) -> cpb.Session:
        response = self.conversations.UpdateSession(
            _update_session_request(session_id, session, paths), metadata=self._metadata)
        return response.session  # type: ignore[no-any-return]

    def truncate_turn(self, session_id: str, turn_id: str, heard_text_chars: int
                      ) -> cpb.Session:
        response = self.conversations.TruncateTurn(cpb.TruncateTurnRequest(
            session_id=session_id, turn_id=turn_id, heard_text_chars=heard_text_chars),
            metadata=self._metadata)
        return response.session  # type: ignore[no-any-return]

    def converse(self, messages: Sequence[MessageLike] | MessageLike, *, session_id: str = "",
                 llm_id: str = "", timeout: float | None = None, **kwargs: Any
                 ) -> Iterator[Event]:
        request = _converse_request(session_id, llm_id, messages, **kwargs)
        call = self.conversations.Converse(request, metadata=self._metadata, timeout=timeout)
        try:
            for response in call:
                yield event_of(response)
        finally:
            call.cancel()

    def reply(self, messages: Sequence[MessageLike] | MessageLike, **kwargs: Any) -> Reply:
        reply = Reply()
        for event in self.converse(messages, **kwargs):
            reply.apply(event)
        return reply
