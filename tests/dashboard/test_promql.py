"""PromQL for the Overview and the shaping of Prometheus's answers (pure, no server)."""

from __future__ import annotations

import ast
import math
import re

import pytest

from tokentail.collector import formulas
from tokentail.collector.query import RANGES as COLLECTOR_RANGES
from tokentail.dashboard import promql

NOW = 1_800_000_003.0  # 3 s into a 5 s bucket


def test_the_grid_is_the_collectors_and_stays_bounded():
    for rng, (seconds, step, _table) in COLLECTOR_RANGES.items():
        w = promql.plan(rng, NOW, 1.0)
        assert w.step == step and w.buckets == int(seconds // step)
        assert w.origin % step == 0 and w.origin <= NOW < w.end  # the current bucket is the last
    for si in (1.0, 5.0, 15.0, 60.0, 300.0):
        for rng in promql.RANGE_SECONDS:
            w = promql.plan(rng, NOW, si)
            assert w.step >= si and w.buckets <= promql.MAX_POINTS and w.buckets >= 1
            assert w.rate_window == w.step + si  # the scrape before the bucket is in every window
    assert promql.plan("5m", NOW, 15).step == 15 and promql.plan("5m", NOW, 15).buckets == 20
    assert promql.plan("5m", NOW, 0.5).step == 5  # below a second: the collector's step


def test_only_buckets_that_ended_are_evaluated():
    w = promql.plan("5m", NOW, 1.0)
    assert w.complete == w.buckets - 1  # the current bucket is 3 s old
    assert w.eval_start == w.origin + 5 and w.eval_end == w.origin + 5 * w.complete <= NOW
    assert w.current_seconds == 3 and w.summary_window == 299  # the whole range to now, and a scrape
    exact = promql.plan("5m", 1_800_000_000.0, 1.0)
    assert exact.complete == exact.buckets - 1  # at a bucket's first instant it has not ended either
    assert exact.current_seconds == 0


@pytest.mark.parametrize("rng, si", [("bogus", 1.0), ("5m", 0.0), ("5m", -1.0), ("5m", math.nan), ("1h", math.inf)])
def test_bad_plans_are_refused(rng, si):
    with pytest.raises(promql.PromQLError):
        promql.plan(rng, NOW, si)


def test_durations():
    assert [promql.duration(x) for x in (6, 11.0, 1.5, 0.25, 3601, 0.0001)] == [
        "6s",
        "11s",
        "1500ms",
        "250ms",
        "3601s",
        "1ms",
    ]


@pytest.mark.parametrize(
    "value",
    [
        "gpt-4o",
        'x"} or vector(1) #',
        "back\\slash\\",
        "new\nline\r\ttab\x00\x7f",
        "ünïcødé 模型 🚀",
        '\\"',
        "a" * 5000,
    ],
)
def test_a_filter_value_stays_one_string(value):
    quoted = promql.quote(value)
    # Go's string syntax, for these escapes, is Python's: the literal reads back as the value.
    assert ast.literal_eval(quoted) == value[: promql.MAX_LABEL_VALUE]
    assert "\n" not in quoted and "\x00" not in quoted


def test_a_lone_surrogate_cannot_break_the_request():
    quoted = promql.quote("a\ud800b")
    assert ast.literal_eval(quoted) == "a?b"
    quoted.encode("utf-8")  # sendable


def test_every_modelled_selector_carries_the_model_filter():
    exprs = promql.metric_exprs("variant", 'm"1', 6.0, step=5.0)
    assert "in_flight" not in exprs  # the gauge has no model: not shown under a model filter
    for key, expr in exprs.items():
        if key == "covered":
            assert "model=" not in expr  # scraped or not, whatever the model
            continue
        selectors = re.findall(r"tokentail_\w+(?:\{[^}]*\})?", expr)
        assert selectors and all('model="m\\"1"' in sel for sel in selectors), (key, expr)
    assert "by (variant)" in exprs["request_rate"] and "[6s]" in exprs["request_rate"]
    assert exprs["latency_p95_ms"].startswith("(histogram_quantile(0.95, sum by (variant, le)")
    assert exprs["latency_p95_ms"].endswith("* 1000")
    # Per bucket, the histograms are exact increases over the step (no per-series extrapolation).
    assert "rate(" not in exprs["latency_p95_ms"]
    assert "(clamp_min(last_over_time(tokentail_time_to_first_token_seconds_count{" in exprs["ttft_count_rate"]
    assert exprs["ttft_count_rate"].endswith('"}[5s] offset 5s), 0)) / 5')
    over_range = promql.metric_exprs("variant", None, 300.0)
    assert "increase(tokentail_request_duration_seconds_bucket[300s])" in over_range["latency_p95_ms"]
    assert over_range["ttft_count_rate"].endswith("[300s])) / 300")
    assert 'status_class=~"4xx|5xx|upstream_error"' in exprs["error_rate"]
    # No error series at all is a ratio of 0 while there are requests.
    assert ") or (" in exprs["error_rate"] and "* 0" in exprs["error_rate"]


def test_by_model_and_the_fleet_gauges():
    by_variant = promql.metric_exprs("variant", None, 11.0, step=10.0)
    assert by_variant["in_flight"] == "sum by (variant) (avg_over_time(tokentail_in_flight_requests[10s]))"
    by_model = promql.metric_exprs("model", None, 11.0, step=10.0)
    assert "in_flight" not in by_model and by_model["covered"].startswith("count(count_over_time(")
    assert "by (model, le)" in by_model["ttft_p50_ms"]
    with pytest.raises(promql.PromQLError):
        promql.metric_exprs("instance", None, 6.0)


def test_one_combined_expression_tags_every_metric():
    w = promql.plan("15m", NOW, 1.0)
    q = promql.range_query(w, "variant", None)
    for key in promql.metric_exprs("variant", None, w.rate_window, step=w.step):
        assert f'"{promql.TAG}", "{key}", "", "")' in q
    summary = promql.summary_query(w, "variant", None)
    assert f"[{promql.duration(w.summary_window)}]" in summary and '"request_rate"' not in summary
    assert '"latency_p99_ms"' in summary and '"ttft_count_rate"' in summary


def test_the_collector_and_this_module_agree_on_names():
    assert set(promql.ERROR_CLASSES) == formulas.ERROR_CLASSES and promql.CANCELLED_CLASS == formulas.CANCELLED_CLASS
    assert set(formulas.BUCKET_ROLES.values()) == {f"{h}_bucket" for h in (promql.DURATION, promql.TTFT, promql.TPS)}
