"""Plotly figures and colours (dashboard/figures.py)."""

from __future__ import annotations

from tests.helpers.dashboard import metrics_response
from tokentail.dashboard import figures as f


def test_colours_are_stable_reserved_and_spread():
    assert f.color_for("variant", "production") == "#2563eb"
    assert f.color_for("variant", "canary") == "#ea580c"
    assert f.color_for("model", "gpt-4o") == f.color_for("model", "gpt-4o")  # stable
    assert f.color_for("model", None) == "#94a3b8"
    # Names that differ only at the end do not share a colour (FNV-1a alone would: low bits).
    names = ["sim-gpt-4o", "sim-gpt-4o-mini", "sim-llama-3-8b"]
    assert len({f.color_for("model", n) for n in names}) == 3
    assert {f.color_for("model", n) for n in names} <= set(f.PALETTE)


def test_stable_hash_matches_known_values():
    # The browser computes the same (assets/tokentail.js); these pin the function down.
    assert f.fnv1a("") == 0x811C9DC5
    assert f.fnv1a("a") == 0xE40C292C
    assert f.stable_hash("a") != f.fnv1a("a")
    assert f.stable_hash("production") == f.stable_hash("production")


def test_lines_one_trace_per_group_and_metric_with_units():
    resp = metrics_response(
        {
            "production": {"metrics": {"latency_p50_ms": [100, 120, None], "latency_p95_ms": [300, 310, None]}},
            "canary": {"metrics": {"latency_p50_ms": [90, None, 95], "latency_p95_ms": [200, None, 250]}},
        }
    )
    fig = f.lines(resp, [("latency_p50_ms", "p50"), ("latency_p95_ms", "p95")], unit="ms")
    names = [t.name for t in fig.data]
    assert names == ["production p50", "canary p50", "production p95", "canary p95"]
    by_name = {t.name: t for t in fig.data}
    assert by_name["canary p95"].line.color == "#ea580c" and by_name["canary p95"].line.dash == "dash"
    assert list(by_name["production p50"].y) == [100, 120, None]  # a gap stays a gap
    assert fig.layout.yaxis.ticksuffix == " ms"
    lo, hi = fig.layout.xaxis.range
    assert (hi - lo).total_seconds() == 15  # the whole range, not just where data is
    assert fig.layout.uirevision == "keep"


def test_isolated_points_get_a_marker():
    assert f.isolated_marker_sizes([None, 3.0, None, 1.0, 2.0, None, 5.0]) == [0, 5, 0, 0, 0, 0, 5]
    assert f.isolated_marker_sizes([]) == []


def test_error_rate_is_scaled_to_percent():
    resp = metrics_response({"production": {"metrics": {"error_rate": [0.25, 0.0, None]}}})
    fig = f.overview_figures(resp)["ov-chart-errors"]
    assert list(fig.data[0].y) == [25.0, 0.0, None]
    assert fig.layout.yaxis.ticksuffix == "%"
    assert set(f.overview_figures(resp)) == {cid for cid, *_ in f.CHARTS}


def test_stacked_by_model_and_empty_figure():
    resp = metrics_response(
        {"m1": {"metrics": {"request_rate": [1.0, None, 2.0]}}, "m2": {"metrics": {"request_rate": [0.5, 0.5, 0.5]}}}
    )
    fig = f.stacked_by_model(resp)
    assert [t.name for t in fig.data] == ["m1", "m2"]
    assert list(fig.data[0].y) == [1.0, 0, 2.0] and fig.data[0].stackgroup == "models"
    assert fig.layout.showlegend is True
    empty = f.empty_figure("Nothing yet")
    assert empty.layout.annotations[0].text == "Nothing yet" and not empty.data


def test_up_to_twelve_series_of_a_chart_get_distinct_stable_colours():
    names = [f"model-{i}" for i in range(12)]
    colors = f.assign_colors("model", names)
    assert len(set(colors.values())) == 12 and set(colors.values()) == set(f.PALETTE)
    assert f.assign_colors("model", list(reversed(names))) == colors  # the order of the groups does not matter
    with_variants = f.assign_colors("variant", ["production", "canary", "exp-a"])
    assert with_variants["production"] == "#2563eb" and with_variants["exp-a"] in f.PALETTE
    # a lone name keeps its own colour, as the browser's chips show it
    assert f.assign_colors("model", ["gpt-4o"]) == {"gpt-4o": f.color_for("model", "gpt-4o")}


def test_stacked_by_model_legend_has_no_repeated_colour():
    groups = {f"sim-model-{i}": {"metrics": {"request_rate": [1.0, 2.0, 3.0]}} for i in range(9)}
    fig = f.stacked_by_model(metrics_response(groups))
    colors = [t.line.color for t in fig.data]
    assert len(colors) == 9 and len(set(colors)) == 9


def test_figures_built_without_validation_are_valid_plotly():
    """The charts are built from plain dicts without plotly's per-property validation (it was
    most of an Overview refresh): every property must still be one plotly accepts, unchanged."""
    import json

    import plotly.graph_objects as go
    from plotly.utils import PlotlyJSONEncoder

    keys = [k for _, _, _, ms, _ in f.CHARTS for k, _ in ms]
    groups = {g: {"metrics": {k: [1.5, None, 3.0, 0.0] for k in keys}} for g in ("production", "canary", "exp-a")}
    resp = metrics_response(groups, n=4)
    figs = {**f.overview_figures(resp), "models": f.stacked_by_model(resp)}
    for cid, fig in figs.items():
        ours = fig.to_plotly_json()
        validated = go.Figure(ours)  # raises on any property plotly does not know or accept
        as_json = lambda obj: json.loads(json.dumps(obj, cls=PlotlyJSONEncoder))
        assert as_json(validated.to_plotly_json()) == as_json(ours), cid


def test_every_chip_colour_has_its_rule_for_static_html():
    """A list drawn as static HTML colours its chips from ``data-chip`` with a stylesheet rule
    per colour (Dash's Markdown drops the style's custom property): every colour ``color_for``
    can give has one, and no rule names a colour it cannot give."""
    import re

    from tests.helpers import ROOT

    css = (ROOT / "dashboard" / "assets" / "tokentail_chips.css").read_text()
    rules = dict(re.findall(r'\.tt-chip\[data-chip="(#[0-9a-f]{6})"\] \{ --chip: (#[0-9a-f]{6}); \}', css))
    assert all(k == v for k, v in rules.items()), rules
    can = set(f.PALETTE) | {c for d in f.RESERVED.values() for c in d.values()} | {f.color_for("model", None)}
    assert set(rules) == can
    assert {f.color_for("model", f"m-{i}") for i in range(500)} <= set(rules)
