"""Runs in DuckDB: named, bounded recordings of traffic (the SQL; rules in ``run_stats``).

``runs`` holds one row per run (``id``, ``name``, ``created_at``, ``ended_at``,
``status``); ``run_intervals`` the time it was recording: an interval opens at start
and resume and closes at pause and end. A request belongs to a run when its span's
``start_time`` falls in one of the run's intervals, so spans need no run column and a
span that arrives late (the proxy exports in batches) still lands in its run.

A run may be scoped when it starts (``scope``: tags, key fingerprint, user, session,
variant, model, any combination, stored in the ``scope_*`` columns): it then holds only
the spans of its intervals that match every field given (``scope_sql``). An unscoped run
holds all traffic, and says so (``scope_note``).

At most one run is active or paused at a time. Writes (``create``, ``act``) run in one
transaction on the writer thread (``Store.transaction``); reads on the reader cursor.
"""

from __future__ import annotations

from typing import Any

from . import run_stats as rs
from .run_stats import ACTIVE, ENDED, GROUP_FIELDS

MAX_NAME = 200


class RunNotFound(LookupError):
    pass


class RunConflict(ValueError):
    """Another run is recording (409)."""


# scope field -> runs column
_SCOPE_COLS = {f: f"scope_{f}" for f in rs.SCOPE_FIELDS}


def scope_sql(span: str, run: str) -> str:
    """SQL true when span alias ``span`` matches the scope of run alias ``run`` (a NULL field matches all)."""
    s, r = span, run
    return (
        f"({r}.scope_tags IS NULL OR list_has_all(coalesce({s}.tags, []), {r}.scope_tags)) "
        f"AND ({r}.scope_key_fingerprint IS NULL OR {s}.key_fingerprint = {r}.scope_key_fingerprint) "
        f"AND ({r}.scope_user IS NULL OR {s}.user_id = {r}.scope_user) "
        f"AND ({r}.scope_session IS NULL OR {s}.session_id = {r}.scope_session) "
        f"AND ({r}.scope_variant IS NULL OR {s}.variant = {r}.scope_variant) "
        f"AND ({r}.scope_model IS NULL OR {s}.model = {r}.scope_model OR {s}.response_model = {r}.scope_model)"
    )


def in_run_sql(span: str = "spans") -> str:
    """SQL true when span alias ``span`` belongs to the run given as one ``?`` parameter."""
    return (
        f"EXISTS (SELECT 1 FROM run_intervals i JOIN runs r ON r.id = i.run_id WHERE i.run_id = ? "
        f"AND {span}.start_time >= i.start_time AND (i.end_time IS NULL OR {span}.start_time < i.end_time) "
        f"AND {scope_sql(span, 'r')})"
    )


def create(con: Any, name: str, now: float, scope: dict[str, Any] | None = None) -> dict[str, Any]:
    """Start a run named ``name``, scoped by ``scope`` (``run_stats.validate_scope``'s) or not
    (writer thread, in a transaction)."""
    busy = con.execute(
        "SELECT id, name, status FROM runs WHERE status <> ? ORDER BY id DESC LIMIT 1", [ENDED]
    ).fetchall()
    if busy:
        rid, rname, status = busy[0]
        raise RunConflict(f"run {rid} ({rname!r}) is {status}: end it before starting another")
    rid = con.execute("SELECT coalesce(max(id), 0) + 1 FROM runs").fetchall()[0][0]
    scope = scope or {}
    cols = ", ".join(_SCOPE_COLS.values())
    con.execute(
        f"INSERT INTO runs (id, name, created_at, ended_at, status, {cols}) VALUES (?, ?, ?, NULL, ?"
        + ", ?" * len(_SCOPE_COLS)
        + ")",
        [rid, name, now, ACTIVE, *(scope.get(f) for f in _SCOPE_COLS)],
    )
    con.execute("INSERT INTO run_intervals VALUES (?, ?, NULL)", [rid, now])
    return _get(con, rid, now)


def act(con: Any, run_id: int, action: str, now: float) -> dict[str, Any]:
    """Pause, resume or end run ``run_id`` (writer thread, in a transaction)."""
    rows = con.execute("SELECT status FROM runs WHERE id = ?", [run_id]).fetchall()
    if not rows:
        raise RunNotFound(run_id)
    status = rows[0][0]
    new = rs.transition(run_id, status, action)
    if status == ACTIVE:  # the open interval closes (never before it opened, whatever the clock did)
        con.execute(
            "UPDATE run_intervals SET end_time = greatest(?, start_time) WHERE run_id = ? AND end_time IS NULL",
            [now, run_id],
        )
    if new == ACTIVE:
        con.execute("INSERT INTO run_intervals VALUES (?, ?, NULL)", [run_id, now])
    con.execute("UPDATE runs SET status = ?, ended_at = ? WHERE id = ?", [new, now if new == ENDED else None, run_id])
    return _get(con, run_id, now)


def _intervals(cur: Any, ids: list[int]) -> dict[int, list[tuple[float, float | None]]]:
    out: dict[int, list[tuple[float, float | None]]] = {i: [] for i in ids}
    if ids:
        for rid, start, end in cur.execute(
            "SELECT run_id, start_time, end_time FROM run_intervals WHERE run_id IN (SELECT unnest(?)) "
            "ORDER BY run_id, start_time",
            [ids],
        ).fetchall():
            out[rid].append((start, end))
    return out


