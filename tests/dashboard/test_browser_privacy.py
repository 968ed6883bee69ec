"""The Erase content button in headless Chromium against the real stack: a session's page
erases its turns on the collector and the proxies, usage and cost stay."""

from __future__ import annotations

import uuid

import pytest
from playwright.sync_api import expect

from tests.helpers.browser import open_page, unique_prompt

pytestmark = [pytest.mark.browser, pytest.mark.slow]


def test_erase_content_from_the_session_page(live_stack, page):
    sid = f"sess-erase-{uuid.uuid4().hex[:8]}"
    prompt = unique_prompt("Please forget this conversation.")
    live_stack.stream("production", prompt, tps=200, tokens=12, headers={"X-Session-Id": sid})[1].result(10)
    live_stack.wait_json("collector", f"/api/spans?session={sid}", lambda b: len(b["spans"]) == 1)
    open_page(page, live_stack, f"/sessions/{sid}", sources=("collector",))
    expect(page.locator("main")).to_contain_text(prompt.split("]")[0], timeout=10_000)  # the control
    page.on("dialog", lambda d: d.accept())  # "Erase ... ? This cannot be undone."
    page.locator("#session-erase").click()
    body = live_stack.wait_json(
        "collector", f"/api/spans?session={sid}", lambda b: b["spans"][0]["content_erased_at"] is not None
    )
    span = body["spans"][0]
    assert span["input_messages"] is None and span["output_tokens"] > 0 and span["latency_ms"] is not None
    live = live_stack.wait_json(  # the proxies are asked after the collector
        "production", f"/api/requests?session={sid}", lambda b: b["requests"][0]["prompt_preview"] == ""
    )["requests"]
    assert live[0]["usage"]["output_tokens"] > 0 and live[0]["cost_usd"] is not None
    page.wait_for_load_state()
    expect(page.locator("main")).not_to_contain_text(prompt.split("]")[0], timeout=10_000)
    assert page.page_errors == []
