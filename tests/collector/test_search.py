"""search.py and search_api.py: history search filters, paging, sorting, full text, export; sessions paging."""

from __future__ import annotations

import csv
import io
import json

import pytest

from tests.helpers.rows import add_spans, span
from tokentail.collector.search import MAX_EXPORT, like_pattern

T = 1_800_000_000.0


def _msgs(text: str) -> str:
    return json.dumps([{"role": "user", "parts": [{"type": "text", "content": text}]}])


ROWS = [
    span(
        "r1",
        T,
        latency_ms=100.0,
        ttft_ms=20.0,
        cost=0.001,
        session_id="s-1",
        user_id="alice",
        tags=["exp"],
        key_fingerprint="k1",
        variant="a",
        input_messages=_msgs("What is the capital of France?"),
        output_messages=_msgs("Paris."),
    ),
    span(
        "r2",
        T + 10,
        latency_ms=900.0,
        ttft_ms=300.0,
        cost=0.01,
        model="m-big",
        session_id="s-1",
        user_id="alice",
        variant="b",
        input_messages=_msgs("discount of 50% off"),
        output_messages=_msgs("a_b literal underscore"),
    ),
    span(
        "r3",
        T + 20,
        latency_ms=5000.0,
        ttft_ms=None,
        cost=None,
        status="error",
        error="timeout",
        http=504,
        user_id="bob",
        tags=["exp", "night"],
        key_fingerprint="k2",
        variant="a",
        input_messages=_msgs("50 percent"),
        output_messages=_msgs("axb"),
    ),
]


@pytest.fixture
async def loaded(client):
    assert await add_spans(client, [dict(r) for r in ROWS]) == 3
    return client


async def ids(cl, query: str) -> list[str]:
    resp = await cl.get(f"/api/requests/search?{query}")
    body = await resp.json()
    assert resp.status == 200, body
    assert body["total"] >= len(body["requests"])
    return [r["request_id"] for r in body["requests"]]


def test_like_pattern_escapes_wildcards():
    assert like_pattern("50%_x\\") == "%50\\%\\_x\\\\%"


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("", ["r3", "r2", "r1"]),
        (f"since={T + 5}", ["r3", "r2"]),
        (f"until={T + 15}", ["r2", "r1"]),
        ("model=m-big", ["r2"]),
        ("variant=a", ["r3", "r1"]),
        ("status=error", ["r3"]),
        ("error=timeout", ["r3"]),
        ("session=s-1", ["r2", "r1"]),
        ("user=bob", ["r3"]),
        ("tag=exp", ["r3", "r1"]),
        ("key=k1", ["r1"]),
        ("min_latency_ms=900", ["r3", "r2"]),
        ("max_latency_ms=900", ["r2", "r1"]),
        ("min_ttft_ms=100", ["r2"]),
        ("max_ttft_ms=100", ["r1"]),  # no TTFT is not under a threshold
        ("min_cost_usd=0.005", ["r2"]),
        ("max_cost_usd=0.005", ["r1"]),  # unknown cost is not cheap
        ("q=france", ["r1"]),  # in a prompt, any case
        ("q=PARIS", ["r1"]),  # in a completion
        ("q=50%25", ["r2"]),  # % is literal: "50 percent" does not match
        ("q=a_b", ["r2"]),  # _ is literal: "axb" does not match
        ("q=nowhere", []),
        # combinations
        ("tag=exp&variant=a&status=ok", ["r1"]),
        (f"user=alice&min_latency_ms=500&since={T}", ["r2"]),
        ("q=50&variant=b", ["r2"]),
    ],
)
async def test_each_filter(loaded, query, expected):
    assert await ids(loaded, query) == expected


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("sort=time&order=asc", ["r1", "r2", "r3"]),
        ("sort=latency", ["r3", "r2", "r1"]),
        ("sort=latency&order=asc", ["r1", "r2", "r3"]),
        ("sort=ttft", ["r2", "r1", "r3"]),  # NULL last either way
        ("sort=ttft&order=asc", ["r1", "r2", "r3"]),
        ("sort=cost", ["r2", "r1", "r3"]),
        ("sort=tokens&order=asc", ["r1", "r2", "r3"]),  # equal tokens: then by time
    ],
)
async def test_sort_orders(loaded, query, expected):
    assert await ids(loaded, query) == expected


async def test_paging_and_totals(loaded):
    body = await (await loaded.get("/api/requests/search?limit=2&offset=0")).json()
    assert body["total"] == 3 and body["limit"] == 2 and body["offset"] == 0
    assert [r["request_id"] for r in body["requests"]] == ["r3", "r2"]
    assert "input_messages" not in body["requests"][0]  # summary rows
    assert body["requests"][0]["id"] == "r3" and body["requests"][0]["tags"] == ["exp", "night"]
    body = await (await loaded.get("/api/requests/search?limit=2&offset=2")).json()
    assert [r["request_id"] for r in body["requests"]] == ["r1"] and body["total"] == 3
    body = await (await loaded.get("/api/requests/search?limit=2&offset=2&user=alice")).json()
    assert body["requests"] == [] and body["total"] == 2


