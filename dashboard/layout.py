"""The page frame, Overview, Live and request detail (pure: data in, Dash components out).

Every page is always in the layout and shown by path (``PAGES``), so the live list, kept
in the DOM by ``assets/tokentail.js``, keeps growing while another page is on screen.
Elements with ids starting ``tt-`` are the scripts': Dash renders them (empty, or with
the text the server knew) and the scripts fill them from then on. Sessions, runs and the
playground have their own modules (``sessions_page``, ``runs_page``, ``playground_page``).
"""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import quote

from dash import dcc, html
from dash.development.base_component import Component

from . import _format as fmt
from . import upstreams_view
from ._components import STATUSES, data, empty_state
from ._markdown import safe_markdown
from .config import DashboardConfig
from .figures import CHART_HEIGHT, CHARTS, color_for
from .queries import CARD_FIELDS, DEFAULT_RANGE, MODEL_COLUMNS, RANGES

GRAPH_CONFIG: dcc.Graph.Config = {"displayModeBar": False, "responsive": True}
# Every page, in the order tokentail.route() returns their styles (see assets/tokentail.js).
PAGES = (
    "overview",
    "live",
    "detail",
    "requests",
    "sessions",
    "session",
    "runs",
    "run",
    "compare",
    "abcompare",
    "playground",
)
# The header's links: (page, label, path), in the order route() returns their classes.
NAV = (
    ("overview", "Overview", "/"),
    ("live", "Live", "/live"),
    ("requests", "Requests", "/requests"),
    ("sessions", "Sessions", "/sessions"),
    ("runs", "Runs", "/runs"),
    ("abcompare", "Compare", "/compare"),
    ("playground", "Playground", "/playground"),
)


def page(config: DashboardConfig) -> html.Div:
    from . import compare_page, playground_page, replay_view, requests_page, runs_page, sessions_page

    bodies = {
        "overview": overview_page(config),
        "live": live_page(config),
        "detail": [html.Div(id="detail-body", className="tt-detail"), replay_view.panel()],
        "requests": requests_page.page(config),
        "sessions": sessions_page.list_page(config),
        "session": [
            html.Div(id="session-body", className="tt-detail"),
            # tokentail_pages.js lists the session's turns not stored yet (in flight) here.
            html.Div(id="tt-session-live", className="tt-turns"),
        ],
        "runs": runs_page.list_page(config),
        "run": runs_page.run_page(config),
        "compare": [html.Div(id="compare-body", className="tt-detail")],
        "abcompare": compare_page.page(config),
        "playground": playground_page.page(config),
    }
    return html.Div(
        className="tt-app",
        children=[
            dcc.Location(id="url", refresh=False),
            dcc.Store(id="collector-tick"),  # set by tokentail.js on every collector snapshot
            dcc.Store(id="page-tick"),  # likewise, only while Sessions or Runs is on screen
            dcc.Store(id="detail-tick"),  # set by tokentail.js when the open request ends
            dcc.Store(id="session-tick"),  # set by tokentail_pages.js when a turn of the open session is stored
            dcc.Store(id="runs-tick"),  # set by tokentail_pages.js after a run action
            dcc.Store(id="live-filter-sink"),
            header(config),
            html.Div(id="tt-banner", className="tt-banner", role="status"),
            html.Div(id="tt-toast", className="tt-toast", role="alert"),
            html.Main(
                className="tt-main",
                children=[
                    html.Section(
                        id=f"page-{name}",
                        className="tt-page",
                        children=bodies[name],
                        style=None if name == "overview" else {"display": "none"},
                    )
                    for name in PAGES
                ],
            ),
        ],
    )


def header(config: DashboardConfig, active: str | None = None) -> html.Header:
    """The top bar; ``active`` marks a page's link (tokentail.js does it in the app, by path)."""
    return html.Header(
        className="tt-header",
        children=[
            html.Div(className="tt-brand", children=[html.Span("▍", className="tt-logo"), "tokentail"]),
            html.Nav(
                className="tt-nav",
                children=[
                    dcc.Link(
                        label,
                        href=path,
                        id=f"nav-{name}",
                        className="tt-nav-link active" if name == active else "tt-nav-link",
                    )
                    for name, label, path in NAV
                ],
            ),
            # One dot per source, coloured by tokentail.js from its connection state.
            html.Div(id="tt-sources", className="tt-sources"),
        ],
    )


