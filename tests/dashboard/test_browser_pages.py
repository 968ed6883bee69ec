"""Cancel, runs, sessions and the playground in headless Chromium against the real stack.

No background traffic here: a run holds exactly the requests these tests send.
"""

from __future__ import annotations

import re
import time
import uuid

import pytest
from playwright.sync_api import expect

from tests.helpers.browser import SCREENSHOTS, SECRET, open_page, pick_option, row_text, unique_prompt
from tokentail.dashboard.figures import color_for

pytestmark = [pytest.mark.browser, pytest.mark.slow]


def test_cancel_from_the_live_page_stops_the_upstream_stream(live_stack, page):
    before = live_stack.get_json("sim", "/_sim/stats")["client_disconnects"]
    open_page(page, live_stack, "/live")
    prompt = unique_prompt("Stream slowly so that someone can cancel me.")
    _stream, done = live_stack.stream("production", prompt, tps=4, ttft_ms=100, tokens=200)
    row = page.locator(".tt-row", has_text=prompt)
    expect(row.locator(".tt-row-text")).not_to_have_text("", timeout=5_000)
    assert not done.done()
    cancel = row.locator(".tt-cancel")
    expect(cancel).to_be_visible()
    cancel.click()

    s = done.result(10)  # the client's stream ends...
    assert s.done_at is not None and len(s.text.split()) < 150, "the stream ran to its end"
    expect(row).to_have_attribute("data-status", "cancelled", timeout=5_000)  # ...the row says so...
    expect(cancel).to_be_hidden()
    expect(row.locator(".tt-status")).to_have_text("cancelled")
    # ...and the simulator saw its client (the proxy) go away mid-stream.
    live_stack.wait_json("sim", "/_sim/stats", lambda b: b["client_disconnects"] >= before + 1, timeout=5)
    assert row_text(row) and s.text.startswith(row_text(row)[:20])

    # The request page has the same button while it streams.
    prompt = unique_prompt("Cancel me from my own page.")
    _, done = live_stack.stream("canary", prompt, tps=4, ttft_ms=100, tokens=200)
    row = page.locator(".tt-row", has_text=prompt)
    expect(row.locator(".tt-row-text")).not_to_have_text("", timeout=5_000)
    row.locator(".tt-row-prompt").click()
    page.locator("#detail-cancel").click()
    done.result(10)
    expect(page.locator("#detail-status")).to_have_text("cancelled", timeout=5_000)
    expect(page.locator("#detail-cancel")).to_have_count(0)
    assert page.page_errors == []


def _start_run(page, name: str) -> str:
    page.locator("#runs-name").fill(name)
    page.locator("#runs-start").click()
    row = page.locator("#runs-list tr", has_text=name)
    expect(row).to_have_attribute("data-status", "active", timeout=5_000)
    return row.get_attribute("data-run")


def _end_run(page, live_stack, run_id: str, requests: int) -> None:
    # The proxies export spans in batches: the run's requests are stored a moment after they end.
    live_stack.wait_json("collector", f"/api/runs/{run_id}", lambda b: b["stats"]["requests"] >= requests, timeout=10)
    row = page.locator(f'#runs-list tr[data-run="{run_id}"]')
    row.locator('[data-action="end"]').click()
    expect(row).to_have_attribute("data-status", "ended", timeout=5_000)