@pytest.mark.parametrize(
    "query",
    [
        "limit=501",
        "limit=0",
        "offset=-1",
        "sort=name",
        "order=up",
        "status=bad",
        "min_latency_ms=fast",
        "max_cost_usd=-1",
        "since=yesterday",
        "nope=1",
        "q=" + "x" * 501,
    ],
)
async def test_bad_parameters_are_400(loaded, query):
    resp = await loaded.get(f"/api/requests/search?{query}")
    body = await resp.json()
    assert resp.status == 400 and body["error"]["code"] == "invalid_parameter" and body["error"]["param"]


async def test_export_csv_and_jsonl(loaded):
    resp = await loaded.get("/api/requests/export?format=csv&tag=exp")
    assert resp.status == 200
    assert resp.headers["Content-Disposition"].startswith("attachment; filename=")
    assert resp.headers["Content-Type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(await resp.text())))
    assert [r["request_id"] for r in rows] == ["r3", "r1"]
    assert rows[0]["tags"] == "exp;night" and rows[0]["ttft_ms"] == "" and rows[1]["latency_ms"] == "100.0"
    resp = await loaded.get("/api/requests/export?format=jsonl&sort=latency&order=asc")
    assert resp.status == 200 and resp.headers["Content-Disposition"].endswith('.jsonl"')
    lines = [json.loads(line) for line in (await resp.text()).splitlines()]
    assert [r["request_id"] for r in lines] == ["r1", "r2", "r3"]
    assert lines[0]["input_messages"][0]["parts"][0]["content"] == "What is the capital of France?"
    assert "attributes" not in lines[0] and "resource" not in lines[0]
    assert (await loaded.get("/api/requests/export?format=xml")).status == 400
    assert (await loaded.get("/api/requests/export?limit=5")).status == 400  # no paging on export


async def test_export_row_count_equals_total_across_pages(client, monkeypatch):
    from tokentail.collector import search

    monkeypatch.setattr(search, "EXPORT_PAGE", 7)  # many pages from a few rows
    monkeypatch.setattr(search, "MAX_EXPORT", 40)
    await add_spans(client, [span(f"x{i:03}", T + i) for i in range(45)])
    total = (await (await client.get("/api/requests/search?limit=1")).json())["total"]
    assert total == 45
    rows = list(csv.DictReader(io.StringIO(await (await client.get("/api/requests/export")).text())))
    assert len(rows) == 40 == min(total, search.MAX_EXPORT)  # capped
    assert len({r["request_id"] for r in rows}) == 40 and rows[0]["request_id"] == "x044"
    lines = (await (await client.get(f"/api/requests/export?format=jsonl&since={T + 20}")).text()).splitlines()
    assert len(lines) == 25
    assert MAX_EXPORT == 100_000


async def test_sessions_paged_with_total_and_q(client):
    await add_spans(
        client,
        [span(f"t{i}", T + i, session_id=f"sess-{i % 5}", user_id="u_1" if i % 5 == 0 else "u2") for i in range(20)],
    )
    body = await (await client.get("/api/sessions?limit=2")).json()
    assert body["total"] == 5 and body["limit"] == 2 and body["offset"] == 0
    assert [s["session_id"] for s in body["sessions"]] == ["sess-4", "sess-3"]
    body = await (await client.get("/api/sessions?limit=2&offset=4")).json()
    assert [s["session_id"] for s in body["sessions"]] == ["sess-0"] and body["total"] == 5
    body = await (await client.get("/api/sessions?q=SESS-2")).json()
    assert [s["session_id"] for s in body["sessions"]] == ["sess-2"] and body["total"] == 1
    body = await (await client.get("/api/sessions?q=u_1")).json()  # _ literal: u2 does not match
    assert [s["session_id"] for s in body["sessions"]] == ["sess-0"]
    assert body["sessions"][0]["turns"] == 4  # fields kept
    assert (await client.get("/api/sessions?offset=-1")).status == 400


async def test_full_text_paging_totals_past_the_end(loaded):
    body = await (await loaded.get("/api/requests/search?q=50&limit=1")).json()
    assert body["total"] == 2 and [r["request_id"] for r in body["requests"]] == ["r3"]
    body = await (await loaded.get("/api/requests/search?q=50&limit=1&offset=5")).json()
    assert body["total"] == 2 and body["requests"] == []
    body = await (await loaded.get("/api/requests/search?q=back%5Cslash")).json()  # \\ literal, no match
    assert body["total"] == 0
