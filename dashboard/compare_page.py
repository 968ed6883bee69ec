"""The Compare page (``/compare``): two variants, models or runs, metric by metric, with verdicts.

Data: the collector's ``GET /api/compare`` (tests and statistics in ``collector.compare``).
The page shows one row per metric (A, B, the effect, the test's p-value, a verdict a person
reads at a glance) and overlaid ECDFs of TTFT, latency and output tokens per second. The URL
carries the selection (``/compare?a=variant:canary&b=variant:production&range=1h``), so a
comparison can be linked, and a replayed run compared with the first (``run:ID``).
"""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qs

import plotly.graph_objects as go
from dash import Dash, Input, Output, State, dcc, html, no_update

from . import _format as fmt
from ._components import data
from .config import DashboardConfig
from .queries import RANGES, Reader, SourceError

PATH = "/compare"
GRAPH_CONFIG: dcc.Graph.Config = {"displayModeBar": False, "responsive": True}
VERDICT_CLASS = {
    "better": "tt-verdict-better",
    "worse": "tt-verdict-worse",
    "no_difference": "tt-verdict-same",
    "not_enough_data": "tt-verdict-none",
    "higher": "tt-verdict-same",
    "lower": "tt-verdict-same",
}
VERDICT_TEXT = {
    "better": "better",
    "worse": "worse",
    "no_difference": "no difference",
    "not_enough_data": "not enough data",
    "higher": "higher",
    "lower": "lower",
}
PLOTS = (("ttft_ms", "TTFT (ms)"), ("latency_ms", "Latency (ms)"), ("output_tps", "Output tokens/s"))
COLORS = ("#4c78a8", "#f58518")


def defaults(config: DashboardConfig) -> tuple[str, str]:
    """A and B to start with: the configured variants (the canary against production when named so)."""
    names = [p.name for p in config.proxies]
    if "production" in names and len(names) > 1:
        other = next(n for n in names if n != "production")
        return f"variant:{other}", "variant:production"
    if len(names) >= 2:
        return f"variant:{names[1]}", f"variant:{names[0]}"
    return "variant:canary", "variant:production"


def page(config: DashboardConfig) -> list[Any]:
    a, b = defaults(config)
    return [
        html.Div(
            className="tt-toolbar",
            children=[
                html.Label(["A ", dcc.Input(id="abc-a", value=a, debounce=True, className="tt-input")]),
                html.Label(["B ", dcc.Input(id="abc-b", value=b, debounce=True, className="tt-input")]),
                dcc.Dropdown(id="abc-range", options=list(RANGES), value="1h", clearable=False, className="tt-range"),
                html.Span("variant:NAME, model:NAME or run:ID. B is judged against A.", className="tt-muted"),
            ],
        ),
        html.Div(id="abc-body", className="tt-detail"),
        replay_run_form(config),
    ]


def replay_run_form(config: DashboardConfig) -> html.Details:
    """Replay a whole run on another variant or model (``/_tt/replay-run``, ``assets/tokentail_replay.js``)."""
    return html.Details(
        className="tt-replay",
        children=[
            html.Summary("Replay a run on another model or variant"),
            html.P(
                "Sends the run's captured (redacted) requests again, one after another, as a new run; "
                "then compares the run with its replays here. Requests whose capture was truncated "
                "or not kept are skipped.",
                className="tt-muted",
            ),
            html.Div(
                className="tt-toolbar",
                children=[
                    html.Label(["run ", dcc.Input(id="abc-replay-run", type="number", min=1, className="tt-input")]),
                    html.Label(
                        [
                            "variant ",
                            html.Select(
                                [html.Option(p.name, value=p.name) for p in config.proxies],
                                id="abc-replay-variant",
                                className="tt-input",
                            ),
                        ]
                    ),
                    html.Label(
                        ["model ", dcc.Input(id="abc-replay-model", placeholder="same model", className="tt-input")]
                    ),
                    html.Button("Replay run", id="abc-replay-send", className="tt-btn", **data(tt_replay_run="1")),
                ],
            ),
        ],
    )


def selection(search: str | None) -> dict[str, str]:
    q = parse_qs((search or "").lstrip("?"))
    return {k: v[0] for k, v in q.items() if k in ("a", "b", "range") and v and v[0]}


def _num(metric: str, x: Any) -> str:
    if x is None:
        return "—"
    if metric == "error_rate":
        return f"{x * 100:.2f}%"
    if metric.endswith("_ms"):
        return fmt.ms(x)
    if metric == "cost_usd":
        return fmt.usd(x)
    return f"{x:,.1f}"


def _p(v: Any) -> str:
    return "—" if v is None else ("< 0.001" if v < 0.001 else f"{v:.3f}")