def chips(kind: str, values: list[str] | None, href: str | None = None) -> list[Any]:
    """Small labelled chips (user, tag, key), each a link to the Sessions filtered by it when ``href``."""
    out: list[Any] = []
    for v in values or []:
        label: list[Component | str] = [html.Span(kind, className="tt-attr-kind"), str(v)]
        if href:
            out.append(dcc.Link(label, href=f"{href}?{kind}={quote(str(v), safe='')}", className="tt-attr"))
        else:
            out.append(html.Span(label, className="tt-attr"))
    return out


# --- Overview ------------------------------------------------------------------------


def overview_page(config: DashboardConfig) -> list[Any]:
    toolbar = html.Div(
        className="tt-toolbar",
        children=[
            html.H1("Overview", className="tt-h1"),
            html.Div(
                className="tt-toolbar-right",
                children=[
                    dcc.Dropdown(
                        id="ov-model",
                        options=[],
                        value=None,
                        placeholder="All models",
                        clearable=True,
                        className="tt-dropdown tt-model-filter",
                        searchable=True,
                    ),
                    dcc.RadioItems(
                        id="ov-range",
                        options=[{"label": r, "value": r} for r in RANGES],
                        value=DEFAULT_RANGE,
                        className="tt-segmented",
                        inline=True,
                    ),
                ],
            ),
        ],
    )
    if not config.has_overview:
        toolbar = html.Div(className="tt-toolbar", children=[html.H1("Overview", className="tt-h1")])
        proxies = [(p.variant or "production", p.url) for p in config.proxies] or [
            ("production", "http://127.0.0.1:8787")
        ]
        targets = " ".join(f"--target {v}={u}" for v, u in proxies)
        again = " ".join(f"--proxy {v}={u}" for v, u in proxies)
        return [
            toolbar,
            empty_state(
                "No collector configured",
                "The Overview charts the collector's history. Start one that scrapes your proxies, then "
                "pass its URL to the dashboard. The Live page works without it.",
                code=f"tokentail collector {targets} --allowed-origin {config.origin}\n"
                f"tokentail dashboard --collector http://127.0.0.1:8788 {again}",
                extra_class="tt-empty-page",
            ),
        ]
    return [
        toolbar,
        html.Div(id="ov-status", className="tt-status-line", children="Loading…"),
        html.Div(id="ov-empty"),
        html.Div(id="ov-cards", className="tt-variant-cards"),
        upstreams_view.panel(),  # health and rate-limit headroom per route, beside the error rates
        # Filled by the overview callback once the Overview is on screen: a page opened on
        # /live never loads Plotly (parsing it would stall the live list at page load).
        html.Div(
            id="ov-grid",
            className="tt-chart-grid",
            children=html.Div(
                f"Charts appear once {'Prometheus' if config.prometheus else 'the collector'} answers.",
                className="tt-muted tt-pad",
            ),
        ),
        html.Div(
            className="tt-card",
            children=[
                html.Div(
                    className="tt-card-head",
                    children=[
                        html.Span("Models", className="tt-card-title"),
                        html.Span("over the selected range", className="tt-card-unit"),
                    ],
                ),
                html.Div(id="ov-models"),
            ],
        ),
        *prometheus_poll(config),
    ]


def prometheus_poll(config: DashboardConfig) -> list[Any]:
    """With --metrics-source prometheus=URL nothing announces new data: ask every scrape
    interval (at least 5 s; 10 s when it is read from the data)."""
    if config.prometheus is None:
        return []
    return [dcc.Interval(id="ov-poll", interval=int(max(5.0, config.prometheus.scrape_interval or 10.0) * 1000))]


def chart_cards(figs: dict[str, Any]) -> list[html.Div]:
    """The Overview's chart grid: a card per chart of ``figures.CHARTS``, then per model."""
    specs = [(cid, title, unit) for cid, title, unit, _, _ in CHARTS]
    specs.append(("ov-chart-models", "Request rate by model", "req/s"))
    return [
        html.Div(
            className="tt-card tt-chart",
            children=[
                html.Div(
                    className="tt-card-head",
                    children=[html.Span(title, className="tt-card-title"), html.Span(unit, className="tt-card-unit")],
                ),
                dcc.Graph(
                    id=cid,
                    figure=figs[cid],
                    config=GRAPH_CONFIG,
                    className="tt-graph",
                    style={"height": f"{CHART_HEIGHT}px"},
                ),
            ],
        )
        for cid, title, unit in specs
    ]


