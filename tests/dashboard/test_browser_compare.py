"""The Compare page and Replay in headless Chromium against the real stack (simulator, proxies, collector)."""

from __future__ import annotations

import re
import uuid

import pytest
from playwright.sync_api import expect

from tests.helpers.browser import SCREENSHOTS, open_page, plot_traces, unique_prompt

pytestmark = [pytest.mark.browser, pytest.mark.slow]
N = 24  # per side: above the page's minimum sample (20)


def _send(live_stack, sides: list[tuple[str, str, int]], n: int = N) -> None:
    """``n`` requests per (variant, model, TTFT) side, interleaved so both sides meet the same load."""
    futures = [
        live_stack.stream(variant, unique_prompt("compare me"), model=model, ttft_ms=ttft, tokens=4, tps=200)[1]
        for _ in range(n)
        for variant, model, ttft in sides
    ]
    for f in futures:
        f.result(60)


def test_compare_page_shows_a_verdict_per_metric_and_overlaid_ecdfs(live_stack, page):
    tag = uuid.uuid4().hex[:8]
    fast, slow = f"sim-fast-{tag}", f"sim-slow-{tag}"
    _send(live_stack, [("production", fast, 10), ("canary", slow, 800)])
    live_stack.wait_json(
        "collector",
        f"/api/compare?a=model:{fast}&b=model:{slow}&range=15m",
        lambda b: b["a"]["requests"] >= N and b["b"]["requests"] >= N,
        timeout=30,
    )
    open_page(page, live_stack, f"/compare?a=model:{fast}&b=model:{slow}&range=15m")
    expect(page.locator("#nav-abcompare")).to_have_class(re.compile("active"))
    row = page.locator("#abc-table tr", has_text="TTFT p95")
    expect(row.locator(".tt-verdict")).to_have_text("worse", timeout=15_000)
    expect(page.locator("#abc-sentences")).to_contain_text(f"{slow} TTFT p95 +")
    traces = plot_traces(page, "abc-ecdf-ttft_ms")  # the two ECDFs, overlaid
    assert [t["name"] for t in traces] == [fast, slow]
    assert all(t["n"] >= N for t in traces)
    page.screenshot(path=str(SCREENSHOTS / "compare.png"), full_page=True)
    # Too few requests: the page says so rather than guessing.
    page.locator("#abc-b").fill("model:no-such-model")
    page.locator("#abc-b").press("Enter")
    expect(page.locator("#abc-table tr", has_text="TTFT p95").locator(".tt-verdict")).to_have_text(
        "not enough data", timeout=15_000
    )
    assert page.page_errors == []


def test_replay_from_the_request_page_opens_the_copy_side_by_side(live_stack, page):
    prompt = unique_prompt("Replay me elsewhere.")
    stream, done = live_stack.stream("production", prompt, ttft_ms=20, tokens=12, tps=200)
    done.result(30)
    rid = stream.request_id
    open_page(page, live_stack, f"/request/{rid}")
    button = page.locator("#replay-send")
    expect(button).to_be_enabled(timeout=10_000)
    page.locator("#replay-variant").select_option("canary")
    button.click()
    page.wait_for_url(re.compile(r"/request/(?!" + re.escape(rid) + ")"), timeout=15_000)
    expect(page.locator("#replay-compare")).to_be_visible(timeout=15_000)
    expect(page.locator("#replay-panel")).to_contain_text(f"A replay of {rid}")
    expect(page.locator("#replay-diff")).not_to_have_text("")
    page.screenshot(path=str(SCREENSHOTS / "replay.png"), full_page=True)
    assert page.page_errors == []
