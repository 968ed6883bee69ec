"""Upstream health and rate-limit headroom: gauges from a scripted upstream's headers through
the real proxy, passive health that flips on connect errors and back, the sliding window."""

from __future__ import annotations

import json
import socket

import aiohttp
import pytest
from aiohttp.test_utils import TestServer
from prometheus_client import CollectorRegistry

from tests.helpers.proxies import start_proxy
from tests.helpers.upstreams import scripted_sse
from tokentail.proxy.record import ERR_CONNECT, RequestRecord
from tokentail.proxy.upstream_health import HealthWindow, UpstreamHealth

CHAT = {"model": "m", "stream": True, "messages": [{"role": "user", "content": "hi"}]}
DONE = [b'data: {"choices":[{"delta":{"content":"hi"}}]}\n\n', b"data: [DONE]\n\n"]
LIMITS = {
    "x-ratelimit-limit-requests": "500",
    "x-ratelimit-remaining-requests": "40",
    "x-ratelimit-reset-requests": "1m26.4s",
    "x-ratelimit-limit-tokens": "200000",
    "x-ratelimit-remaining-tokens": "150000",
    "x-ratelimit-reset-tokens": "6m0s",
}


def sample(registry: CollectorRegistry, name: str, **labels: str) -> float | None:
    return registry.get_sample_value(name, labels)


async def _post(proxy, model: str = "m") -> int:
    async with aiohttp.ClientSession() as s:
        async with s.post(proxy.url("/v1/chat/completions"), json={**CHAT, "model": model}) as r:
            await r.read()
            return r.status


async def test_ratelimit_gauges_from_upstream_headers():
    app, _ = scripted_sse(DONE, headers=LIMITS)
    up = TestServer(app, host="127.0.0.1")
    await up.start_server()
    proxy = await start_proxy(str(up.make_url("/v1")))
    try:
        assert await _post(proxy) == 200
        host = "127.0.0.1"
        reg = proxy.registry
        assert sample(reg, "tokentail_upstream_ratelimit_limit", route=host, kind="requests") == 500
        assert sample(reg, "tokentail_upstream_ratelimit_remaining", route=host, kind="requests") == 40
        assert sample(reg, "tokentail_upstream_ratelimit_headroom_ratio", route=host, kind="requests") == 0.08
        assert sample(reg, "tokentail_upstream_ratelimit_headroom_ratio", route=host, kind="tokens") == 0.75
        assert sample(reg, "tokentail_upstream_ratelimit_reset_seconds", route=host, kind="tokens") == 360
        assert sample(reg, "tokentail_upstream_up", route=host) == 1
        async with aiohttp.ClientSession() as s:
            async with s.get(proxy.url("/api/upstreams")) as r:
                body = await r.json()
        (row,) = body["upstreams"]
        assert row["route"] == host and row["upstream_host"] == host and row["up"] is True
        assert row["ratelimit"]["kinds"]["requests"]["headroom"] == 0.08
    finally:
        await proxy.close()
        await up.close()


async def test_ratelimit_per_route_and_retry_after_on_429():
    app, _ = scripted_sse(
        [b'{"error":{"message":"slow down"}}'],
        status=429,
        content_type="application/json",
        headers={"retry-after": "20", "x-ratelimit-limit-requests": "3", "x-ratelimit-remaining-requests": "0"},
    )
    up = TestServer(app, host="127.0.0.1")
    await up.start_server()
    routes = [{"name": "cheap", "prefix": "cheap-", "upstream": str(up.make_url("/v1")), "model": "m2"}]
    proxy = await start_proxy("http://127.0.0.1:9/v1", routes=routes)
    try:
        assert await _post(proxy, "cheap-1") == 429
        reg = proxy.registry
        assert sample(reg, "tokentail_upstream_retry_after_seconds", route="cheap") == 20
        assert sample(reg, "tokentail_upstream_ratelimit_headroom_ratio", route="cheap", kind="requests") == 0
        assert sample(reg, "tokentail_upstream_up", route="cheap") == 1  # a 429 is not the upstream failing
    finally:
        await proxy.close()
        await up.close()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


async def test_passive_health_flips_on_connect_errors_and_back():
    port = _free_port()
    proxy = await start_proxy(f"http://127.0.0.1:{port}/v1")
    up = None
    try:
        for _ in range(2):
            assert await _post(proxy) == 502
        assert sample(proxy.registry, "tokentail_upstream_up", route="127.0.0.1") == 1  # two are not enough
        assert await _post(proxy) == 502
        assert sample(proxy.registry, "tokentail_upstream_up", route="127.0.0.1") == 0
        async with aiohttp.ClientSession() as s:
            async with s.get(proxy.url("/api/upstreams")) as r:
                (row,) = (await r.json())["upstreams"]
        assert row["up"] is False and "cannot connect" in row["last_error"] and row["last_error_at"] > 0
        app, _ = scripted_sse(DONE)
        up = TestServer(app, host="127.0.0.1", port=port)
        await up.start_server()
        assert await _post(proxy) == 200
        assert sample(proxy.registry, "tokentail_upstream_up", route="127.0.0.1") == 1
    finally:
        await proxy.close()
        if up is not None:
            await up.close()


