"""The Compare page's pure parts (dashboard/compare_page.py) and the replay panel's helpers (replay_view.py)."""

from __future__ import annotations

import json

from tokentail.dashboard import compare_page, replay_view
from tokentail.dashboard.config import DashboardConfig, parse_proxy

BODY = {
    "a": {"label": "production", "requests": 40, "errors": 1, "source": "spans"},
    "b": {"label": "canary", "requests": 40, "errors": 6, "source": "spans"},
    "source": "spans",
    "minimum_sample": 20,
    "minimum_requests": 30,
    "metrics": [
        {
            "metric": "error_rate",
            "label": "error rate",
            "stat": "rate",
            "a": 0.025,
            "b": 0.15,
            "effect": 5.0,
            "p_value": 0.048,
            "n_a": 40,
            "n_b": 40,
            "verdict": "worse",
            "significant": True,
            "summary": "canary error rate +12.5 points",
            "sides": {"a": {"ci95": [0.004, 0.13]}, "b": {"ci95": [0.07, 0.29]}},
        },
        {
            "metric": "ttft_ms",
            "label": "TTFT",
            "stat": "p95",
            "a": 137.0,
            "b": 175.0,
            "effect": 0.28,
            "p_value": 1e-9,
            "n_a": 40,
            "n_b": 40,
            "verdict": "worse",
            "significant": True,
            "summary": "canary TTFT p95 +28%",
            "sides": {"a": {"ecdf": [[100, 0.5], [137, 1.0]]}, "b": {"ecdf": [[140, 0.5], [175, 1.0]]}},
        },
        {
            "metric": "output_tps",
            "label": "output tokens/s",
            "stat": "p50",
            "a": 50.0,
            "b": 51.0,
            "n_a": 5,
            "n_b": 5,
            "effect": 0.02,
            "verdict": "not_enough_data",
            "significant": False,
            "summary": "not enough data: 5 of 20 needed a side",
            "sides": {"a": {"ecdf": []}, "b": {"ecdf": []}},
        },
    ],
}


def _text(component) -> str:
    return json.dumps(component.to_plotly_json() if hasattr(component, "to_plotly_json") else component, default=str)


def test_view_has_a_row_per_metric_with_verdicts_and_sentences():
    out = _text(compare_page.view(BODY))
    assert "canary TTFT p95 +28%" in out and "canary error rate +12.5 points" in out
    assert "tt-verdict-worse" in out and "not enough data" in out
    assert "15.00% [7.0\\u201329.0%]" in out  # B's rate with its Wilson interval
    assert "< 0.001" in out


def test_ecdf_figure_overlays_both_sides():
    fig = compare_page.ecdf_figure(BODY["metrics"][1], "TTFT", ("production", "canary"))
    assert [t.name for t in fig.data] == ["production", "canary"]
    assert list(fig.data[1].x) == [140, 175]


def test_view_error_and_empty():
    assert "Cannot compare" in _text(compare_page.view(None, "collector down"))
    assert "Choose A and B" in _text(compare_page.view(None))


def test_selection_from_the_url_and_defaults():
    assert compare_page.selection("?a=run:1&b=replays:1&x=y") == {"a": "run:1", "b": "replays:1"}
    config = DashboardConfig(proxies=(parse_proxy("production=http://h:1"), parse_proxy("canary=http://h:2")))
    assert compare_page.defaults(config) == ("variant:canary", "variant:production")


def test_replay_panel_helpers():
    assert replay_view.request_id("/request/abc%20d") == "abc d"
    assert replay_view.request_id("/live") is None
    live = {"id": "r", "model": "m", "messages": [{"role": "user", "content": "x"}], "truncated": True}
    assert "truncated" in (replay_view.replayable(live, None) or "")
    assert replay_view.replayable({**live, "truncated": False}, None) is None
    diff = _text(replay_view.diff_view("a b c", "a x c"))
    assert "tt-diff-del" in diff and "tt-diff-ins" in diff
