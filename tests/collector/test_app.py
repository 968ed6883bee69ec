"""The collector app end to end: fake proxies on loopback, rounds driven by the test, the HTTP API."""

from __future__ import annotations

import asyncio
import json
import logging

import duckdb
import pytest

from tests.helpers import until
from tests.helpers.fakes import Clock, FakeProxy, closed_port_url, make_config
from tokentail.collector.app import COLLECTOR, STORE, create_app

T0 = 1_800_000_000.0  # a multiple of 3600


@pytest.fixture
async def proxies():
    ps = [await FakeProxy().start() for _ in range(2)]
    yield ps
    for p in ps:
        await p.stop()


@pytest.fixture
def clock():
    return Clock(T0)


@pytest.fixture
async def client(aiohttp_client, tmp_path, proxies, clock):
    healthy, garbage = proxies
    garbage.mode = "garbage"
    cfg = make_config(
        tmp_path,
        [f"production={healthy.url}", f"canary={garbage.url}", f"dead={closed_port_url()}"],
        scrape_timeout=0.5,
        heartbeat=0.2,
    )
    app = create_app(cfg, scrape=False, maintain=False, clock=clock)
    return await aiohttp_client(app)


async def rounds(client, clock, n, *, traffic=None):
    collector = client.app[COLLECTOR]
    for _ in range(n):
        clock.t += 5.0
        if traffic:
            traffic()
        await collector.run_round(clock.t)


async def test_down_and_garbage_targets_beside_a_healthy_one(client, clock, proxies, caplog):
    healthy = proxies[0]
    with caplog.at_level(logging.WARNING, logger="tokentail.collector.scrape"):
        await rounds(client, clock, 4, traffic=lambda: healthy.metrics.request())
    status = await (await client.get("/api/status")).json()
    by_variant = {t["variant"]: t for t in status["targets"]}
    assert by_variant["production"]["up"] is True and by_variant["production"]["samples"] > 50
    assert by_variant["canary"]["up"] is False and "unparseable exposition" in by_variant["canary"]["error"]
    assert by_variant["dead"]["up"] is False and by_variant["dead"]["error"].startswith("connection failed")
    assert [r.getMessage().split(" is DOWN")[0] for r in caplog.records] == [
        f"target canary {proxies[1].url}/metrics",
        f"target dead {by_variant['dead']['url']}",
    ]  # once each
    variants = {v["name"]: v for v in status["variants"]}
    assert variants["production"]["up"] and variants["production"]["current"]["request_rate"] == pytest.approx(0.2)
    assert not variants["canary"]["up"] and variants["canary"]["targets"] == 1
    resp = await client.get("/api/metrics?range=5m")
    m = await resp.json()
    assert resp.status == 200, m
    groups = {g["name"]: g for g in m["groups"]}
    assert groups["production"]["metrics"]["request_rate"][-1] == pytest.approx(0.2)
    assert groups["canary"]["metrics"]["up"][-1] == 0.0 and groups["canary"]["metrics"]["request_rate"][-1] is None


async def test_counter_reset_across_a_proxy_restart(client, clock, proxies):
    healthy = proxies[0]
    await rounds(client, clock, 1)  # baseline
    await rounds(client, clock, 3, traffic=lambda: [healthy.metrics.request() for _ in range(5)])
    healthy.restart()
    await rounds(client, clock, 3, traffic=lambda: [healthy.metrics.request(duration=3.0) for _ in range(2)])
    m = await (await client.get("/api/metrics?range=5m&variant=production")).json()
    (g,) = m["groups"]
    rates = [r for r in g["metrics"]["request_rate"] if r is not None]
    assert min(rates) >= 0
    assert rates[-6:] == pytest.approx([1.0, 1.0, 1.0, 0.4, 0.4, 0.4])
    assert g["summary"]["requests"] == 3 * 5 + 3 * 2  # nothing lost, nothing doubled at the restart
    assert g["metrics"]["latency_p50_ms"][-1] == pytest.approx(2560 + (5120 - 2560) * 0.5)


async def test_bad_query_parameters_get_400_with_allowed_values(client):
    for query, param in (("range=1y", "range"), ("by=host", "by"), ("variant=blue", "variant"), ("x=1", "x")):
        resp = await client.get(f"/api/metrics?{query}")
        assert resp.status == 400
        err = (await resp.json())["error"]
        assert err["param"] == param and isinstance(err["allowed"], list) and err["allowed"]
    resp = await client.get("/api/spans?limit=-1")
    assert resp.status == 400 and (await resp.json())["error"]["param"] == "limit"


