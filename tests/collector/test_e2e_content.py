"""End to end: a secret the model streams in pieces never reaches the collector's DuckDB
(RELIABILITY 31). Scripted upstream -> real proxy -> OTLP -> real collector -> the file."""

from __future__ import annotations

import asyncio

import aiohttp
from aiohttp.test_utils import TestServer
from prometheus_client import CollectorRegistry

from tests.conftest import proxy_settings
from tests.helpers.fakes import make_config
from tests.helpers.upstreams import scripted_upstream, serve, sse_script
from tokentail.collector.app import create_app
from tokentail.proxy import telemetry
from tokentail.proxy.app import app_from_settings

KEY = "sk-proj-AbCdEfGhIjKlMnOpQrStUvWxYz0123456789"


async def test_a_split_secret_never_reaches_the_database(aiohttp_client, tmp_path):
    pieces = ["Your key is ", "sk-", "proj-", "AbCd", "EfGhIjKl", "MnOpQrStUv", "WxYz0123456789", " keep it safe"]
    script = sse_script("text", pieces)
    upstream = await serve(scripted_upstream({"leak": script}))
    cfg = make_config(tmp_path)
    client = await aiohttp_client(create_app(cfg, scrape=False, maintain=False))
    env = {"OTEL_EXPORTER_OTLP_ENDPOINT": str(client.make_url("")).rstrip("/"), "OTEL_BSP_SCHEDULE_DELAY": "100"}
    provider = telemetry.build_tracer_provider(env, lambda sink, n: None)
    proxy = TestServer(
        app_from_settings(
            proxy_settings(str(upstream.make_url("/v1"))), registry=CollectorRegistry(), tracer_provider=provider
        ),
        host="127.0.0.1",
    )
    await proxy.start_server()
    try:
        body = {"model": "m", "stream": True, "messages": [{"role": "user", "content": "leak"}]}
        async with aiohttp.ClientSession() as s:
            async with s.post(str(proxy.make_url("/v1/chat/completions")), json=body) as r:
                assert r.status == 200
                rid = r.headers["x-tokentail-request-id"]
                assert await r.read() == b"".join(script)  # the client's own bytes are untouched
        stored = None
        for _ in range(100):
            spans = (await (await client.get("/api/spans")).json())["spans"]
            stored = next((sp for sp in spans if sp["request_id"] == rid), None)
            if stored:
                break
            await asyncio.sleep(0.05)
        assert stored is not None
        assert "[REDACTED:" in str(stored["output_messages"]) and "keep it safe" in str(stored["output_messages"])
    finally:
        await proxy.close()
        await upstream.close()
        telemetry.shutdown_bounded(provider, 2)
    await client.close()  # the collector checkpoints and closes the DuckDB file
    raw = b"".join(p.read_bytes() for p in tmp_path.iterdir() if p.name.startswith(cfg.db.name))
    assert rid.encode() in raw  # the row is really in the file we searched
    assert KEY.encode() not in raw and KEY[12:28].encode() not in raw