def _as_json(row: tuple[Any, ...], intervals: list[tuple[float, float | None]], now: float) -> dict[str, Any]:
    rid, name, created, ended, status, *scoped = row
    scope = {f: v for f, v in zip(_SCOPE_COLS, scoped) if v is not None} or None
    return {
        "id": rid,
        "name": name,
        "status": status,
        "created_at": created,
        "ended_at": ended,
        "scope": scope,
        "scope_note": rs.ALL_TRAFFIC if scope is None else None,
        "intervals": [{"start": s, "end": e} for s, e in intervals],
        "wall_time_s": rs.wall_time(intervals, now),
    }


_RUN_COLS = "id, name, created_at, ended_at, status, " + ", ".join(_SCOPE_COLS.values())


def _get(cur: Any, run_id: int, now: float) -> dict[str, Any]:
    row = cur.execute(f"SELECT {_RUN_COLS} FROM runs WHERE id = ?", [run_id]).fetchall()[0]
    return _as_json(row, _intervals(cur, [run_id])[run_id], now)


def get(cur: Any, run_id: int, now: float) -> dict[str, Any] | None:
    """One run with its intervals and wall time, or None (reader thread)."""
    if not cur.execute("SELECT 1 FROM runs WHERE id = ?", [run_id]).fetchall():
        return None
    return _get(cur, run_id, now)


# A span is in an interval when start <= start_time < end (an open interval has no end)
# and matches the run's scope.
_JOIN = (
    "run_intervals i JOIN runs r ON r.id = i.run_id JOIN spans s ON s.start_time >= i.start_time "
    "AND s.start_time < coalesce(i.end_time, 'infinity'::DOUBLE) AND " + scope_sql("s", "r")
)


def list_runs(cur: Any, limit: int, now: float) -> list[dict[str, Any]]:
    """Runs newest first, each with a short summary (requests, tokens, cost, errors)."""
    rows = cur.execute(f"SELECT {_RUN_COLS} FROM runs ORDER BY id DESC LIMIT {int(limit)}").fetchall()
    ids = [r[0] for r in rows]
    intervals = _intervals(cur, ids)
    sums: dict[int, tuple[Any, ...]] = {}
    if ids:
        for rid, *vals in cur.execute(
            "SELECT i.run_id, count(*), sum(s.input_tokens), sum(s.output_tokens), sum(s.cost_usd), "
            f"count(s.cost_usd), count(*) FILTER (WHERE s.status = 'error') FROM {_JOIN} "
            "WHERE i.run_id IN (SELECT unnest(?)) GROUP BY i.run_id",
            [ids],
        ).fetchall():
            sums[rid] = tuple(vals)
    out = []
    for r in rows:
        run = _as_json(r, intervals[r[0]], now)
        n, tin, tout, cost, priced, errors = sums.get(r[0], (0, None, None, None, 0, 0))
        run["summary"] = {
            "requests": n,
            "input_tokens": tin or 0,
            "output_tokens": tout or 0,
            "cost_usd": cost if priced else (0.0 if n == 0 else None),
            "cost_unknown_requests": n - priced,
            "errors": errors,
        }
        out.append(run)
    return out


def stat_groups(cur: Any, run_id: int) -> list[dict[str, Any]]:
    """The run's requests grouped for ``run_stats.summarize`` (``GROUP_FIELDS`` order)."""
    rows = cur.execute(
        "SELECT coalesce(s.model, s.response_model) AS model, s.endpoint, s.status, s.http_status, s.error_type, "
        "count(*), sum(s.input_tokens), sum(s.output_tokens), sum(s.cached_input_tokens), "
        "count(*) FILTER (WHERE s.input_tokens IS NOT NULL OR s.output_tokens IS NOT NULL), "
        "sum(s.cost_usd), count(s.cost_usd), sum(s.output_tps), count(s.output_tps), "
        "sum(s.latency_ms), count(s.latency_ms), sum(s.ttft_ms), count(s.ttft_ms) "
        f"FROM {_JOIN} WHERE i.run_id = ? GROUP BY ALL",
        [run_id],
    ).fetchall()
    assert not rows or len(rows[0]) == len(GROUP_FIELDS)
    return rs.as_groups(rows)


def distributions(cur: Any, run_id: int) -> dict[str, dict[str, float | None]]:
    """Mean, p50 and p95 of the run's per-request values, exact from its spans (``quantile_cont``:
    linear between the two nearest observed values, never outside them)."""
    exprs = {
        "latency_ms": "s.latency_ms",
        "ttft_ms": "s.ttft_ms",
        "output_tps": "s.output_tps",
        "tokens": "CASE WHEN s.input_tokens IS NULL AND s.output_tokens IS NULL THEN NULL "
        "ELSE coalesce(s.input_tokens, 0) + coalesce(s.output_tokens, 0) END",
        "cost_usd": "s.cost_usd",
    }
    assert tuple(exprs) == rs.DISTRIBUTIONS
    cols = ", ".join(f"avg({e}), quantile_cont({e}, [0.5, 0.95])" for e in exprs.values())
    row = cur.execute(f"SELECT {cols} FROM {_JOIN} WHERE i.run_id = ?", [run_id]).fetchall()[0]
    out: dict[str, dict[str, float | None]] = {}
    for k, name in enumerate(exprs):
        mean, qs = row[2 * k], row[2 * k + 1]
        p50, p95 = (float(qs[0]), float(qs[1])) if qs else (None, None)
        out[name] = {"mean": None if mean is None else float(mean), "p50": p50, "p95": p95}
    return out


def current(cur: Any, now: float) -> dict[str, Any] | None:
    """The run that is active or paused, if any."""
    rows = cur.execute("SELECT id FROM runs WHERE status <> ? ORDER BY id DESC LIMIT 1", [ENDED]).fetchall()
    return _get(cur, rows[0][0], now) if rows else None
