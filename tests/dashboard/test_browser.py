"""The dashboard in headless Chromium against a real stack (simulator, two proxies, collector).

Order matters only for looks: background traffic starts with the module, so by the time
the Overview is photographed it has a minute of history.
"""

from __future__ import annotations

import json
import re
import time
import uuid
from urllib.parse import parse_qs, urlsplit

import pytest
from playwright.sync_api import expect

from tests.helpers import wait_until
from tests.helpers.browser import (
    PROBE,
    SCREENSHOTS,
    SECRET,
    STALLS_PROBE,
    open_page,
    pick_option,
    plot_traces,
    quantile,
    row_text,
    unique_prompt,
    utf16_len,
)
from tests.helpers.stack import watch_loop
from tokentail.dashboard.figures import color_for

pytestmark = [pytest.mark.browser, pytest.mark.slow]


@pytest.fixture(scope="module", autouse=True)
def traffic(live_stack):
    live_stack.background_traffic(rps=2.0)
    yield
    live_stack.stop_traffic()


def test_streamed_request_appears_grows_and_is_listed_once(live_stack, page):
    history = []  # the page's history loads: the newest first, then what was stored since
    page.on("request", lambda r: history.append(r.url) if "/_tt/spans" in r.url else None)
    open_page(page, live_stack, "/live")
    prompt = unique_prompt("Explain how a ring buffer bounds memory.")
    stream, done = live_stack.stream("production", prompt, tps=8, ttft_ms=1500, tokens=24)

    row = page.locator(".tt-row", has_text=prompt)
    expect(row).to_have_count(1, timeout=5_000)
    # The prompt is listed before the first token: the client has none yet, the row no text.
    assert stream.first_token_at is None, "the first token arrived before the row was checked"
    assert row.get_attribute("data-status") == "in_flight"
    assert row_text(row) == ""
    rid = row.get_attribute("data-id")

    # Its text grows while it streams.
    lengths = []
    while not done.done():
        if row.get_attribute("data-status") == "in_flight":
            lengths.append(len(row_text(row)))
        time.sleep(0.1)  # sampling the text ~10 times a second while it streams
    s = done.result(10)
    growth = [n for n in lengths if n > 0]
    assert len(set(growth)) >= 5, f"text did not grow on screen while streaming: {lengths}"
    assert growth == sorted(growth)
    assert s.request_id == rid

    # It ends with what the client received, then the collector stores it: one row, marked stored.
    expect(row).to_have_attribute("data-status", "ok", timeout=5_000)
    assert row_text(row) == s.text and s.text
    expect(row).to_have_class(re.compile(r"\btt-row-stored\b"), timeout=15_000)
    assert "received_since=" not in history[0] and any("received_since=" in u for u in history[1:]), history
    expect(page.locator(f'.tt-row[data-id="{rid}"]')).to_have_count(1)
    expect(row.locator(".tt-row-stats")).to_contain_text("TTFT")
    expect(row.locator(".tt-row-stats")).to_contain_text("→ 24 tok")

    # Reloaded, the page gets it twice (the proxy's memory and the collector's history)
    # and still lists it once.
    page.reload()
    again = page.locator(f'.tt-row[data-id="{rid}"]')
    expect(again).to_have_class(re.compile(r"\btt-row-stored\b"), timeout=10_000)
    expect(again).to_have_count(1)
    assert row_text(again) == s.text
    assert SECRET not in page.content()
    assert page.page_errors == []


