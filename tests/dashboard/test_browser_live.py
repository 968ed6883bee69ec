"""The Live page under bursts, in headless Chromium against the real stack: deltas coalesced per
frame, no per-token DOM work for rows off screen, no detached DOM nodes left behind."""

from __future__ import annotations

import pytest
from playwright.sync_api import expect

from tests.helpers import wait_until
from tests.helpers.browser import detached_dom_nodes, open_page, row_text, unique_prompt

pytestmark = [pytest.mark.browser, pytest.mark.slow]

# Per row id: DOM writes to its completion text and the animation frame of each (a counter
# advanced by requestAnimationFrame, independent of the dashboard's code).
WRITES_PROBE = """
() => {
  const list = document.getElementById('tt-live-list');
  window.__writes = {frame: 0, by: {}};
  const tick = () => { window.__writes.frame++; requestAnimationFrame(tick); };
  requestAnimationFrame(tick);
  new MutationObserver(records => {
    for (const m of records) {
      const node = m.target.nodeType === 3 ? m.target.parentNode : m.target;
      const box = node && node.closest && node.closest('.tt-row-text');
      const row = box && box.closest('.tt-row');
      if (!row) continue;
      (window.__writes.by[row.dataset.id] = window.__writes.by[row.dataset.id] || []).push(window.__writes.frame);
    }
  }).observe(list, {subtree: true, characterData: true, childList: true});
}
"""


def test_a_burst_of_deltas_is_written_once_per_frame(live_stack, page):
    open_page(page, live_stack, "/live")
    page.evaluate(WRITES_PROBE)
    prompt = unique_prompt("A stream whose deltas pile up behind long tasks.")
    _stream, done = live_stack.stream("production", prompt, tps=100, ttft_ms=100, tokens=300)
    row = page.locator(".tt-row", has_text=prompt)
    expect(row.locator(".tt-row-text")).not_to_have_text("", timeout=5_000)
    for _ in range(6):  # a busy main thread (another tab's script, a GC): the feed's events queue up
        page.evaluate("() => { const t = performance.now(); while (performance.now() - t < 150) {} }")
        page.wait_for_timeout(80)
    s = done.result(20)
    expect(row).to_have_attribute("data-status", "ok", timeout=5_000)
    assert row_text(row) == s.text
    received = page.evaluate(
        "id => window.tokentail.rows.get(id).raw.filter(e => e.includes('event: request.delta')).length",
        s.request_id,
    )
    frames = page.evaluate("id => window.__writes.by[id] || []", s.request_id)
    per_frame: dict[int, int] = {}
    for f in frames:
        per_frame[f] = per_frame.get(f, 0) + 1
    assert received >= 40, f"too few deltas to tell: {received}"
    # One write a frame (two when a write after a quiet spell went out at once, then the frame's)...
    assert max(per_frame.values()) <= 2, per_frame
    # ...so the deltas that queued behind a long task reach the DOM together.
    assert len(frames) <= 0.8 * received, f"{len(frames)} DOM writes for {received} deltas: not coalesced"
    assert page.page_errors == []


def test_rows_off_screen_get_no_per_token_writes_and_catch_up_on_screen(live_stack, browser):
    context = browser.new_context(viewport={"width": 1400, "height": 500})
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    try:
        open_page(page, live_stack, "/live")
        prompts = [unique_prompt(f"Off-screen probe {i}.") for i in range(14)]
        started = []
        for p in prompts:  # the first ones end up at the bottom, far below the fold
            started.append(live_stack.stream("production", p, tps=12, ttft_ms=50, tokens=90))
            page.wait_for_timeout(30)
        first = page.locator(".tt-row", has_text=prompts[0])
        expect(first.locator(".tt-row-text")).not_to_have_text("", timeout=5_000)
        below = first.evaluate("r => r.getBoundingClientRect().top - window.innerHeight")
        assert below > 400, f"the probe row is only {below}px below the viewport"
        page.evaluate(WRITES_PROBE)
        page.wait_for_timeout(1500)  # ~18 tokens each: the rows on screen are written, the far ones not
        writes = page.evaluate("() => window.__writes.by")
        far, near = started[0][0].request_id, started[-1][0].request_id
        assert writes.get(near), "the newest row (on top) was not written while it streamed"
        assert not writes.get(far), f"a row {below}px below the viewport got {len(writes[far])} DOM writes"
        model = page.evaluate("id => window.tokentail.rows.get(id).text", far)
        assert len(model) > len(row_text(first)), "the row's model should be ahead of its DOM"
        first.scroll_into_view_if_needed()  # on screen: written at once with everything it missed
        wait_until(
            lambda: row_text(first) == page.evaluate("id => window.tokentail.rows.get(id).text", far),
            timeout=5,
            what="the row caught up",
        )
        for _, done in started:
            done.result(20)
        expect(first).to_have_attribute("data-status", "ok", timeout=5_000)
        assert errors == []
    finally:
        context.close()


