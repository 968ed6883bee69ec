"""The DuckDB store: schema and migrations, batched writes, downsampling, retention.

Tables (``SCHEMA_VERSION`` in ``meta``; a newer collector migrates an older file at start):

- ``series``: one row per (variant, target, sample name, labels), with the role-relevant
  labels (``model``, ``le``) pulled out; ``kind`` is ``counter`` (rows hold increases)
  or ``gauge`` (rows hold values).
- ``metrics_5s(ts, series_id, value)``: one row per series per scrape; counter rows
  hold the increase since the previous scrape and are written only when non-zero.
- ``metrics_1m``: the same, per minute: counters summed, gauges averaged. Written by
  ``rollup_step`` in one transaction per chunk (delete-then-insert, watermark moved in
  the same transaction), so a crash at any point leaves it consistent and a rerun
  produces the same rows.
- ``spans``: GenAI request spans received over OTLP, one row per request id, with the
  attribution the proxy stamps (session, user, tags, key fingerprint, route) and the
  request's cost (NULL when its model has no price: unknown, never zero). ``start_time``
  is the time the exporter reported, shown and queried as sent; ``received_at`` is the
  collector's own clock when the span arrived, and retention (age, row and byte caps)
  goes by it, oldest received first: a host with a wrong clock, or spans dated 2100 on
  purpose, can neither outlive newer data nor get it deleted first.
- ``runs`` and ``run_intervals``: named recordings (see ``runs``); a request belongs to
  a run when its span's ``start_time`` falls in one of the run's intervals and it matches
  the run's scope (``scope_*`` columns, version 4; all NULL: all traffic).
- ``spans.content_erased_at`` and ``erase_ledger(id, erased_at, selector)`` (version 5): when a
  span's captured content was erased, and the erases done (``collector.erase``), consulted
  as spans arrive so an erased conversation's late spans are stored without content.

The collector is the only process that opens the file. All calls run on two threads
owned by ``Store``: writes on the writer thread (the connection), reads on the reader
thread (its own cursor, so a slow query never delays a scrape's write; DuckDB's MVCC
gives it a consistent snapshot). Writes are Arrow tables inserted in one statement.
"""

from __future__ import annotations

import asyncio
import json
import logging
import math
import threading
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import duckdb
import pyarrow as pa

from ..erasure import MAX_LEDGER, Ledger, Selector
from . import erase as E
from ._open import StoreError, connect
from .parse import GAUGE, Labels

log = logging.getLogger("tokentail.collector.store")
T = TypeVar("T")

SCHEMA_VERSION = 5

# The spans table as version 2 created it; later versions append columns (ALTER TABLE
# ADD COLUMN appends, so a migrated file and a new one have the same column order).
_SPAN_COLUMNS_V2: dict[str, str] = {
    "request_id": "VARCHAR",
    "trace_id": "VARCHAR",
    "span_id": "VARCHAR",
    "parent_span_id": "VARCHAR",
    "name": "VARCHAR",
    "start_time": "DOUBLE",
    "end_time": "DOUBLE",
    "variant": "VARCHAR",
    "model": "VARCHAR",
    "response_model": "VARCHAR",
    "operation": "VARCHAR",
    "provider": "VARCHAR",
    "endpoint": "VARCHAR",
    "stream": "BOOLEAN",
    "status": "VARCHAR",
    "http_status": "INTEGER",
    "error_type": "VARCHAR",
    "input_tokens": "BIGINT",
    "output_tokens": "BIGINT",
    "cached_input_tokens": "BIGINT",
    "usage_source": "VARCHAR",
    "ttft_ms": "DOUBLE",
    "latency_ms": "DOUBLE",
    "output_tps": "DOUBLE",
    "finish_reasons": "VARCHAR",
    "session_id": "VARCHAR",
    "conversation_id": "VARCHAR",
    "input_messages": "VARCHAR",
    "output_messages": "VARCHAR",
    "system_instructions": "VARCHAR",
    "events": "VARCHAR",
    "attributes": "VARCHAR",
    "resource": "VARCHAR",
    "service_name": "VARCHAR",
    "received_at": "DOUBLE",
    "size_bytes": "BIGINT",
}
_SPAN_COLUMNS_V3: dict[str, str] = {
    "cost_usd": "DOUBLE",
    "user_id": "VARCHAR",
    "tags": "VARCHAR[]",
    "key_fingerprint": "VARCHAR",
    "route": "VARCHAR",
}
_SPAN_COLUMNS_V5: dict[str, str] = {"content_erased_at": "DOUBLE"}
SPAN_COLUMNS: dict[str, str] = {**_SPAN_COLUMNS_V2, **_SPAN_COLUMNS_V3, **_SPAN_COLUMNS_V5}
# A run's scope (schema version 4): scope field -> column of ``runs``.
RUN_SCOPE_COLUMNS: dict[str, str] = {
    "scope_tags": "VARCHAR[]",
    "scope_key_fingerprint": "VARCHAR",
    "scope_user": "VARCHAR",
    "scope_session": "VARCHAR",
    "scope_variant": "VARCHAR",
    "scope_model": "VARCHAR",
}
_ARROW = {
    "VARCHAR": pa.string(),
    "DOUBLE": pa.float64(),
    "BIGINT": pa.int64(),
    "INTEGER": pa.int32(),
    "BOOLEAN": pa.bool_(),
    "VARCHAR[]": pa.list_(pa.string()),
}
SPAN_SCHEMA = pa.schema([(k, _ARROW[v]) for k, v in SPAN_COLUMNS.items()])
_SPAN_NAMES = ", ".join(SPAN_COLUMNS)
_METRIC_SCHEMA = pa.schema([("ts", pa.float64()), ("series_id", pa.int32()), ("value", pa.float64())])
_SERIES_SCHEMA = pa.schema(
    [
        ("id", pa.int32()),
        ("variant", pa.string()),
        ("target", pa.string()),
        ("name", pa.string()),
        ("labels", pa.string()),
        ("kind", pa.string()),
        ("model", pa.string()),
        ("le", pa.float64()),
        ("first_seen", pa.float64()),
    ]
)

