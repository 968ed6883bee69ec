"""``GET /api/compare``: two variants, models or runs over a time range, metric by metric.

``?a=variant:canary&b=variant:production&range=1h`` (selectors ``variant:NAME``,
``model:NAME``, ``run:ID``, ``replays:ID`` — the replays of run ID's requests, wherever they
were recorded; ``range`` as ``/api/metrics``, ignored for runs, which are their own range). Each side is read from stored spans (exact values) when it has any,
else (variants and models) from the scraped histogram buckets; the statistics are
``compare_report`` (pure). A read of stored data: the access middleware's rule for
``/api/*`` reads applies.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import duckdb
from aiohttp import web

from ._http import COLLECTOR, STORE, unavailable
from .compare_report import BUCKETS, METRICS, SPANS, Sample, report
from .formulas import BUCKET_ROLES, role_of
from .query import RANGES, QueryError, check_known
from .runs import in_run_sql

KINDS = ("variant", "model", "run", "replays")  # replays:ID = the replays of run ID's requests
# Values per side for the distributions: the newest this many spans. Counts and error rates
# stay exact (SQL aggregates); 20k values a side already resolve a 2% shift, and keep a
# compare of busy variants within a second or two.
MAX_VALUES = 20_000
_SPAN_COLS = tuple(dict.fromkeys(col for _, col, *_ in METRICS.values()))
_IN_RUN = in_run_sql("spans")  # a run's spans: its intervals and its scope (``runs``)


_REPLAY_OF = "json_extract_string(attributes, '$.\"tokentail.replay_of\"')"


@dataclass(frozen=True, slots=True)
class Selector:
    kind: str
    value: str

    @property
    def label(self) -> str:
        if self.kind == "run":
            return f"run {self.value}"
        return f"replays of run {self.value}" if self.kind == "replays" else self.value


@dataclass(frozen=True, slots=True)
class ComparePlan:
    a: Selector
    b: Selector
    range: str
    since: float
    table: str


def parse_selector(name: str, text: str | None) -> Selector:
    if not text:
        raise QueryError(name, f"{name} is required: variant:NAME, model:NAME or run:ID", list(KINDS))
    kind, sep, value = text.partition(":")
    if not sep or kind not in KINDS or not value or len(value) > 200:
        raise QueryError(name, f"{name} must be variant:NAME, model:NAME or run:ID", list(KINDS))
    if kind in ("run", "replays") and not (value.isdigit() and 0 < int(value) < 2**31):
        raise QueryError(name, f"a {kind} selector takes a run id: {kind}:ID")
    return Selector(kind, value)


def plan_compare(query: Mapping[str, str], now: float) -> ComparePlan:
    """Validate ``/api/compare``'s parameters (QueryError → 400)."""
    check_known(query, ("a", "b", "range", "token", "_"))
    a, b = parse_selector("a", query.get("a")), parse_selector("b", query.get("b"))
    rng = query.get("range") or "1h"
    if rng not in RANGES:
        raise QueryError("range", f"unknown range {rng!r}", list(RANGES))
    seconds, _, table = RANGES[rng]
    return ComparePlan(a, b, rng, now - seconds, table)


def _span_where(sel: Selector, plan: ComparePlan) -> tuple[str, list[Any]]:
    if sel.kind == "run":
        return _IN_RUN, [int(sel.value)]
    if sel.kind == "replays":
        return f"{_REPLAY_OF} IN (SELECT request_id FROM spans WHERE {_IN_RUN})", [int(sel.value)]
    col = "variant = ?" if sel.kind == "variant" else "(model = ? OR response_model = ?)"
    args: list[Any] = [sel.value] if sel.kind == "variant" else [sel.value, sel.value]
    return f"{col} AND start_time >= ?", [*args, plan.since]


