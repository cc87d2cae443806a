"""``/lab``: the Lab's static pages, built from ``clients/lab/`` into its ``dist/`` by ``make lab``.

The pages are the whole app: it talks to ``LlmRegistry`` and ``Conversations`` over Connect on
this same listener (``server.connect``) with the caller's API key, held in the tab's
sessionStorage. Only the built files are served, by exact name, with a policy that lets them
load and talk to this origin only (``server.http.origin.LAB_HEADERS``); nothing here is
authenticated, because nothing here is secret.
"""

from __future__ import annotations

from pathlib import Path

from aiohttp import web

from server.http.origin import LAB_HEADERS, cross_origin

DIST = Path(__file__).resolve().parents[2] / "clients" / "lab" / "dist"
_TYPES = {".html": "text/html", ".js": "text/javascript", ".css": "text/css",
          ".svg": "image/svg+xml", ".map": "application/json"}


class LabPages:
    prefixes: tuple[str, ...] = ("/lab",)

    def __init__(self, dist: Path = DIST) -> None:
        self._dist = dist

    def add_to(self, app: web.Application) -> None:
        app.router.add_get("/lab", self._redirect)
        app.router.add_get("/lab/", self._index)
        app.router.add_get("/lab/{name}", self._asset)

    async def _redirect(self, request: web.Request) -> web.StreamResponse:
        raise web.HTTPFound("/lab/")

    async def _index(self, request: web.Request) -> web.StreamResponse:
        return self._file("index.html")

    async def _asset(self, request: web.Request) -> web.StreamResponse:
        if request.headers.get("Sec-Fetch-Mode") != "navigate" and cross_origin(request):
            return web.Response(status=403, text="the Lab's files load from its own pages only")
        return self._file(request.match_info["name"])

    def _file(self, name: str) -> web.StreamResponse:
        path = self._dist / name
        kind = _TYPES.get(path.suffix)
        if "/" in name or name.startswith(".") or kind is None or not path.is_file():
            if not (self._dist / "index.html").is_file():
                return web.Response(status=503, text="the Lab is not built: run 'make lab'",
                                    headers=LAB_HEADERS)
            return web.Response(status=404, text="not found", headers=LAB_HEADERS)
        body = path.read_bytes()
        return web.Response(body=body, content_type=kind, charset="utf-8", headers=LAB_HEADERS)
