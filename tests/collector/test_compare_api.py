"""GET /api/compare on a temp DuckDB with known spans (and, without spans, scraped buckets)."""

from __future__ import annotations

import pytest

from tests.helpers.fakes import Clock, make_config
from tokentail.collector.app import STORE, create_app
from tokentail.collector.parse import COUNTER

NOW = 1_700_000_000.0


@pytest.fixture
async def client(aiohttp_client, tmp_path):
    return await aiohttp_client(create_app(make_config(tmp_path), scrape=False, maintain=False, clock=Clock(NOW)))


def span(i: int, variant: str, ttft: float, *, status: str = "ok", model: str = "m", t: float | None = None) -> dict:
    return {
        "request_id": f"{variant}-{i}",
        "start_time": t if t is not None else NOW - 600 + i,
        "variant": variant,
        "model": model,
        "endpoint": "/chat/completions",
        "status": status,
        "ttft_ms": ttft,
        "latency_ms": ttft * 4,
        "output_tps": 50.0,
        "output_tokens": 100,
        "input_tokens": 20,
        "cost_usd": 0.001,
        "attributes": "{}",
    }


async def add(client, rows):
    store = client.app[STORE]
    return await store.write(store.insert_spans, rows)


def by_metric(body: dict) -> dict[str, dict]:
    return {m["metric"]: m for m in body["metrics"]}


async def test_canary_ttft_worse_beyond_noise(client):
    # production TTFT 100..139 ms, canary 138..177 ms (+38%); canary 6 errors of 40, production 1 of 40.
    rows = [span(i, "production", 100.0 + i, status="error" if i == 0 else "ok") for i in range(40)]
    rows += [span(i, "canary", 138.0 + i, status="error" if i < 6 else "ok") for i in range(40)]
    rows.append(span(99, "canary", 5.0, t=NOW - 7200))  # outside the 1h range: not counted
    await add(client, rows)
    resp = await client.get("/api/compare", params={"a": "variant:production", "b": "variant:canary", "range": "1h"})
    assert resp.status == 200
    body = await resp.json()
    assert body["source"] == "spans"
    assert (body["a"]["requests"], body["b"]["requests"]) == (40, 40)
    m = by_metric(body)
    ttft = m["ttft_ms"]
    assert ttft["verdict"] == "worse" and ttft["significant"] is True
    assert ttft["test"] == "mann_whitney_u"
    assert ttft["a"] == pytest.approx(100 + 0.95 * 39)
    assert ttft["b"] == pytest.approx(138 + 0.95 * 39)
    assert ttft["summary"].startswith("canary TTFT p95 +")
    assert len(ttft["sides"]["a"]["ecdf"]) == 40
    err = m["error_rate"]
    assert err["sides"]["a"]["rate"] == pytest.approx(1 / 40)
    assert err["sides"]["b"]["rate"] == pytest.approx(6 / 40)
    lo, hi = err["sides"]["b"]["ci95"]
    assert lo < 6 / 40 < hi
    assert err["test"] == "two_proportion_z"
    assert err["difference_ci95"][0] < err["difference"] < err["difference_ci95"][1]
    assert m["output_tps"]["verdict"] == "no_difference"  # identical values
    assert m["cost_usd"]["a"] == pytest.approx(0.001)


async def test_not_enough_data_below_the_minimum(client):
    await add(client, [span(i, "production", 100.0) for i in range(5)] + [span(i, "canary", 300.0) for i in range(5)])
    body = await (await client.get("/api/compare?a=variant:production&b=variant:canary")).json()
    m = by_metric(body)
    assert m["ttft_ms"]["verdict"] == "not_enough_data"
    assert m["error_rate"]["verdict"] == "not_enough_data"
    assert body["minimum_sample"] == 20


async def test_models_and_runs(client):
    await add(client, [span(i, "v", 100.0 + i, model="small") for i in range(25)])
    await add(client, [span(i + 100, "v", 100.0 + i, model="big") for i in range(25)])
    body = await (await client.get("/api/compare?a=model:small&b=model:big")).json()
    assert (body["a"]["requests"], body["b"]["requests"]) == (25, 25)
    assert by_metric(body)["ttft_ms"]["verdict"] == "no_difference"
    store = client.app[STORE]

    def runs(con):
        con.execute(
            "INSERT INTO runs (id, name, created_at, ended_at, status) VALUES (1, 'one', ?, ?, 'ended')",
            [NOW - 700, NOW - 500],
        )
        con.execute("INSERT INTO run_intervals VALUES (1, ?, ?)", [NOW - 700, NOW - 585])

    await store.write(store.transaction, runs)
    body = await (await client.get("/api/compare?a=run:1&b=model:big")).json()
    assert body["a"]["label"] == "run 1"
    assert body["a"]["requests"] == 15  # the small spans started in the run's interval (i 0..14)
    assert body["range"] is None


