"""The upstreams in the browser: the request detail's raw stream shows the relayed events (the
usage chunk tokentail injected marked), the Overview lists the upstreams with their health."""

from __future__ import annotations

import re
import uuid

import pytest
from playwright.sync_api import expect

pytestmark = [pytest.mark.browser, pytest.mark.slow]


def test_raw_stream_card_shows_the_relayed_events(live_stack, page):
    prompt = f"[{uuid.uuid4().hex[:10]}] Say something short."
    _stream, done = live_stack.stream("production", prompt, tps=50, ttft_ms=10, tokens=6)
    s = done.result(20)
    page.goto(live_stack.origin + f"/request/{s.request_id}")
    events = page.locator("#tt-raw-events .tt-raw-event")
    expect(events.first).to_be_visible(timeout=10_000)
    n = events.count()
    assert n >= 7  # six tokens, the usage chunk, [DONE]
    expect(events.last).to_contain_text("data: [DONE]")
    injected = page.locator('#tt-raw-events .tt-raw-event[data-injected="1"]')
    expect(injected).to_have_count(1)
    expect(injected).to_contain_text("injected by tokentail")
    times = [float(re.sub(r"[^\d.]", "", t)) for t in events.locator("td:first-child").all_inner_texts()]
    assert times == sorted(times), times
    assert page.page_errors == []


def test_overview_lists_the_upstreams(live_stack, page):
    page.goto(live_stack.origin + "/")
    rows = page.locator("#ov-upstreams tr[data-route]")
    expect(rows.first).to_be_visible(timeout=20_000)
    expect(page.locator('#ov-upstreams tr[data-up="1"]').first).to_be_visible()
    assert page.page_errors == []