def variant_cards(cards: list[dict[str, Any]]) -> list[html.Div]:
    out = []
    for c in cards:
        color = color_for("variant", c["name"])
        state = {True: ("up", "tt-pill-ok"), False: ("down", "tt-pill-bad"), None: ("", "")}[c["up"]]
        rows = [
            html.Div(
                className="tt-kv",
                children=[
                    html.Span(label, className="tt-kv-label"),
                    html.Span(fmt.value(c["values"].get(key), unit), className="tt-kv-value", **data(metric=key)),
                ],
            )
            for key, label, unit in CARD_FIELDS
        ]
        out.append(
            html.Div(
                className="tt-card tt-variant-card",
                style={"borderTopColor": color},
                **data(variant=c["name"]),
                children=[
                    html.Div(
                        className="tt-variant-head",
                        children=[
                            html.Span(className="tt-dot", style={"background": color}),
                            html.Span(c["name"], className="tt-variant-name"),
                            html.Span(state[0], className=f"tt-pill {state[1]}") if state[0] else None,
                            html.Span(
                                f"{fmt.count(c['requests'])} requests" if c["requests"] is not None else "",
                                className="tt-variant-sub",
                            ),
                        ],
                    ),
                    html.Div(className="tt-kv-grid", children=rows),
                ],
            )
        )
    return out


def model_table(rows: list[dict[str, Any]]) -> Any:
    if not rows:
        return html.Div("No requests in this range yet.", className="tt-muted tt-pad")
    head = html.Tr([html.Th("Model")] + [html.Th(label, className="tt-num") for _, label, _ in MODEL_COLUMNS])
    body = []
    for r in rows:
        cells = [
            html.Td(
                [html.Span(className="tt-dot", style={"background": color_for("model", r["name"])}), r["name"]],
                className="tt-model-cell",
            )
        ]
        cells += [html.Td(fmt.value(r.get(key), unit), className="tt-num") for key, _, unit in MODEL_COLUMNS]
        body.append(html.Tr(cells, **data(model=r["name"])))
    table = html.Table(className="tt-table", children=[html.Thead(head), html.Tbody(body)])
    return html.Div(className="tt-table-scroll", children=table)  # wide: scrolls in its card, not the page


def _cost_text(v: dict[str, Any]) -> str:
    if v["in_flight"]:
        return "…"
    if not fmt.cost_incurred(v.get("status"), v.get("usage"), v["cost_usd"]):
        return "none incurred"
    return fmt.usd(v["cost_usd"])


def status_line(resp: dict[str, Any] | None, error: str | None, now: float) -> list[Any]:
    if error:
        return [html.Span("●", className="tt-bad"), f" Could not load metrics: {error}. Showing what was last loaded."]
    if not resp:
        return ["Loading…"]
    res = resp.get("resolution", "?")
    return [
        html.Span(f"{res} resolution", className="tt-res", **data(resolution=res)),
        f" · step {fmt.ms((resp.get('step') or 0) * 1000)} · updated {fmt.clock(now)}",
        _quantile_note(resp.get("quantile_source")),
    ]


def _quantile_note(source: Any) -> Any:
    """Say which percentiles are estimated from histogram buckets (the collector's
    ``quantile_source``), not exact from the stored spans."""
    if not isinstance(source, dict):
        return None
    approx = [k for k in ("latency", "ttft", "tps") if source.get(k) == "buckets"]
    if not approx:
        return None
    names = {"latency": "latency", "ttft": "TTFT", "tps": "tok/s"}
    return html.Span(
        " · " + ", ".join(names[k] for k in approx) + " percentiles from buckets",
        className="tt-muted",
        title="estimated from the proxies' histogram buckets, not exact from stored spans",
        **data(quantiles="buckets"),
    )


def no_traffic(config: DashboardConfig, rng: str) -> html.Div:
    base = config.proxies[0].openai_base if config.proxies else "http://127.0.0.1:8787/v1"
    return empty_state(
        f"No requests in the last {rng}",
        "Send traffic through a proxy and the charts fill in as "
        + ("Prometheus" if config.prometheus else "the collector")
        + " scrapes it.",
        code=f"export OPENAI_BASE_URL={base}",
        extra_class="tt-empty-inline",
    )