def test_runs_record_stats_what_if_and_compare(live_stack, page):
    open_page(page, live_stack, "/runs", sources=("collector",))
    tag = uuid.uuid4().hex[:6]
    a = _start_run(page, f"baseline {tag}")
    row = page.locator(f'#runs-list tr[data-run="{a}"]')
    row.locator('[data-action="pause"]').click()
    expect(row).to_have_attribute("data-status", "paused", timeout=5_000)
    page.locator("#runs-start").click()  # one run records at a time: the collector's 409, shown
    expect(page.locator("#tt-toast")).to_contain_text("is paused: end it before starting another")
    row.locator('[data-action="resume"]').click()
    expect(row).to_have_attribute("data-status", "active", timeout=5_000)
    streams = [
        live_stack.stream("production", unique_prompt("Run A, request 1."), tps=200, tokens=20),
        live_stack.stream("production", unique_prompt("Run A, request 2."), tps=200, tokens=30),
        live_stack.stream("canary", unique_prompt("Run A, no price."), model="sim-llama-3-8b", tps=200, tokens=10),
    ]
    for _, done in streams:
        done.result(10)
    _end_run(page, live_stack, a, 3)
    b = _start_run(page, f"candidate {tag}")
    live_stack.stream("production", unique_prompt("Run B."), model="sim-gpt-4o-mini", tps=200, tokens=40)[1].result(10)
    _end_run(page, live_stack, b, 1)

    page.locator(f'#runs-list tr[data-run="{a}"] a').first.click()
    expect(page).to_have_url(re.compile(rf"/runs/{a}$"))
    expect(page.locator('[data-stat="requests"]')).to_have_text("3", timeout=5_000)
    expect(page.locator('[data-stat="tokens"]')).to_contain_text("→ 60")
    cost = page.locator('[data-stat="cost"]')
    expect(cost).to_have_text(re.compile(r"^\$[\d.]+$"))  # the priced requests' cost, never $0 for the rest
    expect(cost.locator("xpath=..")).to_contain_text("+ 1 request without a price")
    expect(page.locator('#run-by-model tr[data-model="sim-gpt-4o"] td').nth(1)).to_have_text("2")
    expect(page.locator('#run-by-model tr[data-model="sim-llama-3-8b"] td').nth(5)).to_have_text("unknown")
    pick_option(page, "#run-whatif-model", "sim-claude")
    expect(page.locator("#run-whatif b")).to_have_text(re.compile(r"^\$[\d.]+$"), timeout=5_000)
    expect(page.locator("#run-whatif")).to_contain_text("At sim-claude")
    page.locator("#tt-toast").evaluate(
        "t => { t.style.transition = 'none'; t.className = 'tt-toast'; }"
    )  # not pictured
    page.screenshot(path=str(SCREENSHOTS / "runs.png"), full_page=True)

    page.goto(f"{live_stack.origin}/runs/compare?a={a}&b={b}")
    requests = page.locator('#compare-table tr[data-metric="requests"] td')
    expect(requests.nth(1)).to_have_text("3", timeout=15_000)  # a full page load, on a loaded machine
    expect(requests.nth(2)).to_have_text("1")
    expect(requests.nth(3)).to_have_text("-66.7 %")
    assert SECRET not in page.content()
    assert page.page_errors == []


def _sdk_stream(live_stack, variant: str, prompt: str, tags: str | None = None, user: str | None = None) -> str:
    """One streamed chat through a proxy with the real openai SDK; the request id the proxy gave it."""
    import openai

    client = openai.OpenAI(base_url=live_stack.url(variant, "/v1"), api_key=SECRET, max_retries=0, timeout=10)
    headers = {"x-sim-tps": "200", "x-sim-tokens": "10"} | ({"X-Tokentail-Tags": tags} if tags else {})
    extra = {"user": user} if user else {}
    with client.chat.completions.with_streaming_response.create(
        model="sim-gpt-4o",
        messages=[{"role": "user", "content": prompt}],
        stream=True,
        extra_headers=headers,
        **extra,
    ) as resp:
        rid = resp.headers["x-tokentail-request-id"]
        text = "".join(c.choices[0].delta.content or "" for c in resp.parse() if c.choices)
    assert text, "the stream carried no text"
    return rid


