"""POST /api/erase on the proxy: a session erased while one of its requests is still streaming,
a finished request erased from the live ring, its replay log and the raw views; numbers and
metrics unchanged; the admin rule, Host, Origin and content type."""

from __future__ import annotations

import asyncio
import json
import uuid

import aiohttp
import openai
import pytest

from tests.helpers import serve, until
from tests.helpers.proxies import start_proxy
from tests.helpers.upstreams import scripted_sse, sse_script
from tokentail.proxy.state import HUB, INFLIGHT

KEY = "sk-test-erase-0123456789abcdef"


@pytest.fixture
async def slow_upstream():
    """Streams ``marker`` in ten pieces, 0.15 s apart."""
    marker = "E" + uuid.uuid4().hex
    app, _probe = scripted_sse(sse_script("text", [f"{marker}-{i} " for i in range(10)]), delay=0.15)
    server = await serve(app)
    yield str(server.make_url("/v1")), marker
    await server.close()


@pytest.fixture
async def fast_upstream():
    marker = "F" + uuid.uuid4().hex
    app, _probe = scripted_sse(sse_script("text", [f"{marker} done"]))
    server = await serve(app)
    yield str(server.make_url("/v1")), marker
    await server.close()


def _chat(base_url: str, prompt: str, session: str) -> str:
    client = openai.OpenAI(base_url=base_url, api_key=KEY, max_retries=0, default_headers={"X-Session-Id": session})
    text = ""
    for chunk in client.chat.completions.create(
        model="m", messages=[{"role": "user", "content": prompt}], stream=True, stream_options={"include_usage": True}
    ):
        for c in chunk.choices:
            text += c.delta.content or ""
    return text


async def _everything(proxy) -> str:
    """What any reader of the proxy can get: list, details, raw views, a fresh snapshot, the
    replay log from the first event, spans."""
    hub = proxy.app[HUB]
    out: list = [hub.list_requests(limit=100)]
    for r in out[0]:
        out.append(hub.get_request(r["id"]))
    async with aiohttp.ClientSession() as s:
        for r in out[0]:
            async with s.get(proxy.url(f"/api/requests/{r['id']}/raw")) as resp:
                out.append(await resp.text())
    for last in (None, f"{hub.boot_id}:0"):  # a snapshot, and a replay of the whole log
        sub = hub.subscribe(last)
        while (item := sub.get_nowait()) is not None:
            out.append(item)
        hub.unsubscribe(sub)
    out += [{**dict(sp.attributes), "ev": [dict(e.attributes or {}) for e in sp.events]} for sp in proxy.spans()]
    return json.dumps(out, default=str)


async def _erase(proxy, body, headers=None):
    async with aiohttp.ClientSession() as s:
        async with s.post(proxy.url("/api/erase"), data=body, headers=headers or {}) as r:
            return r.status, (await r.json() if r.content_type == "application/json" else await r.text())


async def test_erase_a_session_while_a_request_of_it_streams(slow_upstream):
    url, marker = slow_upstream
    proxy = await start_proxy(url)
    try:
        prompt = "P" + uuid.uuid4().hex
        done = asyncio.create_task(asyncio.to_thread(_chat, proxy.url("/v1"), prompt, "sess-x"))
        hub = proxy.app[HUB]
        await until(
            lambda: any(marker in (hub.get_request(r["id"]) or {}).get("text", "") for r in hub.list_requests())
        )
        assert proxy.app[INFLIGHT]  # still streaming
        status, body = await _erase(proxy, json.dumps({"session": "sess-x"}), {"Content-Type": "application/json"})
        assert status == 200 and body["erased"]["live"] == 1 and body["erased"]["in_flight"] == 1
        text = await done
        assert text.count(marker) == 10  # the client got everything
        seen = await _everything(proxy)
        assert marker not in seen and prompt not in seen
        row = hub.list_requests()[0]
        assert row["status"] == "ok" and row["usage"]["output_tokens"] and row["latency_ms"]
        (span,) = proxy.spans()
        assert span.attributes["gen_ai.usage.output_tokens"] > 0
    finally:
        await proxy.close()


