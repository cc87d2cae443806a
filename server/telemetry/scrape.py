"""``GET /metrics`` on a listener of its own (``Settings.metrics_port``), off the tenant port.

The metrics name every tenant's LLM and endpoint ids with their traffic and errors, so they are
never served where callers connect (the gRPC port and the HTTP front door). This listener has
no authentication, like any Prometheus scrape target: bind it to an internal interface
(``metrics_host``, default the server's ``host``) or firewall it. It serves ``/metrics`` only.
"""

from __future__ import annotations

import socket

from aiohttp import web

from server.telemetry.metrics import Metrics

# Scrapes send a few small headers; anything larger is refused before it is buffered.
_MAX_HEADER_BYTES = 8190


class MetricsListener:
    def __init__(self, metrics: Metrics) -> None:
        self._metrics = metrics
        self._runner: web.AppRunner | None = None
        self.port = 0

    def application(self) -> web.Application:
        app = web.Application(client_max_size=1024)
        app.router.add_get("/metrics", self._scrape)
        return app

    async def start(self, host: str, port: int, sock: socket.socket | None = None) -> int:
        """Listens on ``host:port`` (or on ``sock``, already bound); returns the port."""
        runner = web.AppRunner(self.application(), access_log=None, shutdown_timeout=0.1,
                               max_line_size=_MAX_HEADER_BYTES,
                               max_field_size=_MAX_HEADER_BYTES)
        await runner.setup()
        site: web.BaseSite = (web.SockSite(runner, sock) if sock is not None
                              else web.TCPSite(runner, host, port))
        try:
            await site.start()
        except BaseException:
            await runner.cleanup()
            raise
        self._runner = runner
        self.port = int(runner.addresses[0][1])
        return self.port

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def _scrape(self, request: web.Request) -> web.Response:
        body, content_type = self._metrics.render()
        response = web.Response(body=body)
        response.headers["Content-Type"] = content_type
        return response
