"""Requests (``/requests``): every request the collector stored, searched on the server.

Pure: filter values in, the collector's search parameters out (``search_params``); its
``/api/requests/search`` answer in, a table and a pager out. Nothing is filtered or sorted
in the browser: a page of at most ``PAGE_SIZE`` rows is all it ever holds. The export
links go through this dashboard's server (``/_tt/requests/export``), which relays the
collector's ``/api/requests/export`` download (the read token stays on the server).
"""

from __future__ import annotations

import time
from typing import Any
from urllib.parse import quote, urlencode

from dash import dcc, html

from . import _format as fmt
from ._components import STATUSES, data, empty_state
from .config import DashboardConfig
from .figures import color_for

PATH = "/requests"
PAGE_SIZE = 50
EXPORT_ROUTE = "/_tt/requests/export"
SINCE = (("15m", 900), ("1h", 3600), ("24h", 86_400), ("7d", 7 * 86_400), ("all", None))
SORTS = (("time", "Time"), ("latency", "Latency"), ("ttft", "TTFT"), ("cost", "Cost"), ("tokens", "Tokens"))
# The search API's filter names the page offers, as (parameter, input id, label).
NUMBERS = (
    ("min_latency_ms", "req-min-latency", "latency ≥ ms"),
    ("max_latency_ms", "req-max-latency", "latency ≤ ms"),
    ("min_cost_usd", "req-min-cost", "cost ≥ $"),
)
TEXTS = (("model", "req-model", "model"), ("user", "req-user", "user"), ("tag", "req-tag", "tag"))
# The controls' values when the page opens (the layout's, and the first view's search).
DEFAULTS = {"since": "24h", "sort": "time", "order": "desc"}


def page(config: DashboardConfig, table: Any = None, range_text: Any = None) -> list[Any]:
    """The page; the app's layout has it empty, ``first_view`` with its first page of
    results (``table``, ``range_text``)."""
    head = html.Div(className="tt-toolbar", children=[html.H1("Requests", className="tt-h1")])
    if not config.collector:
        return [head, empty_state("No collector configured", "Requests are searched in what the collector stored.")]
    filters = html.Div(
        className="tt-filters",
        children=[
            dcc.Input(
                id="req-q",
                type="search",
                placeholder="Search prompt, completion, id…",
                className="tt-search",
                debounce=0.4,
            ),
            dcc.Dropdown(
                id="req-since",
                options=[{"label": k, "value": k} for k, _ in SINCE],
                value=DEFAULTS["since"],
                clearable=False,
                className="tt-dropdown",
            ),
            dcc.Dropdown(
                id="req-status",
                options=[{"label": label, "value": v} for v, label in STATUSES if v != "in_flight"],
                placeholder="Status",
                className="tt-dropdown",
            ),
            *[
                dcc.Input(id=cid, type="text", placeholder=label, className="tt-input tt-input-short", debounce=0.4)
                for _, cid, label in TEXTS
            ],
            *[
                dcc.Input(
                    id=cid, type="number", min=0, placeholder=label, className="tt-input tt-input-short", debounce=0.4
                )
                for _, cid, label in NUMBERS
            ],
            dcc.Dropdown(
                id="req-sort",
                options=[{"label": f"by {label.lower()}", "value": v} for v, label in SORTS],
                value=DEFAULTS["sort"],
                clearable=False,
                className="tt-dropdown",
            ),
            dcc.RadioItems(
                id="req-order",
                options=[{"label": "↓", "value": "desc"}, {"label": "↑", "value": "asc"}],
                value=DEFAULTS["order"],
                inline=True,
                className="tt-segmented tt-small-seg",
            ),
        ],
    )
    pager = html.Div(
        className="tt-pager",
        children=[
            html.Button("← Newer", id="req-prev", type="button", className="tt-btn tt-btn-small", n_clicks=0),
            html.Span(id="req-range", className="tt-muted", children=range_text),
            html.Button("Older →", id="req-next", type="button", className="tt-btn tt-btn-small", n_clicks=0),
            html.A("Export CSV", id="req-csv", href=EXPORT_ROUTE + "?format=csv", className="tt-link", download=""),
            html.A(
                "Export JSONL", id="req-jsonl", href=EXPORT_ROUTE + "?format=jsonl", className="tt-link", download=""
            ),
        ],
    )
    return [head, filters, pager, dcc.Store(id="req-offset", data=0), html.Div(id="req-list", children=table)]


