"""POST /api/erase on the collector: real SDK spans over OTLP, erased while more keep arriving;
the erased text in no API answer nor in the file; totals unchanged; the admin rule and origin."""

from __future__ import annotations

import asyncio
import json
import uuid

import pytest

from tests.helpers.fakes import make_config
from tests.helpers.otel import genai_spans, protobuf_body
from tokentail import semconv as sc
from tokentail.collector.app import STORE, create_app

PB = {"Content-Type": "application/x-protobuf"}
EVIL = {"Host": "attacker.example:8788"}


def _spans_with(marker: str, session: str, n: int = 2):
    """``n`` spans of ``session`` whose system instructions and a free attribute carry ``marker``."""
    system = json.dumps([{"type": "text", "content": f"secret plan {marker}"}])
    extra = {sc.TT_SESSION_ID: session, sc.SYSTEM_INSTRUCTIONS: system, "app.note": marker, sc.TT_COST_USD: 0.5}
    spans, ids = genai_spans(n, extra=extra)
    return protobuf_body(spans), ids


@pytest.fixture
async def client(aiohttp_client, tmp_path):
    return await aiohttp_client(create_app(make_config(tmp_path), scrape=False, maintain=False))


async def _all_spans(client) -> list[dict]:
    body = await (await client.get("/api/spans?limit=1000&messages=1")).json()
    return body["spans"]


async def test_erase_a_session_while_its_spans_keep_arriving(client):
    marker = "M" + uuid.uuid4().hex
    other = "O" + uuid.uuid4().hex
    first, _ = _spans_with(marker, "sess-gone")
    assert (await client.post("/v1/traces", data=first, headers=PB)).status == 200
    keep, keep_ids = _spans_with(other, "sess-kept")
    assert (await client.post("/v1/traces", data=keep, headers=PB)).status == 200
    before = await _all_spans(client)
    assert any(marker in json.dumps(s) for s in before)  # the control
    totals = (sum(s["cost_usd"] for s in before), sum(s["input_tokens"] for s in before))

    async def keep_sending():  # the exporter's queue still holds spans of the session
        for _ in range(5):
            body, _ = _spans_with(marker, "sess-gone")
            assert (await client.post("/v1/traces", data=body, headers=PB)).status == 200
            await asyncio.sleep(0)

    sender = asyncio.create_task(keep_sending())
    resp = await client.post("/api/erase", json={"session": "sess-gone"})
    assert resp.status == 200
    body = await resp.json()
    assert body["erased"] >= 2 and body["selector"] == {"session": "sess-gone"}
    await sender
    late, late_ids = _spans_with(marker, "sess-gone")  # after the erase: no resurrection
    assert (await client.post("/v1/traces", data=late, headers=PB)).status == 200

    after = await _all_spans(client)
    assert len(after) == len(before) + 12
    assert not any(marker in json.dumps(s) for s in after)
    gone = [s for s in after if s["session_id"] == "sess-gone"]
    assert all(s["content_erased_at"] is not None and s["input_messages"] is None for s in gone)
    assert all(s["system_instructions"] is None and "app.note" not in s["attributes"] for s in gone)
    assert all(s["input_tokens"] is not None and s["cost_usd"] == 0.5 and s["ttft_ms"] == 120.5 for s in gone)
    kept = [s for s in after if s["session_id"] == "sess-kept"]
    assert all(other in json.dumps(s["system_instructions"]) and s["input_messages"] for s in kept)
    detail = await (await client.get(f"/api/spans/{late_ids[0]}")).json()
    assert marker not in json.dumps(detail) and detail["content_erased_at"] is not None
    search = await (await client.get(f"/api/requests/search?q={marker}")).json()
    assert marker not in json.dumps(search)
    sessions = await (await client.get("/api/sessions")).json()
    assert marker not in json.dumps(sessions)
    # Metrics-side numbers: the erased spans' cost and tokens still count.
    ids_before = {b["request_id"] for b in before}
    again = [s for s in after if s["request_id"] in ids_before]
    new_totals = (sum(s["cost_usd"] for s in again), sum(s["input_tokens"] for s in again))
    assert new_totals == totals
    store = client.app[STORE]
    await store.write(store.checkpoint)
    data = store.path.read_bytes()
    assert marker.encode() not in data and other.encode() in data
    assert keep_ids[0] in {s["request_id"] for s in kept}