# (version, what, statements): applied in order, each in its own transaction.
MIGRATIONS: list[tuple[int, str, tuple[str, ...]]] = [
    (
        1,
        "scraped metrics",
        (
            "CREATE TABLE series(id INTEGER PRIMARY KEY, variant VARCHAR NOT NULL, target VARCHAR NOT NULL, "
            "name VARCHAR NOT NULL, labels VARCHAR NOT NULL, kind VARCHAR NOT NULL, model VARCHAR, le DOUBLE, "
            "first_seen DOUBLE)",
            "CREATE TABLE metrics_5s(ts DOUBLE NOT NULL, series_id INTEGER NOT NULL, value DOUBLE NOT NULL)",
            "CREATE TABLE metrics_1m(ts DOUBLE NOT NULL, series_id INTEGER NOT NULL, value DOUBLE NOT NULL)",
        ),
    ),
    (
        2,
        "request spans received over OTLP",
        ("CREATE TABLE spans(" + ", ".join(f"{k} {v}" for k, v in _SPAN_COLUMNS_V2.items()) + ")",),
    ),
    (
        3,
        "cost and attribution on spans; runs",
        (
            *(f"ALTER TABLE spans ADD COLUMN {k} {v}" for k, v in _SPAN_COLUMNS_V3.items()),
            "CREATE TABLE runs(id INTEGER PRIMARY KEY, name VARCHAR NOT NULL, created_at DOUBLE NOT NULL, "
            "ended_at DOUBLE, status VARCHAR NOT NULL)",
            # end_time is NULL while the interval is open (the run is active).
            "CREATE TABLE run_intervals(run_id INTEGER NOT NULL, start_time DOUBLE NOT NULL, end_time DOUBLE)",
        ),
    ),
    (
        4,
        "run scopes",
        # NULL: not scoped on that field (see runs.SCOPE_SQL); all NULL: the run records all traffic.
        tuple(f"ALTER TABLE runs ADD COLUMN {k} {v}" for k, v in RUN_SCOPE_COLUMNS.items()),
    ),
    (
        5,
        "content erasure",
        (
            *(f"ALTER TABLE spans ADD COLUMN {k} {v}" for k, v in _SPAN_COLUMNS_V5.items()),
            "CREATE TABLE erase_ledger(id INTEGER PRIMARY KEY, erased_at DOUBLE NOT NULL, selector VARCHAR NOT NULL)",
        ),
    ),
]

SeriesKey = tuple[str, str, str, Labels]  # variant, target, sample name, labels
Point = tuple[str, str, str, Labels, str, float]  # variant, target, name, labels, kind, value


@dataclass(frozen=True, slots=True)
class SeriesInfo:
    id: int
    variant: str
    target: str
    name: str
    labels: dict[str, str]
    kind: str
    model: str | None
    le: float | None


