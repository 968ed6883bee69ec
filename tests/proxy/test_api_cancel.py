"""Cancelling an in-flight request from the API: the client gets a clean end, the upstream
connection closes, the record says an operator cancelled it; and who may do it."""

from __future__ import annotations

import asyncio
import json

import aiohttp
import openai
import pytest

from tests.helpers import until
from tests.helpers.proxies import start_proxy, start_sim
from tokentail.proxy.state import INFLIGHT

SLOW = {"x-sim-tps": "10", "x-sim-tokens": "200"}  # a 20 s stream
CHAT = {"model": "sim-gpt-4o", "stream": True, "messages": [{"role": "user", "content": "a long story"}]}


@pytest.fixture
async def sim():
    server = await start_sim()
    yield server
    await server.close()


async def _stats(sim) -> dict:
    async with aiohttp.ClientSession() as s:
        async with s.get(sim.make_url("/_sim/stats")) as r:
            return await r.json()


async def test_cancel_a_streaming_request_ends_it_cleanly_and_closes_the_upstream(sim):
    proxy = await start_proxy(str(sim.make_url("/v1")))
    try:
        async with aiohttp.ClientSession() as s:
            async with s.post(proxy.url("/v1/chat/completions"), json=CHAT, headers=SLOW) as r:
                rid = r.headers["x-tokentail-request-id"]
                received = b""
                while b'"content"' not in received:
                    received += await r.content.readany()
                async with s.post(proxy.url(f"/api/requests/{rid}/cancel")) as c:
                    assert c.status == 200 and await c.json() == {"id": rid, "cancelled": True}
                rest = await asyncio.wait_for(r.content.read(), 3)  # the stream ends, no reset
            tail = rest.decode().strip().split("\n\n")[-1]
            assert json.loads(tail.removeprefix("data: "))["error"]["code"] == "cancelled_by_operator"
            assert b"[DONE]" not in received + rest
            await until(lambda: _eq(_stats(sim), "client_disconnects", 1))  # the upstream saw us leave

            async with s.get(proxy.url(f"/api/requests/{rid}")) as d:
                detail = await d.json()
            assert detail["status"] == "cancelled" and detail["error"] == "cancelled_by_operator"
            assert "operator" in detail["error_message"] and detail["text"]  # partial output kept
            async with s.post(proxy.url(f"/api/requests/{rid}/cancel")) as again:
                assert again.status == 409 and (await again.json())["status"] == "cancelled"
            async with s.post(proxy.url("/api/requests/no-such-id/cancel")) as unknown:
                assert unknown.status == 404 and "error" in await unknown.json()
        metrics = proxy.metrics()
        assert (
            'tokentail_requests_total{endpoint="/chat/completions",model="sim-gpt-4o",status_class="cancelled"'
            in metrics
        )
        assert 'tokentail_upstream_errors_total{reason="disconnect"} 0.0' in metrics
        span = proxy.spans()[0]
        assert span.attributes["tokentail.status"] == "cancelled" and span.attributes["tokentail.cancelled"] is True
        assert "error.type" not in span.attributes
        assert proxy.app[INFLIGHT] == {}  # the registry forgets finished requests
    finally:
        await proxy.close()


async def test_cancel_before_the_first_byte_gives_a_503_the_sdk_does_not_retry(sim):
    proxy = await start_proxy(str(sim.make_url("/v1")))
    try:
        client = openai.AsyncOpenAI(base_url=proxy.url("/v1"), api_key="sk-x", max_retries=2)

        async def cancel_when_in_flight():
            async with aiohttp.ClientSession() as s:
                rows: list = []

                async def in_flight() -> list:
                    async with s.get(proxy.url("/api/requests"), params={"status": "in_flight"}) as r:
                        rows[:] = (await r.json())["requests"]
                    return rows

                await until(in_flight, timeout=10)
                async with s.post(proxy.url(f"/api/requests/{rows[0]['id']}/cancel")) as c:
                    assert c.status == 200

        canceller = asyncio.create_task(cancel_when_in_flight())
        with pytest.raises(openai.APIStatusError) as exc:
            await client.chat.completions.create(
                model="sim-gpt-4o", messages=CHAT["messages"], extra_headers={"x-sim-ttft-ms": "10000"}
            )
        await canceller
        assert exc.value.status_code == 503
        assert exc.value.response.headers["x-should-retry"] == "false"
        assert exc.value.body["code"] == "cancelled_by_operator"
        await until(lambda: _eq(_stats(sim), "client_disconnects", 1))
        assert (await _stats(sim))["requests"] == 1  # not retried
        await client.close()
    finally:
        await proxy.close()


async def test_with_an_admin_token_cancel_needs_it_even_on_loopback(sim):
    proxy = await start_proxy(str(sim.make_url("/v1")), admin_token="adm-tok-123")
    try:
        async with aiohttp.ClientSession() as s:
            async with s.post(proxy.url("/v1/chat/completions"), json=CHAT, headers=SLOW) as r:
                rid = r.headers["x-tokentail-request-id"]
                await r.content.readany()
                url = proxy.url(f"/api/requests/{rid}/cancel")
                for headers in ({}, {"Authorization": "Bearer wrong"}):
                    async with s.post(url, headers=headers) as c:
                        assert c.status == 401 and (await c.json())["error"]["code"] == "unauthorized"
                async with s.post(proxy.url("/api/routes/reload")) as c:
                    assert c.status == 401
                async with s.get(proxy.url(f"/api/requests/{rid}")) as d:  # reads on loopback stay open
                    assert d.status == 200 and (await d.json())["status"] == "in_flight"
                async with s.post(url, headers={"Authorization": "Bearer adm-tok-123"}) as c:
                    assert c.status == 200
                await asyncio.wait_for(r.content.read(), 3)
    finally:
        await proxy.close()


async def test_without_an_admin_token_only_loopback_peers_may_cancel(sim):
    proxy = await start_proxy(str(sim.make_url("/v1")), remote="192.0.2.10")  # every caller looks remote
    try:
        async with aiohttp.ClientSession() as s:
            async with s.post(proxy.url("/v1/chat/completions"), json=CHAT, headers=SLOW) as r:
                assert r.status == 200  # proxied traffic is never gated by our tokens
                rid = r.headers["x-tokentail-request-id"]
                await r.content.readany()
                async with s.post(proxy.url(f"/api/requests/{rid}/cancel")) as c:
                    body = await c.json()
                    assert c.status == 403 and "TOKENTAIL_ADMIN_TOKEN" in body["error"]["message"]
                async with s.post(proxy.url("/api/routes/reload")) as c:
                    assert c.status == 403
                async with s.get(proxy.url(f"/api/requests/{rid}")) as d:
                    assert (await d.json())["status"] == "in_flight"  # still running
    finally:
        await proxy.close()


async def _eq(coro, key, value) -> bool:
    return (await coro)[key] == value
