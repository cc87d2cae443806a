"""The shared HTTP path over loopback: failures, timeouts by phase, and prompt disconnects."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import time
from collections.abc import AsyncIterator

import pytest
from aiohttp import web
from aiohttp.abc import AbstractResolver, ResolveResult

from server.chat import ChatRequest, Finish, Message, Role, StreamEvent, TextDelta, TextPart
from server.providers.adapters import adapter_for
from server.providers.base import ErrorKind, UpstreamError
from server.providers.transport import UpstreamClient, UpstreamTimeout
from server.registry.llm import ApiSpec
from server.secret import Secret
from server.timeouts import Timeouts
from tests.unit.providers._provider_testkit import ReplayServer, Reply, endpoint_for

HI = ChatRequest(messages=(Message(Role.USER, (TextPart("hi"),)),))
SSE = {"content-type": "text/event-stream"}
CHUNK = b'data: {"choices":[{"index":0,"delta":{"content":"Hel"},"finish_reason":null}]}\n\n'
FINISH = b'data: {"choices":[{"index":0,"delta":{},"finish_reason":"stop"}]}\n\ndata: [DONE]\n\n'


def stream(client: UpstreamClient, url: str, **kw: object) -> AsyncIterator[StreamEvent]:
    spec = ApiSpec.OPENAI
    return client.stream(adapter_for(spec), endpoint_for(spec, url, **kw), HI)


async def run(
    client: UpstreamClient, url: str, **kw: object
) -> tuple[list[StreamEvent], UpstreamError]:
    events: list[StreamEvent] = []
    with pytest.raises(UpstreamError) as err:
        async for ev in stream(client, url, **kw):
            events.append(ev)
    return events, err.value


def sse_response(request: web.Request) -> web.StreamResponse:
    return web.StreamResponse(headers=SSE)


async def test_success_sends_the_request_and_reuses_the_connection(
    replay_server: ReplayServer, client: UpstreamClient
) -> None:
    replay_server.reply = Reply(200, SSE, CHUNK + FINISH)
    for _ in range(2):
        events = [ev async for ev in stream(client, replay_server.url)]
        assert events[0] == TextDelta("Hel")
    first = replay_server.requests[0]
    assert first.path_qs == "/chat/completions"
    assert first.headers["Authorization"] == "Bearer sk-test-key-0123456789"
    assert first.headers["Accept"] == "text/event-stream"
    assert first.headers["Content-Type"] == "application/json"
    assert replay_server.peers[0] == replay_server.peers[1], "keep-alive connection reused"


async def test_a_stream_closed_at_its_finish_keeps_the_connection(
    replay_server: ReplayServer, client: UpstreamClient
) -> None:
    """The turn engine stops reading at ``Finish`` and closes the stream. The upstream's body
    had ended with it, so the keep-alive connection must go back to the pool: dropping it made
    every turn pay a new TCP (and, to a real provider, TLS) handshake before its first token."""
    replay_server.reply = Reply(200, SSE, CHUNK + FINISH)
    for _ in range(3):
        events = stream(client, replay_server.url)
        async for ev in events:
            if isinstance(ev, Finish):
                break
        await events.aclose()  # type: ignore[attr-defined]
    assert len(set(replay_server.peers)) == 1, "one keep-alive connection for all three turns"


async def test_gzip_stream_is_decompressed(
    replay_server: ReplayServer, client: UpstreamClient
) -> None:
    async def gzipped(request: web.Request) -> web.StreamResponse:
        resp = sse_response(request)
        resp.enable_compression(web.ContentCoding.gzip)
        await resp.prepare(request)
        await resp.write(CHUNK + FINISH)
        await resp.write_eof()
        return resp

    replay_server.handler = gzipped
    events = [ev async for ev in stream(client, replay_server.url)]
    assert events[0] == TextDelta("Hel")
    assert "gzip" in replay_server.requests[0].headers.get("Accept-Encoding", "")


async def test_html_error_page(replay_server: ReplayServer, client: UpstreamClient) -> None:
    page = b"<html><head><title>502 Bad Gateway</title></head><body>nginx</body></html>"
    replay_server.reply = Reply(502, {"content-type": "text/html"}, page)
    _, err = await run(client, replay_server.url)
    assert err.kind is ErrorKind.SERVER_ERROR and err.status == 502
    assert "HTML page (status 502) instead of JSON; check base_url" in err.message
    assert "nginx" not in err.message


async def test_html_page_with_200(replay_server: ReplayServer, client: UpstreamClient) -> None:
    replay_server.reply = Reply(200, {"content-type": "text/html"}, b"<html>login</html>")
    _, err = await run(client, replay_server.url)
    assert err.kind is ErrorKind.PROTOCOL and "HTML page" in err.message


async def test_json_answer_to_a_stream_request(
    replay_server: ReplayServer, client: UpstreamClient
) -> None:
    replay_server.reply = Reply(200, {"content-type": "application/json"}, b'{"choices":[]}')
    _, err = await run(client, replay_server.url)
    assert err.kind is ErrorKind.PROTOCOL
    assert "returns application/json to stream: true; the server does not stream" in err.message


async def test_json_error_with_status_200(
    replay_server: ReplayServer, client: UpstreamClient
) -> None:
    body = b'{"error":{"message":"upstream overloaded","code":503}}'
    replay_server.reply = Reply(200, {"content-type": "application/json"}, body)
    _, err = await run(client, replay_server.url)
    assert err.kind is ErrorKind.SERVER_ERROR and "upstream overloaded" in err.message


@pytest.mark.parametrize(
    ("body", "what"),
    [
        (b"\x00\x9f\xff garbage without any line end", "not a complete server-sent event"),
        (b"data: \x00\x01 not json\n\n", "not JSON"),
        (b"data: [1, 2]\n\n", "not a JSON object"),
    ],
)
async def test_garbage_body(
    replay_server: ReplayServer, client: UpstreamClient, body: bytes, what: str
) -> None:
    replay_server.reply = Reply(200, SSE, body)
    _, err = await run(client, replay_server.url)
    assert err.kind is ErrorKind.PROTOCOL and what in err.message


async def test_large_error_body_is_read_bounded(
    replay_server: ReplayServer, client: UpstreamClient
) -> None:
    replay_server.reply = Reply(500, {"content-type": "text/plain"}, b"x" * 2_000_000)
    _, err = await run(client, replay_server.url)
    assert err.kind is ErrorKind.SERVER_ERROR and len(err.message) < 500


async def test_key_echoed_by_the_upstream_is_redacted(
    replay_server: ReplayServer, client: UpstreamClient
) -> None:
    key = "mykey-with-no-known-prefix"
    body = b'{"error":{"message":"key mykey-with-no-known-prefix is not valid"}}'
    replay_server.reply = Reply(401, {"content-type": "application/json"}, body)
    _, err = await run(client, replay_server.url, api_key=Secret(key))
    assert err.kind is ErrorKind.AUTHENTICATION and key not in err.message and key not in str(err)


async def test_redirect_is_not_followed(
    replay_server: ReplayServer, client: UpstreamClient
) -> None:
    replay_server.reply = Reply(301, {"location": "https://elsewhere.example/"}, b"")
    _, err = await run(client, replay_server.url)
    assert err.kind is ErrorKind.PROTOCOL and err.status == 301
    assert len(replay_server.requests) == 1


async def test_connection_refused(client: UpstreamClient) -> None:
    with socket.socket() as s:  # bound, never listening, held: refused, and nobody else's
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
        _, err = await run(client, f"http://127.0.0.1:{port}/v1")
    assert err.kind is ErrorKind.CONNECTION and "could not connect to 127.0.0.1" in err.message


async def test_invalid_base_url(client: UpstreamClient) -> None:
    _, err = await run(client, "not a url")
    assert err.kind is ErrorKind.CONNECTION and "base_url" in err.message


async def test_closed_mid_stream(replay_server: ReplayServer, client: UpstreamClient) -> None:
    async def hang_up(request: web.Request) -> web.StreamResponse:
        resp = sse_response(request)
        await resp.prepare(request)
        await resp.write(CHUNK)
        assert request.transport is not None
        request.transport.close()  # no chunked terminator: the body is incomplete
        return resp

    replay_server.handler = hang_up
    events, err = await run(client, replay_server.url)
    assert events == [TextDelta("Hel")]
    assert err.kind is ErrorKind.CONNECTION
    assert "closed the connection before the response was complete" in err.message


async def _raw_server(reply: bytes) -> tuple[asyncio.Server, str]:
    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        writer.write(reply)
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    return server, f"http://127.0.0.1:{port}"


@pytest.mark.parametrize(
    ("reply", "kind"),
    [
        (b"", ErrorKind.CONNECTION),  # closed before any response
        (b"SSH-2.0-OpenSSH_9.6\r\n\r\n", ErrorKind.PROTOCOL),  # not HTTP at all
    ],
)
async def test_not_http(client: UpstreamClient, reply: bytes, kind: ErrorKind) -> None:
    server, url = await _raw_server(reply)
    async with server:
        _, err = await run(client, url)
    assert err.kind is kind, err


# -- timeouts --------------------------------------------------------------------------------


def fast(**kw: float) -> Timeouts:
    base = {"connect_s": 2.0, "first_token_s": 5.0, "between_chunks_s": 5.0, "total_s": 10.0}
    return Timeouts(**(base | kw))


async def keepalives_forever(request: web.Request) -> web.StreamResponse:
    resp = sse_response(request)
    await resp.prepare(request)
    while True:  # the server simulates a queued request: comments only, no content
        await resp.write(b": keep-alive\n\n")
        await asyncio.sleep(0.02)


async def one_chunk_then_silence(request: web.Request) -> web.StreamResponse:
    resp = sse_response(request)
    await resp.prepare(request)
    await resp.write(CHUNK)
    await asyncio.Event().wait()  # never set: silence until the client leaves
    return resp


async def trickle_forever(request: web.Request) -> web.StreamResponse:
    resp = sse_response(request)
    await resp.prepare(request)
    while True:
        await resp.write(CHUNK)
        await asyncio.sleep(0.02)


async def test_first_token_timeout_is_not_extended_by_keepalives(
    replay_server: ReplayServer,
) -> None:
    replay_server.handler = keepalives_forever
    async with UpstreamClient(timeouts=fast(first_token_s=0.3, between_chunks_s=0.1)) as c:
        start = time.monotonic()
        events, err = await run(c, replay_server.url)
    assert isinstance(err, UpstreamTimeout) and err.phase == "first_token"
    assert err.kind is ErrorKind.TIMEOUT and "first_token timeout" in err.message
    assert events == [] and time.monotonic() - start < 2.0


async def test_between_chunks_timeout(replay_server: ReplayServer) -> None:
    replay_server.handler = one_chunk_then_silence
    async with UpstreamClient(timeouts=fast(between_chunks_s=0.2)) as c:
        events, err = await run(c, replay_server.url)
    assert events == [TextDelta("Hel")]
    assert isinstance(err, UpstreamTimeout) and err.phase == "between_chunks"


async def test_total_timeout(replay_server: ReplayServer) -> None:
    replay_server.handler = trickle_forever
    async with UpstreamClient(timeouts=fast(total_s=0.4)) as c:
        events, err = await run(c, replay_server.url)
    assert len(events) > 1
    assert isinstance(err, UpstreamTimeout) and err.phase == "total"


async def test_connect_timeout_waiting_for_a_pool_slot(replay_server: ReplayServer) -> None:
    replay_server.handler = one_chunk_then_silence
    async with UpstreamClient(timeouts=fast(connect_s=0.2), limit_per_host=1) as c:
        holder = stream(c, replay_server.url)
        assert await anext(holder) == TextDelta("Hel")  # holds the only connection
        _, err = await run(c, replay_server.url)
        await holder.aclose()  # type: ignore[attr-defined]
    assert isinstance(err, UpstreamTimeout) and err.phase == "connect"


def test_timeouts_capped_by_the_caller_deadline() -> None:
    t = Timeouts(total_s=600)
    assert t.capped(None) is t and t.capped(1000) is t
    assert t.capped(12.5).total_s == 12.5 and t.capped(-1).total_s == 0.0


# -- the consumer goes away ------------------------------------------------------------------


async def test_aclose_disconnects_the_upstream(
    replay_server: ReplayServer, client: UpstreamClient
) -> None:
    replay_server.handler = one_chunk_then_silence
    events = stream(client, replay_server.url)
    assert await anext(events) == TextDelta("Hel")
    start = time.monotonic()
    await events.aclose()  # type: ignore[attr-defined]
    await asyncio.wait_for(replay_server.disconnected.wait(), timeout=2.0)
    assert time.monotonic() - start < 1.0  # milliseconds in practice; margin for loaded CI


async def test_cancelled_consumer_disconnects_the_upstream(
    replay_server: ReplayServer, client: UpstreamClient
) -> None:
    replay_server.handler = one_chunk_then_silence
    first = asyncio.Event()

    async def consume() -> None:
        async with contextlib.aclosing(stream(client, replay_server.url)) as events:  # type: ignore[type-var]
            async for _ in events:
                first.set()

    task = asyncio.create_task(consume())
    await first.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    await asyncio.wait_for(replay_server.disconnected.wait(), timeout=2.0)


async def test_abandoned_iterator_disconnects_the_upstream(
    replay_server: ReplayServer, client: UpstreamClient
) -> None:
    """Dropping the iterator without aclose: the async-generator finaliser closes it."""
    replay_server.handler = one_chunk_then_silence
    events = stream(client, replay_server.url)
    assert await anext(events) == TextDelta("Hel")
    del events
    await asyncio.wait_for(replay_server.disconnected.wait(), timeout=2.0)


async def test_done_then_silence_ends_promptly(replay_server: ReplayServer) -> None:
    """A server that keeps the connection open after [DONE] does not hold the turn hostage."""

    async def done_then_silence(request: web.Request) -> web.StreamResponse:
        resp = sse_response(request)
        await resp.prepare(request)
        await resp.write(CHUNK + FINISH)
        await asyncio.Event().wait()  # never set
        return resp

    replay_server.handler = done_then_silence
    async with UpstreamClient(timeouts=fast(between_chunks_s=30.0)) as c:
        start = time.monotonic()
        events = [ev async for ev in stream(c, replay_server.url)]
    assert time.monotonic() - start < 3.0
    assert events[0] == TextDelta("Hel") and type(events[-1]).__name__ == "Finish"
    await asyncio.wait_for(replay_server.disconnected.wait(), timeout=2.0)


class _FakeDns(AbstractResolver):
    """Resolves every name to the loopback replay server."""

    def __init__(self) -> None:
        self.asked: list[str] = []

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        self.asked.append(host)
        return [
            ResolveResult(
                hostname=host,
                host="127.0.0.1",
                port=port,
                family=socket.AF_INET,
                proto=0,
                flags=socket.AI_NUMERICHOST,
            )
        ]

    async def close(self) -> None:
        return None


async def test_custom_resolver_is_used_for_connections(replay_server: ReplayServer) -> None:
    replay_server.reply = Reply(200, SSE, CHUNK + FINISH)
    port = replay_server.url.rsplit(":", 1)[1]
    dns = _FakeDns()
    async with UpstreamClient(resolver=dns) as c:
        events = [ev async for ev in stream(c, f"http://llm.internal.test:{port}/v1")]
    assert events[0] == TextDelta("Hel") and dns.asked == ["llm.internal.test"]


async def test_upstream_cookies_are_never_sent_back(replay_server: ReplayServer) -> None:
    """One session serves every account: a cookie one tenant's answer sets (a load balancer's
    affinity cookie, say) must not ride along on the next tenant's request to the same host."""
    replay_server.reply = Reply(200, {**SSE, "Set-Cookie": "affinity=tenant-a; Path=/"},
                                CHUNK + FINISH)
    port = replay_server.url.rsplit(":", 1)[1]
    async with UpstreamClient(resolver=_FakeDns()) as c:
        for _ in range(2):
            [ev async for ev in stream(c, f"http://llm.internal.test:{port}/v1")]
    assert [r.headers.get("Cookie") for r in replay_server.requests] == [None, None]