# --- Live ----------------------------------------------------------------------------


def live_page(config: DashboardConfig) -> list[Any]:
    filters = html.Div(
        className="tt-filters",
        children=[
            dcc.Input(
                id="live-q",
                type="search",
                placeholder="Search prompts and completions…",
                debounce=False,
                className="tt-search",
                autoComplete="off",
            ),
            dcc.Dropdown(id="live-model", options=[], multi=True, placeholder="Model", className="tt-dropdown"),
            dcc.Dropdown(id="live-variant", options=[], multi=True, placeholder="Variant", className="tt-dropdown"),
            dcc.Dropdown(
                id="live-status",
                options=[{"label": label, "value": v} for v, label in STATUSES],
                multi=True,
                placeholder="Status",
                className="tt-dropdown",
            ),
            # Options come from the requests seen (tokentail.js), live and stored.
            dcc.Dropdown(id="live-user", options=[], multi=True, placeholder="User", className="tt-dropdown"),
            dcc.Dropdown(id="live-tag", options=[], multi=True, placeholder="Tag", className="tt-dropdown"),
            dcc.Dropdown(id="live-key", options=[], multi=True, placeholder="API key", className="tt-dropdown"),
        ],
    )
    if config.live and not config.proxies:  # --live: a collector's merged feed over Redis
        hint = empty_state(
            "No requests yet",
            "Point an OpenAI client at any proxy started with --live-redis; each request shows up here "
            "the moment it arrives, and its completion grows token by token.",
        )
    elif config.proxies:
        hint = empty_state(
            "No requests yet",
            "Point an OpenAI client at a proxy; each request shows up here the moment it arrives, "
            "and its completion grows token by token.",
            code="\n".join(f"export OPENAI_BASE_URL={p.openai_base}   # {p.name}" for p in config.proxies),
        )
    else:
        hint = empty_state(
            "No proxy to follow",
            "Start the dashboard with --proxy for each proxy whose live feed it should show; each proxy "
            "must allow this page's origin.",
            code=f"tokentail proxy --upstream https://api.openai.com/v1 --allowed-origin {config.origin}\n"
            "tokentail dashboard --proxy production=http://127.0.0.1:8787",
        )
    return [
        html.Div(
            className="tt-toolbar",
            children=[
                html.H1("Live", className="tt-h1"),
                html.Div(id="tt-live-count", className="tt-live-count"),
            ],
        ),
        filters,
        html.Div(id="tt-live-empty", className="tt-live-empty", children=hint),
        html.Div(id="tt-live-list", className="tt-live-list"),
        html.Div(id="tt-live-more", className="tt-live-more"),
    ]


# --- Request detail ------------------------------------------------------------------


def _stat(label: str, value: str, key: str) -> html.Div:
    return html.Div(
        className="tt-stat",
        children=[
            html.Div(label, className="tt-stat-label"),
            html.Div(value, className="tt-stat-value", **data(stat=key)),
        ],
    )


def _json_block(title: str, obj: Any) -> html.Details:
    return html.Details(
        className="tt-json",
        children=[
            html.Summary(title),
            html.Pre(json.dumps(obj, indent=2, ensure_ascii=False, default=str), className="tt-code"),
        ],
    )


def _tool_calls(calls: list[dict[str, Any]]) -> list[Any]:
    return [
        html.Div(
            className="tt-tool",
            children=[
                html.Div(
                    [
                        html.Span("tool call", className="tt-tag"),
                        html.Code(c.get("name") or "?"),
                        html.Span(c.get("id") or "", className="tt-muted tt-small"),
                    ]
                ),
                html.Pre(c.get("arguments") or "", className="tt-code"),
            ],
        )
        for c in calls
    ]


# A prompt or completion longer than this shows its start, with a "show all" button
# (tokentail.js opens it): a 10k-token prompt would make the page ~30,000 px tall.
COLLAPSE_CHARS = 3000
COLLAPSE_LINES = 40


def is_long(text: str | None) -> bool:
    return bool(text) and (len(text or "") > COLLAPSE_CHARS or (text or "").count("\n") > COLLAPSE_LINES)


