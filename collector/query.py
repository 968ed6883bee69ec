"""The read side: ``GET /api/metrics``, ``/api/spans``, ``/api/sessions`` and ``/api/facets``.

A metrics query is three steps: ``plan_metrics`` (pure: validate parameters, choose the
table and step, map every stored series to its group and role), ``run_metrics`` (one
SQL statement on the reader cursor: per time bucket, per series, then per group and
role) and ``assemble`` (pure: rates, ratios and ``histogram_quantile`` per bucket).
Ranges up to 1h read ``metrics_5s``; longer ones read ``metrics_1m`` up to the rollup
watermark and the not-yet-rolled-up tail from ``metrics_5s``, so the newest minutes
are never missing.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import pyarrow as pa

from .formulas import (
    ALL_ROLES,
    GAUGE_ROLES,
    METRICS,
    UNITS,
    UNMODELLED_ROLES,
    Agg,
    compute,
    counts,
    role_of,
    usable_bounds,
)
from .runs import in_run_sql
from .store import SPAN_COLUMNS, SeriesInfo

# range -> (seconds, step seconds, table)
RANGES: dict[str, tuple[float, float, str]] = {
    "5m": (300, 5, "metrics_5s"),
    "15m": (900, 10, "metrics_5s"),
    "1h": (3600, 30, "metrics_5s"),
    "6h": (21600, 180, "metrics_1m"),
    "24h": (86400, 600, "metrics_1m"),
    "7d": (604800, 3600, "metrics_1m"),
}
BY = ("variant", "model")
ALL = "all"
_COMMON_PARAMS = ("token", "_")  # access token for EventSource-style clients; cache busters
ROLE_NAMES = tuple(sorted(ALL_ROLES))
_ROLE_ID = {r: i for i, r in enumerate(ROLE_NAMES)}


class QueryError(ValueError):
    """A bad query parameter: answered 400 with the allowed values."""

    def __init__(self, param: str, message: str, allowed: Iterable[Any] | None = None) -> None:
        super().__init__(message)
        self.param = param
        self.allowed = list(allowed) if allowed is not None else None

    def as_json(self) -> dict[str, Any]:
        err: dict[str, Any] = {
            "message": str(self),
            "type": "invalid_parameter",
            "code": "invalid_parameter",
            "param": self.param,
        }
        if self.allowed is not None:
            err["allowed"] = self.allowed
        return {"error": err}


def check_known(query: Mapping[str, str], allowed: Iterable[str]) -> None:
    allowed = list(allowed)
    for key in query:
        if key not in allowed and key not in _COMMON_PARAMS:
            raise QueryError(key, f"unknown parameter {key!r}", allowed)


def _choice(query: Mapping[str, str], name: str, allowed: list[str], default: str) -> str:
    value = query.get(name, default)
    if value not in allowed:
        raise QueryError(name, f"{name}={value!r} is not allowed", allowed)
    return value


@dataclass(frozen=True)
class MetricsPlan:
    range: str
    by: str
    variant: str
    model: str
    step: float
    table: str
    origin: float  # start of the first bucket (epoch s)
    buckets: int
    now: float
    selection: pa.Table  # series_id, g (index into group_names), r (index into ROLE_NAMES), le, gauge
    group_names: tuple[str, ...]
    groups: tuple[str, ...]  # groups shown even without data (configured variants)
    bounds: dict[str, dict[str, list[float]]]  # group -> histogram role -> every bucket bound, ascending

    @property
    def end(self) -> float:
        return self.origin + self.buckets * self.step


def plan_metrics(
    query: Mapping[str, str],
    catalog: Mapping[int, SeriesInfo],
    *,
    now: float,
    configured_variants: Iterable[str] = (),
    scrape_interval: float = 5.0,
) -> MetricsPlan:
    """Validate ``query`` and plan it against the series ``catalog``; raises ``QueryError``."""
    check_known(query, ("range", "variant", "model", "by"))
    configured = sorted(set(configured_variants))
    variants = sorted({s.variant for s in catalog.values()} | set(configured))
    models = sorted({s.model for s in catalog.values() if s.model})
    rng = _choice(query, "range", list(RANGES), "1h")
    by = _choice(query, "by", list(BY), "variant")
    variant = _choice(query, "variant", [ALL, *variants], ALL)
    model = _choice(query, "model", [ALL, *models], ALL)
    seconds, step, table = RANGES[rng]
    step = max(step, float(math.ceil(scrape_interval)))  # no empty buckets between scrapes
    n = int(seconds // step)
    origin = math.floor(now / step) * step - (n - 1) * step
    ids, grps, roles, les, gauges = [], [], [], [], []
    bounds: dict[str, dict[str, set[float]]] = {}
    picked: list[tuple[SeriesInfo, str, str]] = []
    per_target: dict[tuple[str, str], dict[str, set[float]]] = {}  # (group, role) -> target -> bounds
    for s in catalog.values():
        role = role_of(s.name, s.labels)
        if role is None or (variant != ALL and s.variant != variant):
            continue
        modelled = role not in UNMODELLED_ROLES
        if modelled and model != ALL and s.model != model:
            continue
        if by == "variant":
            grp = s.variant
        elif modelled:
            if not s.model:
                continue
            grp = s.model
        else:
            grp = "*"  # coverage and availability apply to every model
        if s.le is not None:
            per_target.setdefault((grp, role), {}).setdefault(s.target, set()).add(s.le)
        picked.append((s, grp, role))
    # Targets of different versions may have different buckets: sum on the common ones.
    usable = {key: usable_bounds(key[1], targets.values()) for key, targets in per_target.items()}
    # Every bound of the full set, stored or not: a bucket whose increase was always zero
    # still bounds the next one from below (interpolating from 0 instead put every
    # 200 ms TTFT at a p50 of 160 ms).
    for (grp, role), les_ in usable.items():
        bounds.setdefault(grp, {})[role] = les_
    for s, grp, role in picked:
        if s.le is not None and s.le not in usable[(grp, role)]:
            continue
        ids.append(s.id)
        grps.append(grp)
        roles.append(role)
        les.append(s.le)
        gauges.append(role in GAUGE_ROLES)
    # Groups and roles travel as small integers: Python caches small ints, so fetching
    # thousands of result rows creates no string objects.
    group_names = tuple(sorted(set(grps)))
    gid = {g: i for i, g in enumerate(group_names)}
    selection = pa.table(
        {
            "series_id": pa.array(ids, pa.int32()),
            "g": pa.array([gid[g] for g in grps], pa.int16()),
            "r": pa.array([_ROLE_ID[r] for r in roles], pa.int8()),
            "le": pa.array(les, pa.float64()),
            "gauge": pa.array(gauges, pa.bool_()),
        }
    )
    shown = tuple(v for v in configured if variant in (ALL, v)) if by == "variant" else ()
    sorted_bounds = {g: {r: sorted(v) for r, v in roles_.items()} for g, roles_ in bounds.items()}
    return MetricsPlan(
        rng, by, variant, model, step, table, origin, n, now, selection, group_names, shown, sorted_bounds
    )


# Aggregate per (bucket, series) on integer keys first, then attach groups and roles to
# the much smaller result: about twice as fast as joining the selection row by row. The
# second grouping set (b NULL) is the whole range, for the summaries.
_METRICS_SQL = """
WITH src AS (
    SELECT ts, series_id, value FROM metrics_1m WHERE ts >= $a1 AND ts < $a2
    UNION ALL
    SELECT ts, series_id, value FROM metrics_5s WHERE ts >= $b1 AND ts < $b2
), per_series AS (
    SELECT CAST(floor((ts - $origin) / $step) AS INTEGER) AS b, series_id, sum(value) AS total, avg(value) AS mean
    FROM src GROUP BY b, series_id
)
SELECT b, g, r, le, CASE WHEN r = $interval THEN max(total)        -- a group's targets cover the same time
                         WHEN r = $up THEN sum(mean) / count(*)        -- share of targets up
                         ELSE sum(CASE WHEN gauge THEN mean ELSE total END) END AS v
