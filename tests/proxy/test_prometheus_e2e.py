"""A real Prometheus scrapes a running proxy in front of the simulator; PromQL sees what we sent."""

from __future__ import annotations

import asyncio
import json

import aiohttp
import pytest
from prometheus_client import CollectorRegistry

from tests.helpers import poll_in_thread
from tests.helpers.prom import PrometheusServer, prometheus_bin, promtool_check
from tests.helpers.proxies import start_proxy_server

pytestmark = [pytest.mark.prometheus, pytest.mark.slow]

N = 12
TTFT_MS = 100  # every request's first token after 0.1 s: inside the (0.08, 0.16] bucket


@pytest.fixture
def sim_config():
    from tokentail.simulator.app import SimConfig

    return SimConfig(tokens_per_second=0, ttft=0.0, length=8, seed=3)


async def _stream(session: aiohttp.ClientSession, url: str, i: int) -> dict:
    body = {
        "model": "sim-gpt-4o",
        "stream": True,
        "stream_options": {"include_usage": True},
        "messages": [{"role": "user", "content": f"question number {i}"}],
    }
    usage = None
    async with session.post(url, json=body, headers={"x-sim-ttft-ms": str(TTFT_MS)}) as r:
        assert r.status == 200
        async for line in r.content:
            if line.startswith(b"data: {"):
                event = json.loads(line[6:])
                usage = event.get("usage") or usage
    assert usage, "the simulator reports usage when asked"
    return usage


async def _until(predicate, timeout: float = 20.0):
    """Poll ``predicate`` (blocking, run in a thread so the proxy keeps serving scrapes)."""
    ok, last = await poll_in_thread(predicate, timeout, step=0.3)
    assert ok, f"condition not met in {timeout}s; last value: {last!r}"
    return last


def _scalar(result: list[dict]) -> float | None:
    return float(result[0]["value"][1]) if result else None


async def test_prometheus_scrapes_the_proxy(sim_server, tmp_path):
    prometheus_bin()  # skip (or fail in CI) before starting anything
    registry = CollectorRegistry()
    proxy = await start_proxy_server(str(sim_server.make_url("/v1")), registry)
    prom = PrometheusServer(tmp_path, target=f"127.0.0.1:{proxy.port}")
    try:
        await asyncio.to_thread(prom.wait_ready)
        async with aiohttp.ClientSession() as s:
            usages = [await _stream(s, str(proxy.make_url("/v1/chat/completions")), i) for i in range(N)]
            # what Prometheus will see is what the scrape endpoint serves: it must be promtool-clean
            async with s.get(proxy.make_url("/metrics")) as r:
                exposition = await r.read()
        check = await asyncio.to_thread(promtool_check, exposition)
        assert check.returncode == 0, check.stdout + check.stderr
        expected_tokens = sum(u["prompt_tokens"] + u["completion_tokens"] for u in usages)

        def tokens():
            v = _scalar(prom.query("sum(tokentail_tokens_total)"))
            return v == expected_tokens, v

        assert await _until(tokens) == expected_tokens

        def requests():
            v = _scalar(prom.query('sum(tokentail_requests_total{status_class="2xx",stream="true"})'))
            return v == N, v

        await _until(requests)
        q = _scalar(
            await asyncio.to_thread(
                prom.query, "histogram_quantile(0.5, sum by (le) (tokentail_time_to_first_token_seconds_bucket))"
            )
        )
        assert q is not None and 0.08 < q <= 0.16, q
        genai = _scalar(
            await asyncio.to_thread(
                prom.query,
                'sum(gen_ai_client_token_usage_sum{gen_ai_operation_name="chat",gen_ai_token_type="output"})',
            )
        )
        assert genai == sum(u["completion_tokens"] for u in usages)
        up = _scalar(await asyncio.to_thread(prom.query, 'up{job="tokentail"}'))
        assert up == 1.0
    finally:
        prom.stop()
        await proxy.close()
