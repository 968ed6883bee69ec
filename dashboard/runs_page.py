"""Runs: the list with start/pause/resume/end (``/runs``), a run's stats (``/runs/<id>``), two
runs side by side (``/runs/compare?a=&b=``). Pure: the collector's ``/api/runs`` answers in,
Dash components out.

The buttons carry ``data-tt-action`` attributes; ``assets/tokentail_pages.js`` posts them
to this dashboard's server (``actions.py``), which calls the collector with the admin
token. Nothing here or in the page holds that token.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qs

from dash import dcc, html

from . import _format as fmt
from ._components import data, empty_state
from .config import DashboardConfig
from .figures import color_for
from .run_scope import scope_form, scope_line

PREFIX = "/runs/"
COMPARE = "/runs/compare"
_ACTIONS = {"active": ("pause", "end"), "paused": ("resume", "end"), "ended": ()}
_LABELS = {"pause": "Pause", "resume": "Resume", "end": "End"}


def run_id_from_path(path: str | None) -> int | None:
    if not path or not path.startswith(PREFIX):
        return None
    rest = path[len(PREFIX) :].strip("/")
    return int(rest) if rest.isdigit() and len(rest) < 10 else None


def compare_ids(search: str | None) -> tuple[int, int] | None:
    q = parse_qs((search or "").lstrip("?"))
    try:
        return int(q["a"][0]), int(q["b"][0])
    except (KeyError, ValueError, IndexError):
        return None


# --- the list ----------------------------------------------------------------------


def list_page(config: DashboardConfig) -> list[Any]:
    if not config.collector:
        return [
            html.Div(className="tt-toolbar", children=[html.H1("Runs", className="tt-h1")]),
            empty_state(
                "No collector configured",
                "Runs are recorded by the collector: start the dashboard with --collector URL.",
            ),
        ]
    return [
        html.Div(
            className="tt-toolbar",
            children=[
                html.H1("Runs", className="tt-h1"),
                html.Div(
                    className="tt-toolbar-right",
                    children=[
                        dcc.Input(
                            id="runs-name",
                            type="text",
                            placeholder="Name of a new run, e.g. prompt v2",
                            className="tt-input tt-runs-name",
                            maxLength=200,
                            autoComplete="off",
                        ),
                        html.Button(
                            "Start run",
                            id="runs-start",
                            className="tt-btn tt-btn-primary",
                            **data(tt_action="run-start"),
                        ),
                    ],
                ),
            ],
        ),
        html.P(
            "A run records the requests made while it is active, through every proxy, or only those "
            "matching its scope; pause it to leave traffic out, end it to keep it. One run records at a time.",
            className="tt-muted tt-lead",
        ),
        scope_form([p.name for p in config.proxies]),
        html.Div(id="runs-list"),
        html.Div(
            className="tt-card tt-compare-pick",
            children=[
                html.Span("Compare", className="tt-card-title"),
                dcc.Dropdown(id="runs-compare-a", options=[], placeholder="Run A", className="tt-dropdown"),
                html.Span("with", className="tt-muted"),
                dcc.Dropdown(id="runs-compare-b", options=[], placeholder="Run B", className="tt-dropdown"),
                dcc.Link("Compare →", id="runs-compare-link", href="/runs/compare", className="tt-btn"),
            ],
        ),
    ]


def action_buttons(run: dict[str, Any]) -> list[html.Button]:
    return [
        html.Button(
            _LABELS[a],
            className="tt-btn tt-btn-small" + (" tt-btn-danger" if a == "end" else ""),
            **data(tt_action="run", run=str(run["id"]), action=a),
        )
        for a in _ACTIONS.get(run.get("status", ""), ())
    ]


def _status(status: str | None) -> html.Span:
    return html.Span(status or "?", className=f"tt-status tt-run-{status}")


def runs_table(runs: list[dict[str, Any]]) -> Any:
    if not runs:
        return empty_state(
            "No runs yet", "Name a run and start it; the requests made until you end it are its requests."
        )
    head = html.Tr(
        [
            html.Th(h, className=c)
            for h, c in (
                ("Run", ""),
                ("Status", ""),
                ("Started", ""),
                ("Wall time", "tt-num"),
                ("Requests", "tt-num"),
                ("Tokens in → out", "tt-num"),
                ("Cost", "tt-num"),
                ("Errors", "tt-num"),
                ("", ""),
            )
        ]
    )
    rows = []
    for r in runs:
        s = r.get("summary") or {}
        rows.append(
            html.Tr(
                **data(run=str(r["id"]), status=r.get("status")),
                children=[
                    html.Td(
                        [
                            dcc.Link(r.get("name") or f"run {r['id']}", href=f"{PREFIX}{r['id']}", className="tt-link"),
                            html.Span(f" #{r['id']}", className="tt-muted"),
                            scope_line(r.get("scope")),
                        ]
                    ),
                    html.Td(_status(r.get("status"))),
                    html.Td(fmt.stamp(r.get("created_at"))[:19]),
                    html.Td(fmt.duration(r.get("wall_time_s")), className="tt-num"),
                    html.Td(fmt.count(s.get("requests")), className="tt-num"),
                    html.Td(
                        f"{fmt.count(s.get('input_tokens'))} → {fmt.count(s.get('output_tokens'))}", className="tt-num"
                    ),
                    html.Td(fmt.cost(s.get("cost_usd"), s.get("cost_unknown_requests") or 0), className="tt-num"),
                    html.Td(fmt.count(s.get("errors")), className="tt-num"),
                    html.Td(className="tt-actions", children=action_buttons(r)),
                ],
            )
        )
    return html.Div(
        className="tt-card tt-flush",
        children=html.Table(className="tt-table", children=[html.Thead(head), html.Tbody(rows)]),
    )


def compare_options(runs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [{"label": f"#{r['id']} {r.get('name') or ''}", "value": r["id"]} for r in runs]


# --- one run ---------------------------------------------------------------------------


def run_page(config: DashboardConfig) -> list[Any]:
    return [
        html.Div(id="run-body", className="tt-detail"),
        # Outside run-body: its refresh would otherwise empty the list on every tick (a flicker).
        html.Div(id="run-requests", className="tt-run-requests"),
        html.Div(
            className="tt-card tt-whatif",
            children=[
                html.Div(
                    className="tt-card-head",
                    children=[
                        html.Span("What if", className="tt-card-title"),
                        html.Span("this run's tokens at another model's prices", className="tt-card-unit"),
                    ],
                ),
                html.Div(
                    className="tt-whatif-row",
                    children=[
                        dcc.Dropdown(
                            id="run-whatif-model",
                            options=[],
                            placeholder="Pick a model",
                            searchable=True,
                            className="tt-dropdown tt-whatif-pick",
                        ),
                        html.Div(id="run-whatif", className="tt-whatif-result"),
                    ],
                ),
            ],
        ),
    ]


def _stat(label: str, value: str, key: str, sub: str | None = None) -> html.Div:
    return html.Div(
        className="tt-stat",
        children=[
            html.Div(label, className="tt-stat-label"),
            html.Div(value, className="tt-stat-value", **data(stat=key)),
            html.Div(sub, className="tt-stat-sub") if sub else None,
        ],
    )


def stat_cards(s: dict[str, Any]) -> html.Div:
    tokens, cost, errors = s.get("tokens") or {}, s.get("cost") or {}, s.get("errors") or {}
    unknown = cost.get("unknown_requests") or 0
    return html.Div(
        className="tt-stats tt-run-stats",
        children=[
            _stat("Requests", fmt.count(s.get("requests")), "requests"),
            _stat("Wall time", fmt.duration(s.get("wall_time_s")), "wall"),
            _stat(
                "Tokens in → out",
                f"{fmt.count(tokens.get('input'))} → {fmt.count(tokens.get('output'))}",
                "tokens",
                f"{fmt.count(tokens.get('cached_input'))} cached input",
            ),
            _stat(
                "Cost",
                fmt.usd(cost.get("usd")),
                "cost",
                f"+ {unknown} request{'s' if unknown != 1 else ''} without a price" if unknown else "all priced",
            ),
            _stat("Output speed", fmt.rate(s.get("output_tps_mean"), "tok/s"), "tps", "mean per request"),
            _stat(
                "Throughput",
                fmt.rate(s.get("output_tokens_per_wall_second"), "tok/s"),
                "throughput",
                "output tokens / wall time",
            ),
            _stat(
                "Errors",
                fmt.count(errors.get("total")),
                "errors",
                ", ".join(f"{k}: {v}" for k, v in (errors.get("by_http_status") or errors.get("by_type") or {}).items())
                or fmt.percent(errors.get("rate")),
            ),
        ],
    )


BREAKDOWN = (
    ("Requests", "requests"),
    ("Errors", "errors"),
    ("Tokens in", "tin"),
    ("Tokens out", "tout"),
    ("Cost", "cost"),
    ("Speed", "tps"),
    ("Latency", "lat"),
)


def _cells(r: dict[str, Any]) -> list[html.Td]:
    cost = r.get("cost") or {}
    values = {
        "requests": fmt.count(r.get("requests")),
        "errors": fmt.count((r.get("errors") or {}).get("total")),
        "tin": fmt.count((r.get("tokens") or {}).get("input")),
        "tout": fmt.count((r.get("tokens") or {}).get("output")),
        "cost": fmt.cost(cost.get("usd"), cost.get("unknown_requests") or 0),
        "tps": fmt.rate(r.get("output_tps_mean"), "tok/s"),
        "lat": fmt.ms(r.get("latency_ms_mean")),
    }
    return [html.Td(values[k], className="tt-num") for _, k in BREAKDOWN]


def breakdown_table(rows: list[dict[str, Any]], key: str, title: str) -> html.Div:
    head = html.Tr([html.Th(title)] + [html.Th(h, className="tt-num") for h, _ in BREAKDOWN])
    body = []
    for r in rows:
        name = r.get(key) or "?"
        first = (
            html.Td(
                [html.Span(className="tt-dot", style={"background": color_for("model", name)}), name],
                className="tt-model-cell",
            )
            if key == "model"
            else html.Td(html.Code(name))
        )
        body.append(html.Tr([first, *_cells(r)], **data(**{key: name})))
    if not body:
        body = [html.Tr(html.Td("No requests in this run yet.", colSpan=len(BREAKDOWN) + 1, className="tt-muted"))]
    return html.Div(
        className="tt-card",
        children=[
            html.Div(className="tt-card-head", children=[html.Span(f"Per {key}", className="tt-card-title")]),
            html.Table(className="tt-table", id=f"run-by-{key}", children=[html.Thead(head), html.Tbody(body)]),
        ],
    )


def run_view(run: dict[str, Any] | None, run_id: int, error: str | None = None) -> list[Any]:
    back = dcc.Link("← Runs", href="/runs", className="tt-back")
    if run is None:
        return [
            html.Div(className="tt-detail-head", children=[back]),
            empty_state(
                f"Run {run_id} not found" if not error else "Could not load this run",
                error or "The collector has no run with this id.",
            ),
        ]
    s = run.get("stats") or {}
    intervals = run.get("intervals") or []
    head = html.Div(
        className="tt-detail-head",
        children=[
            back,
            html.Div(
                className="tt-detail-title",
                children=[
                    html.Span(run.get("name") or f"run {run_id}", className="tt-run-name", id="run-name"),
                    _status(run.get("status")),
                    html.Span(f"#{run_id}", className="tt-muted"),
                    html.Span(className="tt-actions", children=action_buttons(run)),
                ],
            ),
            html.Div(
                className="tt-detail-ids",
                children=[
                    html.Span(f"started {fmt.stamp(run.get('created_at'))[:19]}"),
                    html.Span(f"ended {fmt.stamp(run.get('ended_at'))[:19]}") if run.get("ended_at") else None,
                    html.Span(
                        f"{len(intervals)} interval"
                        + ("" if len(intervals) == 1 else "s")
                        + (" (paused in between)" if len(intervals) > 1 else "")
                    ),
                ],
            ),
        ],
    )
    return [
        head,
        html.Div(f"Stats may lag a few seconds: {error}", className="tt-error-box") if error else None,
        scope_line(run.get("scope")),
        stat_cards(s),
        breakdown_table(s.get("by_model") or [], "model", "Model"),
        breakdown_table(s.get("by_endpoint") or [], "endpoint", "Endpoint"),
    ]


def run_requests_view(body: dict[str, Any] | None, error: str | None = None) -> Any:
    """The run's requests (``/api/runs/{id}/requests``), each linked to its detail page."""
    from .requests_page import results_table

    title = html.Div(className="tt-card-head", children=[html.Span("Requests", className="tt-card-title")])
    if error:
        return [title, html.Div(f"Could not list this run's requests: {error}", className="tt-muted")]
    rows = list((body or {}).get("requests") or [])
    total = (body or {}).get("total")
    note = f"the newest {len(rows)} of {fmt.count(total)}" if isinstance(total, int) and total > len(rows) else None
    return [title, html.Div(note, className="tt-muted") if note else None, results_table(rows)]