async def test_5xx_counts_as_a_failure_and_a_cancel_does_not():
    app, _ = scripted_sse([b'{"error":{"message":"boom"}}'], status=503, content_type="application/json")
    up = TestServer(app, host="127.0.0.1")
    await up.start_server()
    proxy = await start_proxy(str(up.make_url("/v1")))
    try:
        for _ in range(3):
            assert await _post(proxy) == 503
        assert sample(proxy.registry, "tokentail_upstream_up", route="127.0.0.1") == 0
    finally:
        await proxy.close()
        await up.close()


def test_window_forgets_old_failures():
    h = HealthWindow(window=60.0, failures=3)
    for t in (0.0, 1.0, 2.0):
        h.add(t, "connect")
    assert not h.up(3.0)
    assert h.up(100.0)  # old failures say nothing now
    h.add(101.0, None)
    assert h.up(101.0) and h.last_error == "connect" and h.last_error_at == 2.0 and h.last_ok_at == 101.0


def test_up_gauge_follows_each_route_on_its_own():
    # The gauge's child per route is kept between requests: each route still gets its own.
    reg, now = CollectorRegistry(), [1000.0]
    health = UpstreamHealth(reg, "up.example", clock=lambda: now[0])
    health.see("cheap", "cheap.example")
    for _ in range(3):
        health.record("cheap", "connect")
    assert sample(reg, "tokentail_upstream_up", route="cheap") == 0
    assert sample(reg, "tokentail_upstream_up", route="up.example") == 1
    health.record("up.example", "timeout")
    health.record("cheap", None)
    assert sample(reg, "tokentail_upstream_up", route="cheap") == 1
    for _ in range(2):
        health.record("up.example", "timeout")
    assert sample(reg, "tokentail_upstream_up", route="up.example") == 0
    assert sample(reg, "tokentail_upstream_up", route="cheap") == 1
    health.record("new-route", "connect")  # a label not seen before is made on the way
    assert sample(reg, "tokentail_upstream_up", route="new-route") == 1


def test_observer_gives_no_verdict_for_cancels_and_refusals():
    now = [1000.0]
    health = UpstreamHealth(CollectorRegistry(), "up.example", clock=lambda: now[0])
    rec = RequestRecord(id="1", variant="v", method="POST", endpoint="/chat/completions")
    rec.status, rec.http_status = "cancelled", None
    for _ in range(5):
        health.on_end(rec)
    rec2 = RequestRecord(id="2", variant="v", method="POST", endpoint="/chat/completions")
    rec2.status, rec2.error, rec2.error_message = "error", ERR_CONNECT, "cannot connect"
    health.on_end(rec2)
    (row,) = health.snapshot()
    assert row["up"] is True and row["last_error"] == "cannot connect" and row["last_error_at"] == 1000.0
    assert json.dumps(row)  # JSON-ready


async def test_routes_are_listed_before_their_traffic_without_secrets():
    routes = [{"name": "paid", "match": "big", "upstream": "https://api.example.com/v1", "api_key_env": "K"}]
    proxy = await start_proxy("http://127.0.0.1:9/v1", routes=routes, env={"K": "sk-secret-value-123456"})
    try:
        async with aiohttp.ClientSession() as s:
            async with s.get(proxy.url("/api/upstreams")) as r:
                text = await r.text()
        assert "sk-secret-value-123456" not in text
        rows = {row["route"]: row for row in json.loads(text)["upstreams"]}
        assert rows["paid"]["upstream_host"] == "api.example.com" and rows["paid"]["up"] is True
    finally:
        await proxy.close()


@pytest.mark.prometheus
def test_exposition_passes_promtool():
    from prometheus_client import generate_latest

    from tests.helpers.prom import promtool_check

    registry = CollectorRegistry()
    health = UpstreamHealth(registry, "api.openai.com")
    rec = RequestRecord(id="1", variant="v", method="POST", endpoint="/chat/completions")
    health.on_response(
        rec, {"x-ratelimit-limit-requests": "10", "x-ratelimit-remaining-requests": "3", "retry-after": "2"}
    )
    exposition = generate_latest(registry)
    assert b'tokentail_upstream_ratelimit_headroom_ratio{kind="requests",route="api.openai.com"} 0.3' in exposition
    result = promtool_check(exposition)
    assert result.returncode == 0, result.stdout + result.stderr