def search_params(values: dict[str, Any], now: float | None = None) -> dict[str, Any]:
    """The search API's filters from the page's inputs; empty ones left out."""
    out: dict[str, Any] = {}
    since = dict(SINCE).get(values.get("since") or "24h")
    if since is not None:
        out["since"] = round((time.time() if now is None else now) - since, 3)
    for key in ("q", "status", "sort", "order", *(p for p, _, _ in TEXTS)):
        v = values.get(key)
        if isinstance(v, str) and v.strip():
            out[key] = v.strip()
    for key, _, _ in NUMBERS:
        v = values.get(key)
        if isinstance(v, (int, float)) and not isinstance(v, bool) and v >= 0:
            out[key] = v
    return out


def export_href(params: dict[str, Any], format: str) -> str:
    """This server's export link for the same filters (no paging: the whole match)."""
    keep = {k: v for k, v in params.items() if k not in ("limit", "offset")}
    return EXPORT_ROUTE + "?" + urlencode({"format": format, **keep})


def answer(body: dict[str, Any], offset: int) -> tuple[Any, str, dict[str, Any]]:
    """A search's answer (``Reader.search``) as the page shows it: the table, the range line,
    and the pager's state (offset, rows shown, total when the collector counted it)."""
    rows = list(body.get("requests") or [])
    total = body.get("total") if isinstance(body.get("total"), int) else None
    state = {"offset": offset, "shown": len(rows), "total": total}
    return results_table(rows), page_range(offset, len(rows), total), state


def page_range(offset: int, shown: int, total: int | None) -> str:
    if not shown:
        return "no request matches"
    return f"{offset + 1:,}–{offset + shown:,} of {fmt.count(total) if total is not None else 'many'}"


def next_offset(offset: int, step: int, shown: int, total: int | None) -> int:
    """The offset after moving ``step`` pages, kept within what exists."""
    new = max(offset + step * PAGE_SIZE, 0)
    if step > 0 and (shown < PAGE_SIZE or (total is not None and new >= total)):
        return offset
    return new


def results_table(rows: list[dict[str, Any]]) -> Any:
    if not rows:
        return empty_state(
            "No request matches", "Widen the time range or clear a filter.", extra_class="tt-empty-inline"
        )
    head = html.Tr(
        [
            html.Th(h, className=c)
            for h, c in (
                ("Time", ""),
                ("Status", ""),
                ("Model", ""),
                ("Variant", ""),
                ("TTFT", "tt-num"),
                ("Latency", "tt-num"),
                ("Tokens in → out", "tt-num"),
                ("Cost", "tt-num"),
                ("User", ""),
                ("Request", ""),
            )
        ]
    )
    body = []
    for s in rows:
        rid = s.get("request_id") or s.get("id") or ""
        status = s.get("status") or "ok"
        model = s.get("model") or s.get("response_model")
        err = fmt.error_label(s.get("error_type"), s.get("http_status"))
        cost = fmt.usd(s.get("cost_usd")) if fmt.cost_incurred(status, _usage(s), s.get("cost_usd")) else "—"
        body.append(
            html.Tr(
                **data(id=rid, status=status),
                children=[
                    html.Td(fmt.stamp(s.get("start_time"))),
                    html.Td(
                        html.Span(status if not err else f"{status} · {err}", className=f"tt-status tt-status-{status}")
                    ),
                    html.Td(html.Span(model or "?", className="tt-chip", style={"--chip": color_for("model", model)})),
                    html.Td(s.get("variant") or "—"),
                    html.Td(fmt.ms(s.get("ttft_ms")), className="tt-num"),
                    html.Td(fmt.ms(s.get("latency_ms")), className="tt-num"),
                    html.Td(
                        f"{fmt.count(s.get('input_tokens'))} → {fmt.count(s.get('output_tokens'))}", className="tt-num"
                    ),
                    html.Td(cost, className="tt-num"),
                    html.Td(s.get("user_id") or s.get("user") or "—"),
                    html.Td(
                        dcc.Link(rid[:12] or "?", href=f"/request/{quote(rid, safe='')}", className="tt-link tt-mono")
                    ),
                ],
            )
        )
    return html.Div(
        className="tt-card tt-flush tt-scroll-x",
        children=html.Table(className="tt-table tt-clickable", children=[html.Thead(head), html.Tbody(body)]),
    )


def _usage(s: dict[str, Any]) -> dict[str, Any]:
    return {"input_tokens": s.get("input_tokens"), "output_tokens": s.get("output_tokens")}
