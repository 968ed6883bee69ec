"""Plotly figures of the Overview, and the colour of every variant and model (pure).

Colours are stable: a variant or model keeps its colour across charts, pages, reloads
and processes, because it comes from a hash of its name (FNV-1a over UTF-8, the same
function ``assets/tokentail.js`` uses for the live list's chips), not from the order
in which names happen to arrive. ``production`` and ``canary`` have fixed colours so
the usual pair never collides.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import plotly.graph_objects as go

from . import queries

# Blue and orange are production's and canary's alone; the rest are told apart by hue.
# Twelve hues far apart (one pink, one purple, no second blue), so up to 12 series of one
# chart get distinct colours (``assign_colors``).
PALETTE = (
    "#16a34a",
    "#dc2626",
    "#7c3aed",
    "#92400e",
    "#db2777",
    "#6b7280",
    "#0891b2",
    "#ca8a04",
    "#4d7c0f",
    "#1f2937",
    "#14b8a6",
    "#f59e0b",
)
RESERVED = {"variant": {"production": "#2563eb", "canary": "#ea580c"}}
FONT = "Inter, ui-sans-serif, system-ui, -apple-system, 'Segoe UI', Roboto, sans-serif"
INK, MUTED, GRID = "#0f172a", "#64748b", "#e9eef5"
# Line styles tell percentiles apart; colour stays the variant's.
CHART_HEIGHT = 220
DASHES = {"p50": "solid", "p95": "dash", "p99": "dot", "out": "solid", "in": "dot"}


def fnv1a(text: str) -> int:
    """32-bit FNV-1a of the UTF-8 bytes of ``text``."""
    h = 0x811C9DC5
    for b in text.encode("utf-8"):
        h ^= b
        h = (h * 0x01000193) & 0xFFFFFFFF
    return h


def stable_hash(text: str) -> int:
    """FNV-1a, then murmur3's finaliser: FNV's low bits barely differ for names that
    differ only at the end (``gpt-4o`` / ``gpt-4o-mini``), and the palette index is a low-bit
    modulus."""
    h = fnv1a(text)
    h ^= h >> 16
    h = (h * 0x85EBCA6B) & 0xFFFFFFFF
    h ^= h >> 13
    h = (h * 0xC2B2AE35) & 0xFFFFFFFF
    return h ^ (h >> 16)


def color_for(kind: str, name: str | None) -> str:
    """The colour of a variant (``kind="variant"``) or a model (``kind="model"``)."""
    if not name:
        return "#94a3b8"
    fixed = RESERVED.get(kind, {}).get(name)
    if fixed:
        return fixed
    return PALETTE[stable_hash(name) % len(PALETTE)]


def assign_colors(kind: str, names: list[str]) -> dict[str, str]:
    """Distinct colours for the series of one chart, stable for a given set of names.

    Each name wants its ``color_for`` slot; names (in sorted order) that find it taken move
    to the next free slot, so up to ``len(PALETTE)`` names never share a colour.
    """
    out: dict[str, str] = {}
    taken = set(RESERVED.get(kind, {}).values())
    for name in sorted(set(names)):
        own = color_for(kind, name)
        if own in RESERVED.get(kind, {}).values() or not name:
            out[name] = own
            continue
        i = PALETTE.index(own)
        for step in range(len(PALETTE)):
            c = PALETTE[(i + step) % len(PALETTE)]
            if c not in taken:
                own = c
                break
        taken.add(own)
        out[name] = own
    return out


def palette_config() -> dict[str, Any]:
    """What the browser needs to colour chips exactly as the charts do."""
    return {"palette": list(PALETTE), "reserved": RESERVED}


def _layout(
    *, unit: str, height: int, window: tuple[datetime, datetime] | None, legend: bool = False
) -> dict[str, Any]:
    return {
        "height": height,
        "margin": {"l": 52, "r": 12, "t": 28 if legend else 10, "b": 30},
        "paper_bgcolor": "rgba(0,0,0,0)",
        "plot_bgcolor": "#ffffff",
        "font": {"family": FONT, "size": 12, "color": INK},
        "hovermode": "x unified",
        "hoverlabel": {"font": {"family": FONT, "size": 12}, "bgcolor": "#ffffff", "bordercolor": GRID},
        "showlegend": legend,
        "legend": {
            "orientation": "h",
            "x": 0,
            "y": 1.02,
            "yanchor": "bottom",
            "font": {"size": 11, "color": MUTED},
            "bgcolor": "rgba(0,0,0,0)",
        },
        "uirevision": "keep",  # a refresh keeps the user's zoom and hidden traces
        "xaxis": {
            "showgrid": False,
            "linecolor": GRID,
            "tickfont": {"color": MUTED},
            "type": "date",
            "range": list(window) if window else None,
            "fixedrange": False,
            "showspikes": False,
        },
        "yaxis": {
            "gridcolor": GRID,
            "zeroline": False,
            "rangemode": "tozero",
            "tickfont": {"color": MUTED},
            "ticksuffix": f" {unit}" if unit and unit != "%" else unit,
            "separatethousands": True,
        },
    }


def _figure(traces: list[dict[str, Any]], layout: dict[str, Any]) -> go.Figure:
    """A figure of plain trace and layout dicts, not validated property by property: plotly's
    validation took ~50 ms per chart (~350 ms for the Overview's seven, on every refresh)
    for values this module builds itself. ``tests/dashboard/test_figures.py`` checks them
    against a validated copy."""
    return go.Figure(data=traces, layout=layout, _validate=False)


def empty_figure(message: str, height: int = CHART_HEIGHT) -> go.Figure:
    """A blank chart that says why it is blank."""
    fig = go.Figure()
    fig.update_layout(
        height=height,
        margin={"l": 10, "r": 10, "t": 10, "b": 10},
        paper_bgcolor="rgba(0,0,0,0)",
        plot_bgcolor="rgba(0,0,0,0)",
        xaxis={"visible": False},
        yaxis={"visible": False},
        annotations=[
            {
                "text": message,
                "showarrow": False,
                "xref": "paper",
                "yref": "paper",
                "x": 0.5,
                "y": 0.5,
                "font": {"family": FONT, "size": 13, "color": MUTED},
            }
        ],
    )
    return fig


def isolated_marker_sizes(ys: list[float | None], size: int = 5) -> list[int]:
    """A marker only where a value has no neighbour to draw a line to (else it is invisible)."""
    out = []
    for i, v in enumerate(ys):
        alone = v is not None and (i == 0 or ys[i - 1] is None) and (i == len(ys) - 1 or ys[i + 1] is None)
        out.append(size if alone else 0)
    return out


def lines(
    resp: dict[str, Any],
    metrics: list[tuple[str, str]],
    *,
    unit: str,
    kind: str = "variant",
    scale: float = 1.0,
    height: int = CHART_HEIGHT,
    digits: str = ",.3~r",
) -> go.Figure:
    """One line per group and metric: colour by group, dash by ``metrics``' style key.

    ``metrics`` is ``[(metric, style)]`` with style a key of ``DASHES`` (``p50``, ``p95``,
    ``out``, ...) or ``""`` for a single metric.
    """
    traces: list[dict[str, Any]] = []
    colors = assign_colors(kind, [str(g.get("name")) for g in resp.get("groups") or []])
    for metric, style in metrics:
        for s in queries.series(resp, metric, scale):
            label = f"{s.name} {style}".strip()
            color = colors.get(s.name) or color_for(kind, s.name)
            traces.append(
                {
                    "type": "scatter",
                    "x": s.x,
                    "y": s.y,
                    "name": label,
                    "legendgroup": s.name,
                    "mode": "lines+markers",
                    "line": {
                        "color": color,
                        "width": 2 if style in ("", "p50", "out") else 1.5,
                        "dash": DASHES.get(style, "solid"),
                        "shape": "linear",
                    },
                    "marker": {"color": color, "size": isolated_marker_sizes(s.y)},
                    "connectgaps": False,
                    "hovertemplate": f"%{{y:{digits}}}{(' ' + unit) if unit != '%' else unit}<extra>{label}</extra>",
                }
            )
    return _figure(traces, _layout(unit=unit, height=height, window=queries.data_window(resp)))


def stacked_by_model(
    resp: dict[str, Any], metric: str = "request_rate", *, unit: str = "req/s", height: int = CHART_HEIGHT
) -> go.Figure:
    """A stacked area per model (the per-model breakdown over time)."""
    colors = assign_colors("model", [str(g.get("name")) for g in resp.get("groups") or []])
    traces = [
        {
            "type": "scatter",
            "x": s.x,
            "y": [0 if v is None else v for v in s.y],
            "name": s.name,
            "mode": "lines",
            "stackgroup": "models",
            "line": {"color": colors.get(s.name) or color_for("model", s.name), "width": 1},
            "hovertemplate": f"%{{y:,.3~r}} {unit}<extra>{s.name}</extra>",
        }
        for s in queries.series(resp, metric)
    ]
    return _figure(traces, _layout(unit=unit, height=height, window=queries.data_window(resp), legend=True))


# The Overview's charts: (graph id, title, unit shown, metrics with styles, scale, source).
CHARTS: tuple[tuple[str, str, str, list[tuple[str, str]], float], ...] = (
    ("ov-chart-requests", "Request rate", "req/s", [("request_rate", "")], 1.0),
    (
        "ov-chart-tokens",
        "Token rate · out solid, in dotted",
        "tok/s",
        [("output_tokens_rate", "out"), ("input_tokens_rate", "in")],
        1.0,
    ),
    (
        "ov-chart-latency",
        "Latency · p50, p95 dashed, p99 dotted",
        "ms",
        [("latency_p50_ms", "p50"), ("latency_p95_ms", "p95"), ("latency_p99_ms", "p99")],
        1.0,
    ),
    (
        "ov-chart-ttft",
        "Time to first token · p50, p95 dashed",
        "ms",
        [("ttft_p50_ms", "p50"), ("ttft_p95_ms", "p95")],
        1.0,
    ),
    ("ov-chart-tps", "Output speed per request", "tok/s", [("output_tps", "")], 1.0),
    ("ov-chart-errors", "Error rate", "%", [("error_rate", "")], 100.0),
    ("ov-chart-inflight", "In flight", "req", [("in_flight", "")], 1.0),
)


def overview_figures(by_variant: dict[str, Any]) -> dict[str, go.Figure]:
    """Every variant chart of the Overview, by graph id."""
    return {cid: lines(by_variant, metrics, unit=unit, scale=scale) for cid, _, unit, metrics, scale in CHARTS}
