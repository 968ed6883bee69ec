"""The collector's access (tokentail.access through its aiohttp middleware): served beyond loopback,
reads need the read token, POST /v1/traces the admin token, no wildcard CORS; on any bind, only
allowed Host names, and no state change from another site's page or without a JSON body."""

from __future__ import annotations

import pytest

from tests.helpers.fakes import make_config
from tests.helpers.otel import genai_spans, protobuf_body
from tokentail.collector.app import create_app

PB = {"Content-Type": "application/x-protobuf"}


@pytest.fixture
async def client(aiohttp_client, tmp_path):
    # host is what the policy looks at; the test server itself still listens on loopback.
    cfg = make_config(
        tmp_path,
        host="0.0.0.0",
        read_token="r-tok",
        admin_token="a-tok",
        allowed_origins=frozenset({"http://dash.example"}),
    )
    return await aiohttp_client(create_app(cfg, scrape=False, maintain=False))


@pytest.mark.parametrize("path", ["/api/metrics", "/api/status", "/api/config", "/api/spans", "/api/events"])
async def test_reads_need_the_read_token(client, path):
    assert (await client.get(path)).status == 401
    assert (await client.get(path, headers={"Authorization": "Bearer wrong"})).status == 401
    ok = await client.get(path, headers={"Authorization": "Bearer r-tok"})
    assert ok.status == 200
    ok.close()


async def test_eventsource_token_in_query_and_open_healthz(client):
    resp = await client.get("/api/events?token=r-tok")
    assert resp.status == 200
    resp.close()
    assert (await client.get("/healthz")).status == 200


async def test_traces_need_the_admin_token(client):
    spans, _ = genai_spans(1)
    body = protobuf_body(spans)
    assert (await client.post("/v1/traces", data=body, headers=PB)).status == 401
    assert (await client.post("/v1/traces", data=body, headers={**PB, "Authorization": "Bearer r-tok"})).status == 401
    assert (await client.post("/v1/traces", data=body, headers={**PB, "Authorization": "Bearer a-tok"})).status == 200


async def test_no_tokens_configured_off_loopback_is_403(aiohttp_client, tmp_path):
    client = await aiohttp_client(create_app(make_config(tmp_path, host="0.0.0.0"), scrape=False, maintain=False))
    assert (await client.get("/api/metrics")).status == 403
    assert (await client.post("/v1/traces", data=b"", headers=PB)).status == 403
    open_ = await aiohttp_client(
        create_app(make_config(tmp_path / "i", host="0.0.0.0", insecure=True), scrape=False, maintain=False)
    )
    assert (await open_.get("/api/metrics")).status == 200


async def test_cors_only_for_listed_origins(client):
    auth = {"Authorization": "Bearer r-tok"}
    ok = await client.get("/api/status", headers={**auth, "Origin": "http://dash.example"})
    assert ok.headers["Access-Control-Allow-Origin"] == "http://dash.example"
    other = await client.get("/api/status", headers={**auth, "Origin": "http://evil.example"})
    assert "Access-Control-Allow-Origin" not in other.headers
    sse = await client.get("/api/events", headers={**auth, "Origin": "http://dash.example"})
    assert sse.headers["Access-Control-Allow-Origin"] == "http://dash.example"
    sse.close()
    pre = await client.options(
        "/api/metrics", headers={"Origin": "http://evil.example", "Access-Control-Request-Method": "GET"}
    )
    assert pre.status == 403 and pre.headers.get("Access-Control-Allow-Origin") != "*"


# --- Host, Origin, content type: on a loopback bind too (DNS rebinding, other sites' pages) ---

EVIL = {"Host": "attacker.example:8788"}


@pytest.fixture
async def local(aiohttp_client, tmp_path):
    cfg = make_config(tmp_path, allowed_hosts=frozenset({"collector"}))
    return await aiohttp_client(create_app(cfg, scrape=False, maintain=False))


