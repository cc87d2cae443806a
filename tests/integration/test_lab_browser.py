"""Issue 17: the Lab in a real headless Chromium (Debian's ``chromium`` + ``chromium-driver``,
driven by Selenium) against a real Switchboard and simulated upstreams on loopback.

The server and simulators run on their own event loop in a thread, so the blocking WebDriver
calls never stall them. Every wait is on a condition in the page (WebDriverWait), never a
sleep. Screenshots of each page go to ``var/lab-screenshots`` (gitignored).
"""

from __future__ import annotations

import asyncio
import dataclasses
import os
import secrets
import shutil
import socket
import subprocess
import tempfile
import threading
from collections.abc import Coroutine, Iterator
from pathlib import Path
from typing import Any, TypeVar, cast

import pytest
from switchboard.v1 import llm_pb2 as lpb
from switchboard_client import AsyncClient

from server.accounts import AccountAdmin
from server.app import Switchboard
from server.simulator import Behavior, Fault, FaultKind, Simulator
from tests.support import API_KEY, ROOT, settings

webdriver = pytest.importorskip("selenium.webdriver")
from selenium.common.exceptions import (  # noqa: E402
    StaleElementReferenceException,
    TimeoutException,
)
from selenium.webdriver.chrome.service import Service  # noqa: E402
from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.common.keys import Keys  # noqa: E402
from selenium.webdriver.remote.webdriver import WebDriver  # noqa: E402
from selenium.webdriver.remote.webelement import WebElement  # noqa: E402
from selenium.webdriver.support.ui import WebDriverWait  # noqa: E402

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
SHOTS = ROOT / "var" / "lab-screenshots"
FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--disable-dev-shm-usage")
KEY_A, KEY_B = "sk-right-eu-0001", "sk-right-us-0002"
ANSWER = "Paris is the capital of France, and it has been for centuries."
REASONING = "The user asks for a capital. France's is Paris."
T = TypeVar("T")


class Served:
    """Switchboard (HTTP port on), two simulators and a second account, on a loop in a thread."""

    def __init__(self, tmp: Path) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        self.tmp = tmp
        self.other_key = ""

    def run(self, coro: Coroutine[Any, Any, T]) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout=60)

    async def start(self) -> None:
        behavior = Behavior(text=ANSWER, reasoning=REASONING, chunks=10, reasoning_chunks=3)
        self.eu = Simulator("openai", behavior, api_key=KEY_A)
        self.us = Simulator("openai", dataclasses.replace(behavior, ttft_s=0.02), api_key=KEY_B)
        await self.eu.start()
        await self.us.start()
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.bind(("127.0.0.1", 0))
        self.app = Switchboard(settings(self.tmp, probes_per_hour=0), http_sock=sock)
        await self.app.start()
        self.url = f"http://127.0.0.1:{self.app.http_port}/lab/"
        assert self.app.store is not None
        admin = AccountAdmin(self.app.store)
        key = await admin.create_key(await admin.create_account("globex"))
        self.other_key = key.plaintext.reveal()

    async def stop(self) -> None:
        await self.app.stop(grace_s=1.0)
        await self.eu.close()
        await self.us.close()

    async def client(self, key: str = API_KEY) -> AsyncClient:
        return AsyncClient(f"127.0.0.1:{self.app.port}", key)

    def close(self) -> None:
        self.run(self.stop())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(timeout=10)
        self.loop.close()


@pytest.fixture(scope="module")
def served() -> Iterator[Served]:
    with tempfile.TemporaryDirectory(prefix="lab-browser-") as tmp:
        s = Served(Path(tmp))
        s.run(s.start())
        try:
            yield s
        finally:
            s.close()


