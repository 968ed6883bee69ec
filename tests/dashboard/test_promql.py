"""PromQL for the Overview and the shaping of Prometheus's answers (pure, no server)."""

from __future__ import annotations

import ast
import math
import re

import pytest

from tokentail.collector import formulas
from tokentail.collector.query import RANGES as COLLECTOR_RANGES
from tokentail.dashboard import promql
from tokentail.dashboard.queries import has_data, model_rows, variant_cards

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


def test_the_current_bucket_is_evaluated_now_over_what_has_passed():
    w = promql.plan("7d", NOW, 15.0)  # one-hour steps: the last hour must not be missing
    q = promql.summary_query(w, "variant", None)
    assert f'"{promql.CURRENT}request_rate"' in q
    assert f"[{promql.duration(w.current_seconds + 15)}]" in q
    prod = {"variant": "production"}
    tail = vector(
        [
            (promql.CURRENT + "request_rate", prod, "0.5"),
            (promql.CURRENT + "covered", prod, "1"),
            (promql.CURRENT + "latency_p50_ms", prod, "250"),
        ]
    )
    (g,) = promql.shape(w, "variant", None, matrix(w, []), tail)["groups"]
    assert g["metrics"]["request_rate"][-1] == 0.5 and g["metrics"]["latency_p50_ms"][-1] == 250
    assert g["metrics"]["request_rate"][-2] is None
    assert g["summary"]["requests"] == round(0.5 * w.current_seconds)
    assert g["summary"]["request_rate"] == 0.5  # over the seconds scraped, as the collector
    at_edge = promql.plan("7d", 1_800_000_000.0 - 1_800_000_000.0 % 3600, 15.0)
    assert promql.CURRENT not in promql.summary_query(at_edge, "variant", None)


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
    assert "offset 5s, 0)" in exprs["latency_p95_ms"] and "rate(" not in exprs["latency_p95_ms"]
    assert exprs["ttft_count_rate"].endswith("offset 5s, 0)) / 5")
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
    assert promql.UNITS == formulas.UNITS
    assert set(promql.ERROR_CLASSES) == formulas.ERROR_CLASSES and promql.CANCELLED_CLASS == formulas.CANCELLED_CLASS
    assert set(formulas.BUCKET_ROLES.values()) == {f"{h}_bucket" for h in (promql.DURATION, promql.TTFT, promql.TPS)}


# --- answers ------------------------------------------------------------------------------


def matrix(w: promql.Window, rows: list[tuple[str, dict, dict[int, str]]]) -> dict:
    """A query_range answer: (metric, labels, {bucket index: value}) per series."""
    result = []
    for metric, labels, values in rows:
        result.append(
            {
                "metric": {**labels, promql.TAG: metric},
                "values": [[w.eval_start + i * w.step, v] for i, v in sorted(values.items())],
            }
        )
    return {"status": "success", "data": {"resultType": "matrix", "result": result}}


def vector(rows: list[tuple[str, dict, str]]) -> dict:
    result = [{"metric": {**labels, promql.TAG: m}, "value": [NOW, v]} for m, labels, v in rows]
    return {"status": "success", "data": {"resultType": "vector", "result": result}}