def test_a_run_scoped_from_the_ui_holds_only_the_matching_requests(live_stack, page):
    open_page(page, live_stack, "/runs", sources=("collector",))
    tag = "exp-" + uuid.uuid4().hex[:6]
    page.locator("#runs-scope summary").click()
    page.locator("#runs-scope-tags").fill(f" {tag} ")
    page.locator("#runs-scope-variant").fill("canary")
    run = _start_run(page, f"scoped {tag}")
    expect(page.locator(f'#runs-list tr[data-run="{run}"] .tt-run-scope')).to_have_text(
        f"Scope: tag #{tag} · variant canary"
    )
    expect(page.locator("#runs-scope-tags")).to_have_value("")  # the form is cleared for the next run

    inside = [_sdk_stream(live_stack, "canary", unique_prompt(f"In scope {i}."), tags=f"{tag}, other") for i in (1, 2)]
    outside = [
        _sdk_stream(live_stack, "production", unique_prompt("Right tag, wrong variant."), tags=tag),
        _sdk_stream(live_stack, "canary", unique_prompt("Right variant, no tag.")),
        _sdk_stream(live_stack, "canary", unique_prompt("Another tag."), tags="exp-not-this-one"),
    ]
    # Every request is stored (the out-of-scope ones too) before the run is judged.
    for rid in inside + outside:
        live_stack.wait_json("collector", f"/api/spans/{rid}", lambda b: b is not None, timeout=10)
    _end_run(page, live_stack, run, 2)

    page.locator(f'#runs-list tr[data-run="{run}"] a').first.click()
    expect(page).to_have_url(re.compile(rf"/runs/{run}$"))
    expect(page.locator('[data-stat="requests"]')).to_have_text("2", timeout=5_000)
    expect(page.locator("#run-body .tt-run-scope")).to_have_attribute("data-scope", "scoped")
    listed = page.locator("#run-requests tr[data-id]")
    expect(listed).to_have_count(2, timeout=5_000)
    # The page re-renders on its refresh tick: ask per row (retried), not one snapshot of the table.
    for rid in inside:
        expect(page.locator(f'#run-requests tr[data-id="{rid}"]')).to_have_count(1)
    # The page's refresh tick does not empty the list before refilling it (a flicker users saw).
    page.evaluate(
        """() => { window.ttEmptied = 0;
        new MutationObserver(() => {
            if (!document.querySelector('#run-requests tr[data-id]')) window.ttEmptied++;
        }).observe(document.body, {childList: true, subtree: true}); }"""
    )
    with page.expect_response(
        lambda r: "_dash-update-component" in r.url and "run-requests.children" in (r.request.post_data or ""),
        timeout=15_000,
    ):
        pass
    page.wait_for_timeout(300)
    assert page.evaluate("window.ttEmptied") == 0
    listed.first.locator("a").first.click()  # each linked to its detail
    expect(page).to_have_url(re.compile(r"/request/(" + "|".join(inside) + ")$"))
    assert page.page_errors == []


def test_an_unscoped_run_says_it_includes_all_traffic(live_stack, page):
    open_page(page, live_stack, "/runs", sources=("collector",))
    run = _start_run(page, f"everything {uuid.uuid4().hex[:6]}")
    expect(page.locator(f'#runs-list tr[data-run="{run}"] .tt-run-scope')).to_have_text(
        "Unscoped: includes all traffic"
    )
    rid = _sdk_stream(live_stack, "production", unique_prompt("Any request counts."))
    live_stack.wait_json("collector", f"/api/spans/{rid}", lambda b: b is not None, timeout=10)
    _end_run(page, live_stack, run, 1)
    assert page.page_errors == []