FROM per_series JOIN tt_selection USING (series_id) GROUP BY GROUPING SETS ((b, g, r, le), (g, r, le))
"""


def run_metrics(cur: Any, plan: MetricsPlan, watermark: float | None) -> list[tuple[Any, ...]]:
    """Execute ``plan`` on a DuckDB cursor (reader thread); rows for ``assemble``."""
    start, end = plan.origin, plan.end
    if plan.table == "metrics_1m" and watermark is not None:
        split = min(max(watermark, start), end)
    else:
        split = start  # everything from metrics_5s
    cur.register("tt_selection", plan.selection)
    try:
        rows: list[tuple[Any, ...]] = cur.execute(
            _METRICS_SQL,
            {
                "a1": start,
                "a2": split,
                "b1": split,
                "b2": end,
                "origin": start,
                "step": plan.step,
                "interval": _ROLE_ID["interval"],
                "up": _ROLE_ID["up"],
            },
        ).fetchall()
        return rows
    finally:
        cur.unregister("tt_selection")


_NOT_SUMMED = frozenset({"interval", "in_flight", "up"})


def assemble(plan: MetricsPlan, rows: Iterable[tuple[Any, ...]]) -> dict[str, Any]:
    """The /api/metrics JSON from the rows of ``run_metrics`` (pure)."""
    n = plan.buckets
    aggs: dict[str, list[Agg]] = {}
    totals: dict[str, Agg] = {}  # per group over the whole range, for the summary
    gauge: dict[tuple[str, str], list[float | None]] = {}  # (group, interval | in_flight | up) -> per bucket
    names_of = plan.group_names
    # Each (b, g, r, le) comes once: plain assignments, no accumulation.
    for b, g, r, le, v in rows:
        grp, role = names_of[g], ROLE_NAMES[r]
        if b is None:
            if role not in _NOT_SUMMED:
                total = totals.get(grp)
                if total is None:
                    total = totals[grp] = Agg()
                if le is None:
                    total.sums[role] = v
                else:
                    total.buckets.setdefault(role, {})[le] = v
            continue
        if not 0 <= b < n:
            continue
        if role in _NOT_SUMMED:  # coverage, in-flight (mean over time, summed over targets), up
            gauge.setdefault((grp, role), [None] * n)[b] = v
        else:
            per = aggs.get(grp)
            if per is None:
                per = aggs[grp] = [Agg() for _ in range(n)]
            agg = per[b]
            if le is None:
                agg.sums[role] = v
            else:
                bs = agg.buckets.get(role)
                if bs is None:
                    bs = agg.buckets[role] = {}
                bs[le] = v

    if plan.by == "variant":
        names = sorted(set(aggs) | set(plan.groups) | {g for g, _ in gauge if g != "*"})
    else:
        names = sorted(g for g in aggs if g != "*")
    groups = []
    for name in names:
        cov = gauge.get(("*" if plan.by == "model" else name, "interval")) or [None] * n
        per = aggs.get(name) or [Agg() for _ in range(n)]
        flight = gauge.get((name, "in_flight")) if plan.by == "variant" and plan.model == ALL else None
        up = gauge.get(("*" if plan.by == "model" else name, "up"))
        bounds = plan.bounds.get(name)
        values = [
            compute(
                per[i],
                coverage=cov[i],
                in_flight=flight[i] if flight else None,
                up=up[i] if up else None,
                bounds=bounds,
            )
            for i in range(n)
        ]
        total = totals.get(name, Agg())
        covered = sum(c for c in cov if c)
        summary = compute(total, coverage=covered or None, in_flight=_mean(flight), up=_mean(up), bounds=bounds)
        summary.update(counts(total))
        groups.append({"name": name, "metrics": {m: [v[m] for v in values] for m in METRICS}, "summary": summary})
    return {
        "range": plan.range,
        "by": plan.by,
        "variant": plan.variant,
        "model": plan.model,
        "step": plan.step,
        "source": plan.table,
        "resolution": "5s" if plan.table == "metrics_5s" else "1m",
        "start": plan.origin,
        "end": plan.end,
        "now": plan.now,
        "timestamps": [plan.origin + i * plan.step for i in range(n)],
        "units": UNITS,
        "groups": groups,
    }


def _mean(xs: list[float | None] | None) -> float | None:
    vals = [x for x in xs or () if x is not None]
    return sum(vals) / len(vals) if vals else None


# --- spans ----------------------------------------------------------------------------

SPAN_STATUSES = ("ok", "error", "cancelled")
MAX_SPANS = 1000
_JSON_COLUMNS = (
    "finish_reasons",
    "input_messages",
    "output_messages",
    "system_instructions",
    "events",
    "attributes",
    "resource",
)
_MESSAGE_COLUMNS = ("input_messages", "output_messages", "system_instructions")


def number_param(query: Mapping[str, str], name: str, lo: float, hi: float, *, integer: bool = False) -> float | None:
    raw = query.get(name)
    if raw is None or raw == "":
        return None
    try:
        value = int(raw) if integer else float(raw)
    except ValueError:
        value = math.nan
    if not (lo <= value <= hi):
        kind = "an integer" if integer else "a number"
        raise QueryError(name, f"{name}={raw!r}: expected {kind} from {lo:g} to {hi:g}", [f"{lo:g}..{hi:g}"])
    return value


# Attribution filters: parameter -> condition on a span (one ``?``).
_ATTRIBUTION = {
    "session": "session_id = ?",
    "user": "user_id = ?",
    "tag": "list_contains(tags, ?)",
    "key": "key_fingerprint = ?",
    "route": "route = ?",
    "variant": "variant = ?",
}
_IN_RUN = in_run_sql("spans")  # in one of the run's intervals and in its scope


@dataclass(frozen=True)
class SpansPlan:
    where: str
    args: list[Any]
    limit: int
    messages: bool
    ascending: bool = False
    by_receipt: bool = False  # received_since: oldest received first, a cursor


def window_filters(query: Mapping[str, str], *, upper: str) -> tuple[list[str], list[Any]]:
    """The conditions every span filter starts from: ``since`` to ``upper`` (the parameter
    that names the window's end), status and model (asked or answered)."""
    where: list[str] = ["TRUE"]
    args: list[Any] = []
    since = number_param(query, "since", 0, 1e11)
    end = number_param(query, upper, 0, 1e11)
    if since is not None:
        where.append("start_time >= ?")
        args.append(since)
    if end is not None:
        where.append("start_time < ?")
        args.append(end)
    if query.get("status"):
        where.append("status = ?")
        args.append(_choice(query, "status", list(SPAN_STATUSES), ""))
    if query.get("model"):
        where.append("(model = ? OR response_model = ?)")
        args += [query["model"], query["model"]]
    return where, args


def span_filters(query: Mapping[str, str]) -> tuple[list[str], list[Any]]:
    """Conditions and parameters for the filters /api/spans and /api/sessions share."""
    where, args = window_filters(query, upper="before")
    for name, cond in _ATTRIBUTION.items():
        if query.get(name):
            where.append(cond)
            args.append(query[name])
    run = number_param(query, "run", 1, 2**31 - 1, integer=True)
    if run is not None:
        where.append(_IN_RUN)
        args.append(int(run))
    return where, args


SPAN_PARAMS = (
    "since",
    "before",
    "received_since",
    "limit",
    "model",
    "status",
    "variant",
    "messages",
    "order",
    "run",
    *_ATTRIBUTION,
)


def plan_spans(query: Mapping[str, str]) -> SpansPlan:
    """Validate /api/spans parameters (400 on anything unknown or malformed).

    ``received_since`` (epoch seconds) asks for the spans this collector received from that
    time on, oldest received first: a reader that passes back each answer's
    ``received_before`` gets every span, however long ago its request started (the Live
    page's history), and those received at that very time again (it skips what it has)."""
    check_known(query, SPAN_PARAMS)
    where, args = span_filters(query)
    received = number_param(query, "received_since", 0, 1e11)
    if received is not None:
        where.append("received_at >= ?")
        args.append(received)
    limit = number_param(query, "limit", 1, MAX_SPANS, integer=True) or 100
    messages = _choice(query, "messages", ["true", "false", "1", "0"], "true") in ("true", "1")
    ascending = _choice(query, "order", ["desc", "asc"], "desc") == "asc"
    return SpansPlan(" AND ".join(where), args, int(limit), messages, ascending, received is not None)


def fetch_spans(cur: Any, plan: SpansPlan) -> list[dict[str, Any]]:
    """Spans newest first, or oldest first with ``order=asc``; by receipt with
    ``received_since`` (reader thread).

    By receipt, a page holds whole receipts: a full page's last batch is sent to its end (one
    batch's spans share a stamp, so a page cut inside it would leave the rest behind a cursor
    past that stamp). A page can be longer than ``limit`` by at most one batch."""
    cols = [c for c in SPAN_COLUMNS if plan.messages or c not in _MESSAGE_COLUMNS]
    order = "ASC" if plan.ascending else "DESC"
    key = f"received_at ASC, start_time {order}" if plan.by_receipt else f"start_time {order}"
    select = f"SELECT {', '.join(cols)} FROM spans WHERE {plan.where}"
    rows = cur.execute(f"{select} ORDER BY {key}, request_id LIMIT {plan.limit}", plan.args).fetchall()
    if plan.by_receipt and len(rows) == plan.limit:  # the rest of the last batch, in the same order
        at, rid = cols.index("received_at"), cols.index("request_id")
        last = rows[-1][at]
        have = {r[rid] for r in rows if r[at] == last}
        rest = cur.execute(f"{select} AND received_at = ? ORDER BY {key}, request_id", [*plan.args, last])
        rows += [r for r in rest.fetchall() if r[rid] not in have]
    return [span_json(dict(zip(cols, r))) for r in rows]


def next_receipt(rows: list[dict[str, Any]], limit: int, watermark: float) -> float:
    """The next ``received_since`` after a page by receipt (``fetch_spans``): past its last
    receipt when the page is full (whole receipts: none of it is left), never past the
    watermark (a batch still on its way). Exact floats: a cursor rounded up skips a batch."""
    if len(rows) < limit or rows[-1].get("received_at") is None:
        return watermark
    return min(watermark, math.nextafter(rows[-1]["received_at"], math.inf))


def newest_receipt(cur: Any) -> float | None:
    """The latest receipt stamp stored (reader thread): where stamps go on after a restart."""
    ((newest,),) = cur.execute("SELECT max(received_at) FROM spans").fetchall()  # fetchone leaves the cursor busy
    return None if newest is None else float(newest)


# --- sessions and facets --------------------------------------------------------------

MAX_SESSIONS = 500
SESSION_PARAMS = ("since", "before", "limit", "offset", "q", "model", "status", "run", *_ATTRIBUTION)


def like_pattern(text: str) -> str:
    r"""``text`` as an ILIKE pattern matching it anywhere, ``%``, ``_`` and ``\`` taken literally."""
    escaped = text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


@dataclass(frozen=True)
class SessionsPlan:
    where: str
    args: list[Any]
    limit: int
    offset: int = 0


def plan_sessions(query: Mapping[str, str]) -> SessionsPlan:
    """/api/sessions: sessions with at least one request matching the filters, paged.

    ``q`` matches part of the session id or of the user id (case-insensitive, literally)."""
    check_known(query, SESSION_PARAMS)
    where, args = span_filters(query)
    q = query.get("q", "")
    if q:
        pattern = like_pattern(q)
        where.append("(session_id ILIKE ? ESCAPE '\\' OR user_id ILIKE ? ESCAPE '\\')")
        args += [pattern, pattern]
    limit = number_param(query, "limit", 1, MAX_SESSIONS, integer=True) or 100
    offset = number_param(query, "offset", 0, 10**9, integer=True) or 0
    return SessionsPlan(" AND ".join(where), args, int(limit), int(offset))


def count_sessions(cur: Any, plan: SessionsPlan) -> int:
    """How many sessions match (for paging)."""
    rows = cur.execute(
        f"SELECT count(DISTINCT session_id) FROM spans WHERE session_id IS NOT NULL AND {plan.where}", plan.args
    ).fetchall()
    return int(rows[0][0])


def fetch_sessions(cur: Any, plan: SessionsPlan) -> list[dict[str, Any]]:
    """Per session (newest activity first): its time span, turns, models, tokens, cost, users, tags."""
    where, args, limit = plan.where, plan.args, plan.limit
    rows = cur.execute(
        "SELECT session_id, min(start_time), max(coalesce(end_time, start_time)), count(*), "
        "list(DISTINCT coalesce(model, response_model)) FILTER (WHERE coalesce(model, response_model) IS NOT NULL), "
        "sum(input_tokens), sum(output_tokens), sum(cost_usd), count(cost_usd), "
        "list(DISTINCT user_id) FILTER (WHERE user_id IS NOT NULL), "
        "list(DISTINCT key_fingerprint) FILTER (WHERE key_fingerprint IS NOT NULL), "
        "count(*) FILTER (WHERE status = 'error'), "
        "list_distinct(flatten(list(coalesce(tags, [])))) "
        "FROM spans WHERE session_id IN (SELECT DISTINCT session_id FROM spans WHERE session_id IS NOT NULL AND "
        f"{where}) GROUP BY session_id ORDER BY 3 DESC, session_id LIMIT {int(limit)} OFFSET {int(plan.offset)}",
        args,
    ).fetchall()
    out = []
    for sid, first, last, turns, models, tin, tout, cost, priced, users, keys, errors, tags in rows:
        out.append(
            {
                "session_id": sid,
                "first_time": first,
                "last_time": last,
                "turns": turns,
                "models": sorted(models or []),
                "input_tokens": tin,
                "output_tokens": tout,
                # Unknown prices are never summed as zero: the cost of what was priced, and how much was not.
                "cost_usd": cost if priced else None,
                "cost_unknown_turns": turns - priced,
                "users": sorted(users or []),
                "keys": sorted(keys or []),
                "tags": sorted(tags or []),
                "errors": errors,
            }
        )
    return out


FACETS = {
    "users": "user_id",
    "keys": "key_fingerprint",
    "models": "coalesce(model, response_model)",
    "routes": "route",
    "variants": "variant",
}


def plan_facets(query: Mapping[str, str]) -> tuple[float | None, int]:
    check_known(query, ("since", "limit"))
    return number_param(query, "since", 0, 1e11), int(number_param(query, "limit", 1, 1000, integer=True) or 200)


def fetch_facets(cur: Any, since: float | None, limit: int) -> dict[str, list[dict[str, Any]]]:
    """The values the dashboard's filters offer: users, tags, keys, models, routes, variants, by use."""
    cond, args = ("start_time >= ?", [since]) if since is not None else ("TRUE", [])
    out: dict[str, list[dict[str, Any]]] = {}
    for name, expr in FACETS.items():
        rows = cur.execute(
            f"SELECT {expr} AS v, count(*) AS n FROM spans WHERE {cond} AND {expr} IS NOT NULL "
            f"GROUP BY v ORDER BY n DESC, v LIMIT {limit}",
            args,
        ).fetchall()
        out[name] = [{"value": v, "requests": n} for v, n in rows]
    rows = cur.execute(
        f"SELECT t, count(*) AS n FROM (SELECT unnest(tags) AS t FROM spans WHERE {cond}) "
        f"GROUP BY t ORDER BY n DESC, t LIMIT {limit}",
        args,
    ).fetchall()
    out["tags"] = [{"value": v, "requests": n} for v, n in rows]
    return out


def fetch_span(cur: Any, request_id: str) -> dict[str, Any] | None:
    cols = list(SPAN_COLUMNS)
    rows = cur.execute(f"SELECT {', '.join(cols)} FROM spans WHERE request_id = ? LIMIT 1", [request_id]).fetchall()
    return span_json(dict(zip(cols, rows[0]))) if rows else None


def span_json(row: dict[str, Any]) -> dict[str, Any]:
    """A stored span as the API returns it: JSON text columns parsed back."""
    for k in _JSON_COLUMNS:
        v = row.get(k)
        if isinstance(v, str):
            try:
                row[k] = json.loads(v)
            except ValueError:
                pass  # not JSON (messages sent as plain text): returned as sent
    row["id"] = row["request_id"]
    return row
