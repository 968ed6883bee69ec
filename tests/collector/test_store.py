"""store.py: schema versions, batched writes, idempotent rollup, bounded retention, opening errors."""

from __future__ import annotations

import math
import os
import subprocess
import sys
import textwrap

import duckdb
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tokentail.collector.store import SCHEMA_VERSION, Retention, Store, StoreError, migrate

LAT = "tokentail_request_duration_seconds_bucket"
REQ = "tokentail_requests_total"
GAUGE_NAME = "tokentail_in_flight_requests"


def req(value, model="m", variant="production", target="http://a/metrics"):
    return (variant, target, REQ, (("model", model), ("status_class", "2xx")), "counter", float(value))


def gauge(value, variant="production", target="http://a/metrics"):
    return (variant, target, GAUGE_NAME, (), "gauge", float(value))


@pytest.fixture
def store(tmp_path):
    s = Store.open(tmp_path / "t.duckdb")
    yield s
    s.close()


def q(store, sql, *args):
    return store._con.execute(sql, list(args)).fetchall()


def test_new_file_is_at_the_current_schema(store):
    assert q(store, "SELECT value FROM meta WHERE key='schema_version'") == [(str(SCHEMA_VERSION),)]
    assert {r[0] for r in q(store, "SHOW TABLES")} >= {"meta", "series", "metrics_5s", "metrics_1m", "spans"}


def test_an_older_file_is_migrated_forward_at_start(tmp_path):
    path = tmp_path / "old.duckdb"
    con = duckdb.connect(str(path))
    migrate(con, target=1)  # what the first release wrote: metrics only, no spans table
    con.execute(
        "INSERT INTO series VALUES (1, 'production', 't', 'tokentail_requests_total', '{}', 'counter', NULL, NULL, 0)"
    )
    con.execute("INSERT INTO metrics_5s VALUES (100, 1, 3)")
    assert "spans" not in {r[0] for r in con.execute("SHOW TABLES").fetchall()}
    con.close()
    s = Store.open(path)
    try:
        assert q(s, "SELECT value FROM meta WHERE key='schema_version'") == [(str(SCHEMA_VERSION),)]
        assert q(s, "SELECT count(*) FROM spans") == [(0,)]
        assert q(s, "SELECT ts, series_id, value FROM metrics_5s") == [(100.0, 1, 3.0)]  # data kept
        assert s.catalog()[1].name == "tokentail_requests_total"
    finally:
        s.close()


def test_a_version_2_file_gains_cost_attribution_and_runs_keeping_its_spans(tmp_path):
    path = tmp_path / "v2.duckdb"
    con = duckdb.connect(str(path))
    migrate(con, target=2)
    con.execute("INSERT INTO spans (request_id, start_time, model) VALUES ('old', 100, 'm')")
    con.close()
    s = Store.open(path)
    try:
        assert q(s, "SELECT value FROM meta WHERE key='schema_version'") == [(str(SCHEMA_VERSION),)]
        assert q(s, "SELECT request_id, model, cost_usd, user_id, tags, key_fingerprint, route FROM spans") == [
            ("old", "m", None, None, None, None, None)
        ]
        assert (
            s.insert_spans(
                [
                    {
                        "request_id": "new",
                        "start_time": 200.0,
                        "cost_usd": 0.5,
                        "user_id": "u",
                        "tags": ["a", "b"],
                        "key_fingerprint": "fp",
                        "route": "r",
                    }
                ]
            )
            == 1
        )
        assert q(s, "SELECT cost_usd, tags FROM spans WHERE list_contains(tags, 'b')") == [(0.5, ["a", "b"])]
        assert q(s, "SELECT count(*) FROM runs") == [(0,)] and q(s, "SELECT count(*) FROM run_intervals") == [(0,)]
    finally:
        s.close()
    # A file created new has the same columns in the same order as a migrated one.
    fresh = Store.open(tmp_path / "fresh.duckdb")
    try:
        cols = [
            r[0]
            for r in q(
                fresh,
                "SELECT column_name FROM information_schema.columns WHERE table_name = "
                "'spans' ORDER BY ordinal_position",
            )
        ]
    finally:
        fresh.close()
    con = duckdb.connect(str(path))
    migrated = [
        r[0]
        for r in con.execute(
            "SELECT column_name FROM information_schema.columns WHERE table_name = 'spans' ORDER BY ordinal_position"
        ).fetchall()
    ]
    con.close()
    assert cols == migrated and cols[-6:] == [
        "cost_usd",
        "user_id",
        "tags",
        "key_fingerprint",
        "route",
        "content_erased_at",
    ]


