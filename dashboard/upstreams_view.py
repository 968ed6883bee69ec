"""The upstreams in view on the dashboard: the Overview's Upstreams panel (health and
rate-limit headroom per route, beside the variant cards and their error rate) and the
request detail's raw stream (the SSE events as the proxy relayed them).

Both read the proxies directly (``GET /api/upstreams``, ``GET /api/requests/{id}/raw``): the
simplest path, since the numbers are the proxies' own, current, and small; the collector keeps
no history of them (Prometheus does: ``tokentail_upstream_*``). Data functions, then pure
component builders, then ``register`` (one callback) — kept apart from ``layout``/``callbacks``
so the pages can change around them.
"""

from __future__ import annotations

import json
import time
import urllib.parse
from typing import Any

from dash import Dash, Input, Output, html, no_update

from . import _format as fmt
from .config import DashboardConfig
from .queries import Reader, SourceError

__all__ = ["fetch_raw", "fetch_upstreams", "panel", "raw_card", "register", "upstreams_card"]


# --- data ----------------------------------------------------------------------------------


def fetch_upstreams(reader: Reader) -> tuple[list[dict[str, Any]], list[str]]:
    """Every proxy's upstream rows (with its ``proxy`` name), and what failed on the way."""
    rows: list[dict[str, Any]] = []
    errors: list[str] = []
    for p in reader.config.proxies:
        try:
            body = reader._get(p.url, "/api/upstreams")
        except SourceError as exc:
            errors.append(str(exc))
            continue
        for row in (body or {}).get("upstreams") or []:
            if isinstance(row, dict):
                rows.append({**row, "proxy": p.name, "headroom": min_headroom(row)})
    return rows, errors


def min_headroom(row: dict[str, Any]) -> tuple[float, str] | None:
    """The tightest limit of a route: (remaining / limit, kind), or None when none was reported."""
    kinds = ((row.get("ratelimit") or {}).get("kinds") or {}).items()
    known = [(v["headroom"], k) for k, v in kinds if isinstance(v, dict) and v.get("headroom") is not None]
    return min(known) if known else None


def fetch_raw(reader: Reader, request_id: str) -> dict[str, Any] | None:
    """The raw stream view from the first proxy that holds it."""
    for p in reader.config.proxies:
        try:
            return reader._get(p.url, f"/api/requests/{urllib.parse.quote(request_id, safe='')}/raw")
        except SourceError:
            continue
    return None


# --- components (pure) ---------------------------------------------------------------------


def panel() -> html.Div:
    """The Overview's placeholder, filled by the callback."""
    return html.Div(id="ov-upstreams", className="tt-upstreams")


def _data(**attrs: str) -> dict[str, Any]:
    return {f"data-{k}": v for k, v in attrs.items()}


def _ago(at: float | None, now: float) -> str:
    if not at:
        return ""
    s = max(0.0, now - at)
    return f"{s:.0f}s ago" if s < 120 else f"{s / 60:.0f}m ago" if s < 7200 else f"{s / 3600:.0f}h ago"


def upstreams_card(rows: list[dict[str, Any]], errors: list[str], now: float) -> html.Div:
    head = html.Div(
        className="tt-card-head",
        children=[
            html.Span("Upstreams", className="tt-card-title"),
            html.Span("health and rate-limit headroom, as the proxies see them now", className="tt-card-unit"),
        ],
    )
    if not rows:
        note = "; ".join(errors) if errors else "No upstream has answered through a proxy yet."
        return html.Div(className="tt-card", children=[head, html.Div(note, className="tt-muted tt-pad")])
    body = []
    for r in rows:
        room = r.get("headroom")
        pill = ("up", "tt-pill-ok") if r.get("up") else ("down", "tt-pill-bad")
        low = room is not None and room[0] < 0.1
        body.append(
            html.Tr(
                **_data(route=str(r.get("route")), up="1" if r.get("up") else "0"),
                children=[
                    html.Td(str(r.get("route"))),
                    html.Td(str(r.get("upstream_host") or ""), className="tt-muted"),
                    html.Td(html.Span(pill[0], className=f"tt-pill {pill[1]}")),
                    html.Td(
                        f"{fmt.percent(room[0])} {room[1].replace('_', ' ')}" if room else "–",
                        className="tt-bad" if low else "",
                        **_data(headroom=f"{room[0]:.4f}" if room else ""),
                    ),
                    html.Td(
                        f"{r.get('last_error')} · {_ago(r.get('last_error_at'), now)}" if r.get("last_error") else "",
                        className="tt-muted",
                    ),
                    html.Td(str(r.get("proxy") or ""), className="tt-muted"),
                ],
            )
        )
    labels = ("Route", "Upstream", "Health", "Headroom (tightest limit)", "Last error", "Proxy")
    table = html.Table(
        className="tt-table",
        children=[html.Thead(html.Tr([html.Th(h) for h in labels])), html.Tbody(body)],
    )
    extra = [html.Div("; ".join(errors), className="tt-muted")] if errors else []
    scroll = html.Div(className="tt-table-scroll", children=table)  # wide: scrolls in its card, not the page
    return html.Div(className="tt-card", children=[head, scroll, *extra])


def raw_card(raw: dict[str, Any] | None) -> html.Div:
    """The request detail's "Raw stream" card: the relayed SSE events with their arrival times
    (the usage chunk tokentail injected marked), and the request body as sent upstream."""
    head = html.Div(className="tt-card-head", children=[html.Span("Raw stream", className="tt-card-title")])
    if raw is None:
        note = "No proxy holds this request's raw stream in memory."
        return html.Div(className="tt-card", id="detail-raw", children=[head, html.Div(note, className="tt-muted")])
    events = raw.get("events") or []
    rows = [
        html.Tr(
            className="tt-raw-event" + (" tt-raw-injected" if e.get("injected") else ""),
            **_data(seq=str(e.get("seq")), injected="1" if e.get("injected") else "0"),
            children=[
                html.Td(f"+{e.get('t_ms', 0):.1f} ms", className="tt-muted"),
                html.Td(html.Pre(str(e.get("raw", "")).rstrip("\n"), className="tt-code")),
                html.Td("injected by tokentail (hidden from the client)" if e.get("injected") else ""),
            ],
        )
        for e in events
    ]
    title = f"Events as relayed ({len(events)}{', truncated' if raw.get('truncated') else ''})"
    return html.Div(
        className="tt-card",
        id="detail-raw",
        children=[
            head,
            html.Details(
                className="tt-json",
                open=True,
                children=[
                    html.Summary(title),
                    html.Table(className="tt-table", id="tt-raw-events", children=[html.Tbody(rows)])
                    if rows
                    else html.Div("No SSE events (not a streamed response).", className="tt-muted"),
                ],
            ),
            html.Details(
                className="tt-json",
                children=[
                    html.Summary("Request body as sent upstream (redacted)"),
                    html.Pre(
                        json.dumps(raw.get("request_body"), indent=2, ensure_ascii=False, default=str),
                        className="tt-code",
                    ),
                ],
            ),
        ],
    )


# --- wiring --------------------------------------------------------------------------------


def register(app: Dash, config: DashboardConfig, reader: Reader) -> None:
    """The Upstreams panel follows the collector's ticks while the Overview is on screen."""
    if not config.collector or not config.proxies:
        return

    @app.callback(Output("ov-upstreams", "children"), Input("collector-tick", "data"), Input("url", "pathname"))
    def update_upstreams(_tick: Any, path: str | None) -> Any:
        if path not in ("/", "", None):
            return no_update
        rows, errors = fetch_upstreams(reader)
        return upstreams_card(rows, errors, time.time())
