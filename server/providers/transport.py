"""The one HTTP path to upstream LLMs, shared by every adapter.

``UpstreamClient`` owns ONE aiohttp ``ClientSession`` (pooled keep-alive connections, explicit
limits, transparent decompression, no cookie jar, and no aiohttp default timeout: every wait
has a named deadline). ``UpstreamClient.stream`` sends an adapter's request and yields
``StreamEvent``s:

1. POST; the status is checked first. A non-2xx answer has its body read (at most 64 KiB) and
   classified by the adapter.
2. A 2xx answer that is not an event stream (``application/json`` to ``stream: true``, an
   HTML page, Ollama's native NDJSON) is a PROTOCOL error with a message that says what to fix.
3. The body is read with ``iter_any()`` (never line iteration, whose buffer a long event can
   overflow) into the SSE parser and the adapter's decoder.

Timeouts are phases (``server.timeouts.Timeouts``): ``connect`` (pool slot + TCP/TLS),
``first_token`` (from the request start until the first text/reasoning/tool-call event;
keep-alive comments do not extend it), ``between_chunks`` (any gap between received bytes
after that) and ``total``.
A timeout raises ``UpstreamTimeout`` (an ``UpstreamError`` of kind TIMEOUT) naming its phase.

The response is closed (connection dropped, so the upstream sees the disconnect and stops
generating) as soon as the consumer stops early: ``aclose()``, cancellation, an exception, or
garbage collection of an abandoned iterator. Only a stream read to its end returns its
connection to the pool.
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import AsyncGenerator
from types import SimpleNamespace, TracebackType
from urllib.parse import parse_qsl, urlsplit

import aiohttp
from aiohttp.abc import AbstractResolver

from server.chat import ChatRequest, Finish, ReasoningDelta, StreamEvent, TextDelta, ToolCallDelta
from server.netguard import BlockedAddressError
from server.providers.base import (
    ErrorKind,
    HttpRequest,
    ProviderAdapter,
    StreamDecoder,
    UpstreamError,
)
from server.providers.body import ReadDeadline, not_a_stream, read_bounded
from server.providers.sse import DEFAULT_MAX_EVENT_BYTES, SseParser
from server.registry.llm import Endpoint
from server.secret import Secret
from server.timeouts import Timeouts
from server.vault.redact import is_sensitive_name, mask_values

MAX_ERROR_BODY_BYTES = 64 * 1024
_AFTER_FINISH_S = 1.0  # after [DONE], how long to wait for the body's end (connection reuse)
_CONTENT = (TextDelta, ReasoningDelta, ToolCallDelta)


class UpstreamTimeout(UpstreamError):
    """An ``UpstreamError`` of kind TIMEOUT; ``phase`` is ``connect``, ``first_token``,
    ``between_chunks`` or ``total``."""

    def __init__(self, phase: str, message: str) -> None:
        super().__init__(ErrorKind.TIMEOUT, message)
        self.phase = phase


class UpstreamClient:
    """Owns the process-wide upstream ``ClientSession``. Use ``async with`` or ``close()``."""

    def __init__(
        self,
        *,
        timeouts: Timeouts | None = None,
        limit: int = 1024,
        limit_per_host: int = 256,
        keepalive_s: float = 30.0,
        max_event_bytes: int = DEFAULT_MAX_EVENT_BYTES,
        user_agent: str = "switchboard/0.1",
        resolver: AbstractResolver | None = None,
    ) -> None:
        """``resolver``: DNS for upstream hosts; the server passes a ``GuardedResolver`` so that
        every connection is checked against its network policy (``server.netguard``)."""
        self.timeouts = timeouts or Timeouts()
        self._resolver = resolver
        self._limit = limit
        self._limit_per_host = limit_per_host
        self._keepalive_s = keepalive_s
        self._max_event_bytes = max_event_bytes
        self._user_agent = user_agent
        self._session: aiohttp.ClientSession | None = None

    async def __aenter__(self) -> UpstreamClient:
        self.session()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    def session(self) -> aiohttp.ClientSession:
        """The shared session, created on first use (inside the running event loop)."""
        if self._session is None or self._session.closed:
            connector = aiohttp.TCPConnector(
                limit=self._limit,
                limit_per_host=self._limit_per_host,
                keepalive_timeout=self._keepalive_s,
                ttl_dns_cache=300,
                resolver=self._resolver,
            )
            self._session = aiohttp.ClientSession(
                connector=connector,
                trace_configs=[_POOL_TRACE],
                # No session-wide deadline (aiohttp's default is total=300 s); every request
                # sets its own connect timeout and the reads are bounded by our phases.
                timeout=aiohttp.ClientTimeout(total=None, connect=None, sock_read=None),
                auto_decompress=True,
                headers={"User-Agent": self._user_agent},
                # One session serves every account: a cookie set in one tenant's answer must
                # never be sent with another tenant's request (and no upstream needs them).
                cookie_jar=aiohttp.DummyCookieJar(),
            )
        return self._session

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    def stream(
        self,
        adapter: ProviderAdapter,
        endpoint: Endpoint,
        request: ChatRequest,
        *,
        timeouts: Timeouts | None = None,
    ) -> AsyncGenerator[StreamEvent, None]:
        """Stream one upstream attempt.

        Raises ``UpstreamError`` (``UpstreamTimeout`` for timeouts) for every upstream
        failure, and ``server.errors.InvalidArgument`` if the request cannot be expressed in
        the endpoint's API (e.g. a tool schema that is not a JSON object).

        Wrap it in ``contextlib.aclosing`` (or call ``aclose``) to stop early: the upstream
        connection is closed at once.
        """
        return self._stream(adapter, endpoint, request, timeouts or self.timeouts)

    async def _stream(
        self, adapter: ProviderAdapter, endpoint: Endpoint, request: ChatRequest, t: Timeouts
    ) -> AsyncGenerator[StreamEvent, None]:
        http = adapter.build_request(endpoint, request)
        label: str = getattr(adapter, "label", "The upstream")
        loop = asyncio.get_running_loop()
        total_at = loop.time() + t.total_s
        first_at = min(loop.time() + t.first_token_s, total_at)
        resp = await self._send(http, t, first_at, total_at, label)
        released = False
        watch: ReadDeadline | None = None
        try:
            await self._check_response(resp, adapter, label, t, total_at)
            parser = SseParser(self._max_event_bytes)
            decoder = adapter.new_decoder()
            chunks = resp.content.iter_any()
            deadline = first_at
            watch = ReadDeadline(loop, deadline)
            content_seen = finished = False
            while True:
                watch.at = deadline
                try:
                    chunk = await watch.read(chunks)
                except StopAsyncIteration:
                    break
                except (TimeoutError, aiohttp.ClientError, OSError) as exc:
                    if finished:  # the answer is complete; only the connection's end was lost
                        return
                    raise _transport_error(
                        exc, _phase(deadline, total_at, content_seen), label, http.url, t
                    ) from exc
                if content_seen:
                    deadline = min(loop.time() + t.between_chunks_s, total_at)
                events, error = _decode(parser, decoder, chunk)
                for ev in events:
                    if not content_seen and isinstance(ev, _CONTENT):
                        content_seen = True
                        deadline = min(loop.time() + t.between_chunks_s, total_at)
                    elif type(ev) is Finish:
                        finished = True
                    yield ev
                if error is not None:
                    raise error
                if finished:  # only the end of the body is left: wait for it briefly
                    deadline = min(loop.time() + _AFTER_FINISH_S, deadline)
            for ev in decoder.close(parser.leftover()):
                yield ev
            resp.release()  # read to the end: the connection goes back to the pool
            released = True
        except UpstreamError as err:
            _redact_credentials(err, http, endpoint)
            raise
        finally:
            if watch is not None:
                watch.close()
            if not released:
                resp.close()  # drop the connection: the upstream stops generating

    async def _send(
        self, http: HttpRequest, t: Timeouts, first_at: float, total_at: float, label: str
    ) -> aiohttp.ClientResponse:
        timeout = aiohttp.ClientTimeout(total=None, connect=t.connect_s, sock_connect=t.connect_s)
        pooled = _Pooled()
        try:
            async with asyncio.timeout_at(first_at):
                while True:
                    try:
                        return await self.session().request(
                            http.method,
                            http.url,
                            data=http.body,
                            headers=dict(http.headers),
                            timeout=timeout,
                            allow_redirects=False,
                            trace_request_ctx=pooled,
                        )
                    except (aiohttp.ServerDisconnectedError, aiohttp.ClientOSError):
                        # A pooled connection the upstream closed as this request went out
                        # (servers close idle keep-alive connections after a few seconds):
                        # nothing was answered, so send it once more on a new connection.
                        if not pooled.reused or pooled.retried:
                            raise
                        pooled.reused, pooled.retried = False, True
        except (TimeoutError, aiohttp.ClientError, OSError, ValueError) as exc:
            phase = "total" if first_at >= total_at else "first_token"
            raise _transport_error(exc, phase, label, http.url, t) from exc

    async def _check_response(
        self,
        resp: aiohttp.ClientResponse,
        adapter: ProviderAdapter,
        label: str,
        t: Timeouts,
        total_at: float,
    ) -> None:
        status = resp.status
        if not 200 <= status < 300:
            body = await _read_bounded(resp, t, total_at)
            raise adapter.classify_error(status, resp.headers, body)
        mime = resp.headers.get("Content-Type", "").split(";", 1)[0].strip().lower()
        if mime in ("text/event-stream", ""):
            return
        if "json" in mime or "html" in mime:
            body = await _read_bounded(resp, t, total_at)
            raise not_a_stream(mime, body, label)


def _decode(parser: SseParser, decoder: StreamDecoder, chunk: bytes
            ) -> tuple[list[StreamEvent], UpstreamError | None]:
    """The events of one read, with consecutive text (or reasoning) deltas joined into one.

    A read holds several events only when the upstream wrote faster than we read: we, or the
    caller we forward to, fell behind. Joining them then spares a message (and a wakeup) per
    delta downstream, and delays nothing: only what has already arrived is joined. An error
    part-way returns the events before it too, so they are forwarded before it is raised.
    """
    events: list[StreamEvent] = []
    error: UpstreamError | None = None
    try:
        for sse in parser.feed(chunk):
            events.extend(decoder.feed(sse))
    except UpstreamError as exc:
        error = exc
    if len(events) < 2:
        return events, error
    joined: list[StreamEvent] = []
    for kind, run in itertools.groupby(events, type):
        if kind is TextDelta or kind is ReasoningDelta:
            pieces = list(run)
            joined.append(pieces[0] if len(pieces) == 1
                          else kind("".join(p.text for p in pieces)))  # type: ignore[union-attr]
        else:
            joined.extend(run)
    return joined, error


async def _read_bounded(resp: aiohttp.ClientResponse, t: Timeouts, total_at: float) -> bytes:
    """At most ``MAX_ERROR_BODY_BYTES`` of the body; whatever arrived if reading fails."""
    deadline = min(asyncio.get_running_loop().time() + t.between_chunks_s, total_at)
    body, _ = await read_bounded(resp, MAX_ERROR_BODY_BYTES, deadline)
    return body


def _phase(deadline: float, total_at: float, content_seen: bool) -> str:
    if deadline >= total_at:
        return "total"
    return "between_chunks" if content_seen else "first_token"


def _transport_error(
    exc: BaseException, phase: str, label: str, url: str, t: Timeouts
) -> UpstreamError:
    host = urlsplit(url).hostname or "the upstream"
    if isinstance(exc, aiohttp.ServerTimeoutError | aiohttp.ConnectionTimeoutError):
        return UpstreamTimeout(
            "connect", f"could not connect to {host} within {t.connect_s:g}s (connect timeout)"
        )
    if isinstance(exc, TimeoutError):
        what = {
            "first_token": f"{label} ({host}) sent no content within {t.first_token_s:g}s",
            "between_chunks": f"{label} ({host}) sent nothing for {t.between_chunks_s:g}s "
            "in the middle of the answer",
            "total": f"{label} ({host}) did not finish within {t.total_s:g}s",
        }[phase]
        return UpstreamTimeout(phase, f"{what} ({phase} timeout)")
    if isinstance(exc, aiohttp.ClientConnectorDNSError) and isinstance(
        exc.os_error, BlockedAddressError
    ):
        what = exc.os_error.public_message()
    elif isinstance(exc, aiohttp.ClientConnectorDNSError):
        what = f"could not resolve the host {host}; check base_url"
    elif isinstance(exc, aiohttp.ClientConnectorCertificateError | aiohttp.ClientSSLError):
        what = f"the TLS handshake with {host} failed (certificate or protocol)"
    elif isinstance(exc, aiohttp.ClientConnectorError):
        reason = exc.os_error.strerror or type(exc.os_error).__name__
        what = f"could not connect to {host}: {reason}"
    elif isinstance(exc, aiohttp.ServerDisconnectedError | aiohttp.ClientPayloadError):
        what = f"{host} closed the connection before the response was complete"
    elif isinstance(exc, aiohttp.ClientResponseError):
        return UpstreamError(
            ErrorKind.PROTOCOL, f"{host} sent a malformed HTTP response; check base_url"
        )
    elif isinstance(exc, aiohttp.InvalidURL | ValueError):
        what = "the endpoint's base_url is not a valid http(s) URL"
    else:
        what = f"the connection to {host} failed ({type(exc).__name__})"
    return UpstreamError(ErrorKind.CONNECTION, what)


class _Pooled:
    """One request's connection history: whether it went out on a pooled connection."""

    __slots__ = ("retried", "reused")

    def __init__(self) -> None:
        self.reused = False
        self.retried = False


