"""Cost per request through the proxy: the live feed, /api/requests, spans and
tokentail_cost_usd_total; a model without a price is unknown (null), never 0."""

from __future__ import annotations

import asyncio

import aiohttp
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.helpers import read_events, reading
from tests.helpers.proxies import proxy_settings, start_proxy, start_sim
from tokentail.pricing import PriceTable
from tokentail.settings import SettingsError


def cost_samples(metrics_text: str) -> dict[str, float]:
    for fam in text_string_to_metric_families(metrics_text):
        if fam.name == "tokentail_cost_usd":
            return {s.labels["model"]: s.value for s in fam.samples if s.name == "tokentail_cost_usd_total"}
    raise AssertionError("tokentail_cost_usd_total is not declared")


@pytest.fixture
async def sim():
    server = await start_sim()
    yield server
    await server.close()


async def test_cost_on_the_feed_requests_spans_and_metrics(sim):
    proxy = await start_proxy(str(sim.make_url("/v1")))
    table = PriceTable.load()
    events: list = []
    try:
        async with aiohttp.ClientSession() as s:
            async with s.get(proxy.url("/api/live")) as live:
                reader = await reading(read_events(live, events, stop_on="request.end", count=3), events)
                rids = {}
                for model, headers in (
                    ("sim-gpt-4o", {"x-sim-cached-tokens": "4"}),
                    ("my-local-llama", {}),
                    ("sim-gpt-4o-mini", {"x-sim-error": "500"}),
                ):
                    body = {"model": model, "stream": True, "messages": [{"role": "user", "content": "hello"}]}
                    async with s.post(proxy.url("/v1/chat/completions"), json=body, headers=headers) as r:
                        await r.read()
                        rids[model] = r.headers["x-tokentail-request-id"]
                await asyncio.wait_for(reader, 5)
            async with s.get(proxy.url("/api/requests")) as r:
                rows = {x["id"]: x for x in (await r.json())["requests"]}
        ends = {d["id"]: d for name, d in events if name == "request.end"}
        priced = ends[rids["sim-gpt-4o"]]
        u = priced["usage"]
        assert u["cached_input_tokens"] == 4 and u["output_tokens"] > 0
        expected = table.cost("sim-gpt-4o", u["input_tokens"], u["output_tokens"], u["cached_input_tokens"])
        assert expected > 0 and priced["cost_usd"] == pytest.approx(expected)
        assert rows[rids["sim-gpt-4o"]]["cost_usd"] == pytest.approx(expected)
        unknown = ends[rids["my-local-llama"]]
        assert unknown["usage"]["output_tokens"] > 0 and unknown["cost_usd"] is None  # unknown, not 0
        assert rows[rids["my-local-llama"]]["cost_usd"] is None
        assert ends[rids["sim-gpt-4o-mini"]]["cost_usd"] is None  # a 500 has no usage to price

        spans = {sp.attributes["tokentail.request.id"]: sp.attributes for sp in proxy.spans()}
        assert spans[rids["sim-gpt-4o"]]["tokentail.cost.usd"] == pytest.approx(expected)
        assert "tokentail.cost.usd" not in spans[rids["my-local-llama"]]
        samples = cost_samples(proxy.metrics())
        assert samples == {"sim-gpt-4o": pytest.approx(expected)}  # never a 0 sample for unknown prices
    finally:
        await proxy.close()


async def test_a_rewritten_model_is_priced_as_the_model_that_answered(sim):
    routes = [{"name": "cheap", "match": "cheap", "upstream": str(sim.make_url("/v1")), "model": "sim-gpt-4o-mini"}]
    proxy = await start_proxy(str(sim.make_url("/v1")), routes=routes)
    try:
        async with aiohttp.ClientSession() as s:
            body = {"model": "cheap", "messages": [{"role": "user", "content": "hello"}]}
            async with s.post(proxy.url("/v1/chat/completions"), json=body) as r:
                usage = (await r.json())["usage"]
        expected = PriceTable.load().cost("sim-gpt-4o-mini", usage["prompt_tokens"], usage["completion_tokens"])
        assert cost_samples(proxy.metrics()) == {"cheap": pytest.approx(expected)}  # labelled by the asked model
    finally:
        await proxy.close()


async def test_a_custom_price_table_replaces_the_packaged_one(sim, tmp_path):
    path = tmp_path / "prices.toml"
    path.write_text(
        '[models."my-local-llama"]\ninput = 100.0\noutput = 1000.0\n'
        'source = "https://example.com/internal"\ndate = "2025-01-01"\n'
    )
    proxy = await start_proxy(str(sim.make_url("/v1")), pricing=str(path))
    try:
        async with aiohttp.ClientSession() as s:
            for model in ("my-local-llama", "sim-gpt-4o"):
                body = {"model": model, "messages": [{"role": "user", "content": "hello"}]}
                async with s.post(proxy.url("/v1/chat/completions"), json=body) as r:
                    usage = (await r.json())["usage"]
        samples = cost_samples(proxy.metrics())
        assert samples == {
            "my-local-llama": pytest.approx((usage["prompt_tokens"] * 100 + usage["completion_tokens"] * 1000) / 1e6)
        }
    finally:
        await proxy.close()


def test_a_bad_price_table_stops_the_start_with_one_line(tmp_path):
    from tokentail.proxy.app import app_from_settings

    path = tmp_path / "prices.toml"
    path.write_text('[models."x"]\ninput = 1\n')
    with pytest.raises(SettingsError) as exc:
        app_from_settings(proxy_settings("http://127.0.0.1:1/v1", pricing=str(path)))
    assert str(path) in str(exc.value) and "'output' is required" in str(exc.value)
