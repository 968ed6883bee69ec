"""History search over stored spans: ``/api/requests/search`` and ``/api/requests/export``.

``plan_search`` (pure) validates the query string and turns it into one WHERE clause with
parameters, an ORDER BY and a page; ``fetch_page`` runs it on the reader cursor and counts
the whole result. Full text (``q``) is a case-insensitive substring match over the redacted
prompt, system instructions and completion (DuckDB ``ILIKE`` with ``%``, ``_`` and ``\\``
escaped, so they match themselves): DuckDB's FTS extension is not bundled with the wheel and
the collector downloads nothing at run time.

Export rows are the summary columns only (no events, attributes or resource: they are not
needed to read a result, and keep the file small); JSONL adds the redacted messages. Nothing
in a span row is a header value: ``otlp.clean_attributes`` drops credentials before storage.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from .query import (
    QueryError,
    _choice,
    check_known,
    like_pattern,
    number_param,
    span_json,
    window_filters,
)
from .store import SPAN_COLUMNS

MAX_LIMIT = 500
MAX_EXPORT = 100_000
EXPORT_PAGE = 5_000
FORMATS = ("csv", "jsonl")

_MESSAGE_COLUMNS = ("input_messages", "output_messages", "system_instructions")
# The summary row of a search result: what /api/spans returns with messages=false.
SUMMARY_COLUMNS = tuple(c for c in SPAN_COLUMNS if c not in _MESSAGE_COLUMNS)
EXPORT_COLUMNS = (
    "request_id",
    "start_time",
    "end_time",
    "variant",
    "model",
    "response_model",
    "endpoint",
    "stream",
    "status",
    "http_status",
    "error_type",
    "input_tokens",
    "output_tokens",
    "cached_input_tokens",
    "usage_source",
    "ttft_ms",
    "latency_ms",
    "output_tps",
    "cost_usd",
    "finish_reasons",
    "session_id",
    "user_id",
    "tags",
    "key_fingerprint",
    "route",
)

# sort parameter -> SQL expression (NULLs always last, whatever the order)
SORTS = {
    "time": "start_time",
    "latency": "latency_ms",
    "ttft": "ttft_ms",
    "cost": "cost_usd",
    "tokens": "(coalesce(input_tokens, 0) + coalesce(output_tokens, 0))",
}
# equality filters: parameter -> condition (one ``?``)
_EQUALS = {
    "variant": "variant = ?",
    "error": "error_type = ?",
    "session": "session_id = ?",
    "user": "user_id = ?",
    "tag": "list_contains(tags, ?)",
    "key": "key_fingerprint = ?",
}
# thresholds: parameter -> (column, operator)
_RANGES = {
    "min_latency_ms": ("latency_ms", ">="),
    "max_latency_ms": ("latency_ms", "<="),
    "min_ttft_ms": ("ttft_ms", ">="),
    "max_ttft_ms": ("ttft_ms", "<="),
    "min_cost_usd": ("cost_usd", ">="),
    "max_cost_usd": ("cost_usd", "<="),
}
FILTER_PARAMS = ("since", "until", "model", "status", "q", *_EQUALS, *_RANGES)
SEARCH_PARAMS = (*FILTER_PARAMS, "sort", "order", "limit", "offset")
EXPORT_PARAMS = (*FILTER_PARAMS, "sort", "order", "format")
MAX_Q = 500  # characters of full text


@dataclass(frozen=True)
class SearchPlan:
    where: str
    args: list[Any]
    order_by: str
    limit: int
    offset: int
    scan_once: bool = False  # full text: page and total from one scan (see fetch_page)


def filters(query: Mapping[str, str]) -> tuple[list[str], list[Any]]:
    """Conditions and parameters for the search filters (``QueryError`` on bad values)."""
    where, args = window_filters(query, upper="until")
    for name, cond in _EQUALS.items():
        if query.get(name):
            where.append(cond)
            args.append(query[name])
    for name, (col, op) in _RANGES.items():
        value = number_param(query, name, 0, 1e12)
        if value is not None:
            where.append(f"{col} {op} ?")
            args.append(value)
    q = query.get("q", "")
    if q:
        if len(q) > MAX_Q:
            raise QueryError("q", f"q is longer than {MAX_Q} characters", [f"1..{MAX_Q} characters"])
        # ESCAPE makes DuckDB's ILIKE about 3x slower (measured): only when there is a wildcard to escape.
        escape = " ESCAPE '\\'" if any(c in q for c in "%_\\") else ""
        where.append(
            f"(input_messages ILIKE ?{escape} OR output_messages ILIKE ?{escape} OR system_instructions ILIKE ?{escape})"
        )
        args += [like_pattern(q) if escape else f"%{q}%"] * 3
    return where, args


def _order(query: Mapping[str, str]) -> str:
    sort = _choice(query, "sort", list(SORTS), "time")
    order = _choice(query, "order", ["desc", "asc"], "desc").upper()
    return f"{SORTS[sort]} {order} NULLS LAST, start_time {order}, request_id {order}"


def plan_search(query: Mapping[str, str]) -> SearchPlan:
    """Validate ``/api/requests/search`` parameters (400 on anything unknown or malformed)."""
    check_known(query, SEARCH_PARAMS)
    where, args = filters(query)
    limit = int(number_param(query, "limit", 1, MAX_LIMIT, integer=True) or 100)
    offset = int(number_param(query, "offset", 0, 10**9, integer=True) or 0)
    return SearchPlan(" AND ".join(where), args, _order(query), limit, offset, bool(query.get("q")))


def plan_export(query: Mapping[str, str]) -> tuple[SearchPlan, str]:
    """Validate ``/api/requests/export`` parameters: the plan (up to ``MAX_EXPORT`` rows) and the format."""
    check_known(query, EXPORT_PARAMS)
    fmt = _choice(query, "format", list(FORMATS), "csv")
    where, args = filters(query)
    return SearchPlan(" AND ".join(where), args, _order(query), MAX_EXPORT, 0), fmt


def count(cur: Any, plan: SearchPlan) -> int:
    return int(cur.execute(f"SELECT count(*) FROM spans WHERE {plan.where}", plan.args).fetchall()[0][0])


def fetch_page(cur: Any, plan: SearchPlan) -> dict[str, Any]:
    """One page of summary rows and the total matching (reader thread).

    With full text the total is a window count in the page's own statement, so the text is
    scanned once; without, a separate count is cheaper (the window materialises every match)."""
    cols = list(SUMMARY_COLUMNS)
    extra = ", count(*) OVER ()" if plan.scan_once else ""
    rows = cur.execute(
        f"SELECT {', '.join(cols)}{extra} FROM spans WHERE {plan.where} ORDER BY {plan.order_by} "
        f"LIMIT {int(plan.limit)} OFFSET {int(plan.offset)}",
        plan.args,
    ).fetchall()
    if plan.scan_once:
        # Past the last page no row carries the window count: count apart (rare).
        total = rows[0][-1] if rows else (count(cur, plan) if plan.offset else 0)
        rows = [r[:-1] for r in rows]
    else:
        total = count(cur, plan)
    return {
        "requests": [span_json(dict(zip(cols, r))) for r in rows],
        "total": int(total),
        "limit": plan.limit,
        "offset": plan.offset,
    }


def export_ids(cur: Any, plan: SearchPlan) -> list[str]:
    """The request ids of the whole result in order (at most ``plan.limit``): sorting ids only,
    then fetching pages by id, never sorts the messages (OFFSET paging re-sorted them per page)."""
    rows = cur.execute(
        f"SELECT request_id FROM spans WHERE {plan.where} ORDER BY {plan.order_by} LIMIT {int(plan.limit)}",
        plan.args,
    ).fetchall()
    return [r[0] for r in rows]


def fetch_by_ids(cur: Any, columns: Iterable[str], ids: list[str]) -> list[dict[str, Any]]:
    """Rows of ``ids``, in the order given."""
    cols = list(columns)
    if not ids:
        return []
    rows = cur.execute(f"SELECT {', '.join(cols)} FROM spans WHERE request_id IN (SELECT unnest(?))", [ids]).fetchall()
    at = cols.index("request_id")
    by_id = {r[at]: dict(zip(cols, r)) for r in rows}
    return [by_id[i] for i in ids if i in by_id]


# --- export encoding (pure) --------------------------------------------------------------


def _cell(value: Any) -> Any:
    if isinstance(value, list):
        return ";".join(str(v) for v in value)
    return "" if value is None else value


def csv_header() -> str:
    buf = io.StringIO()
    csv.writer(buf, lineterminator="\n").writerow(EXPORT_COLUMNS)
    return buf.getvalue()


def csv_rows(rows: Iterable[Mapping[str, Any]]) -> str:
    """Rows as CSV text (lists joined with ``;``, NULL as empty)."""
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    for r in rows:
        w.writerow([_cell(r.get(c)) for c in EXPORT_COLUMNS])
    return buf.getvalue()


def jsonl_rows(rows: Iterable[dict[str, Any]]) -> str:
    """Rows as JSON lines, JSON text columns (messages, finish reasons) parsed back."""
    return "".join(json.dumps(span_json(dict(r)), ensure_ascii=False, default=str) + "\n" for r in rows)


def export_columns(fmt: str) -> tuple[str, ...]:
    return EXPORT_COLUMNS if fmt == "csv" else (*EXPORT_COLUMNS, *_MESSAGE_COLUMNS)
