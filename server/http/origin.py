"""Same-origin only: what the browser-facing routes (/lab, Connect) accept and send.

A browser marks every request it sends on a page's behalf: ``Origin`` on POSTs (and on any
cross-origin fetch), ``Sec-Fetch-Site`` on everything. A request that a page on another
origin made is refused before authentication, so a site that holds a tab's cookies or guesses
a key cannot use the Lab's transport; no CORS header is ever sent, so preflights fail too.
Programs that are not browsers (``buf curl``, connect-es in Node) send neither header.
"""

from __future__ import annotations

from aiohttp import web

# What the /lab pages may load and talk to: this origin only, no inline script, no framing.
LAB_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        "connect-src 'self'; form-action 'none'; base-uri 'none'; frame-ancestors 'none'"),
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
}


def cross_origin(request: web.Request) -> str:
    """Why ``request`` came from another origin's page, or "" when it did not."""
    origin = request.headers.get("Origin")
    if origin is not None and origin != f"{request.scheme}://{request.host}":
        return f"requests from origin {origin!r} are refused: use the Lab on this server"
    site = request.headers.get("Sec-Fetch-Site")
    if site is not None and site not in ("same-origin", "none"):
        return f"{site} requests are refused: use the Lab on this server"
    return ""
