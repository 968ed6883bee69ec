"""The access policy and the dashboard's hardening, in headless Chromium.

A small stack in this process: a scripted upstream, a proxy, a collector and the dashboard
(werkzeug in a thread), all on 127.0.0.1; a "foreign" page on 127.0.0.2 (another loopback
origin, another site to the browser); a tiny server counting hits on a leak URL.

- A page from another loopback origin can neither read ``/api/live`` nor start a run nor
  cancel a request (through the proxy, the collector or the dashboard).
- A page whose name is rebound to 127.0.0.1 (Chromium's ``--host-resolver-rules``, served
  on the proxy's own origin through ``/v1/*``) reads nothing from ``/api/*``: wrong Host.
- A completion with ``![x](http://127.0.0.1:LEAK/leak.png)`` shows a link and the leak
  server sees no request, while the request streams and after.
- No page of the dashboard logs a Content-Security-Policy violation.
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from playwright.sync_api import expect

from tests.conftest import proxy_settings

from ._stack import LoopThread, free_port

pytestmark = [pytest.mark.browser, pytest.mark.slow]

FOREIGN_HOST = "127.0.0.2"
READ_TOKEN = "read-token-not-in-html"
CHAT = {"model": "m", "stream": True, "messages": [{"role": "user", "content": "hi"}]}


def _chunk(text: str | None, finish: str | None = None) -> bytes:
    delta = {"content": text} if text is not None else {}
    obj = {
        "id": "c1",
        "object": "chat.completion.chunk",
        "created": 0,
        "model": "m",
        "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
    }
    return b"data: " + json.dumps(obj).encode() + b"\n\n"


class Leak:
    """Counts every request it gets (an image the browser should never fetch)."""

    def __init__(self) -> None:
        self.hits: list[str] = []
        hits = self.hits

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                hits.append(self.path)
                self.send_response(200)
                self.send_header("Content-Type", "image/png")
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@dataclass
class MiniStack:
    tmp: Path
    leak: Leak
    loop: LoopThread = field(default_factory=LoopThread)
    ports: dict[str, int] = field(default_factory=dict)
    runners: list[web.AppRunner] = field(default_factory=list)
    completion: str = ""
    dash_server: Any = None
    dash_token_server: Any = None

    def url(self, name: str, path: str = "", host: str = "127.0.0.1") -> str:
        return f"http://{host}:{self.ports[name]}{path}"

    def start(self) -> None:
        from werkzeug.serving import make_server

        from tokentail.dashboard.app import create_app as create_dashboard
        from tokentail.dashboard.config import DashboardConfig, parse_proxy

        for name in ("upstream", "proxy", "collector", "dashboard", "dashboard_token", "foreign"):
            self.ports[name] = free_port()
        self.completion = (
            f"Here is the chart: ![chart](http://127.0.0.1:{self.leak.port}/leak.png?q=secret) and a reference "
            f"![ref][r].\n\n[r]: http://127.0.0.1:{self.leak.port}/ref.png\n\nThe end."
        )
        self.loop.run(self._start_async())
        config = DashboardConfig(
            port=self.ports["dashboard"],
            collector=self.url("collector"),
            proxies=(parse_proxy(f"production={self.url('proxy')}"),),
        )
        self.dash_server = make_server(
            "127.0.0.1", self.ports["dashboard"], create_dashboard(config).server, threaded=True
        )
        threading.Thread(target=self.dash_server.serve_forever, daemon=True).start()
        # The same, with a read token: the page fetches it from /_tt/token, never from its HTML.
        with_token = DashboardConfig(
            port=self.ports["dashboard_token"],
            proxies=config.proxies,
            collector=config.collector,
            read_token=READ_TOKEN,
        )
        self.dash_token_server = make_server(
            "127.0.0.1", self.ports["dashboard_token"], create_dashboard(with_token).server, threaded=True
        )
        threading.Thread(target=self.dash_token_server.serve_forever, daemon=True).start()

    async def _start_async(self) -> None:
        from tokentail.collector.app import create_app as create_collector
        from tokentail.collector.config import CollectorConfig
        from tokentail.proxy.app import app_from_settings as create_proxy

        await self._serve(self._upstream(), "upstream")
        dash_origins = [self.url("dashboard"), self.url("dashboard_token")]
        settings = proxy_settings(self.url("upstream", "/v1"), port=self.ports["proxy"], allowed_origin=dash_origins)
        await self._serve(create_proxy(settings), "proxy")
        cfg = CollectorConfig(
            db=self.tmp / "t.duckdb", port=self.ports["collector"], allowed_origins=frozenset(dash_origins)
        )
        await self._serve(create_collector(cfg, scrape=False, maintain=False), "collector")
        await self._serve(self._foreign(), "foreign", FOREIGN_HOST)

    def _upstream(self) -> web.Application:
        async def chat(request: web.Request) -> web.StreamResponse:
            slow = float(request.headers.get("x-test-pause", "0.05"))
            resp = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
            await resp.prepare(request)
            words = self.completion.split(" ")
            for i, word in enumerate(words):
                await resp.write(_chunk(word + (" " if i < len(words) - 1 else "")))
                await asyncio.sleep(slow)
            await resp.write(_chunk(None, "stop"))
            await resp.write(b"data: [DONE]\n\n")
            return resp

        async def rebound_page(request: web.Request) -> web.Response:
            return web.Response(text="<!DOCTYPE html><title>rebound</title><p>hello</p>", content_type="text/html")

        app = web.Application()
        app.router.add_post("/v1/chat/completions", chat)
        app.router.add_get("/v1/page.html", rebound_page)
        return app

    def _foreign(self) -> web.Application:
        async def page(request: web.Request) -> web.Response:
            return web.Response(text="<!DOCTYPE html><title>another site</title><p>hi</p>", content_type="text/html")

        app = web.Application()
        app.router.add_get("/", page)
        return app

    async def _serve(self, app: web.Application, name: str, host: str = "127.0.0.1") -> None:
        runner = web.AppRunner(app, handle_signals=False, access_log=None, shutdown_timeout=1.0)
        await runner.setup()
        await web.TCPSite(runner, host, self.ports[name], reuse_address=True).start()
        self.runners.append(runner)

    def stream(self, pause: float) -> tuple[str, Any]:
        """Start a chat through the proxy; (its request id, a future of its whole body)."""
        known = {r["id"] for r in self.get_json("proxy", "/api/requests")["requests"]}
        started = asyncio.run_coroutine_threadsafe(self._stream(pause), self.loop.loop)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            new = [r["id"] for r in self.get_json("proxy", "/api/requests")["requests"] if r["id"] not in known]
            if new:
                return new[0], started
            time.sleep(0.05)
        raise AssertionError("the request never showed up on the proxy")

    async def _stream(self, pause: float) -> bytes:
        async with aiohttp.ClientSession() as s:
            async with s.post(
                self.url("proxy", "/v1/chat/completions"), json=CHAT, headers={"x-test-pause": str(pause)}
            ) as r:
                return await r.read()

    def get_json(self, name: str, path: str) -> Any:
        import urllib.request

        with urllib.request.urlopen(self.url(name, path), timeout=5) as resp:
            return json.loads(resp.read())

    def stop(self) -> None:
        for server in (self.dash_server, self.dash_token_server):
            if server is not None:
                server.shutdown()

        async def cleanup() -> None:
            for r in reversed(self.runners):
                await r.cleanup()

        try:
            self.loop.run(cleanup(), timeout=15)
        finally:
            self.loop.stop()


@pytest.fixture(scope="module")
def mini(chromium_path, tmp_path_factory):
    leak = Leak()
    s = MiniStack(tmp_path_factory.mktemp("access"), leak)
    try:
        s.start()
        yield s
    finally:
        s.stop()
        leak.close()


@pytest.fixture
def page(browser, mini):
    context = browser.new_context()
    pg = context.new_page()
    pg.console_lines = []
    pg.on("console", lambda msg: pg.console_lines.append(f"{msg.type}: {msg.text}"))
    pg.page_errors = []
    pg.on("pageerror", lambda exc: pg.page_errors.append(str(exc)))
    try:
        yield pg
    finally:
        context.close()


def _wait(cond, timeout: float = 15.0, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


# A page on another origin tries everything it can; each probe says what it got.
ATTACK = """async ([proxy, collector, dashboard, rid]) => {
  const out = {};
  const attempt = async (name, fn) => {
    try { out[name] = await fn(); } catch (e) { out[name] = "refused: " + e.name; }
  };
  await attempt("read_requests", async () => (await (await fetch(proxy + "/api/requests")).text()).slice(0, 80));
  await attempt("read_live", async () => (await (await fetch(proxy + "/api/live")).text()).slice(0, 80));
  await attempt("read_spans", async () => (await (await fetch(collector + "/api/spans")).text()).slice(0, 80));
  await attempt("read_token", async () => (await (await fetch(dashboard + "/_tt/token")).text()).slice(0, 80));
  out.eventsource = await new Promise((resolve) => {
    const es = new EventSource(proxy + "/api/live");
    es.addEventListener("snapshot", () => { es.close(); resolve("read a snapshot"); });
    es.onerror = () => { es.close(); resolve("refused"); };
  });
  const blind = (url, type, body) => fetch(url, {method: "POST", mode: "no-cors", headers: {"Content-Type": type}, body});
  await attempt("cancel_blind", () => blind(proxy + "/api/requests/" + rid + "/cancel", "text/plain", "{}").then(r => r.type));
  await attempt("cancel_json", () => fetch(proxy + "/api/requests/" + rid + "/cancel",
    {method: "POST", headers: {"Content-Type": "application/json"}, body: "{}"}).then(r => r.status));
  await attempt("run_blind", () => blind(collector + "/api/runs", "text/plain", '{"name": "evil"}').then(r => r.type));
  await attempt("run_form", () => blind(collector + "/api/runs", "application/x-www-form-urlencoded", "name=evil").then(r => r.type));
  await attempt("run_json", () => fetch(collector + "/api/runs",
    {method: "POST", headers: {"Content-Type": "application/json"}, body: '{"name": "evil"}'}).then(r => r.status));
  await attempt("dash_run", () => blind(dashboard + "/_tt/runs", "text/plain", '{"name": "evil"}').then(r => r.type));
  await attempt("dash_cancel", () => blind(dashboard + "/_tt/cancel", "text/plain", JSON.stringify({id: rid})).then(r => r.type));
  return out;
}"""


def test_a_page_from_another_loopback_origin_can_neither_read_nor_change_anything(mini, page):
    rid, done = mini.stream(pause=0.25)  # ~5 s of streaming: long enough to be cancelled
    page.goto(mini.url("foreign", "/", host=FOREIGN_HOST))
    got = page.evaluate(ATTACK, [mini.url("proxy"), mini.url("collector"), mini.url("dashboard"), rid])
    for name in ("read_requests", "read_live", "read_spans", "read_token", "cancel_json", "run_json"):
        assert str(got[name]).startswith("refused"), (name, got)  # CORS: nothing readable, no preflight passed
    assert got["eventsource"] == "refused", got
    assert got["cancel_blind"] == got["run_blind"] == got["dash_run"] == "opaque", got  # sent, answer unseen
    # Nothing changed: the request streamed to its end, no run exists.
    body = done.result(20)
    assert b"[DONE]" in body and b"cancelled" not in body
    _wait(lambda: mini.get_json("proxy", f"/api/requests/{rid}")["status"] == "ok", what="the request to end ok")
    assert mini.get_json("collector", "/api/runs")["runs"] == []
    assert page.page_errors == []


def test_a_rebound_name_reads_nothing_from_the_proxy(mini, browser, chromium_path):
    from .conftest import CHROMIUM_ARGS

    # The attacker's name now points at 127.0.0.1: its page is served on the proxy's own origin
    # (through /v1/*, which any host may use), and /api/* is same-origin to it.
    args = [*CHROMIUM_ARGS, "--host-resolver-rules=MAP rebound.test 127.0.0.1"]
    b = browser.browser_type.launch(executable_path=chromium_path, args=args)  # a second browser, one flag more
    try:
        pg = b.new_page()
        pg.goto(f"http://rebound.test:{mini.ports['proxy']}/v1/page.html")
        assert pg.title() == "rebound"
        got = pg.evaluate(
            """async () => {
              const r = await fetch("/api/requests");
              const c = await fetch("/api/routes/reload", {method: "POST", headers: {"Content-Type": "application/json"}, body: "{}"});
              return [r.status, await r.text(), c.status];
            }"""
        )
    finally:
        b.close()
    assert got[0] == 421 and json.loads(got[1])["error"]["code"] == "misdirected_request" and got[2] == 421, got


def test_completion_images_are_links_and_never_fetched(mini, page):
    before = len(mini.leak.hits)
    rid, done = mini.stream(pause=0.15)
    page.goto(mini.url("dashboard", f"/request/{rid}"))
    show_markdown(page, rid)
    md = page.locator("#detail-md")
    done.result(20)  # streamed to the end while the page re-rendered its Markdown (tokentail.js)
    # Shown or not (the page may re-render the finished request in Text mode), the links are there.
    chart = md.locator("a", has_text="image: chart")
    expect(chart).to_have_attribute("href", f"http://127.0.0.1:{mini.leak.port}/leak.png?q=secret", timeout=15_000)
    expect(md.locator("a", has_text="image: ref")).to_have_count(1, timeout=15_000)
    page.reload()  # the server-rendered Markdown of the finished request (dashboard/_markdown.py)
    show_markdown(page, rid)
    expect(page.locator("#detail-md a", has_text="image: chart")).to_have_count(1, timeout=15_000)
    assert (
        page.locator("img").evaluate_all(
            "imgs => imgs.map(i => i.src).filter(s => s.includes('leak') || s.includes('ref.png'))"
        )
        == []
    )
    assert mini.leak.hits[before:] == []
    # The counter does count: a direct request shows up.
    import urllib.request

    urllib.request.urlopen(f"http://127.0.0.1:{mini.leak.port}/control", timeout=5).close()
    assert mini.leak.hits[before:] == ["/control"]


def show_markdown(page, rid: str) -> None:
    # The detail page is rendered by a callback: switch once it shows this request.
    # A request that ends re-renders the page in Text mode: switch again until it shows.
    expect(page.locator("#tt-detail-text")).to_have_attribute("data-id", rid, timeout=15_000)
    deadline = time.monotonic() + 15
    while True:
        page.locator("#detail-mode").get_by_text("Markdown", exact=True).click()
        try:
            expect(page.locator("#detail-md")).to_be_visible(timeout=2_000)
            return
        except AssertionError:
            if time.monotonic() > deadline:
                raise


@pytest.mark.parametrize("path", ["/", "/live", "/sessions", "/runs", "/runs/compare", "/playground", "/request/none"])
def test_no_page_logs_a_csp_violation(mini, page, path):
    page.goto(mini.url("dashboard", path))
    expect(page.locator("#tt-sources")).to_be_attached(timeout=10_000)
    expect(page.locator('#tt-sources [data-source="proxy:production"]')).to_have_attribute(
        "data-state", "open", timeout=10_000
    )  # the live feed connects: connect-src lists the proxy
    violations = [line for line in page.console_lines if "Content Security Policy" in line or "Refused to" in line]
    assert violations == [] and page.page_errors == []


def test_with_a_read_token_the_page_follows_the_feeds_and_its_html_never_holds_the_token(mini, page):
    import urllib.request

    with urllib.request.urlopen(mini.url("dashboard_token", "/live"), timeout=5) as resp:
        assert READ_TOKEN not in resp.read().decode()
    requests: list[str] = []
    page.on("request", lambda r: requests.append(r.url))
    page.goto(mini.url("dashboard_token", "/live"))
    for key in ("proxy:production", "collector"):
        expect(page.locator(f'#tt-sources [data-source="{key}"]')).to_have_attribute(
            "data-state", "open", timeout=10_000
        )
    assert any(u.startswith(mini.url("proxy", "/api/live?token=" + READ_TOKEN)) for u in requests), requests
    assert READ_TOKEN not in page.content()