def collapsible(text: str | None, pre: html.Pre) -> Any:
    """``pre`` as is, or collapsed with a "show all" button when ``text`` is long."""
    if not is_long(text):
        return pre
    pre.className = (getattr(pre, "className", None) or "") + " tt-collapsed"  # type: ignore[attr-defined]
    n = len(text or "")
    return html.Div(
        className="tt-collapse",
        children=[pre, html.Button(f"show all · {n:,} characters", type="button", className="tt-btn tt-show-all")],
    )


def _message(m: dict[str, Any]) -> html.Div:
    body: list[Any] = []
    if m.get("reasoning"):
        body.append(html.Details([html.Summary("reasoning"), html.Pre(m["reasoning"], className="tt-text")]))
    if m.get("text"):
        body.append(collapsible(m["text"], html.Pre(m["text"], className="tt-text")))
    body += _tool_calls(m.get("tool_calls") or [])
    role = m.get("role") or "user"
    label = role + (f" · {m['tool_call_id']}" if m.get("tool_call_id") else "")
    return html.Div(className=f"tt-msg tt-msg-{role}", children=[html.Div(label, className="tt-msg-role"), *body])


def _plural(n: int, word: str) -> str:
    return f"{n} {word}" + ("" if n == 1 else "s")


def _no_text(v: dict[str, Any]) -> str:
    """What an empty completion box says (CSS shows it while the box is empty)."""
    if v["in_flight"]:
        return "waiting for the first token…"
    if v["tool_calls"]:
        return "no text: the model called a tool (below)"
    if "embeddings" in (v["endpoint"] or ""):
        return "embeddings: no completion text"
    return "no text"