def what_if_view(w: dict[str, Any] | None) -> Any:
    if not w:
        return html.Span("Pick a model to price this run's tokens at its rates.", className="tt-muted")
    actual = w.get("actual_usd")
    parts: list[Any] = [
        html.Span(f"At {w.get('model')}: ", className="tt-muted"),
        html.B(fmt.usd(w.get("usd")), **data(whatif="" if w.get("usd") is None else "known")),
        html.Span(f" (actual: {fmt.cost(actual, w.get('actual_unknown_requests') or 0)})", className="tt-muted"),
    ]
    if w.get("reason"):
        parts.append(html.Div(w["reason"], className="tt-muted tt-small"))
    return parts


def pricing_options(pricing: dict[str, Any] | None) -> list[dict[str, str]]:
    return [
        {"label": f"{p['model']} (${p['input']:g} in / ${p['output']:g} out per 1M)", "value": p["model"]}
        for p in (pricing or {}).get("models") or []
    ]


# --- compare -------------------------------------------------------------------------------

_METRIC_LABELS = {
    "requests": ("Requests", fmt.count),
    "wall_time_s": ("Wall time", fmt.duration),
    "input_tokens": ("Input tokens", fmt.count),
    "output_tokens": ("Output tokens", fmt.count),
    "cached_input_tokens": ("Cached input tokens", fmt.count),
    "cost_usd": ("Cost", fmt.usd),
    "cost_unknown_requests": ("Requests without a price", fmt.count),
    "output_tps_mean": ("Output speed (mean)", lambda v: fmt.rate(v, "tok/s")),
    "output_tokens_per_wall_second": ("Throughput", lambda v: fmt.rate(v, "tok/s")),
    "latency_ms_mean": ("Latency (mean)", fmt.ms),
    "ttft_ms_mean": ("TTFT (mean)", fmt.ms),
    "errors": ("Errors", fmt.count),
    "error_rate": ("Error rate", fmt.percent),
}