def test_the_history_cursor_goes_back_exactly_as_the_collector_wrote_it(live_stack, page):
    """``received_before`` goes back as ``received_since`` digit for digit. Rounded to the
    microsecond (``toFixed(6)``, as it was), a stamp with a seventh decimal came back above
    itself half the time: past a batch still being stored, stamped at the very time named."""
    stamp = 1764755511.1234567  # toFixed(6) gives 1764755511.123457
    asked: list[str] = []

    def answer(route):
        asked.append(route.request.url)
        route.fulfill(json={"configured": True, "rows": [], "received_before": stamp})

    page.route(lambda url: "/_tt/spans?" in url, answer)
    open_page(page, live_stack, "/live", sources=("collector",))
    for _ in range(150):  # the next load comes with the collector's next snapshot
        if len(asked) >= 2:
            break
        page.wait_for_timeout(100)  # route handlers run while Playwright waits, not in time.sleep
    assert len(asked) >= 2, asked
    assert float(parse_qs(urlsplit(asked[1]).query)["received_since"][0]) == stamp, asked[1]


def test_detail_page_follows_a_streaming_request_to_its_end(live_stack, page):
    open_page(page, live_stack, "/live")
    prompt = unique_prompt("Write **three** bullet points about tracing.")
    _stream, done = live_stack.stream("canary", prompt, model="sim-llama-3-8b", tps=8, ttft_ms=200, tokens=32)
    row = page.locator(".tt-row", has_text=prompt)
    expect(row).to_have_attribute("data-status", "in_flight", timeout=5_000)
    expect(row.locator(".tt-row-text")).not_to_have_text("", timeout=5_000)
    row.click()
    expect(page).to_have_url(re.compile(r"/request/"))
    text = page.locator("#tt-detail-text")
    expect(text).to_have_attribute("data-id", row.get_attribute("data-id"), timeout=5_000)

    lengths = []
    while not done.done():
        lengths.append(len(text.inner_text()))
        time.sleep(0.1)  # sampling the text ~10 times a second while it streams
    s = done.result(10)
    assert len(set(lengths)) >= 4 and lengths == sorted(lengths), f"detail text did not grow: {lengths}"

    expect(page.locator("#detail-status")).to_have_text("ok", timeout=5_000)  # re-rendered at the end
    expect(text).to_have_text(s.text)
    expect(page.locator('[data-stat="tokens"]')).to_contain_text("→ 32")
    expect(page.locator('[data-stat="ttft"]')).to_contain_text("ms")
    expect(page.locator(".tt-msg-user")).to_contain_text(prompt)
    expect(page.locator(".tt-msg-system")).to_contain_text("concise assistant")
    # The page re-renders once more at the request's end; a click can land on the old radios.
    wait_until(
        lambda: (
            page.locator("#detail-mode label", has_text="Markdown").click() or page.locator("#detail-md").is_visible()
        ),
        timeout=15,
        step=0.5,
        what="the Markdown view",
    )
    expect(page.locator("#detail-md")).to_contain_text(s.text.split()[0])
    assert "event: request.end" in page.locator("#tt-detail-sse").text_content()
    page.locator("#detail-mode label", has_text="Text").click()
    page.screenshot(path=str(SCREENSHOTS / "request.png"), full_page=True)
    assert SECRET not in page.content()
    assert page.page_errors == []