async def test_buckets_when_no_spans(client):
    store = client.app[STORE]
    ttft = "tokentail_time_to_first_token_seconds_bucket"
    bounds = {"production": [0, 40, 50, 50], "canary": [0, 5, 45, 50]}  # cumulative at 0.1, 0.5, 1, +Inf

    for k in range(2):  # two scrapes: counters stored as increases
        points = []
        for variant, cum in bounds.items():
            for le, c in zip(("0.1", "0.5", "1.0", "+Inf"), cum, strict=True):
                points.append((variant, f"http://{variant}", ttft, (("le", le), ("model", "m")), COUNTER, c / 2))
            req = (("endpoint", "/chat/completions"), ("model", "m"), ("status_class", "2xx"), ("stream", "true"))
            points.append((variant, f"http://{variant}", "tokentail_requests_total", req, COUNTER, 25.0))
        await store.write(store.append_metrics, NOW - 100 + k * 5, points)
    body = await (await client.get("/api/compare?a=variant:production&b=variant:canary&range=15m")).json()
    assert body["source"] == "buckets"
    assert (body["a"]["requests"], body["b"]["requests"]) == (50, 50)
    m = by_metric(body)
    assert "cost_usd" not in m  # per-request cost needs spans
    t = m["ttft_ms"]
    assert t["test"] == "mann_whitney_u_buckets"
    assert t["verdict"] == "worse"
    assert t["a"] == pytest.approx(1000.0 * (0.5 + 0.5 * (47.5 - 40) / 10))  # Prometheus interpolation
    assert t["b"] == pytest.approx(1000.0)  # rank 47.5 in the +Inf bucket: the highest finite bound


@pytest.mark.parametrize(
    "query",
    ["a=variant:x", "a=foo:x&b=variant:y", "a=run:abc&b=variant:y", "a=variant:x&b=variant:y&range=2d", "a=x&b=y"],
)
async def test_bad_parameters_are_400(client, query):
    resp = await client.get(f"/api/compare?{query}")
    assert resp.status == 400
    assert (await resp.json())["error"]["code"] == "invalid_parameter"


async def test_replays_of_a_run_against_the_run(client):
    store = client.app[STORE]
    originals = [span(i, "production", 100.0 + i) for i in range(25)]
    copies = [
        {**span(i, "canary", 300.0 + i, t=NOW - 100 + i), "attributes": f'{{"tokentail.replay_of": "production-{i}"}}'}
        for i in range(25)
    ]
    other = span(99, "canary", 1.0, t=NOW - 90)  # in the new interval, but not a replay
    await add(client, originals + copies + [other])

    def runs(con):
        con.execute(
            "INSERT INTO runs (id, name, created_at, ended_at, status) VALUES (1, 'one', ?, ?, 'ended')",
            [NOW - 700, NOW - 500],
        )
        con.execute("INSERT INTO run_intervals VALUES (1, ?, ?)", [NOW - 700, NOW - 500])

    await store.write(store.transaction, runs)
    body = await (await client.get("/api/compare?a=run:1&b=replays:1")).json()
    assert body["b"]["label"] == "replays of run 1"
    assert (body["a"]["requests"], body["b"]["requests"]) == (25, 25)
    assert by_metric(body)["ttft_ms"]["verdict"] == "worse"
    resp = await client.get("/api/compare?a=run:1&b=replays:x")
    assert resp.status == 400


async def test_values_are_capped_but_counts_stay_exact(client, monkeypatch):
    from tokentail.collector import compare_api

    monkeypatch.setattr(compare_api, "MAX_VALUES", 25)
    rows = [span(i, "production", 100.0 + i, status="error" if i < 4 else "ok") for i in range(40)]
    await add(client, rows + [span(i, "canary", 100.0 + i) for i in range(40)])
    body = await (await client.get("/api/compare?a=variant:production&b=variant:canary")).json()
    assert (body["a"]["requests"], body["a"]["errors"], body["a"]["sampled"]) == (40, 4, True)
    ttft = by_metric(body)["ttft_ms"]
    assert ttft["n_a"] == 25  # the newest 25 values
    assert ttft["sides"]["a"]["p50"] == pytest.approx(100.0 + 15 + 0.5 * 24)