def _change(m: dict[str, Any]) -> str:
    if m.get("ratio") is not None and m.get("a"):
        pct = (m["ratio"] - 1) * 100
        return ("+" if pct > 0 else "") + f"{fmt.rate(pct, '%').replace(' %', '')} %"
    return "—" if m.get("diff") is None else ("=" if m["diff"] == 0 else "")


def _pair(m: dict[str, Any], q: str) -> tuple[Any, Any]:
    """A metric's ``q`` (p50/p95) for runs a and b: ``{"p50": {"a", "b"}}`` or ``a_p50``/``b_p50``."""
    v = m.get(q)
    if isinstance(v, dict):
        return v.get("a"), v.get("b")
    return m.get(f"a_{q}"), m.get(f"b_{q}")


def _value_cell(m: dict[str, Any], side: str, f: Any) -> html.Td:
    """The mean, and p50 / p95 under it when the collector gave them."""
    i = 0 if side == "a" else 1
    p50, p95 = _pair(m, "p50")[i], _pair(m, "p95")[i]
    sub = f"p50 {f(p50)} · p95 {f(p95)}" if p50 is not None or p95 is not None else None
    return html.Td(
        [html.Div(f(m.get(side))), html.Div(sub, className="tt-stat-sub") if sub else None], className="tt-num"
    )