def test_live_filters_by_text_status_and_model(live_stack, page):
    open_page(page, live_stack, "/live")
    marker = uuid.uuid4().hex[:10]
    failing = f"[{marker}] this one fails upstream"
    fine = f"[{marker}] this one is fine"
    _, bad = live_stack.stream("canary", failing, model="sim-claude", tps=50, tokens=5, headers={"x-sim-error": "500"})
    _, good = live_stack.stream("production", fine, model="sim-gpt-4o", tps=50, tokens=5)
    bad.result(10), good.result(10)
    bad_row, good_row = page.locator(".tt-row", has_text=failing), page.locator(".tt-row", has_text=fine)
    expect(bad_row).to_have_attribute("data-status", "error", timeout=5_000)
    expect(bad_row.locator(".tt-status")).to_have_text("error 500")
    expect(good_row).to_have_attribute("data-status", "ok", timeout=5_000)

    page.locator("#live-q").fill(marker)
    expect(page.locator(".tt-row")).to_have_count(2)
    page.locator("#live-q").fill(f"{marker}] this one fails")
    expect(page.locator(".tt-row")).to_have_count(1)
    expect(bad_row).to_be_visible()
    page.locator("#live-q").fill("")

    pick_option(page, "#live-status", "Error")
    page.keyboard.press("Escape")
    expect(bad_row).to_be_visible()
    expect(good_row).to_have_count(0)
    statuses = page.locator(".tt-row").evaluate_all("rows => rows.map(r => r.dataset.status)")
    assert statuses and set(statuses) == {"error"}, statuses

    pick_option(page, "#live-model", "sim-claude")  # only the failing request uses it
    page.keyboard.press("Escape")
    expect(page.locator(".tt-row")).to_have_count(1)
    expect(bad_row).to_be_visible()
    page.locator("#live-q").fill(f"{marker} matches nothing")
    expect(page.locator(".tt-row")).to_have_count(0)
    expect(page.locator("#tt-live-more")).to_have_text("No request matches the filters.")
    # Chips in the list have the charts' colours (the same hash in the browser).
    names = ["production", "canary", "staging", "sim-gpt-4o", "sim-gpt-4o-mini", "ünïcode-model"]
    in_page = page.evaluate(
        "names => names.map(n => [window.tokentail.colorFor('variant', n), window.tokentail.colorFor('model', n)])",
        names,
    )
    assert in_page == [[color_for("variant", n), color_for("model", n)] for n in names]
    assert page.page_errors == []