def test_a_newer_file_is_refused_with_one_line(tmp_path):
    path = tmp_path / "new.duckdb"
    Store.open(path).close()
    con = duckdb.connect(str(path))
    con.execute("UPDATE meta SET value = '99' WHERE key = 'schema_version'")
    con.close()
    with pytest.raises(StoreError, match="schema version 99, newer than this collector"):
        Store.open(path)


def test_append_skips_zero_increases_and_keeps_series_ids_across_reopen(tmp_path):
    s = Store.open(tmp_path / "t.duckdb")
    assert s.append_metrics(100.0, [req(2), req(0, model="idle"), gauge(0)]) == 2  # gauge 0 is a value
    assert s.append_metrics(105.0, [req(1), gauge(1)]) == 2
    ids = {info.name: sid for sid, info in s.catalog().items()}
    assert set(ids) == {REQ, GAUGE_NAME}  # the idle series got no row, hence no id
    s.close()
    s = Store.open(tmp_path / "t.duckdb")
    try:
        assert {info.name: sid for sid, info in s.catalog().items()} == ids
        s.append_metrics(110.0, [req(4)])
        assert q(s, "SELECT count(DISTINCT series_id), sum(value) FROM metrics_5s WHERE series_id = ?", ids[REQ]) == [
            (1, 7.0)
        ]
        assert s.catalog()[ids[REQ]].model == "m"
    finally:
        s.close()


def test_a_failed_write_leaves_no_trace(store):
    store.append_metrics(100.0, [req(1)])
    store._con.execute("ALTER TABLE metrics_5s RENAME TO gone")  # make the insert fail mid-transaction
    with pytest.raises(duckdb.Error):
        store.append_metrics(105.0, [req(1, model="new")])
    store._con.execute("ALTER TABLE gone RENAME TO metrics_5s")
    assert len(store.catalog()) == 1
    assert q(store, "SELECT count(*) FROM series") == [(1,)]
    store.append_metrics(110.0, [req(1, model="new")])  # the next round works and gets a fresh id
    assert q(store, "SELECT count(*) FROM series") == [(2,)]


def _fill(store, start, minutes, *, value=1.0):
    for i in range(int(minutes * 12)):
        ts = start + 5 * i
        store.append_metrics(ts, [req(value), gauge(i % 3), req(2, variant="canary", target="http://b/metrics")])


def test_rollup_sums_counters_averages_gauges_and_is_idempotent(store):
    _fill(store, 6000.0, 3)  # minutes 6000, 6060, 6120
    assert store.rollup_step(now=6120 + 30, settle=6.0) is False  # the minute in progress stays out
    assert store.watermark == 6120.0
    rows = q(
        store,
        "SELECT m.ts, s.name, s.variant, m.value FROM metrics_1m m JOIN series s ON s.id = m.series_id "
        "ORDER BY 1, 2, 3",
    )
    assert (6000.0, REQ, "production", 12.0) in rows and (6000.0, REQ, "canary", 24.0) in rows
    assert (6000.0, GAUGE_NAME, "production", 1.0) in rows  # mean of 0,1,2,...
    assert not any(r[0] >= 6120 for r in rows)
    before = q(store, "SELECT * FROM metrics_1m ORDER BY ALL")
    store._con.execute("DELETE FROM meta WHERE key = 'rollup_watermark'")  # as if the move was lost
    store._watermark = None
    store.rollup_step(now=6120 + 30, settle=6.0)
    assert q(store, "SELECT * FROM metrics_1m ORDER BY ALL") == before  # same rows, none doubled
    store.rollup_step(now=6300, settle=6.0)
    assert q(store, "SELECT count(*) FROM metrics_1m WHERE ts = 6120") == [(3,)]


