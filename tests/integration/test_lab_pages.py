"""Issue 17: how ``/lab`` serves the built Lab: exact file names only, a same-origin content
policy, no framing, and a clear answer when the Lab was not built."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web

from server.http.lab import LabPages


@pytest.fixture
async def lab(tmp_path: Path) -> AsyncIterator[tuple[str, Path]]:
    dist = tmp_path / "dist"
    dist.mkdir()
    app = web.Application()
    LabPages(dist).add_to(app)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    try:
        yield f"http://127.0.0.1:{runner.addresses[0][1]}", dist
    finally:
        await runner.cleanup()


async def get(url: str, headers: dict[str, str] | None = None
              ) -> tuple[int, dict[str, str], str]:
    async with aiohttp.ClientSession() as http, http.get(url, headers=headers or {},
                                                         allow_redirects=False) as r:
        return r.status, dict(r.headers), await r.text()


async def test_unbuilt_lab_says_how_to_build_it(lab: tuple[str, Path]) -> None:
    base, _ = lab
    status, _, body = await get(f"{base}/lab/")
    assert status == 503 and "make lab" in body


async def test_built_files_are_served_with_a_same_origin_policy(lab: tuple[str, Path]) -> None:
    base, dist = lab
    (dist / "index.html").write_text("<!doctype html><title>Lab</title>")
    (dist / "app.js").write_text("console.log(1)")
    (dist / "notes.txt").write_text("not served")
    (dist.parent / "secret.js").write_text("outside dist")
    status, headers, body = await get(f"{base}/lab")
    assert status == 302 and headers["Location"] == "/lab/"
    status, headers, body = await get(f"{base}/lab/")
    assert status == 200 and "<title>Lab</title>" in body
    csp = headers["Content-Security-Policy"]
    assert "default-src 'none'" in csp and "script-src 'self'" in csp
    assert "connect-src 'self'" in csp and "frame-ancestors 'none'" in csp
    assert headers["X-Frame-Options"] == "DENY" and headers["X-Content-Type-Options"] == "nosniff"
    status, headers, _ = await get(f"{base}/lab/app.js")
    assert status == 200 and headers["Content-Type"].startswith("text/javascript")
    for name in ("notes.txt", "..%2Fsecret.js", ".hidden.js", "missing.js"):
        status, _, body = await get(f"{base}/lab/{name}")
        assert status == 404 and "outside dist" not in body
    status, _, _ = await get(f"{base}/lab/app.js", {"Sec-Fetch-Site": "cross-site",
                                                     "Sec-Fetch-Mode": "no-cors"})
    assert status == 403
