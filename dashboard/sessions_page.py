"""Sessions: the list (``/sessions``) and one session's turns in order (``/sessions/<id>``).

Pure: the collector's ``/api/sessions`` and ``/api/spans?session=`` answers in, Dash
components out. A session's stored turns come from here; turns still in flight (or not
stored yet) are added below them by ``assets/tokentail_pages.js`` from the live feed,
which drops each one as soon as this page, rendered again, lists it.
"""

from __future__ import annotations

import urllib.parse
from typing import Any
from urllib.parse import quote

from dash import dcc, html

from . import _format as fmt
from . import static_html
from ._components import data, empty_state
from ._messages import as_list, message_from_parts, prompt_preview
from .config import DashboardConfig
from .figures import color_for

PREFIX = "/sessions/"
TURN_TEXT_CHARS = 1200  # of a completion on the session page (the request page has it all)
FILTERS = (("user", "sessions-user", "User"), ("tag", "sessions-tag", "Tag"), ("key", "sessions-key", "API key"))
# The list is paged by the collector (``/api/sessions?limit=&offset=``): the browser never
# holds more than a page, and a refresh that changes nothing renders nothing.
PAGE_SIZE = 50
# A filter's choices: the most used ones (a dropdown of thousands froze the page for seconds).
MAX_OPTIONS = 100


def session_id_from_path(path: str | None) -> str | None:
    from urllib.parse import unquote

    if not path or not path.startswith(PREFIX):
        return None
    sid = unquote(path[len(PREFIX) :]).strip("/")
    return sid or None


def list_page(
    config: DashboardConfig, table: Any = None, status: Any = "Loading…", values: dict[str, str | None] | None = None
) -> list[Any]:
    """The list page; the app's layout has it empty ("Loading…"), ``first_view`` with its
    first page of rows (``table``, ``status``) and the filters a link chose (``values``)."""
    if not config.collector:
        return [
            html.Div(className="tt-toolbar", children=[html.H1("Sessions", className="tt-h1")]),
            empty_state(
                "No collector configured",
                "Sessions are read from the requests the collector stored: start the dashboard with --collector URL.",
            ),
        ]
    return [
        html.Div(
            className="tt-toolbar",
            children=[
                html.H1("Sessions", className="tt-h1"),
                html.Div(
                    className="tt-toolbar-right",
                    children=[
                        dcc.Dropdown(
                            id=cid,
                            options=[],
                            value=(values or {}).get(name),
                            placeholder=label,
                            clearable=True,
                            className="tt-dropdown",
                        )
                        for name, cid, label in FILTERS
                    ],
                ),
            ],
        ),
        html.Div(
            className="tt-pager",
            children=[
                dcc.Input(
                    id="sessions-q",
                    type="search",
                    placeholder="Search session id…",
                    className="tt-search",
                    debounce=0.4,
                ),
                html.Button("← Newer", id="sessions-prev", type="button", className="tt-btn tt-btn-small", n_clicks=0),
                html.Button("Older →", id="sessions-next", type="button", className="tt-btn tt-btn-small", n_clicks=0),
            ],
        ),
        html.Div(id="sessions-status", className="tt-status-line", children=status),
        dcc.Store(id="sessions-page", data={"offset": 0}),
        html.Div(id="sessions-list", children=table),
    ]


def filters_from_search(search: str | None) -> dict[str, str | None]:
    """The filters a link chose: ``/sessions?user=alice`` (a chip on a request page)."""
    q = urllib.parse.parse_qs((search or "").lstrip("?"))
    return {name: q[name][0] if q.get(name) else None for name, _, _ in FILTERS}


def list_answer(rows: list[dict[str, Any]], total: int | None, offset: int, now: float) -> tuple[Any, str]:
    """A page of ``/api/sessions`` as the list shows it: the table and the status line."""
    return sessions_table(rows), status_text(offset, len(rows), total) + f" · updated {fmt.clock(now)}"


def as_markup(table: Any) -> dcc.Markdown:
    """``table`` as one component of static HTML, for the app's list after a filter or a page.

    Dash's renderer walks every component it is sent (~13 a row): 50 rows took ~100 ms of the
    page's main thread to draw, and a filter 204-238 ms from click to rows; as one Markdown
    of HTML, 133-157 ms (``bench/dashboard_bench.py --sessions 10000``). ``static_html`` escapes
    every text and attribute and keeps only safe link targets; newlines become character
    references, so no value can end Markdown's HTML block and be read as Markdown. Its links
    are plain links, opened in the app by ``assets/tokentail.js`` (``a.tt-nav``); its chips take
    their colour from ``data-chip`` (``assets/tokentail_chips.css``: Markdown drops the custom
    property of a style)."""
    markup = static_html.render(table).replace("\r", "&#13;").replace("\n", "&#10;")
    return dcc.Markdown(markup, dangerously_allow_html=True, className="tt-markup")