def test_token_to_screen_latency(live_stack, page):
    """From the proxy relaying a chunk to its text being in the page's DOM.

    The proxy-side time is taken in the proxy process by an observer that runs right after
    the chunk was written to the client (``DeltaClock``); the page-side time by a
    MutationObserver in the page, independent of the dashboard's code, when the row's text
    reaches the delta's end. Both are the same machine's wall clock (time.time, Date.now).

    The page writes no text to a row off screen (it catches the row up when it scrolls in or
    ends): background requests arriving above push the probe's rows down, and on a slow
    machine the oldest one left a 900 px viewport before its stream ended, its last deltas
    then "late" by the time to its end. The viewport is tall enough for every row here, and a
    delta first shown while its row was off screen is not counted as a token's latency.
    """
    page.set_viewport_size({"width": 1400, "height": 2400})
    open_page(page, live_stack, "/live")
    # Steady state, as on a page left open: the page has loaded, and the proxies' snapshots and
    # the first history are in (page-load work is not token-to-screen latency).
    page.wait_for_load_state("load")
    expect(page.locator(".tt-row.tt-row-stored").first).to_be_attached(timeout=15_000)  # the history is in
    assert page.evaluate("typeof window.Plotly") == "undefined", "the Live page should not load Plotly"
    page.evaluate(PROBE)
    page.evaluate(STALLS_PROBE)
    loop_lags: list[tuple[float, float]] = []
    watching = live_stack.loop.submit(watch_loop(loop_lags))
    try:  # the watch ends with this test, failed or not (the stack serves the whole package)
        prompts = [unique_prompt(f"Latency probe {i}: describe a streaming proxy.") for i in range(3)]
        started = [live_stack.stream("production", p, tps=20, ttft_ms=400, tokens=80) for p in prompts]
        results = [done.result(30) for _, done in started]
        assert all(r.text for r in results)
        ids = [r.request_id for r in results]
        ends = {rid: sum(utf16_len(t) for t, _ in live_stack.clock.deltas[rid]) for rid in ids}

        def all_text_on_screen():
            probe = page.evaluate("window.__ttProbe")
            shown = {rid: max((n for i, n, *_ in probe if i == rid), default=-1) for rid in ids}
            return probe if all(shown[rid] >= ends[rid] for rid in ids) else None

        probe = wait_until(all_text_on_screen, timeout=10, step=0.1, what="every delta in the DOM")
    finally:
        watching.cancel()

    latencies, frames, timeline = [], [], []
    off_screen = 0
    for rid in ids:
        seen = sorted((t, n, f, on) for i, n, t, f, on in probe if i == rid)
        assert seen and seen[0][1] == 0, "the probe did not see the row before its first token"
        # The live feed's streaming redaction holds a trailing word back until the next word
        # boundary (a secret could still grow from it; see proxy/_redact_stream.py): a delta's
        # text can reach the page only once a later delta brings whitespace after it, or at the
        # end. Its latency is measured from that moment.
        deltas = live_stack.clock.deltas[rid]
        releasable = _release_times(deltas)
        cum = 0
        for (text, _relayed), relayed in zip(deltas, releasable):
            cum += utf16_len(text)
            hit = next(((t, f, on) for t, n, f, on in seen if n >= cum), None)
            assert hit is not None, f"delta ending at {cum} never reached the DOM of {rid}"
            if not hit[2]:
                off_screen += 1
                continue
            latencies.append(hit[0] - relayed * 1000.0)
            if hit[1] is not None:
                frames.append(hit[1] - relayed * 1000.0)
            timeline.append((relayed, hit[0] - relayed * 1000.0, rid[:6]))
    t0 = min(t for t, _, _ in timeline)
    worst = sorted(timeline, key=lambda x: -x[1])[:8]
    # Where the time went: the proxies' loop (this process) late, the page's main thread late.
    stalls = {
        "proxies' loop": [(round(t - t0, 3), ms) for t, ms in loop_lags if t >= t0 - 1],
        **{
            what: [(round(t / 1000 - t0, 3), ms) for t, ms in page.evaluate(f"window.{name}") if t / 1000 >= t0 - 1]
            for what, name in (("page", "__ttStalls"), ("page's long tasks", "__ttLongTasks"))
        },
    }
    print(
        "\nslowest deltas (s after first, ms, request):", [(round(t - t0, 3), round(lat, 1), r) for t, lat, r in worst]
    )
    print("stalls over 25 ms (s after first, ms):", stalls)
    latencies.sort()
    frames.sort()
    p50, p99 = quantile(latencies, 0.5), quantile(latencies, 0.99)
    report = {
        "what": "token-to-screen latency: the proxy relays a chunk -> its text is in the page's DOM",
        "deltas": len(latencies),
        "deltas_first_shown_off_screen": off_screen,
        "streams": len(ids),
        "tokens_per_second_each": 20,
        "background_traffic_rps": 2.0,
        "p50_ms": round(p50, 2),
        "p99_ms": round(p99, 2),
        "max_ms": round(latencies[-1], 2),
        "min_ms": round(latencies[0], 2),
        "next_frame_p50_ms": round(quantile(frames, 0.5), 2) if frames else None,
        "next_frame_p99_ms": round(quantile(frames, 0.99), 2) if frames else None,
        "browser": "headless Chromium (Debian)",
        "clocks": "Date.now() in the page (1 ms resolution) vs time.time() in the proxy",
    }
    print(
        f"\ntoken-to-screen: {len(latencies)} deltas, p50 {p50:.1f} ms, p99 {p99:.1f} ms, "
        f"max {latencies[-1]:.1f} ms; to the next frame p50 {report['next_frame_p50_ms']} ms, "
        f"p99 {report['next_frame_p99_ms']} ms; {off_screen} first shown off screen (not counted)"
    )
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    (SCREENSHOTS / "token-to-screen.json").write_text(json.dumps(report, indent=2) + "\n")
    assert len(latencies) >= 200
    assert latencies[0] > -5, "page time before relay time: clocks disagree"
    assert p99 <= 100, f"token-to-screen p99 {p99:.1f} ms is over the 100 ms target; stalls: {stalls}"