def test_shape_places_each_sample_in_its_bucket_and_sums_the_summary():
    w = promql.plan("5m", NOW, 1.0)
    prod = {"variant": "production"}
    last = w.complete - 1
    series = matrix(
        w,
        [
            ("request_rate", prod, {last - 1: "2", last: "4"}),
            ("errors_rate", prod, {last: "1"}),
            ("output_tokens_rate", prod, {last - 1: "20", last: "40"}),
            ("error_rate", prod, {last - 1: "0", last: "0.25"}),
            ("latency_p50_ms", prod, {last - 1: "NaN", last: "180.5"}),
            ("latency_p99_ms", prod, {last: "+Inf"}),
            ("in_flight", prod, {last - 1: "1", last: "3"}),
            ("covered", prod, dict.fromkeys(range(w.complete), "1")),
            ("request_rate", {}, {last: "1"}),  # a target scraped without a variant label
        ],
    )
    summary = vector([("latency_p50_ms", prod, "175"), ("ttft_p95_ms", prod, "NaN")])
    out = promql.shape(w, "variant", None, series, summary)
    assert out["timestamps"][0] == w.origin and len(out["timestamps"]) == w.buckets
    assert out["quantile_source"] == {"latency": "buckets", "ttft": "buckets", "tps": "buckets"}
    assert out["source"] == "prometheus" and out["resolution"] == "1s" and out["step"] == 5
    names = [g["name"] for g in out["groups"]]
    assert names == [promql.UNLABELLED, "production"]
    g = out["groups"][1]
    m = g["metrics"]
    assert m["request_rate"][last - 1 : last + 1] == [2, 4] and m["request_rate"][last + 1] is None
    assert m["request_rate"][: last - 1] == [None] * (last - 1)
    assert m["latency_p50_ms"][last - 1] is None and m["latency_p50_ms"][last] == 180.5
    assert m["latency_p99_ms"][last] is None  # +Inf is no value
    s = g["summary"]
    assert s["requests"] == 30 and s["errors"] == 5 and s["output_tokens"] == 300  # rates x 5 s
    covered_s = w.complete * 5
    assert s["request_rate"] == pytest.approx(30 / covered_s, abs=1e-4)
    assert s["error_rate"] == pytest.approx(5 / 30, abs=1e-4)
    assert s["latency_p50_ms"] == 175 and s["ttft_p95_ms"] is None and s["in_flight"] == 2
    assert has_data(out)
    cards = variant_cards(out, None)
    assert [c["name"] for c in cards] == ["production", promql.UNLABELLED]
    assert cards[0]["values"]["latency_p50_ms"] == 175


def test_by_model_rates_divide_by_the_fleets_scraped_seconds():
    w = promql.plan("5m", NOW, 1.0)
    last = w.complete - 1
    series = matrix(
        w,
        [
            ("request_rate", {"model": "m-a"}, {last: "2"}),
            ("request_rate", {"model": "m-b"}, {last: "1"}),
            ("covered", {}, {last - 1: "2", last: "2"}),  # count(...) has no model label
        ],
    )
    out = promql.shape(w, "model", None, series, vector([]))
    rows = model_rows(out)
    assert [r["name"] for r in rows] == ["m-a", "m-b"]
    assert rows[0]["requests"] == 10 and rows[0]["request_rate"] == 1.0  # 10 requests over 10 s scraped


def test_one_observation_is_its_own_percentile():
    values = {
        "latency_p50_ms": 193.0,
        "latency_p95_ms": 222.7,
        "latency_p99_ms": 225.3,
        "latency_sum_rate": 0.2017 / 5,
        "latency_count_rate": 1 / 5,
        "ttft_p50_ms": 140.0,
        "ttft_sum_rate": 0.6,
        "ttft_count_rate": 3 / 5,  # three first tokens: interpolation stays
    }
    promql.clamp_single(values, 5.0)
    assert values["latency_p50_ms"] == values["latency_p99_ms"] == pytest.approx(201.7)
    assert values["ttft_p50_ms"] == 140.0
    nothing = {"latency_p50_ms": None, "latency_sum_rate": 0.1, "latency_count_rate": 0.2}
    promql.clamp_single(nothing, 5.0)
    assert nothing["latency_p50_ms"] is None  # no value is not made up


def test_the_single_observation_clamp_reaches_the_shaped_answer():
    w = promql.plan("5m", NOW, 1.0)
    last = w.complete - 1
    prod = {"variant": "production"}
    series = matrix(
        w,
        [
            ("request_rate", prod, {last: "0.2"}),
            ("latency_p50_ms", prod, {last: "193"}),
            ("latency_sum_rate", prod, {last: "0.04"}),
            ("latency_count_rate", prod, {last: "0.2"}),
        ],
    )
    tail = vector(
        [("latency_p50_ms", prod, "193"), ("latency_sum_rate", prod, "0.2"), ("latency_count_rate", prod, "1")]
    )
    w1 = promql.Window(w.range, w.step, w.origin, w.buckets, w.now, w.scrape_interval)
    out = promql.shape(w1, "variant", None, series, tail)
    g = out["groups"][0]
    assert g["metrics"]["latency_p50_ms"][last] == 200.0
    # over the range: count 1/s x the window is far more than one: the bucket estimate stays
    assert g["summary"]["latency_p50_ms"] == 193


