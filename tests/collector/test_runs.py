"""Runs through the collector's HTTP API: life cycle, membership by time, stats, what-if, compare, access."""

from __future__ import annotations

import pytest

from tests.helpers.fakes import make_config
from tests.helpers.rows import add_spans, span
from tests.helpers.runs import PRICES, _client  # noqa: F401  (the client and clock fixtures: tests/collector/conftest.py)
from tokentail.collector.app import create_app

T0 = 1_800_000_000.0


async def post(client, path, body=None, **kw):
    resp = await client.post(path, json=body, **kw)
    return resp.status, await resp.json()


async def test_run_lifecycle_and_one_recording_at_a_time(client, clock):
    status, run = await post(client, "/api/runs", {"name": "baseline"})
    assert status == 201, run
    assert run["status"] == "active" and run["name"] == "baseline" and run["created_at"] == T0
    assert run["intervals"] == [{"start": T0, "end": None}]
    rid = run["id"]
    status, err = await post(client, "/api/runs", {"name": "second"})
    assert status == 409 and f"run {rid} ('baseline') is active" in err["error"]["message"]

    clock.t = T0 + 10
    status, run = await post(client, f"/api/runs/{rid}/pause")
    assert status == 200 and run["status"] == "paused" and run["wall_time_s"] == 10.0
    status, err = await post(client, f"/api/runs/{rid}/pause")
    assert status == 409 and err["error"]["message"] == f"cannot pause run {rid}: it is paused (it is already paused)"
    assert err["error"]["run_status"] == "paused"
    status, _ = await post(client, "/api/runs", {"name": "while paused"})
    assert status == 409  # paused still holds the slot

    clock.t = T0 + 100
    status, run = await post(client, f"/api/runs/{rid}/resume")
    assert status == 200 and run["status"] == "active"
    clock.t = T0 + 105
    detail = await (await client.get(f"/api/runs/{rid}")).json()
    assert detail["wall_time_s"] == 15.0  # the open interval counts up to now, the pause not at all
    status, run = await post(client, f"/api/runs/{rid}/end")
    assert status == 200 and run["status"] == "ended" and run["ended_at"] == T0 + 105
    assert run["intervals"] == [{"start": T0, "end": T0 + 10}, {"start": T0 + 100, "end": T0 + 105}]
    status, err = await post(client, f"/api/runs/{rid}/resume")
    assert status == 409 and "it is ended" in err["error"]["message"]

    status, second = await post(client, "/api/runs", {"name": "  second  "})
    assert status == 201 and second["id"] == rid + 1 and second["name"] == "second"
    listing = await (await client.get("/api/runs")).json()
    assert [r["id"] for r in listing["runs"]] == [rid + 1, rid]  # newest first
    assert listing["current"]["id"] == rid + 1


@pytest.mark.parametrize(
    "body, param",
    [
        ({}, "name"),
        ({"name": ""}, "name"),
        ({"name": "   "}, "name"),
        ({"name": 5}, "name"),
        ({"name": "x" * 201}, "name"),
        ({"name": "ok", "colour": "red"}, "colour"),
        ([1, 2], "body"),
    ],
)
async def test_bad_start_bodies_are_400_with_the_field(client, body, param):
    status, err = await post(client, "/api/runs", body)
    assert status == 400 and err["error"]["param"] == param


async def test_unknown_runs_actions_and_parameters(client):
    assert (await client.post("/api/runs/42/pause")).status == 404
    assert (await client.get("/api/runs/42")).status == 404
    _, run = await post(client, "/api/runs", {"name": "r"})
    status, err = await post(client, f"/api/runs/{run['id']}/explode")
    assert status == 400 and err["error"]["allowed"] == ["pause", "resume", "end"]
    resp = await client.get(f"/api/runs/{run['id']}?colour=red")
    assert resp.status == 400 and (await resp.json())["error"]["allowed"] == ["what_if"]
    for query, param in (("a=1", "b"), ("a=x&b=1", "a"), ("a=1&b=1&c=2", "c")):
        resp = await client.get(f"/api/runs/compare?{query}")
        assert resp.status == 400 and (await resp.json())["error"]["param"] == param
    assert (await client.get(f"/api/runs/compare?a={run['id']}&b=99")).status == 404
    for query, missing in ((f"a=98&b={run['id']}", 98), ("a=98&b=99", 98)):  # the first missing run is named
        resp = await client.get(f"/api/runs/compare?{query}")
        assert resp.status == 404 and (await resp.json())["error"]["message"] == f"no run {missing}"
    assert (await client.get("/api/runs?limit=0")).status == 400