def test_sessions_list_filters_and_turns_in_order(live_stack, page):
    user, tag = f"user-{uuid.uuid4().hex[:6]}", f"tag-{uuid.uuid4().hex[:6]}"
    first = unique_prompt("What is a ring buffer?")
    s1 = live_stack.stream(
        "production", first, tps=200, tokens=12, body={"user": user}, headers={"X-Tokentail-Tags": tag}
    )[1].result(10)
    second = unique_prompt("And how does it bound memory?")
    history = [{"role": "user", "content": first}, {"role": "assistant", "content": s1.text}]
    s2 = live_stack.stream(
        "production",
        second,
        tps=200,
        tokens=12,
        body={"user": user},
        history=history,
        headers={"X-Tokentail-Tags": tag},
    )[1].result(10)
    sid = live_stack.wait_json("collector", f"/api/spans?user={user}&messages=false", lambda b: len(b["spans"]) == 2)[
        "spans"
    ][0]["session_id"]
    assert sid

    open_page(page, live_stack, "/sessions", sources=("collector",))
    pick_option(page, "#sessions-user", user)
    page.keyboard.press("Escape")
    rows = page.locator("#sessions-list tr[data-session]")
    expect(rows).to_have_count(1, timeout=5_000)
    expect(rows.first).to_have_attribute("data-session", sid)
    expect(rows.first.locator("td").nth(3)).to_have_text("2")
    # The list is static HTML after a filter (sessions_page.as_markup): chips keep their colour,
    # and its link opens the session in the app, without a reload.
    chip = rows.first.locator(".tt-chip").first
    model = chip.inner_text()
    assert chip.evaluate("e => getComputedStyle(e).getPropertyValue('--chip').trim()") == color_for("model", model)
    page.evaluate("window.__stayed = true")
    rows.first.locator("a").click()
    expect(page).to_have_url(re.compile(r"/sessions/"))
    assert page.evaluate("window.__stayed === true"), "the session link reloaded the page"

    turns = page.locator("#session-turns .tt-turn")
    expect(turns).to_have_count(2, timeout=5_000)
    expect(turns.nth(0).locator(".tt-msg-user")).to_contain_text(first)
    expect(turns.nth(1).locator(".tt-msg-user")).to_contain_text(second)
    expect(turns.nth(1).locator(".tt-msg-assistant")).to_contain_text(s2.text[:30])
    expect(turns.nth(0).locator(".tt-row-stats")).to_contain_text("$")  # sim-gpt-4o has a price

    # A third turn streams into the page from the live feed, then takes its place as stored.
    third = unique_prompt("One more, slowly.")
    history += [{"role": "user", "content": second}, {"role": "assistant", "content": s2.text}]
    _, done = live_stack.stream(
        "production",
        third,
        tps=10,
        ttft_ms=100,
        tokens=20,
        body={"user": user},
        history=history,
        headers={"X-Tokentail-Tags": tag},
    )
    live = page.locator("#tt-session-live .tt-turn", has_text=third)
    expect(live).to_have_attribute("data-status", "in_flight", timeout=5_000)
    expect(live.locator(".tt-msg-assistant .tt-text")).to_have_text(re.compile(r"\w+ \w+ \w+"), timeout=5_000)
    page.screenshot(path=str(SCREENSHOTS / "sessions.png"), full_page=True)
    done.result(10)
    expect(turns).to_have_count(3, timeout=10_000)
    expect(turns.nth(2).locator(".tt-msg-user")).to_contain_text(third)
    expect(page.locator("#tt-session-live .tt-turn")).to_have_count(0)

    # The Live page filters by the same tag.
    page.locator("#nav-live").click()
    # The page's model has the tag (the feed's request.start carries it), then its filter
    # offers it: each step says what it saw when it fails (CI saw the option missing twice).
    held = page.evaluate(
        "([p, tag]) => [...window.tokentail.rows.values()].filter(r => r.prompt.includes(p))"
        ".map(r => ({tags: r.tags, live: r.live, stored: r.stored, session: r.session === null ? null : 'set'}))",
        [third, tag],
    )
    assert any(tag in r["tags"] for r in held), f"the Live page's row of the third turn: {held}"
    pick_option(page, "#live-tag", tag)
    page.keyboard.press("Escape")
    expect(page.locator(".tt-row")).to_have_count(3)
    expect(page.locator(".tt-row").first.locator(".tt-row-attrs")).to_contain_text(f"#{tag}")
    assert page.page_errors == []


def test_playground_streams_through_the_proxy_and_shows_in_live(live_stack, page):
    open_page(page, live_stack, "/playground")
    message = unique_prompt("Say something from the playground.")
    page.locator("#play-model").fill("sim-gpt-4o")
    page.locator("#play-message").fill(message)
    page.locator("#play-send").click()
    text = page.locator("#tt-play-text")
    expect(text).not_to_have_text("", timeout=5_000)
    lengths = []
    for _ in range(10):
        lengths.append(len(text.inner_text()))
        time.sleep(0.05)  # sampling the text while it streams
    expect(page.locator("#tt-play-status")).to_contain_text("ok", timeout=10_000)
    rid = text.get_attribute("data-id")
    assert rid and page.locator("#tt-play-link").get_attribute("href") == f"/request/{rid}"
    page.locator("#nav-live").click()
    row = page.locator(f'.tt-row[data-id="{rid}"]')
    expect(row).to_have_attribute("data-status", "ok")
    expect(row.locator(".tt-row-prompt")).to_have_text(message)
    expect(row.locator(".tt-row-attrs")).to_contain_text("#playground")
    assert row_text(row) == text.inner_text() and len(set(lengths)) >= 1
    assert page.page_errors == []


def test_a_tag_chip_on_a_request_opens_the_sessions_filtered_by_it(live_stack, page):
    tag = f"chip-{uuid.uuid4().hex[:6]}"
    done = live_stack.stream(
        "production", unique_prompt("Tagged."), tps=200, tokens=8, headers={"X-Tokentail-Tags": tag}
    )[1].result(10)
    rid = done.request_id
    live_stack.wait_json("collector", f"/api/spans/{rid}", lambda b: b is not None, timeout=10)
    open_page(page, live_stack, f"/request/{rid}", sources=("collector",))
    page.locator("#detail-body a.tt-attr", has_text=tag).click()  # a link in the page: no reload
    expect(page).to_have_url(re.compile(rf"/sessions\?tag={tag}$"))
    expect(page.locator("#sessions-tag")).to_contain_text(tag, timeout=15_000)  # the filter shows what it holds
    rows = page.locator("#sessions-list tr[data-session]")
    expect(rows).to_have_count(1, timeout=5_000)  # only the tagged session, not every session
    assert page.page_errors == []