@dataclass(frozen=True)
class Retention:
    metrics_5s: float = 86400.0
    metrics_1m: float = 7 * 86400.0
    spans: float = 7 * 86400.0
    spans_max_rows: int = 1_000_000
    spans_max_bytes: int = 1 << 30
    content: float | None = None  # --content-retention: captured content erased after (None: as spans)
    compact_interval: float = 3600.0  # at most one compaction per this long for content retention


def migrate(con: duckdb.DuckDBPyConnection, target: int = SCHEMA_VERSION) -> tuple[int, int]:
    """Bring the schema to version ``target``; returns (version found, version now)."""
    con.execute("CREATE TABLE IF NOT EXISTS meta(key VARCHAR PRIMARY KEY, value VARCHAR)")
    row = _row(con, "SELECT value FROM meta WHERE key = 'schema_version'")
    found = int(row[0]) if row else 0
    if found > SCHEMA_VERSION:
        raise StoreError(
            f"the database has schema version {found}, newer than this collector's "
            f"({SCHEMA_VERSION}): upgrade tokentail, or use another --db"
        )
    for version, what, statements in MIGRATIONS:
        if found < version <= target:
            con.execute("BEGIN")
            try:
                for sql in statements:
                    con.execute(sql)
                con.execute("INSERT OR REPLACE INTO meta VALUES ('schema_version', ?)", [str(version)])
                con.execute("COMMIT")
            except BaseException:
                _rollback(con)
                raise
            log.info("database schema migrated to version %d (%s)", version, what)
    return found, max(found, min(target, SCHEMA_VERSION))


def _row(con: duckdb.DuckDBPyConnection, sql: str, args: list[Any] | None = None) -> tuple | None:
    """First row of ``sql``, reading the result to its end: DuckDB refuses ``register`` on a
    connection whose last result was left unfinished."""
    rows = con.execute(sql, args or []).fetchall()
    return rows[0] if rows else None


def _one(con: duckdb.DuckDBPyConnection, sql: str, args: list[Any] | None = None) -> Any:
    row = _row(con, sql, args)
    return row[0] if row else None


def _rollback(con: duckdb.DuckDBPyConnection) -> None:
    try:
        con.execute("ROLLBACK")
    except duckdb.Error:
        pass  # a failed COMMIT has already ended the transaction


def _labels_json(labels: Labels) -> str:
    return json.dumps(dict(labels), sort_keys=True, separators=(",", ":"))