async def _runs(client) -> list:
    resp = await client.get("/api/runs")
    return (await resp.json())["runs"]


@pytest.mark.parametrize("path", ["/api/spans", "/api/metrics", "/api/runs", "/api/events", "/api/config"])
async def test_reads_answer_only_allowed_host_names(local, path):
    resp = await local.get(path, headers=EVIL)
    assert resp.status == 421 and (await resp.json())["error"]["code"] == "misdirected_request"
    ok = await local.get(path, headers={"Host": "collector:8788"})  # --allowed-host (compose's service name)
    assert ok.status == 200
    ok.close()
    assert (await local.get("/healthz", headers=EVIL)).status == 200


@pytest.mark.parametrize(
    "headers, data, expected",
    [
        (EVIL, '{"name": "x"}', 421),
        ({"Origin": "https://evil.example"}, '{"name": "x"}', 403),
        ({"Sec-Fetch-Site": "cross-site"}, '{"name": "x"}', 403),
        ({"Content-Type": "text/plain"}, '{"name": "x"}', 415),  # a cross-site form's body
    ],
)
async def test_a_refused_run_start_creates_no_run(local, headers, data, expected):
    h = {"Content-Type": "application/json", **headers}
    resp = await local.post("/api/runs", data=data, headers=h)
    assert resp.status == expected
    assert await _runs(local) == []


async def test_a_refused_run_end_leaves_the_run_active(local):
    resp = await local.post("/api/runs", json={"name": "r"})
    assert resp.status == 201
    rid = (await resp.json())["id"]
    for headers in (EVIL, {"Origin": "https://evil.example"}, {"Sec-Fetch-Site": "cross-site"}):
        assert (await local.post(f"/api/runs/{rid}/end", json={}, headers=headers)).status in (403, 421)
    assert (await local.post(f"/api/runs/{rid}/end", data="{}", headers={"Content-Type": "text/plain"})).status == 415
    assert [r["status"] for r in await _runs(local)] == ["active"]
    own = {"Origin": str(local.make_url("")).rstrip("/")}
    assert (await local.post(f"/api/runs/{rid}/end", json={}, headers=own)).status == 200


async def test_span_ingest_checks_host_origin_and_type(local):
    spans, _ = genai_spans(1)
    body = protobuf_body(spans)
    assert (await local.post("/v1/traces", data=body, headers={**PB, **EVIL})).status == 421
    assert (await local.post("/v1/traces", data=body, headers={**PB, "Origin": "https://evil.example"})).status == 403
    assert (await local.post("/v1/traces", data=body, headers={"Content-Type": "text/plain"})).status == 415
    assert (await (await local.get("/api/spans")).json())["spans"] == []
    assert (await local.post("/v1/traces", data=body, headers=PB)).status == 200
    assert len((await (await local.get("/api/spans")).json())["spans"]) == 1


async def test_the_compose_collector_answers_the_otel_collector_by_service_name(aiohttp_client, tmp_path):
    from tests.helpers.compose import TEST_ENV, settings_of
    from tokentail.collector.config import CollectorConfig

    cfg = CollectorConfig.from_settings(settings_of("collector")).with_(db=tmp_path / "c.duckdb")
    client = await aiohttp_client(create_app(cfg, scrape=False, maintain=False))
    admin = {"Authorization": f"Bearer {TEST_ENV['TOKENTAIL_ADMIN_TOKEN']}"}
    read = {"Authorization": f"Bearer {TEST_ENV['TOKENTAIL_READ_TOKEN']}"}
    spans, _ = genai_spans(1)
    ok = await client.post("/v1/traces", data=protobuf_body(spans), headers={**PB, **admin, "Host": "collector:8788"})
    assert ok.status == 200  # otel-collector.yaml's traces_endpoint: http://collector:8788/v1/traces
    assert (await client.get("/api/spans", headers={**read, "Host": "localhost:8788"})).status == 200  # the browser
    assert (await client.get("/api/spans", headers={**read, **EVIL})).status == 421
