"""``tokentail collector`` as a real process: one-line start-up errors, kill -9, a full disk."""

from __future__ import annotations

import asyncio
import random
import resource
import time

import duckdb
import pytest

from tests.helpers import until
from tests.helpers.fakes import FakeProxy
from tests.helpers.procs import CollectorProcess, run_cli
from tokentail.collector.store import Store


def _one_line_error(stderr: str) -> str:
    lines = [ln for ln in stderr.splitlines() if "error" in ln.lower()]
    assert "Traceback" not in stderr, stderr
    assert len(lines) == 1, stderr
    return lines[0]


async def test_second_collector_on_the_same_file_gets_a_lock_error(tmp_path):
    """Case 23, as a user meets it."""
    db = tmp_path / "t.duckdb"
    first = CollectorProcess(db)
    try:
        await first.wait_healthy()
        second = run_cli("--port", "0", "--db", str(db))
        assert second.returncode == 1
        line = _one_line_error(second.stderr)
        assert line.startswith("tokentail collector: error: database") and "in use by another process" in line
        assert f"PID {first.proc.pid}" in line
        assert (await first.get_json("/healthz"))["status"] == "ok"  # the first one is untouched
    finally:
        assert await first.stop() == 0
    Store.open(db).close()  # and the file is fine


def test_unusable_paths_and_bad_targets_are_one_line(tmp_path):
    afile = tmp_path / "file"
    afile.write_text("x")
    r = run_cli("--port", "0", "--db", str(afile / "t.duckdb"))
    assert r.returncode == 1 and "cannot create the directory" in _one_line_error(r.stderr)
    r = run_cli("--port", "0", "--db", str(afile))
    assert r.returncode == 1 and "not a DuckDB database" in _one_line_error(r.stderr)
    r = run_cli("--port", "0", "--db", str(tmp_path / "ok.duckdb"), "--target", "ftp://nope")
    assert r.returncode == 2 and "--target" in _one_line_error(r.stderr)


def test_an_unreadable_wal_exits_with_one_line_and_keeps_the_file(tmp_path):
    """Not corruption (an I/O error on the WAL, even as root): retried, then exit 1; nothing set aside."""
    db = tmp_path / "t.duckdb"
    Store.open(db).close()
    (tmp_path / "t.duckdb.wal").mkdir()
    r = run_cli("--port", "0", "--db", str(db))
    assert r.returncode == 1
    line = _one_line_error(r.stderr)
    assert line.startswith("tokentail collector: error: cannot open database") and "nothing was moved" in line
    assert sorted(p.name for p in tmp_path.iterdir()) == ["t.duckdb", "t.duckdb.wal"]


def _backlog(db, hours: int, series: int, end: float) -> None:
    """Hours of 5s rows not yet rolled up, value i+1 for series i: every minute sums to 12*(i+1)."""
    s = Store.open(db)
    start = end - hours * 3600
    s.append_metrics(
        start,
        [
            (
                "backlog",
                "http://old/metrics",
                "tokentail_tokens_total",
                (("model", f"m{i}"), ("type", "output")),
                "counter",
                float(i + 1),
            )
            for i in range(series)
        ],
    )
    s._con.execute(
        "INSERT INTO metrics_5s SELECT ts + 5 * r, series_id, value FROM metrics_5s, range(1, ?) t(r) "
        "WHERE ts = ? ORDER BY 1",
        [hours * 720, start],
    )
    s.close()


async def _requests(c: CollectorProcess) -> float:
    m = await c.get_json("/api/metrics?range=15m&variant=production")
    return m["groups"][0]["summary"]["requests"] if m["groups"] else 0.0


