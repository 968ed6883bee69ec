"""scrape.py and config.py: fetching targets that behave and misbehave; target syntax."""

from __future__ import annotations

import logging

import aiohttp
import pytest

from tests.helpers.fakes import FakeProxy, closed_port_url
from tokentail.collector.config import parse_target
from tokentail.collector.scrape import TargetHealth, fetch


@pytest.fixture
async def proxy():
    p = await FakeProxy().start()
    yield p
    await p.stop()


@pytest.fixture
async def session():
    async with aiohttp.ClientSession() as s:
        yield s


async def test_fetch_ok(proxy, session):
    proxy.metrics.request()
    res = await fetch(session, parse_target(proxy.url), timeout=2, max_bytes=1 << 20)
    assert res.error is None and "tokentail_requests_total" in res.text and res.size == len(res.text)
    assert not res.openmetrics and res.duration > 0


@pytest.mark.parametrize(
    "mode, error",
    [
        ("500", "HTTP 500"),
        ("hang", "timeout after 0.3s"),
        ("huge", "exceeds the 1048576-byte cap"),
    ],
)
async def test_fetch_failures_are_results_not_exceptions(proxy, session, mode, error):
    proxy.mode = mode
    res = await fetch(session, parse_target(proxy.url), timeout=0.3 if mode == "hang" else 5, max_bytes=1 << 20)
    assert res.text is None and error in res.error


async def test_connection_refused(session):
    res = await fetch(session, parse_target(closed_port_url()), timeout=1, max_bytes=1000)
    assert res.error.startswith("connection failed")


def test_health_logs_once_per_state_change(caplog):
    h = TargetHealth(parse_target("http://127.0.0.1:1/metrics?token=s3cret"))
    with caplog.at_level(logging.INFO, logger="tokentail.collector.scrape"):
        assert h.update(1.0, None) is True
        assert h.update(2.0, None) is False
        assert h.update(3.0, "HTTP 500") is True
        assert h.update(4.0, "HTTP 500") is False
        assert h.update(5.0, "timeout after 2s") is True  # a new reason is a new state
        assert h.update(6.0, None) is True
    msgs = [r.getMessage() for r in caplog.records]
    assert len(msgs) == 4 and "DOWN: HTTP 500" in msgs[1] and "up again" in msgs[3]
    assert "s3cret" not in caplog.text
    assert h.as_dict()["since"] == 6.0 and h.as_dict()["consecutive_failures"] == 0
