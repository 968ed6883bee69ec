"""Replay end to end: the dashboard's action -> a real proxy -> the simulator -> the collector.

Async, so it lives outside ``tests/dashboard`` (whose browser fixtures keep Playwright's event
loop running for the package).
"""

from __future__ import annotations

import asyncio
import json

import aiohttp

from tokentail.dashboard.app import create_app
from tokentail.dashboard.config import DashboardConfig, parse_proxy

LOOPBACK = {"REMOTE_ADDR": "127.0.0.1"}


def _post(c, body, **headers):
    data = json.dumps(body)
    return c.post("/_tt/replay", data=data, content_type="application/json", environ_base=LOOPBACK, headers=headers)


async def test_replay_end_to_end_through_a_real_proxy_into_the_collector(sim_server, aiohttp_client, tmp_path):
    """Dashboard action -> simulator through a real proxy -> span with replay_of in the collector, linked both ways."""
    from aiohttp.test_utils import TestServer
    from prometheus_client import CollectorRegistry

    from tests.conftest import proxy_settings
    from tests.helpers.fakes import make_config
    from tokentail.collector.app import create_app as create_collector
    from tokentail.proxy import telemetry
    from tokentail.proxy.app import app_from_settings as create_proxy
    from tokentail.proxy.state import METRICS

    collector = await aiohttp_client(create_collector(make_config(tmp_path), scrape=False, maintain=False))
    endpoint = str(collector.make_url("")).rstrip("/")
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
                original = r.headers["x-tokentail-request-id"]
                await r.read()
        proxy_url = str(proxy.make_url("")).rstrip("/")
        config = DashboardConfig(collector=endpoint, proxies=(parse_proxy(f"canary={proxy_url}"),))
        dash = create_app(config).server.test_client()
        loop = asyncio.get_running_loop()
        # The dashboard is synchronous (Flask, urllib): off the loop that serves the proxy and collector.
        resp = await loop.run_in_executor(
            None, lambda: _post(dash, {"request_id": original, "target": {"variant": "canary", "model": "sim-small"}})
        )
        assert resp.status_code == 200, resp.get_json()
        answer = resp.get_json()
        copy = answer["id"]
        assert copy and copy != original and answer["replay_of"] == original and answer["model"] == "sim-small"
        found = linked = None
        deadline = loop.time() + 20
        while loop.time() < deadline:
            got = await collector.get(f"/api/spans/{copy}")
            if got.status == 200:
                found = await got.json()
                linked = await (await collector.get(f"/api/spans/{original}")).json()
                if copy in linked.get("replays", []):
                    break
            await asyncio.sleep(0.1)
        assert found is not None, "the replay's span never reached the collector"
        assert found["replay_of"] == original
        assert found["model"] == "sim-small"
        assert found["input_messages"][0]["parts"][0]["content"] == "hello there"
        assert linked is not None and linked["replays"] == [copy] and linked["replay_of"] is None
    finally:
        await proxy.close()
        provider.shutdown()