@pytest.fixture(scope="module")
def browser() -> Iterator[WebDriver]:
    if not (CHROMIUM.exists() and CHROMEDRIVER.exists()):
        if os.environ.get("CI"):
            pytest.fail("Debian's chromium and chromium-driver are needed (make browser-deps)")
        pytest.skip("Debian's chromium and chromium-driver are missing: make browser-deps")
    SHOTS.mkdir(parents=True, exist_ok=True)
    if not (ROOT / "clients" / "lab" / "node_modules").exists():
        if os.environ.get("CI"):
            pytest.fail("clients/lab/node_modules is missing (make lab-deps)")
        pytest.skip("clients/lab/node_modules is missing: make lab-deps")
    # The pages under test are built from the sources under test (esbuild: well under 1 s).
    subprocess.run(["node", "scripts/build.mjs"], cwd=ROOT / "clients" / "lab", check=True,
                   timeout=60)
    profile = tempfile.mkdtemp(prefix="lab-chromium-")
    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for flag in (*FLAGS, f"--user-data-dir={profile}", "--window-size=1280,800"):
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(str(CHROMEDRIVER)), options=options)
    try:
        yield driver
    finally:
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)


def wait(driver: WebDriver, css: str, text: str = "", timeout: float = 15) -> WebElement:
    """The first element matching ``css`` (whose text contains ``text``), once there."""
    def found(d: WebDriver) -> WebElement | bool:
        try:
            for el in d.find_elements(By.CSS_SELECTOR, css):
                if text in el.text:
                    return el
        except StaleElementReferenceException:  # re-rendered meanwhile: look again
            pass
        return False
    try:
        return cast("WebElement", WebDriverWait(driver, timeout).until(found))
    except TimeoutException:
        page = driver.find_element(By.TAG_NAME, "body").text
        raise AssertionError(f"no {css!r} with {text!r} in:\n{page}") from None


def wait_text(driver: WebDriver, css: str, text: str = "", timeout: float = 15) -> str:
    """The text of the first element matching ``css`` that contains ``text``, read at once
    (views that refresh, like the routing cards, replace their elements)."""
    def found(d: WebDriver) -> str | bool:
        try:
            for el in d.find_elements(By.CSS_SELECTOR, css):
                value = el.text
                if text in value:
                    return value
        except StaleElementReferenceException:
            pass
        return False
    try:
        return cast("str", WebDriverWait(driver, timeout).until(found))
    except TimeoutException:
        page = driver.find_element(By.TAG_NAME, "body").text
        raise AssertionError(f"no {css!r} with {text!r} in:\n{page}") from None


def shot(driver: WebDriver, name: str, at: WebElement | None = None) -> None:
    """A screenshot of the window, scrolled so that ``at`` (when given) starts at its top."""
    if at is not None:
        driver.execute_script("arguments[0].scrollIntoView({block: 'start'})", at)
    driver.save_screenshot(str(SHOTS / f"{name}.png"))


def sign_in(driver: WebDriver, url: str, key: str) -> None:
    driver.get(url)
    driver.execute_script("sessionStorage.clear()")
    driver.get(url)
    field = wait(driver, "input[name=apiKey]")
    field.send_keys(key, Keys.ENTER)  # keyboard only: the field has focus, Enter submits


def fill(form: WebElement, name: str, value: str) -> None:
    el = form.find_element(By.CSS_SELECTOR, f"[name={name}]")
    el.clear()
    el.send_keys(value)


def endpoint(driver: WebDriver, index: int) -> WebElement:
    return driver.find_elements(By.CSS_SELECTOR, "fieldset.endpoint")[index]


