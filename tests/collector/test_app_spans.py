"""POST /v1/traces from the real OTel SDK exporter (protobuf) and as OTLP/JSON, then GET /api/spans."""

from __future__ import annotations

import asyncio
import gzip
import math

import duckdb
import pytest
from opentelemetry.exporter.otlp.proto.http import Compression
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.trace.export import SpanExportResult

from tests.helpers.fakes import make_config
from tests.helpers.otel import INPUT, SECRETS, genai_spans, json_body, protobuf_body
from tests.helpers.rows import add_spans, span
from tokentail.collector._http import RECEIPTS
from tokentail.collector.app import STORE, create_app


@pytest.fixture
async def client(aiohttp_client, tmp_path):
    return await aiohttp_client(create_app(make_config(tmp_path), scrape=False, maintain=False))


async def test_real_sdk_exporter_protobuf_gzip_and_retry_dedup(client):
    spans, ids = genai_spans(3)
    url = str(client.make_url("/v1/traces"))
    exporter = OTLPSpanExporter(endpoint=url, compression=Compression.Gzip, timeout=5)
    # The SDK exporter is synchronous (requests): run it off the loop that serves the app.
    assert await asyncio.to_thread(exporter.export, spans) == SpanExportResult.SUCCESS
    assert await asyncio.to_thread(exporter.export, spans) == SpanExportResult.SUCCESS  # a retried batch
    exporter.shutdown()
    body = await (await client.get("/api/spans")).json()
    got = [s["request_id"] for s in body["spans"]]
    assert sorted(got) == sorted(ids) and len(got) == 3  # no double rows
    starts = [s["start_time"] for s in body["spans"]]
    assert starts == sorted(starts, reverse=True) and all(isinstance(t, float) for t in starts)
    s = body["spans"][0]
    assert s["id"] == s["request_id"] and s["model"] == "gpt-4o" and s["variant"] == "canary"
    assert s["input_messages"] == INPUT and s["finish_reasons"] == ["stop"]  # JSON, not text
    stats = (await (await client.get("/api/status")).json())["otlp"]
    assert stats["spans_stored"] == 3 and stats["spans_duplicate"] == 3 and stats["spans_skipped"] == 2


async def test_otlp_json_and_span_queries(client):
    spans, ids = genai_spans(2)
    resp = await client.post("/v1/traces", data=json_body(spans), headers={"Content-Type": "application/json"})
    assert resp.status == 200 and await resp.json() == {}
    err_spans, err_ids = genai_spans(1, error=True)
    resp = await client.post(
        "/v1/traces",
        data=gzip.compress(protobuf_body(err_spans)),
        headers={"Content-Type": "application/x-protobuf", "Content-Encoding": "gzip"},
    )
    assert resp.status == 200 and resp.headers["Content-Type"] == "application/x-protobuf"
    errors = await (await client.get("/api/spans?status=error")).json()
    assert [s["request_id"] for s in errors["spans"]] == err_ids and errors["spans"][0]["http_status"] == 500
    newest = err_spans[0].start_time / 1e9
    older = await (await client.get(f"/api/spans?before={newest}&limit=1")).json()
    assert len(older["spans"]) == 1 and older["spans"][0]["request_id"] in ids
    since = await (await client.get(f"/api/spans?since={newest}&messages=false")).json()
    assert [s["request_id"] for s in since["spans"]] == err_ids and "input_messages" not in since["spans"][0]
    assert (await (await client.get("/api/spans?model=gpt-4o-2024-08-06")).json())["spans"]  # response model too
    detail = await client.get(f"/api/spans/{ids[0]}")
    assert detail.status == 200 and (await detail.json())["request_id"] == ids[0]
    assert (await client.get("/api/spans/nope")).status == 404