def test_rollup_works_in_bounded_chunks_and_skips_gaps(store):
    _fill(store, 0.0, 10)
    _fill(store, 86400.0, 2)  # a day later: the collector was off in between
    steps = 0
    while store.rollup_step(now=86400 + 600, settle=6.0, chunk=180.0):
        steps += 1
    assert 4 <= steps <= 6  # 10 min / 3-min chunks, then the gap skipped at once, then 2 min
    assert q(store, "SELECT count(DISTINCT ts) FROM metrics_1m") == [(12,)]


def test_retention_deletes_in_bounded_batches_and_never_before_the_rollup(store):
    _fill(store, 0.0, 60)
    pol = Retention(metrics_5s=600.0, metrics_1m=86400.0)
    assert store.retention_step(now=3600.0, policy=pol) == 0  # nothing rolled up yet: keep everything
    while store.rollup_step(now=3600.0, settle=6.0):
        pass
    deleted = []
    while n := store.retention_step(now=3600.0, policy=pol, batch_seconds=300.0):
        deleted.append(n)
    assert len(deleted) == 10 and max(deleted) <= 3 * 60  # 5-minute batches of 3 series x 60 rows
    assert q(store, "SELECT min(ts) FROM metrics_5s") == [(3000.0,)]
    while store.retention_step(now=86400 + 1800.0, policy=pol):
        pass
    assert q(store, "SELECT min(ts) FROM metrics_1m")[0][0] >= 1800.0


def _span(i, start, size=100):
    return {
        "request_id": f"r{i}",
        "start_time": float(start),
        "name": "chat m",
        "status": "ok",
        "input_messages": "x" * size,
        "size_bytes": size,
    }


def test_spans_are_deduplicated_by_request_id(store):
    assert store.insert_spans([_span(1, 10), _span(2, 11), _span(1, 10)]) == 2
    assert store.insert_spans([_span(2, 11), _span(3, 12)]) == 1  # a retried export
    assert q(store, "SELECT request_id FROM spans ORDER BY 1") == [("r1",), ("r2",), ("r3",)]


def test_spans_retention_by_age_rows_and_bytes(store):
    store.insert_spans([_span(i, 1000 + i, size=1000) for i in range(100)])
    pol = Retention(spans=50.0, spans_max_rows=30, spans_max_bytes=20_000)
    while store.retention_step(now=1000 + 100 + 50 - 20, policy=pol, batch_rows=7):
        pass  # age first (older than t=1080 go), then count, then bytes, 7 rows a batch at most
    left = q(store, "SELECT min(start_time), count(*), sum(size_bytes) FROM spans")[0]
    assert left[1] <= 20 and left[2] <= 20_000 and left[0] == 1000 + 100 - left[1]  # the newest kept


FUTURE, PAST = 4_102_444_800.0, 1.0  # 2100-01-01 and the first second of 1970


def _arrived(store, at, starts, prefix):
    """One export batch received at ``at`` (the collector's clock) with the reported ``starts``."""
    rows = [{**_span(f"{prefix}{i}", t), "received_at": at} for i, t in enumerate(starts)]
    return store.insert_spans(rows)


def test_wrong_clocks_never_make_retention_delete_newer_data(store):
    """Case 38: retention goes by receive time; queries keep the time the span reported."""
    _arrived(store, 1000.0, [1000.0, 1001.0], "a")  # real
    _arrived(store, 1010.0, [FUTURE, FUTURE + 1], "f")  # a host whose clock says 2100
    _arrived(store, 1020.0, [PAST, PAST + 1], "p")  # ...or 1970
    _arrived(store, 1030.0, [1030.0, 1031.0], "b")  # real again
    while store.retention_step(now=1035.0, policy=Retention(spans=20.0)):
        pass  # received before 1015 go, whatever they claim
    kept = q(store, "SELECT request_id, start_time FROM spans ORDER BY request_id")
    assert kept == [("rb0", 1030.0), ("rb1", 1031.0), ("rp0", PAST), ("rp1", PAST + 1)]  # reported times kept
    _arrived(store, 1040.0, [FUTURE + 2], "g")
    while store.retention_step(now=1041.0, policy=Retention(spans_max_rows=3), batch_rows=1):
        pass  # the cap takes the oldest received first: the 1970 pair (1020) before newer arrivals
    assert {r[0] for r in q(store, "SELECT request_id FROM spans")} == {"rb0", "rb1", "rg0"}