@pytest.mark.slow
async def test_kill_9_at_any_moment_then_reopen_20_times(tmp_path):
    """Case 24: kill -9 while scraping, writing, rolling up, deleting and checkpointing."""
    rng = random.Random(24)
    proxy = await FakeProxy().start()
    db = tmp_path / "k.duckdb"
    end = time.time() // 60 * 60 - 600
    _backlog(db, hours=24, series=250, end=end)  # 4.3M rows: rollup and retention span several lives
    args = (
        "--scrape-interval",
        "0.2",
        "--scrape-timeout",
        "0.2",
        "--rollup-interval",
        "0.3",
        "--retention-5s",
        "1h",
        "--checkpoint-threshold",
        "256KiB",
    )

    async def traffic():
        while True:
            proxy.metrics.request()
            await asyncio.sleep(0.02)  # steady traffic for the scrapes, ~50 requests/s

    pump = asyncio.create_task(traffic())
    seen, mid_upkeep = 0.0, 0
    try:
        for i in range(20):
            c = CollectorProcess(db, [f"production={proxy.url}"], *args)
            if i % 4 == 3:  # now and then during start-up: opening, WAL replay, migration
                await asyncio.sleep(rng.uniform(0.05, 0.6))  # the scenario: a kill at a random moment
                c.kill9()
                continue
            await c.wait_healthy()  # the previous kill left a file that opens
            now_seen = await _requests(c)
            assert now_seen >= seen, f"committed rows lost after kill #{i}"
            seen = now_seen
            await asyncio.sleep(rng.uniform(0.0, 1.2))  # the scenario: run a random while, then die
            st = await c.get_json("/api/status")
            mid_upkeep += (st["store"]["rollup_watermark"] or 0) < end or st["store"]["maintenance"]["last_run"] is None
            c.kill9()
            assert "Traceback" not in c.stderr, c.stderr
        final = CollectorProcess(db, [f"production={proxy.url}"], *args)
        await final.wait_healthy()

        async def rolled_up() -> bool:
            st = await final.get_json("/api/status")
            return (st["store"]["rollup_watermark"] or 0) >= end

        await until(rolled_up, timeout=20, step=0.1, what="the rollup of the backlog")
        assert await _requests(final) >= seen
        assert await final.stop() == 0
        assert mid_upkeep >= 3  # several kills landed while the backlog was being rolled up
    finally:
        pump.cancel()
        await proxy.stop()
    con = duckdb.connect(str(db), read_only=True)
    try:
        dupes = con.execute(
            "SELECT count(*) FROM (SELECT ts, series_id FROM metrics_1m GROUP BY ALL HAVING count(*) > 1)"
        ).fetchall()[0][0]
        assert dupes == 0  # the rollup never doubled a minute, however it was interrupted
        wrong = con.execute(
            "SELECT count(*), count(*) FILTER (WHERE m.value <> 12 * (CAST(substr(s.model, 2) AS INTEGER) + 1)) "
            "FROM metrics_1m m JOIN series s ON s.id = m.series_id WHERE s.variant = 'backlog'"
        ).fetchall()[0]
        assert wrong == (24 * 60 * 250, 0)  # every backlog minute of every series, exact
        assert con.execute("SELECT min(ts) FROM metrics_5s").fetchall()[0][0] >= end - 3600 - 60  # retention ran
    finally:
        con.close()


def _rounds_past(status, rounds: int):
    """A predicate for ``until``: the collector finished more than ``rounds`` scrape rounds."""

    async def past() -> bool:
        return (await status())["rounds"] > rounds

    return past


@pytest.mark.slow
async def test_disk_full_stops_writes_cleanly_and_collection_resumes(tmp_path):
    """Case 26: a file-size limit on the running collector stands in for a full disk."""
    proxy = await FakeProxy().start()
    c = CollectorProcess(
        tmp_path / "f.duckdb",
        [f"production={proxy.url}"],
        "--scrape-interval",
        "0.2",
        "--scrape-timeout",
        "0.2",
        "--checkpoint-threshold",
        "1GiB",
    )
    try:
        await c.wait_healthy()
        st: dict = {}

        async def status() -> dict:
            st.clear()
            st.update(await c.get_json("/api/status"))
            return st

        wal = c.db.with_name(c.db.name + ".wal")
        await until(lambda: wal.exists(), timeout=10, what="the WAL after the first scrapes")
        await until(_rounds_past(status, 2), timeout=10)
        limit = max(wal.stat().st_size, 1)
        resource.prlimit(c.proc.pid, resource.RLIMIT_FSIZE, (limit, resource.RLIM_INFINITY))  # soft only

        async def write_failed() -> bool:
            proxy.metrics.request()
            return not (await status())["store"]["ok"]

        await until(write_failed, timeout=5, step=0.05)
        assert st["store"]["ok"] is False and "too large" in st["store"]["error"].lower()
        rounds = st["rounds"]
        await until(_rounds_past(status, rounds), timeout=10)
        assert st["rounds"] > rounds  # scraping goes on
        assert {t["variant"]: t for t in st["targets"]}["production"]["up"] is True
        assert (await c.get_json("/healthz"))["status"] == "ok"
        rows = st["store"]["rows"]["metrics_5s"]
        resource.prlimit(c.proc.pid, resource.RLIMIT_FSIZE, (resource.RLIM_INFINITY, resource.RLIM_INFINITY))

        async def resumed() -> bool:
            await status()
            return st["store"]["ok"] and st["store"]["rows"]["metrics_5s"] > rows

        await until(resumed, timeout=5, step=0.05)
        assert st["store"]["ok"] is True and st["store"]["rows"]["metrics_5s"] > rows  # resumed
        assert c.stderr.count("database write failed") == 1  # logged once, not every round
        assert await c.stop() == 0
    finally:
        if c.proc.poll() is None:
            c.kill9()
        await proxy.stop()