async def test_no_secret_reaches_duckdb(client):
    spans, _ = genai_spans(2)
    await client.post("/v1/traces", data=protobuf_body(spans), headers={"Content-Type": "application/x-protobuf"})
    store = client.app[STORE]
    dump = repr(store._con.execute("SELECT * FROM spans").fetchall())
    for secret in SECRETS:
        assert secret not in dump
    assert "gpt-4o" in dump  # the dump is not empty


async def test_bad_bodies_and_unavailable_store(client, monkeypatch):
    resp = await client.post("/v1/traces", data=b"\x0a\xff\xff", headers={"Content-Type": "application/x-protobuf"})
    assert resp.status == 400 and (await resp.json())["error"]["code"] == "invalid_request"
    resp = await client.post("/v1/traces", data=b"hello", headers={"Content-Type": "text/plain"})
    assert resp.status == 415
    store = client.app[STORE]

    def full(rows):
        raise duckdb.IOException("IO Error: No space left on device")

    monkeypatch.setattr(store, "insert_spans", full)
    spans, _ = genai_spans(1)
    resp = await client.post(
        "/v1/traces", data=protobuf_body(spans), headers={"Content-Type": "application/x-protobuf"}
    )
    assert resp.status == 503 and resp.headers["Retry-After"] == "5"  # the exporter retries later


async def test_body_over_the_limit_is_refused(aiohttp_client, tmp_path):
    client = await aiohttp_client(create_app(make_config(tmp_path, max_otlp_bytes=1000), scrape=False, maintain=False))
    resp = await client.post("/v1/traces", data=b"\x00" * 5000, headers={"Content-Type": "application/x-protobuf"})
    assert resp.status == 413


async def test_sessions_facets_and_attribution_filters(client):
    t = 1_800_000_000.0
    await add_spans(
        client,
        [
            span("s1-t1", t, session_id="s-1", user_id="alice", tags=["exp", "a"], key_fingerprint="k1", cost=0.001),
            span(
                "s1-t2",
                t + 10,
                session_id="s-1",
                user_id="alice",
                tags=["exp"],
                key_fingerprint="k1",
                cost=None,
                model="m-2",
            ),
            span("s2-t1", t + 5, session_id="s-2", user_id="bob", key_fingerprint="k2", cost=0.002, status="error"),
            span("lone", t + 20, user_id="bob"),  # no session (an embeddings call, say)
        ],
    )
    body = await (await client.get("/api/sessions")).json()
    assert [s["session_id"] for s in body["sessions"]] == ["s-1", "s-2"]  # newest activity first
    s1 = body["sessions"][0]
    assert s1["turns"] == 2 and s1["first_time"] == t and s1["last_time"] == t + 12
    assert s1["models"] == ["m-2", "m-cheap"] and s1["users"] == ["alice"] and s1["tags"] == ["a", "exp"]
    assert s1["input_tokens"] == 200 and s1["output_tokens"] == 100
    assert s1["cost_usd"] == pytest.approx(0.001) and s1["cost_unknown_turns"] == 1
    assert body["sessions"][1]["errors"] == 1 and body["sessions"][1]["keys"] == ["k2"]
    for query, expected in (
        ("user=bob", ["s-2"]),
        ("tag=exp", ["s-1"]),
        ("key=k1", ["s-1"]),
        ("tag=a", ["s-1"]),
        ("user=nobody", []),
    ):
        got = await (await client.get(f"/api/sessions?{query}")).json()
        assert [s["session_id"] for s in got["sessions"]] == expected, query
    # A session matched by one turn still counts all its turns.
    assert (await (await client.get("/api/sessions?tag=a")).json())["sessions"][0]["turns"] == 2

    turns = await (await client.get("/api/spans?session=s-1&order=asc")).json()
    assert [s["request_id"] for s in turns["spans"]] == ["s1-t1", "s1-t2"]
    assert turns["spans"][0]["tags"] == ["exp", "a"] and turns["spans"][0]["cost_usd"] == 0.001
    assert turns["spans"][1]["cost_usd"] is None
    by_user = await (await client.get("/api/spans?user=bob")).json()
    assert [s["request_id"] for s in by_user["spans"]] == ["lone", "s2-t1"]

    facets = await (await client.get("/api/facets")).json()
    assert facets["users"] == [{"value": "alice", "requests": 2}, {"value": "bob", "requests": 2}]  # ties by name
    assert facets["tags"] == [{"value": "exp", "requests": 2}, {"value": "a", "requests": 1}]
    assert facets["keys"] == [{"value": "k1", "requests": 2}, {"value": "k2", "requests": 1}]
    assert (await (await client.get(f"/api/facets?since={t + 15}")).json())["users"] == [
        {"value": "bob", "requests": 1}
    ]
    assert (await client.get("/api/sessions?limit=9999")).status == 400
    assert (await client.get("/api/facets?tag=x")).status == 400


