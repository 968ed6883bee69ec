"""_open.py: files are set aside only on DuckDB's own corruption errors; anything else retries, then one line."""

from __future__ import annotations

import duckdb
import pytest

from tokentail.collector import _open
from tokentail.collector.store import Store, StoreError


@pytest.fixture(autouse=True)
def quick_retries(monkeypatch):
    monkeypatch.setattr(_open, "RETRY_DELAY", 0.01)


def _stored(path, n=3):
    """A checkpointed file holding ``n`` spans."""
    s = Store.open(path)
    s.insert_spans([{"request_id": f"r{i}", "start_time": float(i), "received_at": 1.0} for i in range(n)])
    s.close()


def _count(store):
    return store._con.execute("SELECT count(*) FROM spans").fetchone()[0]


def _siblings(path):
    return sorted(p.name for p in path.parent.iterdir() if p.name != path.name)


def test_an_io_error_naming_the_wal_moves_nothing_and_exits_with_one_line(tmp_path, caplog):
    """As root too: a directory where the WAL should be makes DuckDB fail with an I/O error
    whose text says "WAL"; it is not corruption, so nothing is set aside and nothing starts empty."""
    path = tmp_path / "t.duckdb"
    _stored(path)
    wal = tmp_path / "t.duckdb.wal"
    wal.mkdir()
    with caplog.at_level("WARNING"), pytest.raises(StoreError) as info:
        Store.open(path)
    msg = str(info.value)
    assert "cannot open database" in msg and "WAL" in msg and "nothing was moved" in msg and "\n" not in msg
    assert caplog.text.count("retrying") == _open.ATTEMPTS - 1
    assert "DATABASE RECOVERY" not in caplog.text
    assert _siblings(path) == ["t.duckdb.wal"] and wal.is_dir()  # nothing renamed
    wal.rmdir()
    s = Store.open(path)
    try:
        assert _count(s) == 3  # history intact
    finally:
        s.close()


def test_errors_that_merely_mention_corruption_are_not_treated_as_it(tmp_path, monkeypatch):
    """The old recovery matched "WAL", "Corrupt" or "checksum" in any message."""
    path = tmp_path / "t.duckdb"
    _stored(path)
    calls = []

    def failing(*args, **kwargs):
        calls.append(args)
        raise duckdb.IOException('IO Error: Corrupt read of WAL "x": checksum of the disk controller')

    monkeypatch.setattr(_open.duckdb, "connect", failing)
    with pytest.raises(StoreError, match="cannot open database"):
        Store.open(path)
    assert len(calls) == _open.ATTEMPTS
    assert _siblings(path) == []


def test_a_passing_io_error_is_retried_and_the_history_kept(tmp_path, monkeypatch):
    path = tmp_path / "t.duckdb"
    _stored(path)
    real = duckdb.connect
    fails = iter([duckdb.IOException("IO Error: Could not read from file: Input/output error")])

    def flaky(*args, **kwargs):
        for exc in fails:
            raise exc
        return real(*args, **kwargs)

    monkeypatch.setattr(_open.duckdb, "connect", flaky)
    s = Store.open(path)
    try:
        assert _count(s) == 3
    finally:
        s.close()
    assert _siblings(path) == []


def test_real_errors_are_classified_by_type(tmp_path):
    path = tmp_path / "t.duckdb"
    _stored(path)
    (tmp_path / "t.duckdb.wal").mkdir()
    with pytest.raises(duckdb.Error) as io_error:
        duckdb.connect(str(path))
    assert not _open.is_corruption(io_error.value)
    (tmp_path / "t.duckdb.wal").rmdir()
    _garble(path, 12288 + 100)
    with pytest.raises(duckdb.Error) as corrupt:
        duckdb.connect(str(path))
    assert _open.is_corruption(corrupt.value)


def _garble(path, offset, n=64):
    data = bytearray(path.read_bytes())
    for i in range(offset, offset + n):
        data[i] ^= 0xA5
    path.write_bytes(bytes(data))


def test_a_corrupt_main_file_is_set_aside_loudly_and_a_new_one_starts(tmp_path, caplog):
    path = tmp_path / "c.duckdb"
    _stored(path)
    size = path.stat().st_size
    _garble(path, 12288 + 100)  # the first block: catalog metadata, read at open
    with caplog.at_level("ERROR"):
        s = Store.open(path)
    try:
        assert "DATABASE RECOVERY" in caplog.text and "is corrupt" in caplog.text
        aside = [p for p in tmp_path.iterdir() if p.name.startswith("c.duckdb.corrupt-")]
        assert len(aside) == 1 and aside[0].stat().st_size == size  # kept whole for inspection
        assert _count(s) == 0
        s.insert_spans([{"request_id": "new", "start_time": 1.0, "received_at": 1.0}])
    finally:
        s.close()


def test_a_corrupt_wal_goes_first_and_the_checkpoint_survives(tmp_path, caplog):
    path = tmp_path / "w.duckdb"
    _stored(path)
    con = duckdb.connect(str(path))
    con.execute("PRAGMA disable_checkpoint_on_shutdown")
    con.execute("SET checkpoint_threshold = '1GB'")
    for i in range(20):
        con.execute("INSERT INTO spans (request_id, start_time, received_at) VALUES (?, 1, 1)", [f"w{i}"])
    con.close()
    wal = tmp_path / "w.duckdb.wal"
    # One entry with valid ones after it: DuckDB takes a torn tail for an unfinished write.
    _garble(wal, wal.stat().st_size // 3, 8)
    with pytest.raises(duckdb.Error) as raw:  # what DuckDB itself says of this WAL
        duckdb.connect(str(path)).close()
    assert _open.is_corruption(raw.value)
    with caplog.at_level("ERROR"):
        s = Store.open(path)
    try:
        assert "write-ahead log is corrupt" in caplog.text
        assert [p.name.startswith("w.duckdb.wal.corrupt-") for p in tmp_path.iterdir()].count(True) == 1
        assert not [p for p in tmp_path.iterdir() if p.name.startswith("w.duckdb.corrupt-")]  # the file stayed
        assert _count(s) == 3  # the checkpointed rows
    finally:
        s.close()