def change_class(m: dict[str, Any]) -> str:
    """``better`` / ``worse`` / ``same`` as the collector judged the change (its ``better`` says
    whether lower or higher is better); empty when it did not say."""
    change = m.get("change")
    return change if change in ("better", "worse", "same") else ""


def compare_view(body: dict[str, Any] | None, error: str | None = None) -> list[Any]:
    back = dcc.Link("← Runs", href="/runs", className="tt-back")
    if not body:
        return [
            html.Div(className="tt-detail-head", children=[back]),
            empty_state("Pick two runs to compare", error or "Choose run A and run B on the Runs page."),
        ]
    a, b = body["a"], body["b"]

    def name(r):
        return [
            dcc.Link(r.get("name") or f"run {r['id']}", href=f"{PREFIX}{r['id']}", className="tt-link"),
            html.Span(f" #{r['id']}", className="tt-muted"),
        ]

    head = html.Tr(
        [
            html.Th("Metric"),
            html.Th(name(a), className="tt-num"),
            html.Th(name(b), className="tt-num"),
            html.Th("Change (B vs A)", className="tt-num"),
        ]
    )
    rows = []
    for m in body.get("metrics") or []:
        label, f = _METRIC_LABELS.get(m["metric"], (m["metric"], str))
        rows.append(
            html.Tr(
                **data(metric=m["metric"]),
                children=[
                    html.Td(label),
                    _value_cell(m, "a", f),
                    _value_cell(m, "b", f),
                    html.Td(
                        _change(m),
                        className="tt-num tt-change" + (f" tt-change-{change_class(m)}" if change_class(m) else ""),
                        title=f"{m['better']} is better" if m.get("better") in ("lower", "higher") else None,
                        **data(change=change_class(m) or None),
                    ),
                ],
            )
        )
    models = sorted({r.get("model") or "?" for run in (a, b) for r in (run.get("stats") or {}).get("by_model") or []})
    per_model = []
    for model in models:
        cells = []
        for run in (a, b):
            r = next(
                (x for x in (run.get("stats") or {}).get("by_model") or [] if (x.get("model") or "?") == model), None
            )
            cells.append(
                html.Td(
                    "—"
                    if r is None
                    else f"{fmt.count(r['requests'])} req · "
                    f"{fmt.rate(r.get('output_tps_mean'), 'tok/s')} · "
                    f"{fmt.cost((r.get('cost') or {}).get('usd'), (r.get('cost') or {}).get('unknown_requests') or 0)}",
                    className="tt-num",
                )
            )
        per_model.append(
            html.Tr(
                [
                    html.Td(
                        [html.Span(className="tt-dot", style={"background": color_for("model", model)}), model],
                        className="tt-model-cell",
                    ),
                    *cells,
                    html.Td(""),
                ]
            )
        )
    return [
        html.Div(
            className="tt-detail-head",
            children=[
                back,
                html.Div(className="tt-detail-title", children=[html.Span("Compare runs", className="tt-run-name")]),
            ],
        ),
        html.Div(
            className="tt-card",
            children=html.Table(
                className="tt-table tt-compare", id="compare-table", children=[html.Thead(head), html.Tbody(rows)]
            ),
        ),
        html.Div(
            className="tt-card",
            children=[
                html.Div(className="tt-card-head", children=[html.Span("Per model", className="tt-card-title")]),
                html.Table(
                    className="tt-table",
                    children=[
                        html.Thead(
                            html.Tr(
                                [
                                    html.Th("Model"),
                                    html.Th(name(a), className="tt-num"),
                                    html.Th(name(b), className="tt-num"),
                                    html.Th(""),
                                ]
                            )
                        ),
                        html.Tbody(per_model),
                    ],
                ),
            ],
        ),
    ]