async def test_received_since_pages_by_receipt_and_an_unstored_batch_holds_the_cursor(aiohttp_client, tmp_path):
    """The Live page's history cursor: spans received from a time on, oldest received first,
    whatever their start; ``received_before`` never passes a batch still being stored."""
    now = [1000.0]
    app = create_app(make_config(tmp_path), scrape=False, maintain=False, clock=lambda: now[0])
    client = await aiohttp_client(app)
    first, first_ids = genai_spans(2)
    await client.post("/v1/traces", data=protobuf_body(first), headers={"Content-Type": "application/x-protobuf"})
    now[0] = 1010.0
    body = await (await client.get("/api/spans?limit=10")).json()
    assert body["received_before"] == 1010.0 and len(body["spans"]) == 2
    later, later_ids = genai_spans(1)
    await client.post("/v1/traces", data=protobuf_body(later), headers={"Content-Type": "application/x-protobuf"})
    again = await (await client.get(f"/api/spans?received_since={body['received_before']}")).json()
    assert [s["request_id"] for s in again["spans"]] == later_ids  # only what came since
    assert all(s["received_at"] == 1010.0 for s in again["spans"])
    older_first = await (await client.get("/api/spans?received_since=0")).json()
    assert {s["request_id"] for s in older_first["spans"][:2]} == set(first_ids)  # by receipt, not start

    # A batch on its way (stored after a slow write) holds received_before at its stamp.
    now[0] = 1020.0
    held, held_ids = genai_spans(1)
    gate, posting = await _post_held(app, client, held)
    now[0] = 1030.0
    mid = await (await client.get("/api/spans?received_since=1010")).json()
    assert mid["received_before"] == 1020.0 and held_ids[0] not in [s["request_id"] for s in mid["spans"]]
    gate.set()
    assert (await posting).status == 200
    after = await (await client.get(f"/api/spans?received_since={mid['received_before']}")).json()
    assert [s["request_id"] for s in after["spans"]] == held_ids and after["received_before"] == 1030.0
    assert (await client.get("/api/spans?received_since=soon")).status == 400


async def _post(client, spans) -> None:
    resp = await client.post(
        "/v1/traces", data=protobuf_body(spans), headers={"Content-Type": "application/x-protobuf"}
    )
    assert resp.status == 200


def _ids(body) -> list[str]:
    return [s["request_id"] for s in body["spans"]]


async def _post_held(app, client, spans):
    """POST ``spans`` and hold its store write until the returned gate is set: a batch the
    receiver has stamped and not stored yet (later batches are stored at once). Returns the
    gate and the POST."""
    store = app[STORE]
    real_write, gate = store.write, asyncio.Event()

    async def held_write(fn, *args):
        store.write = real_write  # only this batch waits
        await gate.wait()
        return await real_write(fn, *args)

    store.write = held_write
    posting = asyncio.ensure_future(
        client.post("/v1/traces", data=protobuf_body(spans), headers={"Content-Type": "application/x-protobuf"})
    )
    for _ in range(500):  # until the receiver stamped it
        if len(app[RECEIPTS]):
            break
        await asyncio.sleep(0.01)
    return gate, posting


