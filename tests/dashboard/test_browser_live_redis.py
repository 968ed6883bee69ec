"""The Live page over the live plane, in headless Chromium: two proxies writing to a real
redis-server, a collector serving the merged /api/live, the dashboard started with --live.

Every part runs as a real ``python -m tokentail`` process (Redis as ``redis-server``); the
requests go through the real ``openai`` SDK. The page follows one feed (the collector's),
never a proxy; stopping Redis shows the banner while the proxied streams complete, and the
list carries on once Redis is back.
"""

from __future__ import annotations

import re
import threading
from pathlib import Path
from urllib.parse import urlsplit

import openai
import pytest
from playwright.sync_api import expect

from tests.helpers import free_port
from tests.helpers.browser import unique_prompt
from tests.helpers.redis import RedisServer, redis_binary
from tests.helpers.stack import Proc

pytestmark = [pytest.mark.browser, pytest.mark.slow]
FINISHED = re.compile(r"^(ok|cancelled)$")


class Plane:
    """Simulator, Redis, two proxies, a collector and a dashboard, as processes."""

    def __init__(self, tmp: Path) -> None:
        self.tmp = tmp
        self.redis = RedisServer(redis_binary())
        self.ports = {n: free_port() for n in ("sim", "p1", "p2", "collector", "dashboard")}
        self.procs: list[Proc] = []

    def url(self, name: str, path: str = "") -> str:
        return f"http://127.0.0.1:{self.ports[name]}{path}"

    def _proc(self, name: str, args: list[str]) -> None:
        p = Proc(name, [*args, "--port", str(self.ports[name])], self.ports[name], self.tmp / f"{name}.log")
        p.start()
        self.procs.append(p)

    def start(self) -> None:
        self.redis.start()
        self._proc("sim", ["simulate", "--tokens-per-second", "40", "--ttft", "0", "--length", "30", "--seed", "2"])
        for name in ("p1", "p2"):
            self._proc(name, ["proxy", "--upstream", self.url("sim", "/v1"), "--live-redis", self.redis.url])
        self._proc(
            "collector",
            [
                "collector",
                "--db",
                str(self.tmp / "t.duckdb"),
                "--live-redis",
                self.redis.url,
                "--allowed-origin",
                self.url("dashboard"),
            ],
        )
        self._proc("dashboard", ["dashboard", "--collector", self.url("collector"), "--live", self.url("collector")])
        for p in self.procs:
            p.wait()

    def stop(self) -> None:
        for p in reversed(self.procs):
            p.stop()
        self.redis.stop()


def chat(base_url: str, prompt: str, out: dict) -> None:
    client = openai.OpenAI(base_url=base_url, api_key="sk-test-not-a-key", max_retries=0, timeout=60)
    text = ""
    for chunk in client.chat.completions.create(
        model="sim-gpt-4o", messages=[{"role": "user", "content": prompt}], stream=True
    ):
        for c in chunk.choices:
            text += c.delta.content or ""
    out[prompt] = text
    client.close()


def send(plane: Plane, proxy: str, prompt: str, out: dict) -> threading.Thread:
    t = threading.Thread(target=chat, args=(plane.url(proxy, "/v1"), prompt, out), daemon=True)
    t.start()
    return t


def test_one_feed_for_two_proxies_and_a_banner_while_redis_is_down(browser, tmp_path):
    plane = Plane(tmp_path)
    context = browser.new_context(viewport={"width": 1400, "height": 900})
    page = context.new_page()
    origins: set[str] = set()
    errors: list[str] = []
    page.on("request", lambda r: origins.add("{0.scheme}://{0.netloc}".format(urlsplit(r.url))))
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    try:
        plane.start()
        page.goto(plane.url("dashboard", "/live"))
        dot = page.locator('#tt-sources [data-source="proxy:live"]')
        expect(dot).to_have_attribute("data-state", "open", timeout=15_000)

        out: dict[str, str] = {}
        prompts = {unique_prompt("to the first proxy"): "p1", unique_prompt("to the second proxy"): "p2"}
        threads = [send(plane, proxy, prompt, out) for prompt, proxy in prompts.items()]
        rows = {prompt: page.locator(".tt-row", has_text=prompt) for prompt in prompts}
        for row in rows.values():  # both appear while streaming: their text grows
            expect(row).to_have_count(1, timeout=15_000)
        for t in threads:
            t.join(60)
        for prompt, row in rows.items():
            # The SDK may hang up right after [DONE], before the upstream's end: then "cancelled".
            expect(row).to_have_attribute("data-status", FINISHED, timeout=15_000)
            expect(row.locator(".tt-row-text")).to_contain_text(out[prompt][:40])

        plane.redis.stop()
        during = unique_prompt("while Redis is down")
        t = send(plane, "p1", during, out)
        banner = page.locator(".tt-banner-item", has_text="Redis is unreachable")
        expect(banner).to_have_count(1, timeout=20_000)
        t.join(60)
        assert len(out[during]) > 20  # the proxied stream completed all the same

        plane.redis.start()
        expect(banner).to_have_count(0, timeout=30_000)
        after = unique_prompt("after Redis came back")
        send(plane, "p2", after, out).join(60)
        expect(page.locator(".tt-row", has_text=after)).to_have_attribute("data-status", FINISHED, timeout=20_000)

        # The page talked to its own server and the collector: never to a proxy.
        assert origins <= {plane.url("dashboard"), plane.url("collector")}, origins
        assert errors == []
    finally:
        context.close()
        plane.stop()
