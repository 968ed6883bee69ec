"""End to end on loopback: simulator -> real proxy -> collector scraping its /metrics -> /api/metrics."""

from __future__ import annotations

import aiohttp
import pytest

from tests.helpers import until
from tests.helpers.fakes import Clock, make_config
from tokentail.collector.app import COLLECTOR, create_app

T0 = 1_800_000_000.0


async def stored_span(client, rid: str) -> dict:
    """The collector's stored span of request ``rid``, once the exporter delivered it."""
    found: list[dict] = []

    async def stored() -> bool:
        spans = (await (await client.get("/api/spans")).json())["spans"]
        found[:] = [sp for sp in spans if sp["request_id"] == rid]
        return bool(found)

    await until(stored, timeout=5, step=0.05, what=f"span {rid} in the collector")
    return found[0]


async def test_collector_reads_what_the_real_proxy_exposes(stack, aiohttp_client, tmp_path):
    clock = Clock(T0)
    client = await aiohttp_client(
        create_app(make_config(tmp_path, [f"production={stack.url('/')}"]), scrape=False, maintain=False, clock=clock)
    )
    collector = client.app[COLLECTOR]
    clock.t += 5
    await collector.run_round(clock.t)  # baseline
    body = {"model": "sim-gpt-4o", "stream": True, "messages": [{"role": "user", "content": "hi"}]}
    async with aiohttp.ClientSession() as s:
        for _ in range(6):
            async with s.post(stack.base_url + "/chat/completions", json=body) as r:
                assert r.status == 200
                await r.read()
        async with s.post(stack.base_url + "/chat/completions", json={**body, "stream": False}) as r:
            assert r.status == 200
    clock.t += 5
    await collector.run_round(clock.t)
    status = await (await client.get("/api/status")).json()
    assert status["targets"][0]["up"] is True, status["targets"]
    m = await (await client.get("/api/metrics?range=5m")).json()
    (g,) = m["groups"]
    assert g["summary"]["requests"] == 7 and g["summary"]["errors"] == 0
    assert g["metrics"]["request_rate"][-1] == pytest.approx(7 / 5)
    assert g["summary"]["output_tokens"] > 0 and g["summary"]["latency_p50_ms"] is not None
    assert g["summary"]["ttft_p50_ms"] is not None  # streamed requests have a first token
    by_model = await (await client.get("/api/metrics?range=5m&by=model")).json()
    assert [x["name"] for x in by_model["groups"]] == ["sim-gpt-4o"]


async def test_proxy_spans_arrive_over_otlp_with_the_live_feed_request_id(sim_server, aiohttp_client, tmp_path):
    """The contract the dashboard merges on: x-tokentail-request-id == the stored span's request_id."""
    from aiohttp.test_utils import TestServer
    from prometheus_client import CollectorRegistry

    from tests.helpers.proxies import proxy_settings
    from tokentail.proxy import telemetry
    from tokentail.proxy.app import app_from_settings as create_proxy
    from tokentail.proxy.state import METRICS

    client = await aiohttp_client(create_app(make_config(tmp_path), scrape=False, maintain=False))
    endpoint = str(client.make_url("")).rstrip("/")
    box = []
    env = {"OTEL_EXPORTER_OTLP_ENDPOINT": endpoint, "OTEL_BSP_SCHEDULE_DELAY": "100"}
    provider = telemetry.build_tracer_provider(env, lambda sink, n: box[0][METRICS].dropped(sink, n))
    proxy_app = create_proxy(
        proxy_settings(str(sim_server.make_url("/v1"))), registry=CollectorRegistry(), tracer_provider=provider
    )
    box.append(proxy_app)
    proxy = TestServer(proxy_app, host="127.0.0.1")
    await proxy.start_server()
    try:
        body = {"model": "sim-gpt-4o", "stream": True, "messages": [{"role": "user", "content": "hello there"}]}
        async with aiohttp.ClientSession() as s:
            async with s.post(str(proxy.make_url("/v1/chat/completions")), json=body) as r:
                rid = r.headers["x-tokentail-request-id"]
                await r.read()
        found = await stored_span(client, rid)
        assert found["model"] == "sim-gpt-4o" and found["status"] == "ok" and found["stream"] is True
        assert found["output_tokens"] > 0 and found["ttft_ms"] is not None and isinstance(found["start_time"], float)
        assert found["input_messages"] and found["output_messages"]
    finally:
        await proxy.close()
        telemetry.shutdown_bounded(provider, 2)


async def test_an_injected_route_key_never_reaches_the_database(sim_server, aiohttp_client, tmp_path):
    """Issue 7: a route's API key goes to the upstream and nowhere else — not into spans, so
    not into DuckDB. The stored file is read whole after the collector closes it."""
    from aiohttp.test_utils import TestServer
    from prometheus_client import CollectorRegistry

    from tests.helpers.proxies import proxy_settings
    from tokentail.proxy import telemetry
    from tokentail.proxy.app import app_from_settings as create_proxy

    key = "sk-route-INJECTED-7f3a9c0e5b1d"
    client_key = "sk-client-OWNKEY-2b8e4d6f0a1c"
    cfg = make_config(tmp_path)
    client = await aiohttp_client(create_app(cfg, scrape=False, maintain=False))
    env = {
        "OTEL_EXPORTER_OTLP_ENDPOINT": str(client.make_url("")).rstrip("/"),
        "OTEL_BSP_SCHEDULE_DELAY": "100",
        "TT_E2E_ROUTE_KEY": key,
    }
    provider = telemetry.build_tracer_provider(env, lambda sink, n: None)
    route = {
        "name": "sim",
        "prefix": "sim-",
        "upstream": str(sim_server.make_url("/v1")),
        "api_key_env": "TT_E2E_ROUTE_KEY",
    }
    proxy_app = create_proxy(
        proxy_settings("http://127.0.0.1:9/v1", routes=[route]),
        registry=CollectorRegistry(),
        tracer_provider=provider,
        env=env,
    )
    proxy = TestServer(proxy_app, host="127.0.0.1")
    await proxy.start_server()
    try:
        body = {"model": "sim-gpt-4o", "stream": True, "messages": [{"role": "user", "content": "route me"}]}
        async with aiohttp.ClientSession() as s:
            async with s.post(
                str(proxy.make_url("/v1/chat/completions")),
                json=body,
                headers={"Authorization": f"Bearer {client_key}"},
            ) as r:
                assert r.status == 200
                rid = r.headers["x-tokentail-request-id"]
                await r.read()
            async with s.get(sim_server.make_url("/_sim/last")) as r:
                assert (await r.json())["headers"]["authorization"] == f"Bearer {key}"  # injected upstream
        stored = await stored_span(client, rid)
        assert stored["route"] == "sim"
    finally:
        await proxy.close()
        telemetry.shutdown_bounded(provider, 2)
    await client.close()  # the collector checkpoints and closes the DuckDB file
    raw = b"".join(p.read_bytes() for p in tmp_path.iterdir() if p.name.startswith(cfg.db.name))
    assert b"route-INJECTED" not in raw and b"OWNKEY" not in raw
    assert rid.encode() in raw  # the row is really in the file we searched
