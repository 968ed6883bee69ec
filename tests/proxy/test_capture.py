"""Capture modes end to end: the real openai SDK through the proxy to a scripted upstream; the
prompt and completion markers reach no sink below ``full`` (live ring and its replay, raw view,
spans), metrics still count, and a request can lower its level but never raise it."""

from __future__ import annotations

import asyncio
import json
import uuid

import aiohttp
import openai
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.helpers import serve
from tests.helpers.proxies import start_proxy
from tests.helpers.upstreams import scripted_sse, sse_script
from tokentail.proxy.attribution import Fingerprinter
from tokentail.proxy.state import HUB

KEY = "sk-test-capture-0123456789abcdef"
FP_SECRET = "capture-test-secret"


@pytest.fixture
async def upstream():
    marker = "C" + uuid.uuid4().hex
    chunks = sse_script("text", [f"answer {marker} ", "and the rest."])
    app, probe = scripted_sse(chunks)
    server = await serve(app)
    yield str(server.make_url("/v1")), probe, marker
    await server.close()


def _chat(base_url: str, prompt: str, headers: dict | None = None, key: str = KEY) -> str:
    client = openai.OpenAI(base_url=base_url, api_key=key, max_retries=0, default_headers=headers or {})
    text = ""
    stream = client.chat.completions.create(
        model="m", messages=[{"role": "user", "content": prompt}], stream=True, temperature=0.5, stop=[prompt]
    )
    for chunk in stream:
        for c in chunk.choices:
            text += c.delta.content or ""
    return text


def _requests_total(proxy) -> float:
    for fam in text_string_to_metric_families(proxy.metrics()):
        if fam.name == "tokentail_requests":
            return sum(s.value for s in fam.samples if s.name == "tokentail_requests_total")
    return 0.0


async def _sinks(proxy) -> str:
    """Everything the proxy would show or export about its requests, as one text."""
    hub = proxy.app[HUB]
    sub = hub.subscribe(None)  # the snapshot a new live subscriber gets
    backlog = []
    while (item := sub.get_nowait()) is not None:
        backlog.append(item)
    hub.unsubscribe(sub)
    listed = hub.list_requests(limit=100)
    details = [hub.get_request(r["id"]) for r in listed]
    raws = []
    async with aiohttp.ClientSession() as s:
        for r in listed:
            async with s.get(proxy.url(f"/api/requests/{r['id']}/raw")) as resp:
                raws.append(await resp.text())
    spans = [
        json.dumps({**dict(sp.attributes), "events": [dict(e.attributes or {}) for e in sp.events]}, default=str)
        for sp in proxy.spans()
    ]
    return json.dumps([backlog, listed, details, raws, spans], default=str)


async def _run(proxy, prompt, **kw):
    return await asyncio.to_thread(_chat, proxy.url("/v1"), prompt, **kw)


async def test_full_capture_is_the_control(upstream):
    url, _probe, marker = upstream
    proxy = await start_proxy(url)
    try:
        prompt = "P" + uuid.uuid4().hex
        text = await _run(proxy, prompt)
        assert marker in text
        seen = await _sinks(proxy)
        assert prompt in seen and marker in seen  # the sinks do hold content in full mode
    finally:
        await proxy.close()


async def test_metadata_mode_keeps_numbers_and_no_text(upstream):
    url, _probe, marker = upstream
    proxy = await start_proxy(url, capture="metadata")
    try:
        prompt = "P" + uuid.uuid4().hex
        text = await _run(proxy, prompt)
        assert marker in text  # the client gets everything
        seen = await _sinks(proxy)
        assert prompt not in seen and marker not in seen
        row = proxy.app[HUB].list_requests()[0]
        assert row["status"] == "ok" and row["ttft_ms"] is not None and row["latency_ms"] is not None
        assert row["usage"]["input_tokens"] and row["usage"]["output_tokens"]  # sizes: estimated or reported
        detail = proxy.app[HUB].get_request(row["id"])
        assert detail["capture"] == "metadata" and detail["params"] == {"temperature": 0.5}
        assert not detail["truncated"]
        (span,) = proxy.spans()
        assert span.attributes["gen_ai.usage.output_tokens"] > 0 and span.attributes["tokentail.ttft_ms"] > 0
        assert _requests_total(proxy) == 1
    finally:
        await proxy.close()


async def test_none_mode_forwards_and_counts_only(upstream):
    url, probe, marker = upstream
    proxy = await start_proxy(url)
    try:
        prompt = "P" + uuid.uuid4().hex
        text = await _run(proxy, prompt, headers={"X-Tokentail-Capture": "none"})
        assert marker in text
        assert proxy.app[HUB].list_requests() == [] and proxy.spans() == []
        assert prompt not in await _sinks(proxy)
        assert _requests_total(proxy) == 1
        assert "x-tokentail-capture" not in {k.lower() for k in probe.requests[0]["headers"]}
    finally:
        await proxy.close()


@pytest.mark.parametrize("asked", ["full", "FULL", "everything", ""])
async def test_a_request_cannot_raise_its_level(upstream, asked):
    url, probe, marker = upstream
    proxy = await start_proxy(url, capture="metadata")
    try:
        prompt = "P" + uuid.uuid4().hex
        await _run(proxy, prompt, headers={"X-Tokentail-Capture": asked})
        seen = await _sinks(proxy)
        assert prompt not in seen and marker not in seen
        assert proxy.app[HUB].list_requests()[0]["id"]  # metadata: still listed
        assert all("x-tokentail-capture" not in {k.lower() for k in r["headers"]} for r in probe.requests)
    finally:
        await proxy.close()


async def test_per_key_and_per_route_levels(upstream):
    url, _probe, marker = upstream
    fp = Fingerprinter(FP_SECRET).fingerprint({"Authorization": f"Bearer {KEY}"})
    routes = [{"name": "quiet", "match": "m", "upstream": url, "capture": "metadata"}]
    by_key = await start_proxy(url, fingerprint_key=FP_SECRET, capture_key=[(fp, "none")])
    by_route = await start_proxy(url, routes=routes)
    try:
        prompt = "P" + uuid.uuid4().hex
        await _run(by_key, prompt)
        assert by_key.app[HUB].list_requests() == [] and by_key.spans() == []
        other = "P" + uuid.uuid4().hex
        await _run(by_key, other, key="sk-another-key-0123456789")  # another key: full
        assert other in await _sinks(by_key)
        await _run(by_route, prompt)
        seen = await _sinks(by_route)
        assert prompt not in seen and marker not in seen
        assert by_route.app[HUB].list_requests()[0]["route"] == "quiet"
    finally:
        await by_key.close()
        await by_route.close()


def test_capture_options_resolve_and_refuse_clearly():
    from tokentail.proxy import command
    from tokentail.settings import SettingsError, resolve

    env = {"TOKENTAIL_PROXY_CAPTURE": "Metadata", "TOKENTAIL_PROXY_CAPTURE_KEY": "abc123=none,DEF456=metadata"}
    s = resolve("proxy", command.OPTIONS, {"upstream": "http://u.test/v1"}, env=env, file_config={})
    assert s["capture"] == "metadata" and s["capture_key"] == [("abc123", "none"), ("def456", "metadata")]
    with pytest.raises(SettingsError, match=r"--capture .*'all' is not a capture mode"):
        resolve("proxy", command.OPTIONS, {"upstream": "http://u.test/v1", "capture": "all"}, env={}, file_config={})
    with pytest.raises(SettingsError, match="expected FINGERPRINT=MODE"):
        resolve("proxy", command.OPTIONS, {"upstream": "http://u.test/v1", "capture_key": ["nothex=none"]}, env={})