# Set before any page script runs: what the document held when its HTML was parsed.
FIRST_VIEW_PROBE = """
document.addEventListener('DOMContentLoaded', () => {
  const f = document.getElementById('tt-first');
  window.__first = f && {
    rows: [...f.querySelectorAll('tr[data-session]')].map(r => r.dataset.session),
    ids: f.querySelectorAll('[id]').length,
    covers: getComputedStyle(f).position === 'fixed' && f.getBoundingClientRect().height === innerHeight,
    app: !!document.getElementById('sessions-list'),
  };
});
"""


def test_the_sessions_page_paints_from_its_html_then_the_app_takes_over_keeping_a_links_filter(live_stack, page):
    user = f"user-{uuid.uuid4().hex[:6]}"
    live_stack.stream("production", unique_prompt("First paint."), tps=200, tokens=8, body={"user": user})[1].result(10)
    sid = live_stack.wait_json("collector", f"/api/spans?user={user}&messages=false", lambda b: len(b["spans"]) == 1)[
        "spans"
    ][0]["session_id"]
    page.add_init_script(FIRST_VIEW_PROBE)
    open_page(page, live_stack, f"/sessions?user={user}", sources=("collector",))
    # The rows were in the HTML, over the app, before Dash had drawn anything; no id twice.
    assert page.evaluate("() => window.__first") == {"rows": [sid], "ids": 0, "covers": True, "app": False}
    expect(page.locator("#tt-first")).to_have_count(0, timeout=15_000)  # handed over
    rows = page.locator("#sessions-list tr[data-session]")
    expect(rows).to_have_count(1, timeout=5_000)
    expect(rows.first).to_have_attribute("data-session", sid)
    expect(page.locator("#sessions-user")).to_contain_text(user)
    # Past a refresh tick the link's filter still holds (Dash's dropdown dropped a value set
    # before its options arrived, and the list then showed every session).
    time.sleep(5)
    expect(page.locator("#sessions-user")).to_contain_text(user)
    expect(rows).to_have_count(1)
    rows.first.locator("a").click()  # the app's link: no reload
    expect(page.locator("#session-turns .tt-turn")).to_have_count(1, timeout=5_000)
    assert page.page_errors == []


def test_the_requests_page_paints_from_its_html_then_the_app_takes_over(live_stack, page):
    done = live_stack.stream("production", unique_prompt("Requests first paint."), tps=200, tokens=8)[1].result(10)
    rid = done.request_id
    live_stack.wait_json("collector", f"/api/spans/{rid}", lambda b: b is not None, timeout=10)
    page.add_init_script(
        """document.addEventListener('DOMContentLoaded', () => {
          const f = document.getElementById('tt-first');
          window.__first = f && {page: f.dataset.page, ids: f.querySelectorAll('[id]').length,
            rows: [...f.querySelectorAll('tr[data-id]')].map(r => r.dataset.id),
            table: f.querySelector('table') && f.querySelector('table').getBoundingClientRect().top};
        });"""
    )
    open_page(page, live_stack, "/requests", sources=("collector",))
    first = page.evaluate("() => window.__first")
    assert first["page"] == "requests" and first["ids"] == 0 and rid in first["rows"]
    expect(page.locator("#tt-first")).to_have_count(0, timeout=15_000)
    expect(page.locator(f'#req-list tr[data-id="{rid}"]')).to_have_count(1, timeout=5_000)
    # The app draws the table where the first view had it: no jump at the handover.
    top = page.evaluate("() => document.querySelector('#req-list table').getBoundingClientRect().top")
    assert abs(top - first["table"]) <= 4, (top, first["table"])
    page.locator("#req-status").click()  # the app's controls work
    page.locator(".dash-dropdown-option", has_text="Error").click()
    expect(page.locator(f'#req-list tr[data-id="{rid}"]')).to_have_count(0, timeout=5_000)
    assert page.page_errors == []
