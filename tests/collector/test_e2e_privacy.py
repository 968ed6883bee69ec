"""End to end: simulator -> real proxy -> OTLP -> collector. A metadata-mode request's text
never reaches DuckDB; a session erased (``tokentail erase``'s fan-out) while its spans are
still in the exporter's queue is stored without content, on the proxy and in the file."""

from __future__ import annotations

import asyncio
import uuid

import aiohttp
from aiohttp.test_utils import TestServer
from prometheus_client import CollectorRegistry

from tests.helpers import until
from tests.helpers.fakes import make_config
from tests.helpers.proxies import proxy_settings
from tokentail.collector.app import create_app
from tokentail.erase_cmd import fan_out
from tokentail.proxy import telemetry
from tokentail.proxy.app import app_from_settings as create_proxy
from tokentail.proxy.state import HUB


async def _span(client, rid: str) -> dict:
    found: list[dict] = []

    async def stored() -> bool:
        spans = (await (await client.get("/api/spans?limit=1000")).json())["spans"]
        found[:] = [sp for sp in spans if sp["request_id"] == rid]
        return bool(found)

    await until(stored, timeout=10, step=0.05, what=f"span {rid} in the collector")
    return found[0]


async def _chat(proxy: TestServer, prompt: str, **headers: str) -> str:
    body = {"model": "sim-gpt-4o", "stream": True, "messages": [{"role": "user", "content": prompt}]}
    async with aiohttp.ClientSession() as s:
        async with s.post(str(proxy.make_url("/v1/chat/completions")), json=body, headers=headers) as r:
            assert r.status == 200
            await r.read()
            return r.headers["x-tokentail-request-id"]


async def _stack(sim_server, client, delay_ms: int, **overrides):
    env = {
        "OTEL_EXPORTER_OTLP_ENDPOINT": str(client.make_url("")).rstrip("/"),
        "OTEL_BSP_SCHEDULE_DELAY": str(delay_ms),
    }
    provider = telemetry.build_tracer_provider(env, lambda sink, n: None)
    app = create_proxy(
        proxy_settings(str(sim_server.make_url("/v1")), **overrides),
        registry=CollectorRegistry(),
        tracer_provider=provider,
    )
    proxy = TestServer(app, host="127.0.0.1")
    await proxy.start_server()
    return proxy, provider


async def test_metadata_requests_leave_no_text_in_the_database(sim_server, aiohttp_client, tmp_path):
    cfg = make_config(tmp_path)
    client = await aiohttp_client(create_app(cfg, scrape=False, maintain=False))
    proxy, provider = await _stack(sim_server, client, 100)
    try:
        quiet, loud = "Q" + uuid.uuid4().hex, "L" + uuid.uuid4().hex
        rid_quiet = await _chat(proxy, quiet, **{"X-Tokentail-Capture": "metadata"})
        rid_loud = await _chat(proxy, loud)
        q, lo = await _span(client, rid_quiet), await _span(client, rid_loud)
        assert q["input_messages"] in (None, []) and q["output_tokens"] > 0 and q["ttft_ms"] is not None
        assert loud in str(lo["input_messages"])  # the control: full capture stores the prompt
    finally:
        await proxy.close()
        telemetry.shutdown_bounded(provider, 2)
    await client.close()  # the collector closes (checkpoints) its file
    data = cfg.db.read_bytes()
    assert loud.encode() in data and quiet.encode() not in data


async def test_erase_a_session_before_its_spans_arrive(sim_server, aiohttp_client, tmp_path):
    cfg = make_config(tmp_path)
    client = await aiohttp_client(create_app(cfg, scrape=False, maintain=False))
    proxy, provider = await _stack(sim_server, client, 5000)  # the spans wait in the exporter's queue
    try:
        secret, kept = "S" + uuid.uuid4().hex, "K" + uuid.uuid4().hex
        rids = [await _chat(proxy, f"{secret} turn {i}", **{"X-Session-Id": "sess-erase"}) for i in range(3)]
        rid_kept = await _chat(proxy, kept, **{"X-Session-Id": "sess-kept"})
        collector_url = str(client.make_url("")).rstrip("/")
        proxy_url = str(proxy.make_url("")).rstrip("/")
        results = await asyncio.to_thread(
            fan_out, {"session": "sess-erase"}, collector_url, [proxy_url], token=None, timeout=30
        )
        assert [r["ok"] for r in results] == [True, True]
        assert results[0]["body"]["erased"] == 0  # nothing stored yet: the ledger does the rest
        assert results[1]["body"]["erased"]["live"] == 3
        spans = [await _span(client, rid) for rid in rids]  # arrive after the erase
        assert all(s["content_erased_at"] is not None and s["input_messages"] is None for s in spans)
        assert all(s["output_tokens"] > 0 and s["latency_ms"] is not None for s in spans)
        assert kept in str((await _span(client, rid_kept))["input_messages"])
        hub = proxy.app[HUB]
        assert secret not in str([hub.get_request(r) for r in rids])
    finally:
        await proxy.close()
        telemetry.shutdown_bounded(provider, 2)
    await client.close()
    data = cfg.db.read_bytes()
    assert kept.encode() in data and secret.encode() not in data