async def test_a_page_by_receipt_holds_whole_batches_and_its_cursor_goes_past_them(aiohttp_client, tmp_path):
    """A batch's spans share one stamp: a page cut inside one, its cursor past that stamp,
    would lose the rest. So the page sends the last batch to its end (past ``limit``), and
    ``received_before`` is just past it while the store holds more."""
    now = [2000.0]
    app = create_app(make_config(tmp_path), scrape=False, maintain=False, clock=lambda: now[0])
    client = await aiohttp_client(app)
    five, five_ids = genai_spans(5)
    await _post(client, five)
    now[0] = 2010.0
    three, three_ids = genai_spans(3)
    await _post(client, three)
    now[0] = 2020.0
    page = await (await client.get("/api/spans?received_since=0&limit=2")).json()
    assert sorted(_ids(page)) == sorted(five_ids)  # all five, though the limit is 2
    assert page["received_before"] == math.nextafter(2000.0, math.inf)
    page = await (await client.get(f"/api/spans?received_since={page['received_before']!r}&limit=2")).json()
    assert sorted(_ids(page)) == sorted(three_ids) and page["received_before"] == math.nextafter(2010.0, math.inf)
    page = await (await client.get(f"/api/spans?received_since={page['received_before']!r}&limit=2")).json()
    assert page["spans"] == [] and page["received_before"] == 2020.0
    limited = await (await client.get("/api/spans?limit=2")).json()  # by start time: the limit holds
    assert len(limited["spans"]) == 2


async def test_a_full_page_by_receipt_never_moves_the_cursor_past_a_batch_in_flight(aiohttp_client, tmp_path):
    now = [3000.0]
    app = create_app(make_config(tmp_path), scrape=False, maintain=False, clock=lambda: now[0])
    client = await aiohttp_client(app)
    held, held_ids = genai_spans(1)
    gate, posting = await _post_held(app, client, held)
    now[0] = 3005.0
    stored, stored_ids = genai_spans(2)
    await _post(client, stored)  # stamped later, stored first
    page = await (await client.get("/api/spans?received_since=0&limit=1")).json()
    assert sorted(_ids(page)) == sorted(stored_ids)
    assert page["received_before"] == 3000.0  # the held batch's stamp, not past the page's last
    gate.set()
    assert (await posting).status == 200
    page = await (await client.get(f"/api/spans?received_since={page['received_before']!r}&limit=1")).json()
    assert _ids(page) == held_ids  # read at last; the stored batch follows in the next page


async def test_a_clock_stepped_back_never_hides_a_batch_behind_the_cursor(aiohttp_client, tmp_path):
    now = [1000.0]
    app = create_app(make_config(tmp_path), scrape=False, maintain=False, clock=lambda: now[0])
    client = await aiohttp_client(app)
    await _post(client, genai_spans(1)[0])
    now[0] = 1005.0
    cursor = (await (await client.get("/api/spans?received_since=0")).json())["received_before"]
    now[0] = 900.0  # NTP steps the clock back
    later, later_ids = genai_spans(1)
    await _post(client, later)
    page = await (await client.get(f"/api/spans?received_since={cursor!r}")).json()
    assert _ids(page) == later_ids and page["spans"][0]["received_at"] >= cursor


async def test_after_a_restart_stamps_go_on_above_what_is_stored(aiohttp_client, tmp_path):
    from tokentail.collector.store import Store

    cfg = make_config(tmp_path)
    store = Store.open(cfg.db)
    await store.write(store.insert_spans, [span("before", 100.0, received_at=5000.0)])
    app = create_app(cfg, store=store, scrape=False, maintain=False, clock=lambda: 4000.0)  # the clock is behind
    client = await aiohttp_client(app)
    later, later_ids = genai_spans(1)
    await _post(client, later)
    page = await (await client.get("/api/spans?received_since=5000.0")).json()
    assert _ids(page) == ["before", *later_ids] and page["spans"][1]["received_at"] > 5000.0