@settings(max_examples=25, deadline=None)
@given(
    batches=st.lists(
        st.lists(st.sampled_from([PAST, 500.0, 1000.0, 2000.0, FUTURE]), min_size=1, max_size=4),
        min_size=1,
        max_size=8,
    ),
    cap=st.integers(1, 20),
)
def test_retention_keeps_the_newest_received_whatever_the_reported_times(tmp_path_factory, batches, cap):
    s = Store.open(tmp_path_factory.mktemp("ret") / "r.duckdb")
    try:
        for n, starts in enumerate(batches):
            _arrived(s, 1000.0 + n, starts, f"{n}-")
        while s.retention_step(now=2000.0, policy=Retention(spans_max_rows=cap), batch_rows=2):
            pass
        kept = [r[0] for r in q(s, "SELECT received_at FROM spans")]
        gone = sum(len(b) for b in batches) - len(kept)
        assert len(kept) <= cap
        if gone:  # whatever went was received no later than everything kept
            assert min(kept, default=math.inf) > 1000.0 + _last_deleted_batch(batches, len(kept))
    finally:
        s.close()


def _last_deleted_batch(batches, kept):
    """Index of the newest batch that lost a row, when the newest ``kept`` rows survive."""
    left = kept
    for n in range(len(batches) - 1, -1, -1):
        if left < len(batches[n]):
            return n
        left -= len(batches[n])
    return -1


def test_file_stops_growing_under_retention(tmp_path):
    """Case 27: a steady stream with retention reuses freed blocks."""
    s = Store.open(tmp_path / "grow.duckdb")
    pol = Retention(metrics_5s=1800.0, metrics_1m=3600.0)
    points = [req(i + 1, model=f"m{i}") for i in range(400)]
    sizes = []
    try:
        for hour in range(8):
            for i in range(60):  # one round a minute keeps the test quick; blocks are what matter
                s.append_metrics(hour * 3600 + 60.0 * i, points)
            now = (hour + 1) * 3600.0
            while s.rollup_step(now=now, settle=6.0):
                pass
            while s.retention_step(now=now, policy=pol):
                pass
            s.checkpoint()
            sizes.append(s.size_bytes())
    finally:
        s.close()
    # Without retention the file reaches ~1.5x this by hour 8; with it, growth stops by hour 3
    # (one 256 KiB block of slack for where DuckDB happens to place things).
    assert max(sizes[3:]) <= max(sizes[:3]) + 256 * 1024, sizes


def test_second_process_gets_a_clear_lock_error(tmp_path):
    """Case 23: the file is held by another process (a collector): one line, and no damage."""
    path = tmp_path / "locked.duckdb"
    s = Store.open(path)
    s.append_metrics(5.0, [req(1)])
    s.close()
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            textwrap.dedent(f"""
        import sys, time
        from tokentail.collector.store import Store
        s = Store.open({str(path)!r}); print("ready", flush=True); time.sleep(30)
    """),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout.readline().strip() == "ready"
        with pytest.raises(StoreError) as info:
            Store.open(path)
        msg = str(info.value)
        assert "in use by another process" in msg and f"PID {holder.pid}" in msg and "\n" not in msg
    finally:
        holder.kill()
        holder.wait()
    s = Store.open(path)  # the holder died without closing: the file still opens, data intact
    try:
        assert q(s, "SELECT sum(value) FROM metrics_5s") == [(1.0,)]
    finally:
        s.close()