def page_state(offset: int, step: int, state: dict[str, Any] | None) -> int:
    """The offset after moving ``step`` pages from ``state`` (0: stay), within what exists."""
    s = state or {}
    shown, known = int(s.get("shown") or 0), s.get("total")
    new = max(offset + step * PAGE_SIZE, 0)
    if step > 0 and (shown < PAGE_SIZE or (isinstance(known, int) and new >= known)):
        return offset
    return new


def status_text(offset: int, shown: int, total: int | None) -> str:
    if total is None:
        return f"{offset + 1:,}–{offset + shown:,} of many sessions" if shown else "no sessions"
    if not shown:
        return "no sessions" if not total else f"no sessions on this page (of {fmt.count(total)})"
    return f"{offset + 1:,}–{offset + shown:,} of {fmt.count(total)} session" + ("" if total == 1 else "s")


def filter_options(
    facets: dict[str, Any] | None, chosen: dict[str, str | None] | None = None
) -> list[list[dict[str, str]]]:
    """Dropdown options for user, tag and key, most used first, each list with its ``chosen``
    value in it: Dash's dropdown drops a value its options do not hold (a link's filter, set
    before the options arrived, was lost that way)."""
    out = []
    for (name, _, _), facet in zip(FILTERS, ("users", "tags", "keys"), strict=True):
        every = sorted((facets or {}).get(facet) or [], key=lambda f: -(f.get("requests") or 0))
        top = every[:MAX_OPTIONS]
        keep = (chosen or {}).get(name)
        if keep and all(f["value"] != keep for f in top):
            top.append(next((f for f in every if f["value"] == keep), {"value": keep, "requests": None}))
        out.append([{"label": _option_label(f), "value": f["value"]} for f in top])
    return out


def _option_label(facet: dict[str, Any]) -> str:
    return facet["value"] if facet.get("requests") is None else f"{facet['value']} ({facet['requests']})"


def _models(models: list[str]) -> list[Any]:
    # The colour as data-chip, which assets/tokentail_chips.css maps to --chip: a style's custom
    # property would not survive the list drawn as static HTML (as_markup; Dash's Markdown drops it).
    return [html.Span(m, className="tt-chip", **data(chip=color_for("model", m))) for m in models[:3]] + (
        [html.Span(f"+{len(models) - 3}", className="tt-muted")] if len(models) > 3 else []
    )


def sessions_table(sessions: list[dict[str, Any]]) -> Any:
    if not sessions:
        return _empty()
    head = html.Tr(
        [
            html.Th(h, className=c)
            for h, c in (
                ("Session", ""),
                ("Started", ""),
                ("Last activity", ""),
                ("Turns", "tt-num"),
                ("Models", ""),
                ("Tokens in → out", "tt-num"),
                ("Cost", "tt-num"),
                ("User", ""),
            )
        ]
    )
    rows = []
    for s in sessions:
        sid = s["session_id"]
        rows.append(
            html.Tr(
                **data(session=sid),
                children=[
                    html.Td(dcc.Link(sid, href=PREFIX + quote(sid, safe=""), className="tt-link tt-mono tt-nav")),
                    html.Td(fmt.stamp(s.get("first_time"))[:19]),
                    html.Td(fmt.stamp(s.get("last_time"))[:19]),
                    html.Td(fmt.count(s.get("turns")), className="tt-num"),
                    html.Td(_models(s.get("models") or [])),
                    html.Td(
                        f"{fmt.count(s.get('input_tokens'))} → {fmt.count(s.get('output_tokens'))}", className="tt-num"
                    ),
                    html.Td(
                        fmt.cost(s.get("cost_usd"), s.get("cost_unknown_turns") or 0),
                        className="tt-num",
                        **data(cost="" if s.get("cost_usd") is None else str(s["cost_usd"])),
                    ),
                    html.Td(", ".join(s.get("users") or []) or "—"),
                ],
            )
        )
    return html.Div(
        className="tt-card tt-flush",
        children=html.Table(className="tt-table tt-clickable", children=[html.Thead(head), html.Tbody(rows)]),
    )


def _empty() -> html.Div:
    return empty_state(
        "No sessions yet",
        "A session is a conversation: the proxy groups turns by an X-Session-Id header, the request's "
        "metadata.session_id or user, or by a chat that continues an earlier one. Sessions appear "
        "here once the collector has stored their requests.",
    )


