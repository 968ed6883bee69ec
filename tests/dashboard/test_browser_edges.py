"""Rough edges of the dashboard in headless Chromium: error words, cost lines, no sideways
overflow, long texts collapsed, the Playground's models, the Live header's counts."""

from __future__ import annotations

import itertools
import re
from pathlib import Path

import pytest
from playwright.sync_api import expect

from tests.helpers import wait_until
from tests.helpers.browser import open_page, unique_prompt
from tokentail.simulator.endpoints import MODELS

pytestmark = [pytest.mark.browser, pytest.mark.slow]


@pytest.mark.parametrize("width", [1280, 1400, 1920])
def test_no_page_overflows_sideways(live_stack, browser, width):
    context = browser.new_context(viewport={"width": width, "height": 900}, device_scale_factor=1)
    page = context.new_page()
    try:
        live_stack.stream("production", unique_prompt("Overflow check."), tps=50, tokens=10)
        for path in ("/", "/live", "/sessions", "/runs", "/playground"):
            open_page(page, live_stack, path)
            page.wait_for_timeout(300)  # let the page lay out what the feeds brought (no condition to poll)
            over = page.evaluate("document.documentElement.scrollWidth - document.documentElement.clientWidth")
            wide = page.evaluate(
                "() => { const w = document.documentElement.clientWidth; return [...document.querySelectorAll('*')]"
                ".filter(e => e.getBoundingClientRect().right > w + 1)"
                ".slice(0, 5).map(e => e.tagName + '#' + e.id + '.' + e.className + ' ' + Math.round(e.getBoundingClientRect().right)); }"
            )
            assert over <= 0, f"{path} overflows sideways by {over} px at {width} px: {wide}"
    finally:
        context.close()


def test_error_rows_read_as_words_and_a_failed_request_has_no_cost(live_stack, page):
    open_page(page, live_stack, "/live")
    limited = unique_prompt("This one is rate limited.")
    dropped = unique_prompt("This one is cut mid-stream.")
    live_stack.stream("production", limited, tps=50, tokens=5, headers={"x-sim-error": "429"})
    live_stack.stream("canary", dropped, tps=50, tokens=30, headers={"x-sim-disconnect-after": "5"})

    row = page.locator(".tt-row", has_text=limited)
    expect(row).to_have_attribute("data-status", "error", timeout=10_000)
    expect(row.locator(".tt-status")).to_have_text("error 429")
    expect(row.locator(".tt-row-stats")).to_contain_text("HTTP 429 rate limited")
    stats = row.locator(".tt-row-stats").inner_text()
    assert "cost" not in stats and not stats.rstrip().endswith("status"), stats

    cut = page.locator(".tt-row", has_text=dropped)
    expect(cut).to_have_attribute("data-status", "error", timeout=10_000)
    expect(cut.locator(".tt-status")).to_have_text("error")  # never "error 200"
    expect(cut.locator(".tt-row-stats")).to_contain_text("upstream closed mid-stream")
    assert page.page_errors == []


def test_a_long_prompt_is_collapsed_with_show_all(live_stack, page):
    prompt = unique_prompt("Read this long log and say what failed. ") + "GET /v1/chat/completions 200 12ms\n" * 1200
    s, done = live_stack.stream("production", prompt, tps=50, tokens=10)
    done.result(15)
    open_page(page, live_stack, f"/request/{s.request_id}")
    box = page.locator(".tt-msg .tt-collapse")
    expect(box).to_have_count(1, timeout=10_000)
    height = page.evaluate("document.documentElement.scrollHeight")
    assert height < 4000, f"the detail page is {height} px tall with the prompt collapsed"
    box.locator(".tt-show-all").click()
    expect(box.locator(".tt-show-all")).to_have_count(0)
    assert page.evaluate("document.documentElement.scrollHeight") > height + 10_000
    assert page.page_errors == []


def test_the_playground_starts_with_a_model_the_upstream_lists(live_stack, page):
    open_page(page, live_stack, "/playground")
    expect(page.locator("#play-model")).to_have_value(re.compile("^(" + "|".join(map(re.escape, MODELS)) + ")$"))
    options = page.locator("#tt-play-models option")
    expect(options).not_to_have_count(0)
    listed = set(options.evaluate_all("os => os.map(o => o.value)"))
    assert set(MODELS) <= listed