def _release_times(deltas: list[tuple[str, float]]) -> list[float]:
    """For each delta, when all of its text may be released by the live feed's streaming
    redactor: the relay time of the first delta after which the redactor (the proxy's own,
    default rules) has let that much text out; else the last delta's (the stream's end
    flushes the rest). It holds a trailing word, and longer what could still grow into a
    secret (a card's digit groups, ``Bearer `` before its token)."""
    from tokentail.proxy.redact import Redactor

    stream = Redactor().stream()
    marks, released = [], 0
    for text, relayed in deltas:
        released += utf16_len(stream.feed(text))
        marks.append((released, relayed))
    out, cum = [], 0
    for text, _ in deltas:
        cum += utf16_len(text)
        out.append(next((t for n, t in marks if n >= cum), deltas[-1][1]))
    return out


def test_live_page_screenshot(live_stack, page):
    open_page(page, live_stack, "/live")
    prompts = [
        "Summarise this incident report for the on-call channel.",
        "Draft a friendly reply to a customer asking about rate limits.",
        "Which of these log lines explain the latency spike?",
    ]
    live_stack.stream("production", prompts[0], tps=8, ttft_ms=150, tokens=60, model="sim-gpt-4o")
    live_stack.stream("canary", prompts[1], tps=8, ttft_ms=150, tokens=60, model="sim-gpt-4o-mini")
    live_stack.stream("production", prompts[2], tps=8, ttft_ms=5000, tokens=40, model="sim-llama-3-8b")
    for p in prompts[:2]:
        expect(page.locator(".tt-row", has_text=p).locator(".tt-row-text")).to_have_text(
            re.compile(r"\w+ \w+ \w+ \w+ \w+ \w+"), timeout=5_000
        )
    waiting = page.locator(".tt-row", has_text=prompts[2])
    expect(waiting.locator(".tt-status")).to_have_text("waiting")
    expect(waiting.locator(".tt-row-completion")).to_have_attribute("data-placeholder", "waiting for the first token…")
    expect(page.locator('.tt-row[data-status="ok"]')).not_to_have_count(0)
    page.screenshot(path=str(SCREENSHOTS / "live.png"))
    assert page.page_errors == []


def x_width(page, graph_id: str) -> float:
    """Milliseconds the chart's x axis spans, once Plotly has laid out the chart now in the page.
    Read in the same script that finds it laid out: a refresh can replace the chart between two."""
    width = (
        "id => { const gd = document.querySelector('#' + id + ' .js-plotly-plot');"
        " const r = gd && gd.layout && gd.layout.xaxis && gd.layout.xaxis.range;"
        " return Array.isArray(r) ? new Date(r[1]) - new Date(r[0]) : null; }"
    )
    return page.wait_for_function(width, arg=graph_id, timeout=10_000).json_value()


def test_overview_charts_two_variants_and_range_picker(live_stack, page):
    # Its own traffic through both variants: the test must not depend on the tests before it.
    for variant in ("production", "canary"):
        live_stack.stream(variant, unique_prompt(f"Overview traffic via {variant}."), tps=200, tokens=8)[1].result(10)
    open_page(page, live_stack, "/")
    for variant in ("production", "canary"):
        expect(page.locator(f'.tt-variant-card[data-variant="{variant}"] .tt-variant-sub')).to_have_text(
            re.compile(r"^[1-9][\d,]* requests$"), timeout=15_000
        )
        expect(page.locator(f'.tt-variant-card[data-variant="{variant}"] [data-metric="latency_p95_ms"]')).to_have_text(
            re.compile(r"^[\d.,]+ (ms|s)$")
        )
    expect(page.locator("#ov-status [data-resolution]")).to_have_attribute("data-resolution", "5s")
    page.locator("#ov-range label", has_text=re.compile(r"^5m$")).click()
    expect(page.locator("#ov-status")).to_contain_text("step 5 s", timeout=10_000)
    traces = {t["name"]: t["n"] for t in plot_traces(page, "ov-chart-requests")}
    assert traces.get("production", 0) > 0 and traces.get("canary", 0) > 0, traces
    latency = {t["name"] for t in plot_traces(page, "ov-chart-latency")}
    assert {"production p50", "production p95", "canary p99"} <= latency
    expect(page.locator('.tt-table tr[data-model="sim-gpt-4o"]')).to_have_count(1)
    page.screenshot(path=str(SCREENSHOTS / "overview.png"), full_page=True)

    assert x_width(page, "ov-chart-requests") <= 5 * 60_000 + 10_000
    page.locator("#ov-range label", has_text="24h").click()
    expect(page.locator("#ov-status [data-resolution]")).to_have_attribute("data-resolution", "1m", timeout=10_000)
    expect(page.locator("#ov-status")).to_contain_text("step 10 min")
    assert x_width(page, "ov-chart-requests") >= 23 * 3600_000
    assert page.page_errors == []