async def _on_reuse(_session: object, ctx: SimpleNamespace, _params: object) -> None:
    if isinstance(ctx.trace_request_ctx, _Pooled):
        ctx.trace_request_ctx.reused = True


_POOL_TRACE = aiohttp.TraceConfig()
_POOL_TRACE.on_connection_reuseconn.append(_on_reuse)


_CREDENTIAL_HEADERS = frozenset({"authorization", "api-key", "x-goog-api-key", "x-api-key"})


def _redact_credentials(err: UpstreamError, http: HttpRequest, endpoint: Endpoint) -> None:
    """Belt and braces: no piece of a credential we sent (a key header, a secret extra header,
    a ``key=`` in the URL) survives in a message, even echoed in halves or percent-encoded."""
    secret_names = {n.lower() for n, v in endpoint.extra_headers if isinstance(v, Secret)}
    sent = [value.split(" ", 1)[1] if value.lower().startswith(("bearer ", "basic ")) else value
            for name, value in http.headers.items()
            if name.lower() in _CREDENTIAL_HEADERS or name.lower() in secret_names]
    sent += [v for k, v in parse_qsl(urlsplit(http.url).query) if is_sensitive_name(k)
             or k.lower() == "key"]
    masked = mask_values(err.message, sent)
    if masked != err.message:
        err.message = masked
        err.args = (err.message,)