def test_unusable_paths_give_one_line_errors(tmp_path):
    afile = tmp_path / "plain"
    afile.write_text("x")
    with pytest.raises(StoreError, match="cannot create the directory"):
        Store.open(afile / "sub" / "t.duckdb")
    with pytest.raises(StoreError, match="is a directory"):
        Store.open(tmp_path)
    foreign = tmp_path / "notes.duckdb"
    foreign.write_text("my precious notes, not a database\n" * 1000)
    with pytest.raises(StoreError, match="not a DuckDB database; refusing to touch it"):
        Store.open(foreign)
    assert foreign.read_text().startswith("my precious notes")  # untouched


def _uncheckpointed(path, fn):
    """Write through a connection that leaves its changes in the WAL (as after kill -9)."""
    con = duckdb.connect(str(path))
    con.execute("PRAGMA disable_checkpoint_on_shutdown")
    con.execute("SET checkpoint_threshold = '1GB'")
    fn(con)
    con.close()


def test_corrupt_wal_is_moved_aside_loudly_and_the_store_opens(tmp_path, caplog):
    """Case 25."""
    path = tmp_path / "c.duckdb"
    s = Store.open(path)
    s.append_metrics(5.0, [req(1)])
    s.close()  # checkpointed: this row is in the file
    _uncheckpointed(path, lambda con: con.execute("INSERT INTO metrics_5s VALUES (10, 1, 5)"))
    wal = path.with_name(path.name + ".wal")
    data = bytearray(wal.read_bytes())
    for i in range(len(data) // 2, len(data), 3):  # the entries (a broken header makes DuckDB skip the WAL)
        data[i] ^= 0x5A
    wal.write_bytes(bytes(data))
    with caplog.at_level("ERROR"):
        s = Store.open(path)
    try:
        assert "DATABASE RECOVERY" in caplog.text and "write-ahead log" in caplog.text
        aside = [p for p in tmp_path.iterdir() if p.name.startswith("c.duckdb.wal.corrupt-")]
        assert len(aside) == 1 and aside[0].stat().st_size == len(data)  # kept for inspection
        assert q(s, "SELECT sum(value) FROM metrics_5s") == [(1.0,)]  # the checkpointed data survived
        s.append_metrics(15.0, [req(2)])  # and it is writable
    finally:
        s.close()
    Store.open(path).close()  # no crash loop on the next start


def test_truncated_wal_opens(tmp_path):
    path = tmp_path / "t.duckdb"
    Store.open(path).close()
    _uncheckpointed(path, lambda con: [con.execute(f"INSERT INTO metrics_5s VALUES ({i}, 1, 1)") for i in range(50)])
    wal = path.with_name(path.name + ".wal")
    wal.write_bytes(wal.read_bytes()[: wal.stat().st_size // 2])  # full disk cut it
    s = Store.open(path)
    try:
        n = q(s, "SELECT count(*) FROM metrics_5s")[0][0]
        assert 0 <= n < 50
        s.append_metrics(100.0, [req(1)])
    finally:
        s.close()


def test_file_cut_during_creation_is_replaced(tmp_path, caplog):
    path = tmp_path / "new.duckdb"
    path.write_bytes(b"")
    with caplog.at_level("ERROR"):
        s = Store.open(path)
    s.close()
    assert "cut while being created" in caplog.text
    assert any(p.name.startswith("new.duckdb.incomplete-") for p in tmp_path.iterdir())


def test_closing_twice_is_harmless(tmp_path):
    s = Store.open(tmp_path / "x.duckdb")
    s.close()
    s.close()
    assert os.path.exists(tmp_path / "x.duckdb")


def test_a_version_3_file_keeps_its_runs_unscoped(tmp_path):
    path = tmp_path / "v3.duckdb"
    con = duckdb.connect(str(path))
    migrate(con, target=3)
    con.execute("INSERT INTO runs VALUES (1, 'old run', 100, NULL, 'active')")
    con.close()
    s = Store.open(path)
    try:
        assert q(s, "SELECT value FROM meta WHERE key='schema_version'") == [(str(SCHEMA_VERSION),)]
        assert q(s, "SELECT id, name, scope_tags, scope_user, scope_model FROM runs") == [
            (1, "old run", None, None, None)
        ]
    finally:
        s.close()