def detail_view(v: dict[str, Any], request_id: str, errors: list[str] | None = None) -> list[Any]:
    if not v["found"]:
        back = dcc.Link("← Live", href="/live", className="tt-back")
        return [
            html.Div(className="tt-detail-head", children=[back]),
            empty_state(
                "Request not found",
                f"No proxy holds {request_id} in memory and the collector has not stored it.",
                "A proxy keeps its most recent requests; the collector stores every request once "
                "the proxy exports its span (OTEL_EXPORTER_OTLP_TRACES_ENDPOINT pointing at the "
                "collector's /v1/traces).",
                *(errors or []),
            ),
        ]
    status = v["status"] or "?"
    usage = v["usage"]
    tokens = f"{fmt.count(usage.get('input_tokens'))} → {fmt.count(usage.get('output_tokens'))}"
    if usage.get("source") == "estimated":
        tokens += " (est.)"
    where = " · ".join(x for x in ("in proxy memory" if v["in_memory"] else "", "stored" if v["stored"] else "") if x)
    head = html.Div(
        className="tt-detail-head",
        children=[
            dcc.Link("← Live", href="/live", className="tt-back"),
            html.Div(
                className="tt-detail-title",
                children=[
                    html.Span(status.replace("_", " "), className=f"tt-status tt-status-{status}", id="detail-status"),
                    html.Span(v["model"] or "?", className="tt-chip", style={"--chip": color_for("model", v["model"])}),
                    html.Span(
                        v["variant"] or "?", className="tt-chip", style={"--chip": color_for("variant", v["variant"])}
                    ),
                    html.Span(v["endpoint"] or "", className="tt-muted"),
                    # tokentail.js asks this server to cancel it (which asks the proxy); shown while in flight.
                    html.Button(
                        "Cancel request",
                        id="detail-cancel",
                        className="tt-cancel tt-btn tt-btn-danger",
                        **data(tt_action="cancel", id=v["id"] or request_id),
                    )
                    if v["in_flight"]
                    else None,
                    html.Button(
                        "Erase content",
                        id="detail-erase",
                        className="tt-btn tt-btn-small tt-btn-danger",
                        title="Erase this request's prompt and completion everywhere; usage, timings and cost stay",
                        **data(tt_action="erase", field="request", value=v["id"] or request_id),
                    ),
                ],
            ),
            html.Div(
                className="tt-attrs",
                children=[
                    *(
                        [
                            dcc.Link(
                                [html.Span("session", className="tt-attr-kind"), v["session_id"]],
                                href=f"/sessions/{quote(v['session_id'], safe='')}",
                                className="tt-attr",
                            )
                        ]
                        if v["session_id"]
                        else []
                    ),
                    *chips("user", [v["user"]] if v["user"] else [], "/sessions"),
                    *chips("tag", v["tags"], "/sessions"),
                    *chips("key", [v["key_fingerprint"]] if v["key_fingerprint"] else [], "/sessions"),
                    *chips("route", [v["route"]] if v["route"] else []),
                ],
            ),
            html.Div(
                className="tt-detail-ids",
                children=[
                    html.Span(["request ", html.Code(v["id"] or request_id)]),
                    html.Span(["trace ", html.Code(v["trace_id"] or "—")]),
                    html.Span(fmt.stamp(v["time"])),
                    html.Span(where, className="tt-muted"),
                ],
            ),
        ],
    )
    stats = html.Div(
        className="tt-stats",
        children=[
            _stat("TTFT", fmt.ms(v["ttft_ms"]), "ttft"),
            _stat("Duration", fmt.ms(v["latency_ms"]), "latency"),
            _stat("Output speed", fmt.rate(v["output_tps"], "tok/s"), "tps"),
            _stat("Tokens in → out", tokens, "tokens"),
            _stat("Cached input", fmt.count(usage.get("cached_input_tokens")), "cached"),
            _stat("Cost", _cost_text(v), "cost"),
            _stat("Finish", v["finish_reason"] or ("streaming…" if v["in_flight"] else "—"), "finish"),
        ],
    )
    error = None
    if v["error"] or v["error_message"]:
        error = html.Div(
            className="tt-error-box",
            children=[
                html.B(fmt.error_label(v["error"], v["http_status"]) or "error"),
                html.Div(v["error_message"] or ""),
            ],
        )
    completion = html.Div(
        className="tt-card",
        children=[
            html.Div(
                className="tt-card-head",
                children=[
                    html.Span("Completion", className="tt-card-title"),
                    dcc.RadioItems(
                        id="detail-mode",
                        options=[{"label": "Text", "value": "text"}, {"label": "Markdown", "value": "md"}],
                        value="text",
                        inline=True,
                        className="tt-segmented tt-small-seg",
                    ),
                ],
            ),
            html.Details(
                [html.Summary("reasoning"), html.Pre(v["reasoning"], className="tt-text")], className="tt-reasoning"
            )
            if v["reasoning"]
            else None,
            # tokentail.js appends deltas here while the request streams (data-id says which).
            collapsible(
                v["completion"],
                html.Pre(
                    v["completion"],
                    id="tt-detail-text",
                    className="tt-text tt-completion-full" + (" tt-streaming" if v["in_flight"] else ""),
                    **data(id=v["id"] or request_id, status=status, empty=_no_text(v)),
                ),
            ),
            dcc.Markdown(
                safe_markdown(v["completion"]),  # remote images as links: never fetched
                id="detail-md",
                className="tt-markdown",
                style={"display": "none"},
                link_target="_blank",
            ),
            *_tool_calls(v["tool_calls"]),
            html.Div("(truncated: the proxy captures up to --capture-bytes per request)", className="tt-muted")
            if v["truncated"]
            else None,
        ],
    )
    messages = html.Div(
        className="tt-card",
        children=[
            html.Div(
                className="tt-card-head",
                children=[
                    html.Span("Prompt", className="tt-card-title"),
                    html.Span(_plural(len(v["messages"]), "message"), className="tt-card-unit"),
                ],
            ),
            *[_message(m) for m in v["messages"]],
            html.Div("Content erased: usage, timings and cost are kept.", className="tt-muted", id="detail-erased")
            if v.get("content_erased")
            else None,
            html.Div(f"Captured in {v['capture']} mode: no prompt or completion text.", className="tt-muted")
            if v.get("capture") not in (None, "full")
            else None,
        ],
    )
    raw = html.Div(
        className="tt-card",
        children=[
            html.Div(className="tt-card-head", children=[html.Span("Raw", className="tt-card-title")]),
            _json_block("Request body (as captured, redacted)", v["request_json"]),
            _json_block(
                "Response" + (" (stored span)" if v["stored"] and not v["in_memory"] else ""), v["response_json"]
            ),
            html.Details(
                className="tt-json",
                children=[
                    html.Summary("Live events (SSE) received by this page"),
                    html.Pre(id="tt-detail-sse", className="tt-code", **data(id=v["id"] or request_id)),
                ],
            ),
        ],
    )
    return [head, stats, error, html.Div(className="tt-detail-grid", children=[messages, completion]), raw]