async def test_requests_belong_to_a_run_by_start_time_and_stats_add_up(client, clock):
    _, run = await post(client, "/api/runs", {"name": "load test"})
    rid = run["id"]
    clock.t = T0 + 60
    await post(client, f"/api/runs/{rid}/pause")
    clock.t = T0 + 120
    await post(client, f"/api/runs/{rid}/resume")
    clock.t = T0 + 150
    await post(client, f"/api/runs/{rid}/end")
    await add_spans(
        client,
        [
            span("before", T0 - 1),
            span("a1", T0, tin=100, tout=40, cost=0.0002, tps=20.0),
            span("a2", T0 + 30, model="m-big", tin=1000, tout=200, cached=500, cost=0.0138, tps=40.0),
            span("paused", T0 + 90),  # made while paused: not in the run
            span("b1", T0 + 120, model="mystery", tin=10, tout=10, cost=None, tps=30.0),
            span(
                "b2",
                T0 + 149.5,
                status="error",
                http=500,
                error="status",
                tin=None,
                tout=None,
                cost=None,
                tps=None,
                endpoint="/embeddings",
            ),
            span("after", T0 + 150),  # the end is exclusive
        ],
    )
    body = await (await client.get(f"/api/runs/{rid}")).json()
    s = body["stats"]
    assert body["wall_time_s"] == 90.0 and s["wall_time_s"] == 90.0
    assert s["requests"] == 4 and s["statuses"] == {"error": 1, "ok": 3}
    assert s["errors"]["by_http_status"] == {"500": 1} and s["errors"]["by_type"] == {"status": 1}
    assert s["tokens"] == {"input": 1110, "output": 250, "cached_input": 500, "requests_with_usage": 3}
    assert s["cost"]["usd"] == pytest.approx(0.014) and s["cost"]["unknown_requests"] == 2
    assert s["output_tps_mean"] == pytest.approx(30.0)
    assert {m["model"]: m["requests"] for m in s["by_model"]} == {"m-cheap": 2, "m-big": 1, "mystery": 1}
    assert {e["endpoint"]: e["requests"] for e in s["by_endpoint"]} == {"/chat/completions": 3, "/embeddings": 1}
    spans = await (await client.get(f"/api/spans?run={rid}&order=asc&messages=false")).json()
    assert [x["request_id"] for x in spans["spans"]] == ["a1", "a2", "b1", "b2"]
    listing = await (await client.get("/api/runs")).json()
    assert listing["runs"][0]["summary"] == {
        "requests": 4,
        "input_tokens": 1110,
        "output_tokens": 250,
        "cost_usd": pytest.approx(0.014),
        "cost_unknown_requests": 2,
        "errors": 1,
    }
    assert listing["current"] is None


async def test_what_if_prices_the_runs_tokens_at_another_model(client, clock):
    _, run = await post(client, "/api/runs", {"name": "r"})
    await add_spans(
        client,
        [
            span("x1", T0 + 1, tin=1_000_000, tout=500_000, cached=200_000, cost=None),
            span("x2", T0 + 2, tin=None, tout=None, cost=None, status="error"),
        ],
    )
    body = await (await client.get(f"/api/runs/{run['id']}?what_if=m-big")).json()
    w = body["what_if"]
    # (1M - 200k) * $10 + 200k * $1 + 500k * $40, per million tokens
    assert w["usd"] == pytest.approx(8.0 + 0.2 + 20.0) and w["model"] == "m-big"
    assert w["actual_usd"] is None and w["requests_without_usage"] == 1  # nothing was priced: unknown
    unknown = (await (await client.get(f"/api/runs/{run['id']}?what_if=gpt-nobody")).json())["what_if"]
    assert unknown["usd"] is None and unknown["reason"] == "no price for 'gpt-nobody' in the pricing table"
    prices = await (await client.get("/api/pricing")).json()
    assert [p["model"] for p in prices["models"]] == ["m-big", "m-cheap"] and prices["models"][0]["output"] == 40.0