def verdict_rows(body: dict[str, Any]) -> list[Any]:
    rows = []
    for m in body.get("metrics", []):
        metric = m["metric"]
        effect = m.get("effect")
        extra = ""
        if metric == "error_rate":
            ci = m.get("sides", {}).get("b", {}).get("ci95")
            if ci:
                extra = f" [{ci[0] * 100:.1f}–{ci[1] * 100:.1f}%]"
        rows.append(
            html.Tr(
                className="tt-compare-row",
                children=[
                    html.Td(f"{m['label']} {m['stat'] if m['stat'] != 'rate' else ''}".strip()),
                    html.Td(_num(metric, m.get("a"))),
                    html.Td(_num(metric, m.get("b")) + extra),
                    html.Td("—" if effect is None else f"{effect:+.0%}"),
                    html.Td(_p(m.get("p_value"))),
                    html.Td(f"{m.get('n_a', 0)} / {m.get('n_b', 0)}"),
                    html.Td(
                        VERDICT_TEXT.get(m["verdict"], m["verdict"]),
                        className=f"tt-verdict {VERDICT_CLASS.get(m['verdict'], '')}",
                        title=m.get("summary", ""),
                    ),
                ],
            )
        )
    return rows


def ecdf_figure(metric: dict[str, Any], title: str, names: tuple[str, str]) -> go.Figure:
    fig = go.Figure()
    for (side, color), name in zip((("a", COLORS[0]), ("b", COLORS[1])), names, strict=True):
        pts = metric.get("sides", {}).get(side, {}).get("ecdf") or []
        fig.add_trace(
            go.Scatter(
                x=[p[0] for p in pts], y=[p[1] for p in pts], name=name, mode="lines", line_shape="hv", line_color=color
            )
        )
    fig.update_layout(
        title=title,
        height=260,
        margin={"l": 40, "r": 10, "t": 36, "b": 30},
        yaxis={"range": [0, 1], "tickformat": ".0%"},
        legend={"orientation": "h"},
    )
    return fig


def view(body: dict[str, Any] | None, error: str | None = None) -> list[Any]:
    if error:
        return [html.Div(className="tt-empty", children=[html.H3("Cannot compare"), html.P(error)])]
    if not body:
        return [html.P("Choose A and B.", className="tt-muted")]
    a, b = body["a"], body["b"]
    names = (a["label"], b["label"])
    by_name = {m["metric"]: m for m in body.get("metrics", [])}
    source = (
        "exact values from stored spans"
        if body.get("source") == "spans"
        else "histogram buckets scraped from the proxies (no stored spans in range)"
    )
    sentences = [m["summary"] for m in body.get("metrics", []) if m.get("significant") and m.get("summary")]
    return [
        html.P(
            [
                html.B(f"{b['label']} against {a['label']}"),
                f": {a['requests']} and {b['requests']} requests; {source}. ",
                f"Tests at the 5% level; below {body.get('minimum_sample')} values "
                f"({body.get('minimum_requests')} requests for the error rate) a side has not enough data.",
            ],
            id="abc-summary",
        ),
        html.Ul([html.Li(s) for s in sentences] or [html.Li("No difference beyond noise.")], id="abc-sentences"),
        html.Table(
            className="tt-table tt-compare-table",
            id="abc-table",
            children=[
                html.Thead(
                    html.Tr([html.Th(h) for h in ("metric", names[0], names[1], "effect", "p", "n", "verdict")])
                ),
                html.Tbody(verdict_rows(body)),
            ],
        ),
        html.Div(
            className="tt-charts",
            children=[
                dcc.Graph(figure=ecdf_figure(by_name[k], title, names), config=GRAPH_CONFIG, id=f"abc-ecdf-{k}")
                for k, title in PLOTS
                if k in by_name
            ],
        ),
    ]


def register(app: Dash, reader: Reader) -> None:
    @app.callback(
        Output("abc-a", "value"),
        Output("abc-b", "value"),
        Output("abc-range", "value"),
        Input("url", "search"),
        State("url", "pathname"),
    )
    def from_url(search: str | None, path: str | None) -> tuple[Any, Any, Any]:
        if path != PATH:
            return no_update, no_update, no_update
        sel = selection(search)
        return sel.get("a", no_update), sel.get("b", no_update), sel.get("range", no_update)

    @app.callback(
        Output("abc-body", "children"),
        Input("abc-a", "value"),
        Input("abc-b", "value"),
        Input("abc-range", "value"),
        Input("url", "pathname"),
    )
    def show(a: str | None, b: str | None, rng: str | None, path: str | None) -> list[Any]:
        if path != PATH:
            return no_update  # type: ignore[return-value]
        if not a or not b:
            return view(None)
        try:
            body = reader._collector("/api/compare", {"a": a.strip(), "b": b.strip(), "range": rng or "1h"})
        except SourceError as exc:
            return view(None, str(exc))
        return view(body if isinstance(body, dict) else None)