class Store:
    """The collector's single connection to its DuckDB file (see module docstring)."""

    def __init__(self, con: duckdb.DuckDBPyConnection, path: Path) -> None:
        self.path = path
        self._con = con
        self._writer = ThreadPoolExecutor(1, thread_name_prefix="duckdb-writer")
        self._reader = ThreadPoolExecutor(1, thread_name_prefix="duckdb-reader")
        self._cursor: duckdb.DuckDBPyConnection | None = None  # the reader thread's, only used there
        self._ids: dict[SeriesKey, int] = {}
        self._by_id: dict[int, SeriesInfo] = {}  # replaced, never mutated: readers may hold it
        self._next_id = 1
        self._watermark: float | None = None
        self._closed = False
        self._config: dict[str, Any] = {}
        self._last_compact: float | None = None
        self.compact_pending = False  # content was erased since the last compaction (text in free blocks)
        self._load()

    @classmethod
    def open(cls, path: str | Path, *, checkpoint_threshold: int | None = None) -> Store:
        """Open or create the database, migrate it, or raise ``StoreError`` (one line)."""
        p = Path(path).expanduser()
        config: dict[str, Any] = {}
        if checkpoint_threshold:
            config["checkpoint_threshold"] = f"{int(checkpoint_threshold)}B"
        con = connect(p, config)
        try:
            migrate(con)
        except StoreError:
            con.close()
            raise
        except duckdb.Error as exc:
            con.close()
            raise StoreError(f"cannot prepare database {p}: {str(exc).splitlines()[0]}") from None
        store = cls(con, p)
        store._config = config
        return store

    def reopen(self) -> None:
        """Close and open the file again (writer thread): after a fatal error DuckDB
        invalidates the database instance until it is restarted."""
        self._reader.submit(self._close_cursor).result()  # every handle on the old instance goes
        try:
            self._con.close()
        except duckdb.Error:
            pass
        self._con = connect(self.path, self._config)
        migrate(self._con)
        self._ids.clear()
        self._load()
        log.warning("database %s reopened after a fatal error", self.path)

    def _load(self) -> None:
        by_id = {}
        for sid, variant, target, name, labels, kind, model, le in self._con.execute(
            "SELECT id, variant, target, name, labels, kind, model, le FROM series"
        ).fetchall():
            lab = json.loads(labels)
            key = (variant, target, name, tuple(sorted(lab.items())))
            self._ids[key] = sid
            by_id[sid] = SeriesInfo(sid, variant, target, name, lab, kind, model, le)
            self._next_id = max(self._next_id, sid + 1)
        self._by_id = by_id
        row = _row(self._con, "SELECT value FROM meta WHERE key = 'rollup_watermark'")
        self._watermark = float(row[0]) if row else None
        self.ledger = Ledger(E.load_ledger(self._con))  # writer thread only

    # --- threads ---------------------------------------------------------------

    async def write(self, fn: Callable[..., T], *args: Any) -> T:
        """Run ``fn(*args)`` on the writer thread (the only one using the connection)."""
        return await asyncio.get_running_loop().run_in_executor(self._writer, fn, *args)

    async def read(self, fn: Callable[..., T], *args: Any) -> T:
        """Run ``fn(cursor, *args)`` on the reader thread with its own cursor."""
        return await asyncio.get_running_loop().run_in_executor(self._reader, self._with_cursor, fn, args)

    def _with_cursor(self, fn: Callable[..., T], args: tuple) -> T:
        if self._cursor is None:
            self._cursor = self._con.cursor()
        return fn(self._cursor, *args)

    def catalog(self) -> dict[int, SeriesInfo]:
        """Every series known, by id (a snapshot: safe to read from any thread)."""
        return self._by_id

    @property
    def watermark(self) -> float | None:
        """End (exclusive, epoch s) of the minutes already rolled up into metrics_1m."""
        return self._watermark

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self._reader.submit(self._close_cursor).result()
        self._reader.shutdown(wait=True)
        self._writer.submit(self._con.close).result()  # closing checkpoints the WAL into the file
        self._writer.shutdown(wait=True)

    def _close_cursor(self) -> None:
        cur, self._cursor = self._cursor, None
        if cur is not None:
            try:
                cur.close()
            except duckdb.Error:
                pass

    # --- writes (writer thread) ----------------------------------------------------

    def append_metrics(self, ts: float, points: Iterable[Point]) -> int:
        """Write one scrape round in one transaction; returns the rows written."""
        new: list[SeriesInfo] = []
        new_keys: dict[SeriesKey, int] = {}
        sids: list[int] = []
        values: list[float] = []
        next_id = self._next_id
        for variant, target, name, labels, kind, value in points:
            if kind != GAUGE and value == 0:
                continue  # no increase: absence means zero, and keeps the table small
            key = (variant, target, name, labels)
            sid = self._ids.get(key) or new_keys.get(key)
            if sid is None:
                sid = new_keys[key] = next_id
                next_id += 1
                lab = dict(labels)
                le = lab.get("le")
                new.append(
                    SeriesInfo(
                        sid, variant, target, name, lab, kind, lab.get("model"), float(le) if le is not None else None
                    )
                )
            sids.append(sid)
            values.append(float(value))
        con = self._con
        con.execute("BEGIN")
        try:
            if new:
                table = pa.Table.from_pylist(
                    [
                        {
                            "id": s.id,
                            "variant": s.variant,
                            "target": s.target,
                            "name": s.name,
                            "labels": _labels_json(tuple(sorted(s.labels.items()))),
                            "kind": s.kind,
                            "model": s.model,
                            "le": s.le,
                            "first_seen": ts,
                        }
                        for s in new
                    ],
                    schema=_SERIES_SCHEMA,
                )
                con.register("new_series", table)
                con.execute("INSERT INTO series SELECT * FROM new_series")
                con.unregister("new_series")
            if sids:
                batch = pa.Table.from_arrays(
                    [
                        pa.array([float(ts)] * len(sids), pa.float64()),
                        pa.array(sids, pa.int32()),
                        pa.array(values, pa.float64()),
                    ],
                    schema=_METRIC_SCHEMA,
                )
                con.register("batch", batch)
                con.execute("INSERT INTO metrics_5s SELECT * FROM batch")
                con.unregister("batch")
            con.execute("COMMIT")
        except BaseException:
            _rollback(con)
            raise
        if new:  # only after the commit: a failed round must not leave ids the file lacks
            self._ids.update(new_keys)
            self._by_id = {**self._by_id, **{s.id: s for s in new}}
            self._next_id = next_id
        return len(sids)

    def insert_spans(self, rows: list[dict[str, Any]]) -> int:
        """Insert span rows, skipping request ids already stored; returns rows inserted."""
        unique: dict[str, dict[str, Any]] = {}
        ledger = self.ledger
        for r in rows:
            if r.get("received_at") is None:  # retention orders by it: never NULL (the receiver always sets it)
                r = {**r, "received_at": r["start_time"]}
            if len(ledger) and ledger.erased(r):  # erased before it arrived: no resurrection
                r = E.strip_row(r, r["received_at"])
            unique.setdefault(r["request_id"], r)
        if not unique:
            return 0
        table = pa.Table.from_pylist(list(unique.values()), schema=SPAN_SCHEMA)
        starts = [r["start_time"] for r in unique.values()]
        con = self._con
        con.execute("BEGIN")
        try:
            con.register("span_batch", table)
            # A retried export carries the same spans: the start-time window keeps the
            # anti-join on the few row groups it can be in.
            inserted = _one(
                con,
                f"INSERT INTO spans ({_SPAN_NAMES}) SELECT {_SPAN_NAMES} FROM span_batch b WHERE NOT EXISTS "
                "(SELECT 1 FROM spans s "
                "WHERE s.request_id = b.request_id AND s.start_time BETWEEN ? AND ?) ORDER BY b.start_time",
                [min(starts) - 1.0, max(starts) + 1.0],
            )
            con.unregister("span_batch")
            con.execute("COMMIT")
        except BaseException:
            _rollback(con)
            raise
        return inserted

    def transaction(self, fn: Callable[..., T], *args: Any) -> T:
        """``fn(connection, *args)`` in one transaction (writer thread): all of it or nothing."""
        con = self._con
        con.execute("BEGIN")
        try:
            result = fn(con, *args)
            con.execute("COMMIT")
        except BaseException:
            _rollback(con)
            raise
        return result

    def rollup_step(self, now: float, settle: float, chunk: float = 1800.0) -> bool:
        """Roll the next chunk of complete minutes up into metrics_1m; True if more is due.

        Idempotent: the chunk's 1m rows are deleted and rewritten, and the watermark
        moves, in one transaction.
        """
        upto = math.floor((now - settle) / 60.0) * 60.0
        con = self._con
        start = self._watermark
        first = _one(con, "SELECT min(ts) FROM metrics_5s WHERE ts >= ?", [start or 0.0])
        if first is None:
            return False
        first_minute = math.floor(first / 60.0) * 60.0
        start = first_minute if start is None else max(start, first_minute)  # skip gaps in the data
        if start >= upto:
            return False
        end = min(start + chunk, upto)
        con.execute("BEGIN")
        try:
            con.execute("DELETE FROM metrics_1m WHERE ts >= ? AND ts < ?", [start, end])
            con.execute(
                "INSERT INTO metrics_1m SELECT floor(m.ts / 60) * 60 AS t, m.series_id, "
                "CASE WHEN any_value(s.kind) = 'gauge' THEN avg(m.value) ELSE sum(m.value) END "
                "FROM metrics_5s m JOIN series s ON s.id = m.series_id WHERE m.ts >= ? AND m.ts < ? "
                "GROUP BY t, m.series_id ORDER BY t, m.series_id",
                [start, end],
            )
            con.execute("INSERT OR REPLACE INTO meta VALUES ('rollup_watermark', ?)", [repr(end)])
            con.execute("COMMIT")
        except BaseException:
            _rollback(con)
            raise
        self._watermark = end
        return end < upto

    def retention_step(
        self, now: float, policy: Retention, batch_seconds: float = 900.0, batch_rows: int = 50_000
    ) -> int:
        """Delete one bounded batch of expired rows; returns rows deleted (0: nothing due)."""
        con = self._con
        # Never drop 5s rows not yet rolled up (the rollup runs first and catches up).
        cut5 = min(now - policy.metrics_5s, self._watermark if self._watermark is not None else -math.inf)
        for table, col, cutoff, span in (
            ("metrics_5s", "ts", cut5, batch_seconds),
            ("metrics_1m", "ts", now - policy.metrics_1m, batch_seconds * 24),
            # Spans by when they arrived, not by the time their exporter claims (see module docstring).
            ("spans", "received_at", now - policy.spans, batch_seconds * 4),
        ):
            oldest = _one(con, f"SELECT min({col}) FROM {table}")
            if oldest is not None and oldest < cutoff:
                return self._delete(table, col, min(cutoff, oldest + span), inclusive=False)
        n, size = _row(con, "SELECT count(*), coalesce(sum(size_bytes), 0) FROM spans") or (0, 0)
        if n == 0:
            return 0
        # Oldest received first, at most batch_rows per call (plus the rest of the export
        # batch that arrived at the same instant), always at least one row.
        if n > policy.spans_max_rows:
            row_bound = _one(
                con,
                "SELECT received_at FROM spans ORDER BY received_at LIMIT 1 OFFSET ?",
                [min(n - policy.spans_max_rows, batch_rows) - 1],
            )
            return self._delete("spans", "received_at", row_bound, inclusive=True)
        if size > policy.spans_max_bytes:
            byte_bound = _one(
                con,
                "SELECT min(received_at) FROM (SELECT received_at, sum(size_bytes) OVER (ORDER BY received_at "
                "ROWS UNBOUNDED PRECEDING) AS cum FROM spans) WHERE cum >= ?",
                [size - policy.spans_max_bytes],
            )
            batch_bound = _one(
                con, "SELECT received_at FROM spans ORDER BY received_at LIMIT 1 OFFSET ?", [min(n, batch_rows) - 1]
            )
            return self._delete("spans", "received_at", min(byte_bound, batch_bound), inclusive=True)
        return 0

    def _delete(self, table: str, col: str, bound: float, *, inclusive: bool) -> int:
        op = "<=" if inclusive else "<"
        return _one(self._con, f"DELETE FROM {table} WHERE {col} {op} ?", [bound])

    # --- erasure (writer thread; see collector.erase) ---------------------------------

    def erase(self, sel: Selector, now: float, *, compact: bool = True) -> int:
        """Erase the content of every span ``sel`` matches, in batches of ``E.BATCH_ROWS``
        (one transaction each), remember ``sel`` in the ledger, then reclaim the space."""
        where, args = sel.where()
        total = 0
        while True:
            n = self.transaction(E.erase_batch, where, args, now, E.BATCH_ROWS)
            total += n
            if n < E.BATCH_ROWS:
                break
        self.transaction(E.record_erase, sel, now, MAX_LEDGER)
        self.ledger.add(sel, now)
        self.compact_pending = self.compact_pending or total > 0
        if compact and self.compact_pending:  # also finishes one that failed before (a retried erase)
            self.compact(now)
        else:
            self.checkpoint()
        return total

    def content_retention_step(self, now: float, policy: Retention, batch_rows: int = E.BATCH_ROWS) -> int:
        """Erase one batch of content older than ``policy.content``; returns spans erased."""
        if policy.content is None or policy.content >= policy.spans:
            return 0  # spans go whole before their content would
        where, args = E.content_retention_where(now - policy.content)
        n = self.transaction(E.erase_batch, where, args, now, batch_rows)
        self.compact_pending = self.compact_pending or n > 0
        return n

    def compact_due(self, now: float, interval: float) -> bool:
        return self._last_compact is None or now - self._last_compact >= interval

    def compact(self, now: float) -> None:
        """Copy the file into a fresh one and swap it in: erased text leaves the disk (see ``erase``).

        The reader thread is parked meanwhile (reads wait, none fails on the old connection)."""
        parked, resume = threading.Event(), threading.Event()

        def park() -> None:
            self._close_cursor()
            parked.set()
            resume.wait()

        self._reader.submit(park)
        parked.wait()
        try:
            try:
                E.compact(self._con, self.path)
            except BaseException:
                self.path.with_name(self.path.name + ".compact").unlink(missing_ok=True)
                raise
            self._con.close()
            try:
                E.swap(self.path)
            finally:
                self._con = connect(self.path, self._config)
        finally:
            resume.set()
        self._last_compact = now
        self.compact_pending = False

    def checkpoint(self) -> None:
        """Fold the WAL into the file; freed blocks become reusable, so the file stops growing."""
        self._con.execute("CHECKPOINT")

    # --- reads (reader thread) ------------------------------------------------------

    @staticmethod
    def stats(cur: duckdb.DuckDBPyConnection) -> dict[str, Any]:
        counts = {
            t: _one(cur, f"SELECT count(*) FROM {t}") for t in ("series", "metrics_5s", "metrics_1m", "spans", "runs")
        }
        return {"rows": counts}

    def size_bytes(self) -> int:
        total = 0
        for p in (self.path, self.path.with_name(self.path.name + ".wal")):
            try:
                total += p.stat().st_size
            except OSError:
                pass
        return total