def read_spans(cur: Any, sel: Selector, plan: ComparePlan) -> Sample:
    """A side's exact values from stored spans (reader thread)."""
    where, args = _span_where(sel, plan)
    requests, errors = cur.execute(
        f"SELECT count(*), count(*) FILTER (WHERE status = 'error') FROM spans WHERE {where}", args
    ).fetchall()[0]
    # Columns as Arrow (a relation, so no row-by-row copy): 6 x 20k values without Python tuples.
    table = cur.sql(
        f"SELECT {', '.join(_SPAN_COLS)} FROM spans WHERE {where} ORDER BY start_time DESC LIMIT {MAX_VALUES}",
        params=args,
    ).to_arrow_table()
    s = Sample(sel.label, SPANS, requests=int(requests), errors=int(errors), sampled=requests > table.num_rows)
    for col in _SPAN_COLS:
        s.values[col] = [float(x) for x in table.column(col).to_pylist() if x is not None and math.isfinite(x)]
    return s


def read_buckets(cur: Any, sel: Selector, plan: ComparePlan, watermark: float | None) -> Sample:
    """A side's request counts and cumulative histogram buckets from the scraped metrics."""
    s = Sample(sel.label, BUCKETS)
    col = "s.variant" if sel.kind == "variant" else "s.model"
    names = ["tokentail_requests_total", "tokentail_tokens_total", *BUCKET_ROLES.values()]
    # The 1m table holds what was rolled up; newer 5s rows fill in up to now (as /api/metrics reads them).
    if plan.table == "metrics_1m":
        source = (
            "(SELECT ts, series_id, value FROM metrics_1m UNION ALL "
            "SELECT ts, series_id, value FROM metrics_5s WHERE ts >= ?)"
        )
        args: list[Any] = [watermark if watermark is not None else plan.since]
    else:
        source, args = "metrics_5s", []
    rows = cur.execute(
        f"SELECT s.name, s.labels, s.le, sum(m.value) FROM {source} m JOIN series s ON s.id = m.series_id "
        f"WHERE {col} = ? AND s.name IN (SELECT unnest(?)) AND m.ts >= ? GROUP BY s.name, s.labels, s.le",
        [*args, sel.value, names, plan.since],
    ).fetchall()
    per_le: dict[str, dict[float, float]] = {}
    for name, labels_json, le, total in rows:
        labels = _labels(labels_json)
        role = role_of(name, labels)
        if role in ("req_error", "req_other", "req_cancelled"):
            s.requests += int(round(total))
            if role == "req_error":
                s.errors += int(round(total))
        elif role in ("tokens_in", "tokens_out"):
            key = "input" if role == "tokens_in" else "output"
            s.tokens[key] = s.tokens.get(key, 0.0) + total
        elif role in BUCKET_ROLES and le is not None:
            per_le.setdefault(role, {})
            per_le[role][le] = per_le[role].get(le, 0.0) + total  # summed over models and targets
    for role, buckets in per_le.items():
        s.buckets[role] = sorted(buckets.items())
    return s


def _labels(text: Any) -> dict[str, str]:
    try:
        v = json.loads(text) if isinstance(text, str) else {}
    except ValueError:
        return {}
    return {str(k): str(x) for k, x in v.items()} if isinstance(v, dict) else {}


def read_side(cur: Any, sel: Selector, plan: ComparePlan, watermark: float | None) -> Sample:
    s = read_spans(cur, sel, plan)
    if s.requests == 0 and sel.kind in ("variant", "model"):
        b = read_buckets(cur, sel, plan, watermark)
        if b.requests or b.buckets:
            return b
    return s


async def compare(request: web.Request) -> web.Response:
    """Both sides' metrics with a verdict each (see ``compare_report.report``)."""
    app = request.app
    try:
        plan = plan_compare(request.query, app[COLLECTOR].clock())
    except QueryError as exc:
        return web.json_response(exc.as_json(), status=400)
    store = app[STORE]
    watermark = store.watermark

    def read(cur: Any) -> dict[str, Any]:
        a, b = read_side(cur, plan.a, plan, watermark), read_side(cur, plan.b, plan, watermark)
        return report(a, b)

    try:
        body = await store.read(read)
    except duckdb.Error as exc:
        return unavailable(exc)
    body.update(
        range=plan.range if {plan.a.kind, plan.b.kind} <= {"variant", "model"} else None,
        since=plan.since,
        selectors={"a": f"{plan.a.kind}:{plan.a.value}", "b": f"{plan.b.kind}:{plan.b.value}"},
    )
    return web.json_response(body)


def add_routes(app: web.Application) -> None:
    app.router.add_get("/api/compare", compare)