def test_the_live_header_says_what_it_counts(live_stack, page):
    open_page(page, live_stack, "/live")
    live_stack.stream("production", unique_prompt("Count me."), tps=50, tokens=5)
    count = page.locator("#tt-live-count")
    expect(count).to_have_text(re.compile(r"^showing [\d,.]+ k? ?of [\d,.]+ k? ?.*· \d+ in flight$"), timeout=10_000)

    # The header is rewritten the frame after rows come and go (background traffic keeps
    # arriving), so it and the rows are read together, in one script, until they agree.
    def header_and_rows():
        text, rows = page.evaluate(
            "() => [document.getElementById('tt-live-count').textContent,"
            " document.querySelectorAll('#tt-live-list .tt-row').length]"
        )
        shown, total = (int(n.replace(",", "")) for n in re.match(r"showing ([\d,]+) of ([\d,]+)", text).groups())
        return (shown, total) if shown == rows else None

    shown, total = wait_until(header_and_rows, timeout=10, step=0.05, what="the header's count = the rows shown")
    assert shown == min(total, 200)


def _collector_has(live_stack, path: str) -> bool:
    import urllib.error
    import urllib.request

    try:
        with urllib.request.urlopen(live_stack.url("collector", path), timeout=5):
            return True
    except urllib.error.HTTPError as exc:
        return exc.code != 404


def test_requests_page_searches_pages_and_exports(live_stack, page):
    # Needs the collector's /api/requests/search (built on another branch): skipped until merged.
    if not _collector_has(live_stack, "/api/requests/search?limit=1"):
        pytest.skip("the collector has no /api/requests/search yet")
    prompt = unique_prompt("Find me on the Requests page.")
    _, done = live_stack.stream("production", prompt, tps=50, tokens=5, model="sim-gpt-4o-mini")
    rid = done.result(15).request_id
    live_stack.wait_json("collector", f"/api/spans/{rid}", lambda b: bool(b))
    open_page(page, live_stack, "/requests", sources=("collector",))
    rows = page.locator("#req-list tr[data-id]")
    expect(rows).not_to_have_count(0, timeout=10_000)
    assert rows.count() <= 50
    page.locator("#req-q").fill(prompt[1:11])
    expect(rows).to_have_count(1, timeout=10_000)
    expect(page.locator(f'#req-list tr[data-id="{rid}"]')).to_have_count(1)
    expect(page.locator("#req-range")).to_have_text(re.compile(r"^1–1 of 1$"))
    assert "q=" in page.locator("#req-csv").get_attribute("href")
    with page.expect_download() as dl:
        page.locator("#req-jsonl").click()
    assert rid in Path(dl.value.path()).read_text()
    page.locator(f'#req-list tr[data-id="{rid}"] a').click()
    expect(page).to_have_url(re.compile(f"/request/{rid}$"))
    assert page.page_errors == []


# Times (performance.now()) of the Live list's DOM writes: one MutationObserver batch per write task.
WRITE_TIMES = """
() => {
  window.__writes = [];
  new MutationObserver(() => window.__writes.push(performance.now()))
    .observe(document.getElementById('tt-live-list'), {subtree: true, characterData: true, childList: true});
}
"""


def _gaps(times: list[float]) -> list[float]:
    return [b - a for a, b in itertools.pairwise(times)]


def test_a_heavy_feed_is_written_about_30_times_a_second_and_a_light_one_every_frame(live_stack, page):
    """Each frame's style, layout, paint and commit cost about the same whatever changed: over
    300 deltas a second the page spaces its row writes ~33 ms apart, below that it writes
    every frame (a token waits for no more than the next one)."""
    open_page(page, live_stack, "/live")
    page.evaluate(WRITE_TIMES)
    light = [  # 120 deltas a second, a token every ~8 ms: more than one a frame
        live_stack.stream(v, unique_prompt(f"Light feed via {v}."), tps=60, ttft_ms=100, tokens=150)
        for v in ("production", "canary")
    ]
    for _, fut in light:
        fut.result(30)
    writes = page.evaluate("window.__writes")
    light_gaps = sorted(_gaps(writes[len(writes) // 4 : 3 * len(writes) // 4]))
    page.evaluate("window.__writes = []")
    heavy = [
        live_stack.stream(
            ("production", "canary")[i % 2], unique_prompt(f"Heavy feed {i}."), tps=40, ttft_ms=100, tokens=120
        )
        for i in range(16)
    ]
    for _, fut in heavy:
        fut.result(60)
    writes = page.evaluate("window.__writes")
    # While all 16 stream (~5 s), past the first second the page takes to see the rate.
    heavy_gaps = sorted(_gaps(writes[2 * len(writes) // 5 : 4 * len(writes) // 5]))
    assert len(heavy_gaps) > 20 and len(light_gaps) > 20
    median = heavy_gaps[len(heavy_gaps) // 2]
    assert median >= 28, f"heavy feed written every {median:.1f} ms (median)"
    assert sum(g < 20 for g in heavy_gaps) <= len(heavy_gaps) // 4, heavy_gaps[:20]  # every frame: nearly all
    light_median = light_gaps[len(light_gaps) // 2]
    assert light_median < 30, f"light feed written every {light_median:.1f} ms (median), not every frame"