async def test_erase_a_finished_request_keeps_its_numbers_and_metrics(fast_upstream):
    url, _marker = fast_upstream
    proxy = await start_proxy(url)
    try:
        keep = "K" + uuid.uuid4().hex
        gone = "G" + uuid.uuid4().hex
        await asyncio.to_thread(_chat, proxy.url("/v1"), keep, "s-keep")
        await asyncio.to_thread(_chat, proxy.url("/v1"), gone, "s-gone")
        hub = proxy.app[HUB]
        rid = next(r["id"] for r in hub.list_requests() if r["session_id"] == "s-gone")
        before = await _everything(proxy)
        assert gone in before and keep in before  # the control
        rows_before = {r["id"]: (r["usage"], r["cost_usd"], r["latency_ms"]) for r in hub.list_requests()}
        metrics_before = proxy.metrics()
        await asyncio.sleep(0.1)  # let the raw store redact its queue
        status, body = await _erase(proxy, json.dumps({"request": rid}), {"Content-Type": "application/json"})
        assert status == 200 and body["erased"] == {"live": 1, "in_flight": 0, "raw": 1}
        assert body["request_ids"] == [rid]
        after = await _everything(proxy)
        assert keep in after
        proxy.exporter.clear()  # the span was exported before the erase: the collector erases its copy
        assert gone not in await _everything(proxy)
        assert {r["id"]: (r["usage"], r["cost_usd"], r["latency_ms"]) for r in hub.list_requests()} == rows_before
        assert proxy.metrics() == metrics_before
        async with aiohttp.ClientSession() as s:
            async with s.get(proxy.url(f"/api/requests/{rid}/raw")) as r:
                assert r.status == 404
        assert hub.get_request(rid)["content_erased"] is True
    finally:
        await proxy.close()


@pytest.mark.parametrize(
    "body, param",
    [("{}", "body"), ("[]", "body"), ('{"who": 1}', "who"), ('{"user": ""}', "user"), ("{", "body")],
)
async def test_bad_selectors_are_400(fast_upstream, body, param):
    proxy = await start_proxy(fast_upstream[0])
    try:
        status, out = await _erase(proxy, body, {"Content-Type": "application/json"})
        assert status == 400 and out["error"]["param"] == param
    finally:
        await proxy.close()


@pytest.mark.parametrize(
    "headers, expected",
    [
        ({"Host": "attacker.example:8787"}, 421),
        ({"Origin": "https://evil.example"}, 403),
        ({"Sec-Fetch-Site": "cross-site"}, 403),
        ({"Content-Type": "text/plain"}, 415),
    ],
)
async def test_a_refused_erase_erases_nothing(fast_upstream, headers, expected):
    url, marker = fast_upstream
    proxy = await start_proxy(url)
    try:
        await asyncio.to_thread(_chat, proxy.url("/v1"), "hello", "s1")
        status, _ = await _erase(proxy, '{"session": "s1"}', {"Content-Type": "application/json", **headers})
        assert status == expected
        assert marker in await _everything(proxy)
    finally:
        await proxy.close()


async def test_the_admin_rule(fast_upstream):
    url, _ = fast_upstream
    with_token = await start_proxy(url, admin_token="adm-tok-123")
    remote = await start_proxy(url, remote="192.0.2.10")
    try:
        j = {"Content-Type": "application/json"}
        assert (await _erase(with_token, '{"session": "s"}', j))[0] == 401
        status, body = await _erase(with_token, '{"session": "s"}', {**j, "Authorization": "Bearer adm-tok-123"})
        assert status == 200 and body["erased"]["live"] == 0
        assert (await _erase(remote, '{"session": "s"}', j))[0] == 403  # no token set: loopback only
    finally:
        await with_token.close()
        await remote.close()
