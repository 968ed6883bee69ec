"""Erasing captured content in the DuckDB store (collector.erase through Store): content goes,
numbers stay, the erased text leaves the file's bytes, late spans stay erased, retention."""

from __future__ import annotations

import json
import uuid

import duckdb

from tests.helpers.fakes import make_config
from tokentail.collector import erase as E
from tokentail.collector.events import Broadcaster
from tokentail.collector.pipeline import Collector
from tokentail.collector.store import Retention, Store, migrate
from tokentail.erasure import Selector

T0 = 1_800_000_000.0


def _marker() -> str:
    return "MARK" + uuid.uuid4().hex


def _row(rid, session, marker, t=T0, **extra):
    return {
        "request_id": rid,
        "start_time": t,
        "end_time": t + 1,
        "received_at": t,
        "session_id": session,
        "user_id": "u1",
        "key_fingerprint": "fp1",
        "model": "m",
        "status": "ok",
        "input_tokens": 100,
        "output_tokens": 50,
        "cost_usd": 0.25,
        "ttft_ms": 12.0,
        "latency_ms": 300.0,
        "input_messages": json.dumps([{"role": "user", "parts": [{"type": "text", "content": f"{marker} in"}]}]),
        "output_messages": json.dumps([{"role": "assistant", "parts": [{"type": "text", "content": f"{marker} out"}]}]),
        "system_instructions": json.dumps([{"type": "text", "content": f"{marker} sys"}]),
        "events": json.dumps(
            [
                {"name": "tokentail.first_token", "time": t, "attributes": {"tokentail.ttft_ms": 12.0}},
                {"name": "gen_ai.client.inference.operation.details", "attributes": {"x": f"{marker} tool args"}},
            ]
        ),
        "attributes": json.dumps(
            {"gen_ai.request.temperature": 0.2, "gen_ai.response.id": "resp-1", "app.note": f"{marker} note"}
        ),
        "size_bytes": 1000,
        **extra,
    }


def _spans(store, where="TRUE"):
    cur = store._con
    cols = [
        "request_id",
        "session_id",
        "input_messages",
        "output_messages",
        "system_instructions",
        "events",
        "attributes",
        "input_tokens",
        "output_tokens",
        "cost_usd",
        "ttft_ms",
        "latency_ms",
        "content_erased_at",
    ]
    rows = cur.execute(f"SELECT {', '.join(cols)} FROM spans WHERE {where} ORDER BY request_id").fetchall()
    return [dict(zip(cols, r)) for r in rows]


def _file_has(path, marker: str) -> bool:
    data = path.read_bytes()
    wal = path.with_name(path.name + ".wal")
    if wal.exists():
        data += wal.read_bytes()
    return marker.encode() in data


def test_erase_a_session_keeps_numbers_and_leaves_no_bytes_on_disk(tmp_path):
    store = Store.open(tmp_path / "t.duckdb")
    gone, kept = _marker(), _marker()
    # Many rows, so the text spans several blocks; one other session keeps its content.
    store.insert_spans([_row(f"a{i:04d}", "s-gone", gone, T0 + i) for i in range(300)])
    store.insert_spans([_row("b0001", "s-kept", kept)])
    store.checkpoint()
    assert _file_has(store.path, gone)  # the control: the text is in the file before
    before = store._con.execute("SELECT sum(cost_usd), sum(input_tokens), sum(output_tokens), count(*) FROM spans")
    totals = before.fetchall()
    n = store.erase(Selector(session="s-gone"), now=T0 + 1000)
    assert n == 300
    assert (
        store._con.execute(
            "SELECT sum(cost_usd), sum(input_tokens), sum(output_tokens), count(*) FROM spans"
        ).fetchall()
        == totals
    )
    row = _spans(store, "session_id = 's-gone'")[0]
    assert row["input_messages"] is None and row["output_messages"] is None and row["system_instructions"] is None
    assert json.loads(row["attributes"]) == {"gen_ai.request.temperature": 0.2, "gen_ai.response.id": "resp-1"}
    assert json.loads(row["events"]) == [
        {"name": "tokentail.first_token", "attributes": {"tokentail.ttft_ms": 12.0}, "time": T0}
    ]
    assert (row["ttft_ms"], row["latency_ms"], row["content_erased_at"]) == (12.0, 300.0, T0 + 1000)
    other = _spans(store, "session_id = 's-kept'")[0]
    assert kept in other["input_messages"] and other["content_erased_at"] is None
    assert not _file_has(store.path, gone)  # compacted: not even in free blocks
    assert _file_has(store.path, kept)
    store.close()
    assert not _file_has(tmp_path / "t.duckdb", gone)
    assert not (tmp_path / "t.duckdb.compact").exists()


def test_late_spans_of_an_erased_selector_arrive_without_content_also_after_a_restart(tmp_path):
    path = tmp_path / "t.duckdb"
    store = Store.open(path)
    m = _marker()
    store.insert_spans([_row("r1", "s1", m)])
    store.erase(Selector(session="s1"), now=T0 + 5, compact=False)
    store.erase(Selector(user="u7", key="fp7"), now=T0 + 6, compact=False)
    store.close()
    store = Store.open(path)  # the ledger is on disk
    store.insert_spans(
        [
            _row("r2", "s1", m, received_at=T0 + 10),  # the erased session, late
            _row("r3", "s9", m, user_id="u7", key_fingerprint="fp7", received_at=T0 + 11),  # the combination
            _row("r4", "s9", m, user_id="u7", key_fingerprint="other"),  # not covered
        ]
    )
    rows = {r["request_id"]: r for r in _spans(store)}
    assert rows["r2"]["input_messages"] is None and rows["r2"]["content_erased_at"] == T0 + 10
    assert rows["r3"]["output_messages"] is None and rows["r3"]["content_erased_at"] == T0 + 11
    assert m in rows["r4"]["input_messages"] and rows["r4"]["content_erased_at"] is None
    assert rows["r2"]["cost_usd"] == 0.25 and rows["r2"]["input_tokens"] == 100
    store.close()