@pytest.mark.parametrize(
    "answer",
    [
        None,
        [],
        {"status": "error", "errorType": "bad_data", "error": "parse error at char 3"},
        {"status": "success", "data": {"resultType": "vector", "result": []}},  # not a matrix
        {"status": "success", "data": {"resultType": "matrix", "result": "x"}},
        {"status": "success", "data": {"resultType": "matrix", "result": [{"values": []}]}},
        {"status": "success", "data": {"resultType": "matrix", "result": [{"metric": {promql.TAG: "request_rate"}}]}},
        {
            "status": "success",
            "data": {"resultType": "matrix", "result": [{"metric": {promql.TAG: "request_rate"}, "values": [[1]]}]},
        },
        {
            "status": "success",
            "data": {
                "resultType": "matrix",
                "result": [{"metric": {promql.TAG: "request_rate"}, "values": [[NOW, "not a number"]]}],
            },
        },
        {
            "status": "success",
            "data": {
                "resultType": "matrix",
                "result": [{"metric": {promql.TAG: "request_rate"}, "values": [["x", "1"]]}],
            },
        },
    ],
)
def test_answers_not_shaped_like_prometheus_are_refused_with_a_reason(answer):
    w = promql.plan("5m", NOW, 1.0)
    with pytest.raises(promql.PromQLError) as err:
        promql.shape(w, "variant", None, answer, vector([]))
    assert str(err.value) and len(str(err.value)) < 400


def test_a_prometheus_error_is_passed_on_briefly():
    with pytest.raises(promql.PromQLError, match=r"^bad_data: parse error"):
        promql.shape_status({"status": "error", "errorType": "bad_data", "error": "parse error" + "x" * 5000})


def test_samples_outside_the_grid_are_ignored():
    w = promql.plan("5m", NOW, 1.0)
    series = {
        "status": "success",
        "data": {
            "resultType": "matrix",
            "result": [
                {
                    "metric": {"variant": "p", promql.TAG: "request_rate"},
                    "values": [[w.eval_start - 3600, "9"], [w.end + 3600, "9"], [w.eval_start, "1"]],
                }
            ],
        },
    }
    (g,) = promql.shape(w, "variant", None, series, vector([]))["groups"]
    assert g["metrics"]["request_rate"][0] == 1 and sum(v or 0 for v in g["metrics"]["request_rate"]) == 1


def test_status_per_variant():
    answer = vector(
        [
            ("targets_up", {"variant": "production"}, "2"),
            ("targets", {"variant": "production"}, "3"),
            ("in_flight", {"variant": "production"}, "4"),
            ("targets_up", {"variant": "canary"}, "0"),
            ("targets", {"variant": "canary"}, "1"),
        ]
    )
    status = promql.shape_status(answer)
    assert status["variants"] == [
        {"name": "canary", "up": False, "targets_up": 0, "targets": 1, "current": None},
        {"name": "production", "up": True, "targets_up": 2, "targets": 3, "current": {"in_flight": 4.0}},
    ]


def test_the_scrape_interval_is_the_median_gap_between_samples():
    def probe(*series: list[float]) -> dict:
        result = [{"metric": {"instance": str(i)}, "values": [[t, "0"] for t in ts]} for i, ts in enumerate(series)]
        return {"status": "success", "data": {"resultType": "matrix", "result": result}}

    assert promql.scrape_interval_from(probe([0, 5, 10, 20, 25], [2.5, 7.5])) == 5  # one scrape missed
    assert promql.scrape_interval_from(probe([100.0, 100.999, 102.001])) == 1.0  # jitter is not kept
    assert promql.scrape_interval_from(probe([0, 59.98, 120.01])) == 60
    assert promql.scrape_interval_from(probe([1.0], [])) is None  # a fresh target: nothing to tell
    assert promql.scrape_interval_from(probe()) is None
    with pytest.raises(promql.PromQLError):
        promql.scrape_interval_from({"status": "success", "data": {"resultType": "matrix", "result": [{"metric": {}}]}})