async def test_compare_two_runs(client, clock):
    _, a = await post(client, "/api/runs", {"name": "before"})
    await add_spans(client, [span("a1", T0 + 1, tps=20.0), span("a2", T0 + 2, tps=20.0)])
    clock.t = T0 + 10
    await post(client, f"/api/runs/{a['id']}/end")
    clock.t = T0 + 20
    _, b = await post(client, "/api/runs", {"name": "after"})
    await add_spans(client, [span("b1", T0 + 21, tps=50.0)])
    clock.t = T0 + 25
    await post(client, f"/api/runs/{b['id']}/end")
    body = await (await client.get(f"/api/runs/compare?a={a['id']}&b={b['id']}")).json()
    assert body["a"]["name"] == "before" and body["b"]["name"] == "after"
    rows = {r["metric"]: r for r in body["metrics"]}
    assert rows["requests"] == {
        "metric": "requests",
        "a": 2,
        "b": 1,
        "diff": -1,
        "ratio": 0.5,
        "better": None,  # more or fewer requests is neither
        "change": None,
    }
    assert rows["output_tps_mean"]["ratio"] == pytest.approx(2.5)
    assert rows["wall_time_s"]["a"] == 10.0 and rows["wall_time_s"]["b"] == 5.0


async def test_run_actions_need_the_admin_token_once_one_is_configured(aiohttp_client, tmp_path, clock):
    client = await _client(aiohttp_client, tmp_path, clock, admin_token="a-tok", read_token="r-tok")
    status, err = await post(client, "/api/runs", {"name": "x"})
    assert status == 401 and err["error"]["code"] == "unauthorized"
    status, _ = await post(client, "/api/runs", {"name": "x"}, headers={"Authorization": "Bearer r-tok"})
    assert status == 401  # the read token reads; it changes nothing
    status, run = await post(client, "/api/runs", {"name": "x"}, headers={"Authorization": "Bearer a-tok"})
    assert status == 201
    status, _ = await post(client, f"/api/runs/{run['id']}/end")
    assert status == 401
    assert (await client.get("/api/runs")).status == 200  # reads stay open on loopback


async def test_without_an_admin_token_run_actions_come_from_loopback_only(client):
    from unittest import mock

    from aiohttp.test_utils import make_mocked_request

    from tokentail import access_aiohttp
    from tokentail.collector.app import POLICY

    transport = mock.Mock()
    transport.get_extra_info.side_effect = lambda name, default=None: (
        ("10.1.2.3", 5555) if name == "peername" else default
    )
    for path in ("/api/runs", "/api/runs/1/end", "/api/runs/1/pause"):
        # The collector's access policy (its middleware) covers every POST under /api/.
        denied = access_aiohttp.check(client.app[POLICY], make_mocked_request("POST", path, transport=transport))
        assert denied is not None and denied.status == 403 and b"TOKENTAIL_ADMIN_TOKEN" in denied.body
    status, _ = await post(client, "/api/runs", {"name": "from loopback"})  # the test client is a loopback peer
    assert status == 201


async def test_span_ingest_on_loopback_needs_no_token_even_with_an_admin_token(aiohttp_client, tmp_path, clock):
    from tests.helpers.otel import genai_spans, protobuf_body

    client = await _client(aiohttp_client, tmp_path, clock, admin_token="a-tok")
    spans, _ = genai_spans(1)
    resp = await client.post(
        "/v1/traces", data=protobuf_body(spans), headers={"Content-Type": "application/x-protobuf"}
    )
    assert resp.status == 200  # proxies on this machine export without one (telemetry, not an admin action)


def test_an_unusable_pricing_file_is_one_line_at_start(tmp_path):
    from tokentail.settings import SettingsError

    bad = tmp_path / "prices.toml"
    bad.write_text("[models.x]\ninput = -1\n")
    with pytest.raises(SettingsError, match=r"prices\.toml"):
        create_app(make_config(tmp_path, pricing=str(bad)), scrape=False, maintain=False)
    with pytest.raises(SettingsError, match="not found"):
        create_app(make_config(tmp_path, pricing=str(tmp_path / "none.toml")), scrape=False, maintain=False)