def turn(span: dict[str, Any], n: int) -> html.Div:
    """One stored turn: what the user said last, what the model answered, and its numbers."""
    inputs = [message_from_parts(m) for m in as_list(span.get("input_messages"))]
    outputs = [message_from_parts(m) for m in as_list(span.get("output_messages"))]
    text = "\n".join(m["text"] for m in outputs if m["text"])
    tools = [t["name"] or "?" for m in outputs for t in m["tool_calls"]]
    if len(text) > TURN_TEXT_CHARS:
        text = text[:TURN_TEXT_CHARS] + "…"
    rid = span.get("request_id") or span.get("id") or ""
    model = span.get("model") or span.get("response_model")
    status = span.get("status") or "ok"
    tokens = f"{fmt.count(span.get('input_tokens'))} → {fmt.count(span.get('output_tokens'))} tok"
    return html.Div(
        className=f"tt-turn tt-turn-{status}",
        **data(id=rid),
        children=[
            html.Div(
                className="tt-turn-head",
                children=[
                    html.Span(f"#{n}", className="tt-turn-n"),
                    html.Span(fmt.stamp(span.get("start_time")), className="tt-time"),
                    html.Span(status, className=f"tt-status tt-status-{status}"),
                    html.Span(model or "?", className="tt-chip", style={"--chip": color_for("model", model)}),
                    html.Span(
                        className="tt-row-stats",
                        children=" · ".join([tokens, fmt.usd(span.get("cost_usd")), fmt.ms(span.get("latency_ms"))]),
                    ),
                    dcc.Link("details →", href=f"/request/{quote(rid, safe='')}", className="tt-link tt-small"),
                ],
            ),
            html.Div(
                className="tt-msg tt-msg-user",
                children=[
                    html.Div("user", className="tt-msg-role"),
                    html.Pre(prompt_preview(inputs) or "(prompt not captured)", className="tt-text"),
                ],
            ),
            html.Div(
                className="tt-msg tt-msg-assistant",
                children=[
                    html.Div("assistant", className="tt-msg-role"),
                    html.Pre(
                        text or (f"→ tool call: {', '.join(tools)}" if tools else "(no text)"), className="tt-text"
                    ),
                ],
            ),
        ],
    )


def session_view(
    session_id: str, spans: list[dict[str, Any]], summary: dict[str, Any] | None, error: str | None = None
) -> list[Any]:
    """The session page: a head with its totals, then its stored turns, oldest first."""
    back = dcc.Link("← Sessions", href="/sessions", className="tt-back")
    turns = sorted(spans, key=lambda s: (s.get("start_time") or 0, s.get("request_id") or ""))
    s = summary or {}
    head = html.Div(
        className="tt-detail-head",
        children=[
            back,
            html.Div(
                className="tt-detail-title",
                children=[
                    html.Span("Session", className="tt-muted"),
                    html.Code(session_id, className="tt-session-id"),
                    # tokentail_pages.js asks this server to erase it (collector and proxies; admin rule).
                    html.Button(
                        "Erase content",
                        id="session-erase",
                        className="tt-btn tt-btn-small tt-btn-danger",
                        title="Erase this session's prompts and completions everywhere; usage, timings and cost stay",
                        **data(tt_action="erase", field="session", value=session_id),
                    ),
                ],
            ),
            html.Div(
                className="tt-detail-ids",
                children=[
                    html.Span(f"{len(turns)} stored turn" + ("" if len(turns) == 1 else "s"), **data(stat="turns")),
                    html.Span(f"{fmt.count(s.get('input_tokens'))} → {fmt.count(s.get('output_tokens'))} tokens")
                    if summary
                    else None,
                    html.Span(
                        ["cost ", html.B(fmt.cost(s.get("cost_usd"), s.get("cost_unknown_turns") or 0))],
                        **data(stat="cost"),
                    )
                    if summary
                    else None,
                    html.Span(", ".join(s.get("users") or []), className="tt-muted") if s.get("users") else None,
                ],
            ),
        ],
    )
    body: list[Any] = [head]
    if error:
        body.append(html.Div(f"Could not load the stored turns: {error}", className="tt-error-box"))
    if not turns and not error:
        body.append(
            html.Div(
                "No stored turn yet: turns in flight appear below as they stream.",
                className="tt-muted tt-pad",
                id="session-none",
            )
        )
    body.append(
        html.Div(
            className="tt-turns",
            id="session-turns",
            children=[turn(t, i + 1) for i, t in enumerate(turns)],
            **data(session=session_id, count=str(len(turns))),
        )
    )
    return body