def test_register_validate_chat_fail_over_and_watch_routing(served: Served,
                                                            browser: WebDriver) -> None:
    d = browser
    sign_in(d, served.url, API_KEY)
    wait(d, ".welcome", "no LLMs yet")
    shot(d, "01-empty")
    wait(d, "button", "New LLM").click()
    form = wait(d, "form.editor")
    fill(form, "displayName", "lab-assistant")
    wait(d, "button", "Add endpoint").click()
    for i, (sim, key, label, priority) in enumerate(
            ((served.eu, "sk-wrong-key-9999", "eu-west", "0"),
             (served.us, KEY_B, "us-east", "1"))):
        ep = endpoint(d, i)
        fill(ep, "baseUrl", sim.base_url)
        fill(ep, "model", "lab-model")
        fill(ep, "apiKey", key)
        fill(ep, "label", label)
        fill(ep, "priority", priority)
    wait(d, "button", "Create LLM").click()
    problem = wait(d, ".problem", "VALIDATION_FAILED")
    assert "FailedPrecondition" in problem.text and "Not registered" in problem.text
    failed = wait(d, "tr.status-fail", "auth")
    fix = failed.find_element(By.CSS_SELECTOR, "td.fix").text
    assert "key" in fix.lower(), fix
    shot(d, "02-validation-failed", problem)
    fill(endpoint(d, 0), "apiKey", KEY_A)
    wait(d, "button", "Create LLM").click()
    wait(d, ".summary.ok", "Validation passed")
    wait(d, ".status", "Saved lab-assistant")
    hints = [el.text for el in d.find_elements(By.CSS_SELECTOR, "fieldset.endpoint .help")]
    assert any("...0001" in h for h in hints) and any("...0002" in h for h in hints), hints
    assert wait(d, ".llm-list", "lab-assistant")
    shot(d, "03-validation-passed", wait(d, ".status"))

    wait(d, "[role=tab]", "Validate").click()
    wait(d, "button", "Run validation").click()
    wait(d, ".summary.ok", "Validation passed")
    assert len(d.find_elements(By.CSS_SELECTOR, "tr.status-pass")) >= 4
    shot(d, "04-validate-live")

    wait(d, "[role=tab]", "Routing").click()
    samples_css = ".route-card:first-child [data-stat=samples]"  # eu-west: rank 1
    wait(d, ".route-card:first-child", "eu-west")
    before = int(wait_text(d, samples_css))  # the samples validation left
    llm_id = d.find_element(By.CSS_SELECTOR, ".llm-list button.current").get_attribute(
        "data-llm-id")
    assert llm_id

    async def one_turn() -> None:
        async with await served.client() as c:
            await c.reply("warm up", llm_id=llm_id)
    served.run(one_turn())  # a turn from elsewhere: the open view refreshes on its own
    WebDriverWait(d, 15, ignored_exceptions=(StaleElementReferenceException,)).until(
        lambda dr: dr.find_element(By.CSS_SELECTOR, samples_css).text == str(before + 1))
    shot(d, "05-routing-before")

    wait(d, "[role=tab]", "Try it").click()
    box = wait(d, "textarea[name=message]")
    box.send_keys("What is the capital of France?", Keys.ENTER)
    meta = wait(d, ".turn-meta", "TTFT")
    assert "1 attempt" in meta.text
    reasoning = wait(d, "details.reasoning")
    assert reasoning.get_attribute("open") is None  # collapsed until asked
    reasoning.find_element(By.TAG_NAME, "summary").click()
    assert wait(d, ".reasoning-text").text == REASONING
    assert wait(d, "p.assistant").text == ANSWER  # the answer holds no reasoning
    wait(d, ".events .route", "eu-west")
    shot(d, "06-chat-reasoning")

    served.eu.set_fault(Fault(FaultKind.CUT_AFTER, chunk=6), times=1)
    box = wait(d, "textarea[name=message]")
    box.send_keys("And of Italy?", Keys.ENTER)
    failover = wait(d, ".events .failover", "Failover")
    assert "→" in failover.text
    wait(d, ".turn:last-child .turn-meta", "2 attempts")
    discarded = d.find_elements(By.CSS_SELECTOR, ".turn:last-child p.assistant.discarded")
    assert discarded, "the broken answer's text is marked discarded"
    shot(d, "07-chat-failover")

    served.us.behavior = dataclasses.replace(served.us.behavior, chunk_gap_s=0.5, chunks=40)
    served.eu.set_fault(Fault(FaultKind.SERVER_ERROR))  # every turn goes to us-east now
    requests_before = len(served.us.requests)
    box = wait(d, "textarea[name=message]")
    box.send_keys("Tell me a long story.", Keys.ENTER)
    wait(d, ".turn:last-child p.assistant")
    wait(d, "button", "Stop").click()
    wait(d, ".turn:last-child .turn-meta", "Stopped")
    served.run(served.us.wait_for_disconnect(requests_before, timeout=10))
    shot(d, "08-chat-stopped")
    mode = wait(d, "select[name=mode]")
    mode.find_element(By.CSS_SELECTOR, "option[value=session]").click()
    requests_before = len(served.us.requests)
    box = wait(d, "textarea[name=message]")
    box.send_keys("Another long story, in a session.", Keys.ENTER)
    wait(d, ".turn:last-child p.assistant")
    wait(d, "button", "Stop").click()
    kept = wait_text(d, ".turn:last-child .truncated", "Session history")
    served.run(served.us.wait_for_disconnect(requests_before, timeout=10))
    assert "interrupted" in kept, kept
    shot(d, "08b-session-stopped-truncated")
    served.eu.set_fault(None)
    served.us.behavior = dataclasses.replace(served.us.behavior, chunk_gap_s=0.0, chunks=10)

    wait(d, "[role=tab]", "Routing").click()
    wait(d, ".route-card .failovers li", "→")
    eu = wait_text(d, ".route-card", "eu-west")
    assert "→ us-east" in eu and "server_error (HTTP 500)" in eu, eu
    assert wait(d, ".route-card svg.chart circle")
    shot(d, "09-routing-after")
    d.set_window_size(420, 900)
    shot(d, "10-routing-narrow")
    d.set_window_size(1280, 800)