async def test_scoped_run_counts_only_matching_spans(client, clock):
    status, run = await post(client, "/api/runs", {"name": "exp", "scope": {"tags": ["exp"], "model": "m-big"}})
    assert status == 201 and run["scope"] == {"tags": ["exp"], "model": "m-big"} and run["scope_note"] is None
    rid = run["id"]
    await add_spans(
        client,
        [
            span("in1", T0 + 1, model="m-big", tags=["exp", "x"], latency_ms=100.0),
            span("in2", T0 + 2, model="m-big", tags=["exp"], latency_ms=300.0),
            span("untagged", T0 + 3, model="m-big"),  # demo traffic through the same proxy
            span("other-tag", T0 + 4, model="m-big", tags=["demo"]),
            span("other-model", T0 + 5, model="m-cheap", tags=["exp"]),
        ],
    )
    detail = await (await client.get(f"/api/runs/{rid}")).json()
    assert detail["stats"]["requests"] == 2
    dist = detail["stats"]["distributions"]["latency_ms"]
    assert dist == {"mean": 200.0, "p50": 200.0, "p95": pytest.approx(290.0)}
    listed = (await (await client.get("/api/runs")).json())["runs"][0]
    assert listed["summary"]["requests"] == 2 and listed["scope"]["tags"] == ["exp"]
    body = await (await client.get(f"/api/runs/{rid}/requests")).json()
    assert [r["request_id"] for r in body["requests"]] == ["in2", "in1"] and body["total"] == 2
    page = await (await client.get(f"/api/runs/{rid}/requests?limit=1&offset=1")).json()
    assert [r["request_id"] for r in page["requests"]] == ["in1"] and page["total"] == 2
    spans = await (await client.get(f"/api/spans?run={rid}")).json()
    assert sorted(s["request_id"] for s in spans["spans"]) == ["in1", "in2"]
    assert (await client.get(f"/api/runs/{rid}/requests?limit=501")).status == 400
    assert (await client.get("/api/runs/999/requests")).status == 404

    clock.t = T0 + 10
    await post(client, f"/api/runs/{rid}/end")
    _, everything = await post(client, "/api/runs", {"name": "all"})
    assert everything["scope"] is None and everything["scope_note"] == "includes all traffic"
    await add_spans(client, [span("late1", T0 + 11), span("late2", T0 + 12, tags=["exp"], model="m-big")])
    assert (await (await client.get(f"/api/runs/{everything['id']}")).json())["stats"]["requests"] == 2


@pytest.mark.parametrize(
    "scope",
    [{"tags": "exp"}, {"who": "me"}, {"user": ""}, ["exp"]],
)
async def test_bad_scope_is_400(client, scope):
    status, err = await post(client, "/api/runs", {"name": "x", "scope": scope})
    assert status == 400 and err["error"]["code"] == "invalid_parameter"
    assert (await (await client.get("/api/runs")).json())["runs"] == []  # nothing started


async def test_compare_percentiles_and_colours(client, clock):
    _, a = await post(client, "/api/runs", {"name": "a", "scope": {"variant": "v1"}})
    await add_spans(client, [span(f"a{i}", T0 + i, variant="v1", latency_ms=1000.0 + i, tps=20.0) for i in range(10)])
    clock.t = T0 + 20
    await post(client, f"/api/runs/{a['id']}/end")
    _, b = await post(client, "/api/runs", {"name": "b", "scope": {"variant": "v2"}})
    await add_spans(
        client,
        [span(f"b{i}", T0 + 21 + i, variant="v2", latency_ms=500.0 + i, tps=40.0) for i in range(10)]
        + [span("noise", T0 + 22, variant="v1", latency_ms=9e6)],  # outside b's scope
    )
    rows = {
        r["metric"]: r
        for r in (await (await client.get(f"/api/runs/compare?a={a['id']}&b={b['id']}")).json())["metrics"]
    }
    assert rows["latency_ms_p50"]["a"] == pytest.approx(1004.5) and rows["latency_ms_p50"]["b"] == pytest.approx(504.5)
    assert rows["latency_ms_p95"]["b"] <= 509.0  # never above the slowest
    assert rows["latency_ms_p50"]["better"] == "lower" and rows["latency_ms_p50"]["change"] == "better"
    assert rows["output_tps_p50"]["better"] == "higher" and rows["output_tps_p50"]["change"] == "better"
    assert rows["cost_usd_p50"]["change"] == "same"  # identical costs
    assert rows["requests"]["b"] == 10
