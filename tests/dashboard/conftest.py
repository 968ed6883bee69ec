"""Fixtures of the browser tests: the stack and headless Chromium, once for all browser tests."""

from __future__ import annotations

import shutil

import pytest

from tests.helpers import require
from tests.helpers.browser import CHROMIUM_ARGS


@pytest.fixture(scope="package")
def chromium_path() -> str:
    path = shutil.which("chromium")
    require("TOKENTAIL_REQUIRE_BROWSER", "chromium (Debian's package)", path is not None)
    return path  # type: ignore[return-value]


@pytest.fixture(scope="package")
def browser(chromium_path):
    from playwright.sync_api import sync_playwright

    # Playwright gives every launch a fresh temporary profile; it never downloads a browser here.
    with sync_playwright() as pw:
        b = pw.chromium.launch(executable_path=chromium_path, args=CHROMIUM_ARGS)
        try:
            yield b
        finally:
            b.close()


@pytest.fixture(scope="package")
def live_stack(chromium_path, tmp_path_factory):
    """Simulator, two proxies, collector and dashboard (not the ``stack`` of tests/conftest.py)."""
    from tests.helpers.stack import Stack

    s = Stack(tmp_path_factory.mktemp("stack"))
    try:
        s.start()
        yield s
    finally:
        s.stop()


@pytest.fixture
def page(browser, live_stack):
    context = browser.new_context(viewport={"width": 1400, "height": 900}, device_scale_factor=1)
    pg = context.new_page()
    pg.page_errors = []  # uncaught exceptions in the page: none is ever expected
    pg.on("pageerror", lambda exc: pg.page_errors.append(str(exc)))
    try:
        yield pg
    finally:
        context.close()