async def test_status_config_and_healthz(client, clock):
    await rounds(client, clock, 2)
    health = await (await client.get("/healthz")).json()
    assert health == {"status": "ok", "rounds": 2, "store_ok": True}
    status = await (await client.get("/api/status")).json()
    assert status["store"]["ok"] and status["store"]["rows"]["metrics_5s"] > 0 and status["store"]["schema_version"]
    assert status["ts"] == clock.t and status["rounds"] == 2 and status["otlp"]["requests"] == 0
    cfg = await (await client.get("/api/config")).json()
    assert cfg["variants"] == ["canary", "dead", "production"] and cfg["scrape_interval"] == 5.0
    assert "read_token" not in cfg and cfg["read_token_set"] is False


async def test_sse_snapshot_after_each_round_and_heartbeats(client, clock):
    await rounds(client, clock, 1)
    resp = await client.get("/api/events")
    assert resp.headers["Content-Type"].startswith("text/event-stream")

    async def next_event():
        name, data = None, None
        while True:
            line = (await asyncio.wait_for(resp.content.readline(), 5)).decode().rstrip("\n")
            if line.startswith("event: "):
                name = line[7:]
            elif line.startswith("data: "):
                data = json.loads(line[6:])
            elif line == "" and name:
                return name, data
            elif line == ": heartbeat":
                return "heartbeat", None

    first = await next_event()
    assert first[0] == "snapshot" and first[1]["ts"] == clock.t  # the latest one, at once
    await rounds(client, clock, 1)
    name, data = await next_event()
    while name != "snapshot":
        name, data = await next_event()
    assert data["ts"] == clock.t and {v["name"] for v in data["variants"]} == {"production", "canary", "dead"}
    assert await next_event() == ("heartbeat", None)
    resp.close()


async def test_disk_full_write_failure_keeps_collecting(client, clock, proxies, monkeypatch, caplog):
    store = client.app[STORE]
    await rounds(client, clock, 2)
    real = store.append_metrics

    def full(*a):
        raise duckdb.IOException('IO Error: Could not write file "x.wal": No space left on device')

    monkeypatch.setattr(store, "append_metrics", full)
    with caplog.at_level(logging.ERROR):
        await rounds(client, clock, 3, traffic=lambda: proxies[0].metrics.request())
    assert sum("No space left" in r.getMessage() for r in caplog.records) == 1  # logged once, not per round
    status = await (await client.get("/api/status")).json()
    assert status["store"]["ok"] is False and "No space left" in status["store"]["error"]
    assert status["rounds"] == 5  # scraping went on; live values still flow
    assert {v["name"]: v for v in status["variants"]}["production"]["current"]["request_rate"] > 0
    assert (await client.get("/healthz")).status == 200
    monkeypatch.setattr(store, "append_metrics", real)
    await rounds(client, clock, 1)
    status = await (await client.get("/api/status")).json()
    assert status["store"]["ok"] is True  # space is back: collection resumed


async def test_upkeep_rolls_up_and_applies_retention(client, clock, proxies):
    await rounds(client, clock, 40, traffic=lambda: proxies[0].metrics.request())
    collector = client.app[COLLECTOR]
    done = await collector.maintain(clock.t + 120)
    assert done["rolled_chunks"] >= 1
    store = client.app[STORE]
    assert store.watermark is not None and store.watermark >= T0 + 180
    n1m = store._con.execute("SELECT count(*) FROM metrics_1m").fetchone()[0]
    assert n1m > 0
    m = await (await client.get("/api/metrics?range=6h")).json()
    prod = {g["name"]: g for g in m["groups"]}["production"]
    assert prod["summary"]["requests"] == 39  # 1m rows plus the 5s tail: every request once


async def test_scrape_loop_runs_on_aligned_ticks(aiohttp_client, tmp_path, proxies):
    cfg = make_config(tmp_path, [proxies[0].url], scrape_interval=0.2, scrape_timeout=0.2)
    client = await aiohttp_client(create_app(cfg, maintain=False))
    collector = client.app[COLLECTOR]
    await until(lambda: collector.rounds >= 3, timeout=5)
    assert abs(collector.last_round - round(collector.last_round / 0.2) * 0.2) < 1e-3


async def test_a_fatal_database_error_reopens_the_file(client, clock, monkeypatch):
    """DuckDB invalidates a database after a fatal error; the collector reopens it and goes on."""
    store = client.app[STORE]
    await rounds(client, clock, 2)
    real = store.append_metrics
    calls = []

    def fatal(*a):
        calls.append(1)
        monkeypatch.setattr(store, "append_metrics", real)  # the reopened store works
        raise duckdb.FatalException("FATAL Error: database has been invalidated because of a previous fatal error")

    monkeypatch.setattr(store, "append_metrics", fatal)
    old_con = store._con
    await rounds(client, clock, 1)
    assert calls and store._con is not old_con
    await rounds(client, clock, 1)
    status = await (await client.get("/api/status")).json()
    assert status["store"]["ok"] is True and status["store"]["rows"]["metrics_5s"] > 0