async def test_erase_by_request_key_user_and_before(client):
    m = "M" + uuid.uuid4().hex
    body, ids = _spans_with(m, "s1", n=3)
    assert (await client.post("/v1/traces", data=body, headers=PB)).status == 200
    r = await (await client.post("/api/erase", json={"request": ids[0]})).json()
    assert r["erased"] == 1
    r = await (await client.post("/api/erase", json={"user": "nobody"})).json()
    assert r["erased"] == 0
    r = await (await client.post("/api/erase", json={"before": "1970-01-02"})).json()
    assert r["erased"] == 0  # the spans started now
    r = await (await client.post("/api/erase", json={"before": 9e9, "session": "s1"})).json()
    assert r["erased"] == 2  # the one already erased is not counted again
    assert not any(m in json.dumps(s) for s in await _all_spans(client))


@pytest.mark.parametrize(
    "data, field",
    [("{}", "body"), ("[1]", "body"), ('{"sesion": "x"}', "sesion"), ('{"before": "soon"}', "before"), ("{", "body")],
)
async def test_bad_selectors_are_400_with_the_field(client, data, field):
    resp = await client.post("/api/erase", data=data, headers={"Content-Type": "application/json"})
    assert resp.status == 400
    assert (await resp.json())["error"]["field"] == field


async def test_a_huge_selector_is_413(client):
    resp = await client.post("/api/erase", json={"session": "x" * 10_000})
    assert resp.status == 413


@pytest.mark.parametrize(
    "headers, expected",
    [
        (EVIL, 421),
        ({"Origin": "https://evil.example"}, 403),
        ({"Sec-Fetch-Site": "cross-site"}, 403),
        ({"Content-Type": "text/plain"}, 415),
    ],
)
async def test_a_refused_erase_erases_nothing(client, headers, expected):
    m = "M" + uuid.uuid4().hex
    body, _ = _spans_with(m, "s1")
    assert (await client.post("/v1/traces", data=body, headers=PB)).status == 200
    resp = await client.post(
        "/api/erase", data='{"session": "s1"}', headers={"Content-Type": "application/json", **headers}
    )
    assert resp.status == expected
    assert any(m in json.dumps(s) for s in await _all_spans(client))


async def test_with_an_admin_token_the_erase_needs_it(aiohttp_client, tmp_path):
    cfg = make_config(tmp_path, admin_token="a-tok", read_token="r-tok")
    client = await aiohttp_client(create_app(cfg, scrape=False, maintain=False))
    assert (await client.post("/api/erase", json={"session": "s"})).status == 401
    assert (
        await client.post("/api/erase", json={"session": "s"}, headers={"Authorization": "Bearer r-tok"})
    ).status in (401, 403)
    ok = await client.post("/api/erase", json={"session": "s"}, headers={"Authorization": "Bearer a-tok"})
    assert ok.status == 200 and (await ok.json())["erased"] == 0


async def test_the_erase_is_logged_without_content(client, caplog):
    m = "M" + uuid.uuid4().hex
    body, _ = _spans_with(m, "s-log")
    assert (await client.post("/v1/traces", data=body, headers=PB)).status == 200
    caplog.set_level("INFO")
    assert (await client.post("/api/erase", json={"session": "s-log"})).status == 200
    lines = [r.getMessage() for r in caplog.records if r.name.startswith("tokentail.collector.erase")]
    assert any("erased the captured content of 2 spans" in line and "s-log" in line for line in lines)
    assert not any(m in r.getMessage() for r in caplog.records)


async def test_a_selector_sent_in_pieces_is_read_whole(client):
    body = b'{"session": "' + b"s" * 150 + b'"}'

    async def pieces():  # chunked transfer, one byte at a time
        for i in range(len(body)):
            yield body[i : i + 1]
            await asyncio.sleep(0)

    resp = await client.post("/api/erase", data=pieces(), headers={"Content-Type": "application/json"})
    assert resp.status == 200 and (await resp.json())["selector"] == {"session": "s" * 150}