def test_a_bad_registration_lists_its_field_violations(served: Served,
                                                       browser: WebDriver) -> None:
    sign_in(browser, served.url, API_KEY)
    wait(browser, "button", "New LLM").click()
    ep = endpoint(browser, 0)
    fill(ep, "baseUrl", "ftp://127.0.0.1/v1")
    wait(browser, "button", "Create LLM").click()
    problem = wait(browser, ".problem", "INVALID_ARGUMENT")
    fields = [li.text for li in problem.find_elements(By.CSS_SELECTOR, ".violations li")]
    assert any(f.startswith("llm.display_name") for f in fields), fields
    assert any(f.startswith("llm.endpoints[0].base_url") for f in fields), fields
    invalid = {el.get_attribute("name") for el in
               browser.find_elements(By.CSS_SELECTOR, "[aria-invalid=true]")}
    assert {"displayName", "baseUrl", "model"} <= invalid, invalid
    shot(browser, "15-field-violations", problem)


def test_a_wrong_key_shows_a_clear_error(served: Served, browser: WebDriver) -> None:
    sign_in(browser, served.url, "not-a-real-key")
    problem = wait(browser, ".problem", "refused")
    assert "Unauthenticated" in problem.text and "API_KEY_INVALID" in problem.text
    assert browser.execute_script("return sessionStorage.length") == 0
    shot(browser, "11-wrong-key")


def test_another_accounts_llm_never_appears(served: Served, browser: WebDriver) -> None:
    async def theirs() -> str:
        async with await served.client(served.other_key) as c:
            llm = (await c.create_llm(lpb.Llm(display_name="globex-private", endpoints=[
                lpb.Endpoint(api_spec=lpb.API_SPEC_OPENAI, base_url=served.us.base_url,
                             model="m", api_key=KEY_B)]), skip_validation=True)).llm
            return str(llm.id)
    their_id = served.run(theirs())
    sign_in(browser, served.url, API_KEY)
    wait(browser, "header.top", "Sign out")
    body = browser.find_element(By.TAG_NAME, "body").text
    assert "globex-private" not in body and their_id not in browser.page_source
    status = browser.execute_async_script(
        "const done = arguments[arguments.length - 1];"
        "fetch('/switchboard.v1.LlmRegistry/GetLlm', {method: 'POST', headers: {"
        "'Content-Type': 'application/json', 'Authorization': 'Bearer ' + arguments[0]},"
        "body: JSON.stringify({llmId: arguments[1]})}).then(r => r.json()).then(done)",
        API_KEY, their_id)
    assert status["code"] == "not_found"
    wait(browser, "button", "Sign out").click()
    sign_in(browser, served.url, served.other_key)
    wait(browser, ".llm-list", "globex-private")
    assert "lab-assistant" not in browser.find_element(By.TAG_NAME, "body").text
    shot(browser, "12-other-account")


