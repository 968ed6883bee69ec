"""The access policy's aiohttp adapter on the real proxy: Host, Origin, Sec-Fetch-Site and
content type are enforced on /api/*, and a refused state change changes nothing."""

from __future__ import annotations

import asyncio

import aiohttp
import pytest

SLOW = {"x-sim-tps": "20", "x-sim-tokens": "200"}  # a 10 s stream, cancelled or left to run
CHAT = {"model": "sim-gpt-4o", "stream": True, "messages": [{"role": "user", "content": "a long story"}]}
EVIL = "attacker.example:8787"


async def _status(s: aiohttp.ClientSession, method: str, url: str, **kw) -> tuple[int, dict]:
    async with s.request(method, url, **kw) as r:
        body = await r.json(content_type=None) if r.content_type == "application/json" else {}
        return r.status, body


@pytest.mark.parametrize("path", ["/api/requests", "/api/live", "/api/routes"])
async def test_reads_answer_only_allowed_host_names(stack, path):
    async with aiohttp.ClientSession() as s:
        status, body = await _status(s, "GET", stack.url(path), headers={"Host": EVIL})
        assert status == 421 and body["error"]["code"] == "misdirected_request"
        status, _ = await _status(s, "GET", stack.url("/api/requests"), headers={"Host": "localhost:1234"})
        assert status == 200


async def test_proxied_traffic_health_and_metrics_answer_any_host(stack):
    async with aiohttp.ClientSession() as s:
        body = {**CHAT, "stream": False}
        async with s.post(stack.url("/v1/chat/completions"), json=body, headers={"Host": EVIL}) as r:
            assert r.status == 200 and (await r.json())["choices"]
        for path in ("/healthz", "/metrics"):
            async with s.get(stack.url(path), headers={"Host": "prometheus-scrapes-by-ip-or-name"}) as r:
                assert r.status == 200


@pytest.mark.parametrize(
    "headers, expected",
    [
        ({"Host": EVIL}, 421),
        ({"Origin": "https://evil.example"}, 403),
        ({"Sec-Fetch-Site": "cross-site"}, 403),
        ({"Content-Type": "text/plain"}, 415),
        ({"Content-Type": "application/x-www-form-urlencoded"}, 415),
    ],
)
async def test_a_refused_cancel_does_not_cancel_the_stream(stack, headers, expected):
    data = b"{}" if "Content-Type" in headers else None
    async with aiohttp.ClientSession() as s:
        async with s.post(stack.url("/v1/chat/completions"), json=CHAT, headers=SLOW) as r:
            rid = r.headers["x-tokentail-request-id"]
            received = b""
            while b'"content"' not in received:
                received += await r.content.readany()
            status, body = await _status(
                s, "POST", stack.url(f"/api/requests/{rid}/cancel"), data=data, headers=headers
            )
            assert status == expected and "error" in body
            # Still streaming: more content arrives, and the record is in flight.
            more = await asyncio.wait_for(r.content.readany(), 5)
            assert more
            _, detail = await _status(s, "GET", stack.url(f"/api/requests/{rid}"))
            assert detail["status"] == "in_flight"
            # The same request, from this server's own origin and as JSON, is honoured.
            own = {"Origin": str(stack.proxy.make_url("")).rstrip("/"), "Sec-Fetch-Site": "same-origin"}
            status, body = await _status(s, "POST", stack.url(f"/api/requests/{rid}/cancel"), json={}, headers=own)
            assert status == 200 and body == {"id": rid, "cancelled": True}


async def test_route_reload_wants_json_and_this_origin(stack):
    async with aiohttp.ClientSession() as s:
        url = stack.url("/api/routes/reload")
        assert (await _status(s, "POST", url, data=b"x", headers={"Content-Type": "text/plain"}))[0] == 415
        assert (await _status(s, "POST", url, json={}, headers={"Origin": "http://127.0.0.2:8050"}))[0] == 403
        assert (await _status(s, "POST", url, json={}, headers={"Host": EVIL}))[0] == 421


@pytest.fixture
def proxy_overrides() -> dict:
    return {"allowed_host": ["proxy-production"], "allowed_origin": ["http://dash.example:8050"]}


async def test_allowed_host_and_listed_origin(stack):
    async with aiohttp.ClientSession() as s:
        status, _ = await _status(s, "GET", stack.url("/api/requests"), headers={"Host": "proxy-production:8787"})
        assert status == 200
        origin = {"Origin": "http://dash.example:8050"}
        async with s.get(stack.url("/api/requests"), headers=origin) as r:
            assert r.headers["Access-Control-Allow-Origin"] == "http://dash.example:8050"
        async with s.get(stack.url("/api/requests"), headers={"Origin": "http://evil.example"}) as r:
            assert "Access-Control-Allow-Origin" not in r.headers
        status, _ = await _status(s, "POST", stack.url("/api/requests/none/cancel"), json={}, headers=origin)
        assert status == 404  # past the policy: the request is simply unknown