class ClosesIdleConnections:
    """A raw HTTP/1.1 upstream that, like cpp-httplib (llama.cpp), uvicorn (vLLM) and others
    after their few-second keep-alive, closes a pooled connection just as the next request
    arrives on it: the request is read and never answered. ``close_after`` requests per
    connection are answered; ``fresh_closes`` makes it close a new connection's first request."""

    def __init__(self, close_after: int = 1, fresh_closes: bool = False) -> None:
        self.close_after = close_after
        self.fresh_closes = fresh_closes
        self.requests_by_connection: list[int] = []
        self.url = ""
        self._server: asyncio.Server | None = None

    async def __aenter__(self) -> ClosesIdleConnections:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.url = f"http://127.0.0.1:{self._server.sockets[0].getsockname()[1]}"
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._server is not None
        self._server.close()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        index = len(self.requests_by_connection)
        self.requests_by_connection.append(0)
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                length = next((int(line.split(b":", 1)[1]) for line in head.split(b"\r\n")
                               if line.lower().startswith(b"content-length:")), 0)
                await reader.readexactly(length)
                self.requests_by_connection[index] += 1
                served = self.requests_by_connection[index]
                if self.fresh_closes or served > self.close_after:
                    return  # read, never answered: the connection closes under the client
                body = CHUNK + FINISH
                writer.write(b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\n"
                             b"content-length: %d\r\n\r\n%s" % (len(body), body))
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            return
        finally:
            writer.close()


async def test_a_pooled_connection_closed_by_the_upstream_is_retried_once_on_a_new_one(
    client: UpstreamClient,
) -> None:
    """Self-hosted servers close idle keep-alive connections after a few seconds; a turn that
    lands on one just then must not fail (or fail over) for it: a voice user's next turn often
    comes a few seconds after the last one."""
    async with ClosesIdleConnections(close_after=1) as upstream:
        for _ in range(2):
            events = [ev async for ev in stream(client, upstream.url)]
            assert events[0] == TextDelta("Hel")
    # The second turn was sent on the pooled connection, lost, and sent again on a new one.
    assert upstream.requests_by_connection == [2, 1]


async def test_a_new_connection_closed_before_the_answer_is_not_sent_again(
    client: UpstreamClient,
) -> None:
    """The retry is only for a pooled connection: a server that drops a fresh connection after
    reading the request has seen it, so it fails at once (and the router may fall back)."""
    async with ClosesIdleConnections(fresh_closes=True) as upstream:
        _, err = await run(client, upstream.url)
    assert err.kind is ErrorKind.CONNECTION
    assert "closed the connection" in str(err)
    assert upstream.requests_by_connection == [1]