def test_banner_tells_an_unreachable_proxy_from_one_that_refuses_the_origin(live_stack, browser, tmp_path):
    from tests.helpers.stack import Proc, free_port

    port, gone = free_port(), free_port()
    # The canary proxy allows the main dashboard's origin only: from this one it refuses.
    other = Proc(
        "dashboard-2",
        [
            "dashboard",
            "--port",
            str(port),
            "--proxy",
            f"strict={live_stack.url('canary')}",
            "--proxy",
            f"gone=http://127.0.0.1:{gone}",
        ],
        port,
        tmp_path / "dashboard-2.log",
    )
    other.start()
    context = browser.new_context()
    try:
        other.wait()
        page = context.new_page()
        page.goto(f"http://127.0.0.1:{port}/live")
        strict = page.locator('#tt-banner .tt-banner-item[data-source="proxy:strict"]')
        expect(strict).to_contain_text(
            f"refused this page's feed: start it with --allowed-origin http://127.0.0.1:{port}", timeout=10_000
        )
        expect(page.locator('#tt-banner .tt-banner-item[data-source="proxy:gone"]')).to_contain_text(
            f"Proxy gone at http://127.0.0.1:{gone} is unreachable", timeout=10_000
        )
        expect(page.locator("#tt-live-empty")).to_contain_text("No requests yet")
        expect(page.locator("#page-overview")).to_be_hidden()
    finally:
        context.close()
        other.stop()


def test_collector_down_banner_then_recovery(live_stack, page):
    open_page(page, live_stack, "/")
    expect(page.locator("#ov-status [data-resolution]")).to_have_count(1, timeout=10_000)
    banner = page.locator('#tt-banner .tt-banner-item[data-source="collector"]')
    expect(banner).to_have_count(0)

    live_stack.collector.stop()
    try:
        expect(banner).to_be_visible(timeout=10_000)
        expect(banner).to_contain_text("Collector")
        expect(page.locator('#tt-sources [data-source="collector"]')).to_have_attribute("data-state", "down")

        # The page still works: the Overview keeps its charts and says why they stand still...
        # (a range other than the one shown, so the click always asks the collector again)
        page.locator("#ov-range label", has_text=re.compile(r"^1h$")).click()
        expect(page.locator("#ov-status")).to_contain_text("Could not load metrics", timeout=10_000)
        assert any(t["n"] for t in plot_traces(page, "ov-chart-requests"))
        # ...and the Live page goes on streaming.
        page.locator("#nav-live").click()
        prompt = unique_prompt("Still there without the collector?")
        _, done = live_stack.stream("production", prompt, tps=40, ttft_ms=50, tokens=12)
        row = page.locator(".tt-row", has_text=prompt)
        expect(row).to_have_attribute("data-status", "ok", timeout=10_000)
        assert row_text(row) == done.result(10).text

    finally:  # the stack is shared: never leave the collector down for the tests after this one
        live_stack.collector.start()
        live_stack.collector.wait()
    expect(banner).to_have_count(0, timeout=20_000)
    expect(page.locator('#tt-sources [data-source="collector"]')).to_have_attribute("data-state", "open")
    page.locator("#nav-overview").click()
    expect(page.locator("#ov-status [data-resolution]")).to_have_count(1, timeout=10_000)
    assert "Traceback" not in page.content()
    assert page.page_errors == []