def test_no_secret_reaches_the_page(served: Served, browser: WebDriver) -> None:
    canary_key = "sk-canary-" + secrets.token_hex(12)
    canary_header = "hdr-canary-" + secrets.token_hex(12)
    sign_in(browser, served.url, API_KEY)
    wait(browser, "button", "New LLM").click()
    form = wait(browser, "form.editor")
    fill(form, "displayName", "canary-llm")
    ep = endpoint(browser, 0)
    fill(ep, "baseUrl", served.eu.base_url)
    fill(ep, "model", "m")
    fill(ep, "apiKey", canary_key)
    wait(browser, "button", "Add header").click()
    fill(ep, "headerName", "X-Canary")
    ep.find_element(By.CSS_SELECTOR, "[name=headerSecret]").click()
    fill(ep, "headerValue", canary_header)
    browser.find_element(By.CSS_SELECTOR, "#skip-validation").click()
    wait(browser, "button", "Create LLM").click()
    wait(browser, ".status", "Saved canary-llm")
    wait(browser, "[role=tab]", "Routing").click()
    wait(browser, ".route-card")
    wait(browser, "[role=tab]", "Configure").click()
    wait(browser, "fieldset.endpoint .help", "Stored key ...")
    values = browser.execute_script(
        "return [...document.querySelectorAll('input, textarea')].map(e => e.value)"
        ".concat([document.documentElement.outerHTML, JSON.stringify(sessionStorage),"
        " JSON.stringify(localStorage), document.cookie])")
    for value in values:
        assert canary_key not in value and canary_header not in value
    assert canary_key[-4:] in browser.page_source  # the hint is shown, the key never
    shot(browser, "13-canary", wait(browser, "fieldset.endpoint"))
    browser.set_window_size(420, 900)
    shot(browser, "14-editor-narrow", wait(browser, "fieldset.endpoint"))
    browser.set_window_size(1280, 800)

    # Edit with the key and the secret header left empty: both stay as stored.
    fill(wait(browser, "form.editor"), "displayName", "canary-renamed")
    browser.find_element(By.CSS_SELECTOR, "#skip-validation").click()
    wait(browser, "button", "Save changes").click()
    wait(browser, ".llm-list", "canary-renamed")
    wait(browser, "fieldset.endpoint .help", f"Stored key ...{canary_key[-4:]}")
    wait(browser, "fieldset.endpoint .help", f"Stored secret ...{canary_header[-4:]}")
    wait(browser, "button", "Delete LLM").click()
    browser.switch_to.alert.accept()
    WebDriverWait(browser, 15).until(
        lambda d: "canary-renamed" not in d.find_element(By.TAG_NAME, "body").text)


async def _foreign_page(request: Any) -> Any:
    from aiohttp import web
    return web.Response(content_type="text/html", text=(
        "<!doctype html><title>elsewhere</title><pre id=out>running</pre><script>"
        "const lab = new URLSearchParams(location.search).get('lab');"
        "const out = document.getElementById('out');"
        "const tries = ["
        " fetch(lab + '/switchboard.v1.LlmRegistry/ListLlms', {method: 'POST', headers: {"
        "  'Content-Type': 'application/json', 'Authorization': 'Bearer " + API_KEY + "'},"
        "  body: '{}'}).then(r => r.status, e => 'blocked'),"
        " fetch(lab + '/switchboard.v1.LlmRegistry/ListLlms', {method: 'POST', mode: 'no-cors',"
        "  headers: {'Content-Type': 'text/plain'}, body: '{}'}).then(r => r.type, e => 'blocked'),"
        "];"
        "Promise.all(tries).then(r => { out.textContent = 'done ' + r.join(' '); });"
        "</script>"))


def test_a_page_on_another_origin_cannot_use_the_labs_transport(served: Served,
                                                               browser: WebDriver) -> None:
    from aiohttp import web

    async def start() -> tuple[web.AppRunner, int]:
        app = web.Application()
        app.router.add_get("/", _foreign_page)
        runner = web.AppRunner(app)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        return runner, int(runner.addresses[0][1])

    runner, port = served.run(start())
    try:
        lab = f"http://127.0.0.1:{served.app.http_port}"
        browser.get(f"http://127.0.0.1:{port}/?lab={lab}")
        result = wait(browser, "#out", "done").text
        # The call with a key needs a CORS preflight, which gets no CORS header: the browser
        # blocks it. A "simple" no-cors POST is opaque to the page (and the server refuses it
        # for its Origin: test_connect.py).
        assert result == "done blocked opaque", result
    finally:
        served.run(runner.cleanup())