def test_rows_churned_through_the_list_leave_no_detached_nodes(live_stack, page):
    open_page(page, live_stack, "/live")
    cdp = page.context.new_cdp_session(page)
    before = detached_dom_nodes(cdp)
    # 260 short requests: more than the 200 rows the list holds, so rows leave the DOM.
    for batch in range(5):
        started = [
            live_stack.stream(("production", "canary")[i % 2], f"churn {batch}.{i}", tps=400, ttft_ms=20, tokens=8)
            for i in range(52)
        ]
        for _, done in started:
            done.result(30)
    wait_until(
        lambda: page.evaluate("() => window.tokentail.rows.size") >= 260, timeout=10, what="all rows in the page"
    )
    page.wait_for_timeout(500)
    assert page.locator("#tt-live-list .tt-row").count() <= 200
    after = detached_dom_nodes(cdp)
    # Bounded, not growing with the rows that passed through (~25 nodes each: 1,500 if kept).
    assert after - before <= 100, f"detached DOM nodes {before} -> {after} after 260 rows churned"
    assert page.page_errors == []


# An SSE stream with everything the parser must handle: \n, \r\n and \r line ends, comments,
# multi-line data, an event without data (not dispatched), a persisting id, retry, a field
# without a colon, a space-less value, multi-byte characters, and an unfinished last event.
SSE_SAMPLE = (
    ": hello\n\n"
    'id: 1\nevent: request.start\ndata: {"id": "a", "text": "héllo 💬"}\n\n'
    "event: request.delta\r\ndata: line one\r\ndata: line two\r\n\r\n"
    "id: 2\revent: request.delta\rdata:no space\r\r"
    "event: nothing\n\n"
    "retry: 1500\ndata\n\n"
    'id: 3\nevent: request.end\ndata: {"id": "a", "text": "done ✓"}\n\n'
    "event: request.delta\ndata: never finished"
)
SSE_EXPECTED = [
    ["request.start", '{"id": "a", "text": "héllo 💬"}', "1"],
    ["request.delta", "line one\nline two", "1"],
    ["request.delta", "no space", "2"],
    ["message", "", "2"],
    ["request.end", '{"id": "a", "text": "done ✓"}', "3"],
]


def test_the_live_feed_parser_gives_the_same_events_however_the_bytes_are_split(live_stack, page):
    open_page(page, live_stack, "/live", sources=())
    results = page.evaluate(
        """text => {
        const bytes = new TextEncoder().encode(text);
        const run = cuts => {
            const out = [], retries = [];
            const p = new window.tokentailFeed.Parser((t, d, id) => out.push([t, d, id]), ms => retries.push(ms));
            const dec = new TextDecoder('utf-8');
            let at = 0;
            for (const c of cuts.concat([bytes.length])) { p.push(dec.decode(bytes.slice(at, c), {stream: true})); at = c; }
            p.push(dec.decode());
            return JSON.stringify([out, retries]);
        };
        const whole = run([]);
        const differ = [];
        for (let i = 1; i < bytes.length; i++) {
            if (run([i]) !== whole) differ.push([i]);
            const j = Math.min(bytes.length - 1, i + 1 + (i % 7));
            if (j > i && run([i, j]) !== whole) differ.push([i, j]);
        }
        return {whole: JSON.parse(whole), differ: differ};
    }""",
        SSE_SAMPLE,
    )
    assert results["differ"] == [], "a split changed the events"
    events, retries = results["whole"]
    assert events == SSE_EXPECTED
    assert retries == [1500]


def test_the_live_page_reads_each_proxy_through_the_fetch_feed(live_stack, page):
    open_page(page, live_stack, "/live")
    # Not the EventSource fallback: the feeds are the fetch reader's (tokentail-feed.js).
    assert page.evaluate("() => typeof window.tokentailFeed.open") == "function"
    kinds = page.evaluate(
        "() => Object.values(window.tokentail.sources).map(s => s.es && s.es.constructor.name).sort()"
    )
    assert kinds and all(k == "Feed" for k in kinds), kinds
    prompt = unique_prompt("Through the fetch feed.")
    _stream, done = live_stack.stream("production", prompt, tps=50, ttft_ms=50, tokens=20)
    result = done.result(10)
    row = page.locator(".tt-row", has_text=prompt)
    expect(row).to_have_attribute("data-status", "ok", timeout=5_000)
    wait_until(lambda: row_text(row) == result.text, timeout=5, what="the whole completion in the row")


def test_the_live_feed_parser_takes_a_long_event_in_many_small_reads(live_stack, page):
    open_page(page, live_stack, "/live", sources=())
    got = page.evaluate(
        """() => {
        const text = 'id: 7\\r\\nevent: request.end\\r\\ndata: ' + 'é x'.repeat(400000) + '\\r\\n\\r\\n';
        const out = [];
        const p = new window.tokentailFeed.Parser((t, d, id) => out.push([t, d.length, id]), () => {});
        for (let i = 0; i < text.length; i += 1000) p.push(text.slice(i, i + 1000));
        return out;
    }"""
    )
    assert got == [["request.end", 1_200_000, "7"]]