def test_a_version_4_file_gains_erasure_keeping_its_spans(tmp_path):
    path = tmp_path / "v4.duckdb"
    con = duckdb.connect(str(path))
    migrate(con, target=4)
    con.execute("INSERT INTO spans (request_id, start_time, session_id, input_messages) VALUES ('old', 1, 's', 'hi')")
    con.close()
    store = Store.open(path)
    assert _spans(store)[0]["input_messages"] == "hi" and _spans(store)[0]["content_erased_at"] is None
    assert store.erase(Selector(session="s"), now=5.0, compact=False) == 1
    assert _spans(store)[0]["input_messages"] is None
    store.close()


def test_the_ledger_table_is_bounded(tmp_path):
    store = Store.open(tmp_path / "t.duckdb")
    for i in range(5):
        store.transaction(E.record_erase, Selector(request=f"r{i}"), T0 + i, 3)
    left = store._con.execute("SELECT selector FROM erase_ledger ORDER BY id").fetchall()
    assert [json.loads(s)["request"] for (s,) in left] == ["r2", "r3", "r4"]
    store.close()


def test_metadata_filters_drop_every_free_string():
    attrs = json.dumps({"n": 1, "b": True, "l": [1, 2], "s": "prompt", "ls": ["a"], "gen_ai.response.id": "x"})
    assert json.loads(E.metadata_attributes(attrs)) == {"n": 1, "b": True, "l": [1, 2], "gen_ai.response.id": "x"}
    assert E.metadata_attributes("not json") is None and E.metadata_attributes(None) is None
    assert E.metadata_events(json.dumps([{"name": "gen_ai.client.inference.operation.details"}])) is None
    row = E.strip_row({"input_messages": "x", "attributes": attrs, "events": None, "cost_usd": 1.0}, 7.0)
    assert row["input_messages"] is None and row["cost_usd"] == 1.0 and row["content_erased_at"] == 7.0


async def test_content_retention_erases_old_content_in_batches_and_keeps_spans(tmp_path):
    cfg = make_config(tmp_path, retention=Retention(spans=30 * 86400, content=7 * 86400, compact_interval=0.0))
    store = Store.open(cfg.db)
    old, new = _marker(), _marker()
    store.insert_spans([_row(f"o{i:03d}", "s-old", old, received_at=T0 + i) for i in range(25)])
    store.insert_spans([_row("n1", "s-new", new, received_at=T0 + 8 * 86400)])
    store.checkpoint()
    assert _file_has(cfg.db, old)
    collector = Collector(cfg, store, Broadcaster(), clock=lambda: T0 + 8 * 86400 + 60)
    original = store.content_retention_step
    calls = []

    def small_batches(now, policy):  # bounded batches: 10 rows per transaction
        calls.append(now)
        return original(now, policy, batch_rows=10)

    store.content_retention_step = small_batches  # type: ignore[method-assign]
    result = await collector.maintain()
    assert result["content_erased"] == 25 and len(calls) == 4  # 10 + 10 + 5, then nothing left
    rows = {r["request_id"]: r for r in _spans(store)}
    assert len(rows) == 26  # the spans stay: only their content went
    assert all(rows[f"o{i:03d}"]["input_messages"] is None for i in range(25))
    assert new in rows["n1"]["input_messages"]
    assert not _file_has(cfg.db, old) and _file_has(cfg.db, new)
    assert collector.maintenance["content_erased"] == 25
    store.close()


def test_content_retention_option():
    from tokentail.collector.command import OPTIONS
    from tokentail.collector.config import CollectorConfig
    from tokentail.settings import resolve

    cfg = CollectorConfig.from_settings(resolve("collector", OPTIONS, {"content_retention": "3d"}, env={}))
    assert cfg.retention.content == 3 * 86400 and cfg.public()["retention"]["content"] == 3 * 86400
    assert CollectorConfig.from_settings(resolve("collector", OPTIONS, {}, env={})).retention.content is None


def test_a_failed_compaction_is_done_by_the_retried_erase(tmp_path, monkeypatch):
    store = Store.open(tmp_path / "t.duckdb")
    m = _marker()
    store.insert_spans([_row(f"a{i:03d}", "s1", m, T0 + i) for i in range(50)])
    store.checkpoint()

    def full_disk(con, path):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(E, "compact", full_disk)
    try:
        store.erase(Selector(session="s1"), now=T0 + 100)
    except OSError:
        pass
    else:
        raise AssertionError("the compaction should have failed")
    assert store.compact_pending and _file_has(store.path, m)  # erased rows, text still in free blocks
    monkeypatch.undo()
    assert store.erase(Selector(session="s1"), now=T0 + 200) == 0  # nothing left to erase...
    assert not store.compact_pending and not _file_has(store.path, m)  # ...but the file is compacted
    assert _spans(store)[0]["input_messages"] is None
    store.close()
