"""The one redaction module, tested against one corpus of key shapes.

``scrub`` (logs, upstream quotes, registration messages) masks every shape in the corpus, plain,
in ``?key=`` URLs, after ``Bearer`` and percent-encoded; ``mask_values`` (upstream text about a
request we sent with known keys) masks any 8+ character fragment of them, also encoded. The
last test attacks the running server: an upstream that echoes the key split in two halves and
percent-encoded, through Converse and ValidateLlm.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from urllib.parse import quote, quote_plus

import grpc
import pytest
from aiohttp import web
from switchboard.v1 import llm_pb2 as lpb
from switchboard_client import AsyncClient

from server.vault.redact import KnownSecrets, mask_values, scrub
from tests.security.corpus import SHAPES, canary, fragments
from tests.security_support import status_of

FORMS = {
    "plain": lambda k: f"upstream rejected {k}.",
    "query": lambda k: f"GET https://h.example/v1/models?alt=sse&key={k}&x=1",
    "bearer": lambda k: f"Authorization: Bearer {k}",
    "json": lambda k: json.dumps({"error": {"message": "bad key", "api_key": k}}),
    "percent": lambda k: f"redirect to /login?next=%2Fv1%3Fkey%3D{quote(k, safe='')}",
    "percent-bearer": lambda k: f"header=Authorization%3A%20Bearer%20{quote(k, safe='')}",
}


def assert_gone(key: str, text: str) -> None:
    for frag in fragments(key):
        assert frag not in text, (key, text)
        assert quote(frag, safe="") not in text, (key, text)


@pytest.mark.parametrize("shape", sorted(SHAPES))
@pytest.mark.parametrize("form", sorted(FORMS))
def test_scrub_masks_every_shape_in_every_form(shape: str, form: str) -> None:
    key = canary(shape)
    out = scrub(FORMS[form](key))
    assert_gone(key, out)
    assert scrub(out) == out


@pytest.mark.parametrize("shape", sorted(SHAPES))
def test_mask_values_masks_halves_and_encoded_fragments(shape: str) -> None:
    key = canary(shape)
    half = len(key) // 2
    texts = [
        f"first half {key[:half]} and second half {key[half:]}",
        f"the key reversed around a dot: {key[half:]}.{key[:half]}",
        f"percent-encoded: {quote(key, safe='')} / {quote_plus(key)}",
        f"cut: ...{key[3:-3]}...",
    ]
    for text in texts:
        assert_gone(key, mask_values(text, [key]))
    assert mask_values("nothing to see here", [key]) == "nothing to see here"


def test_known_secrets_mask_percent_encoded_values() -> None:
    known = KnownSecrets()
    value = "abcDEF123456+/ghiJKL789012=="
    known.add(value)
    out = scrub(f"echo {quote(value, safe='')}", known)
    assert "abcDEF123456" not in out and "ghiJKL789012" not in out


# -- against the running server ------------------------------------------------------------------


def halves_upstream(state: dict[str, str]) -> web.Application:
    """An upstream that answers 400 quoting the key it got in two halves and percent-encoded."""

    async def chat(request: web.Request) -> web.Response:
        key = request.headers.get("Authorization", "").removeprefix("Bearer ")
        secret = request.headers.get("X-Secret", "")
        state["seen"] = key
        h, s = len(key) // 2, len(secret) // 2
        message = (f"key begins {key[:h]} and ends {key[h:]}; as sent: {quote(key, safe='')}; "
                   f"header {secret[:s]} / {secret[s:]}")
        return web.json_response({"error": {"message": message, "type": "invalid_request_error",
                                            "code": "bad_request"}}, status=400)

    async def models(request: web.Request) -> web.Response:
        said = f"nope {quote_plus(state.get('seen', ''))}"
        return web.json_response({"error": {"message": said}}, status=500)

    app = web.Application()
    app.router.add_post("/v1/chat/completions", chat)
    app.router.add_get("/v1/models", models)
    return app


@pytest.fixture
async def halves_root() -> AsyncIterator[str]:
    runner = web.AppRunner(halves_upstream({}))
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    try:
        yield f"http://127.0.0.1:{runner.addresses[0][1]}/v1"
    finally:
        await runner.cleanup()


@pytest.mark.parametrize("shape", ["azure", "openai-project"])
async def test_split_and_encoded_echoes_never_reach_the_caller(
        client: AsyncClient, halves_root: str, shape: str) -> None:
    key, header = canary(shape), canary("azure")
    ep = lpb.Endpoint(api_spec=lpb.API_SPEC_OPENAI, base_url=halves_root, model="m",
                      api_key=key, extra_headers=[lpb.Header(name="X-Secret", value=header,
                                                             secret=True)])
    llm = (await client.create_llm(lpb.Llm(display_name="halves", endpoints=[ep]),
                                   skip_validation=True)).llm
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await client.reply("hi", llm_id=llm.id)
    text = status_of(err.value).text() + (err.value.debug_error_string() or "")
    assert "begins" in text  # the upstream's message is quoted, with the key masked
    assert_gone(key, text)
    assert_gone(header, text)

    report = [event async for event in client.validate_llm(llm.id)]
    dumped = "".join(str(e) for e in report)
    assert dumped
    assert_gone(key, dumped)
    assert_gone(header, dumped)
