"""Prometheus's answers shaped as the collector's JSON (pure, no server)."""

from __future__ import annotations

import pytest

from tokentail.dashboard import promql
from tokentail.dashboard.promql_answers import clamp_single, scrape_interval_from, shape, shape_status
from tokentail.dashboard.queries import has_data, model_rows, variant_cards

NOW = 1_800_000_003.0  # 3 s into a 5 s bucket


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
    out = shape(w, "variant", None, series, summary)
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
    out = shape(w, "model", None, series, vector([]))
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
    clamp_single(values, 5.0)
    assert values["latency_p50_ms"] == values["latency_p99_ms"] == pytest.approx(201.7)
    assert values["ttft_p50_ms"] == 140.0
    nothing = {"latency_p50_ms": None, "latency_sum_rate": 0.1, "latency_count_rate": 0.2}
    clamp_single(nothing, 5.0)
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
    out = shape(w1, "variant", None, series, tail)
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
        shape(w, "variant", None, answer, vector([]))
    assert str(err.value) and len(str(err.value)) < 400


def test_a_prometheus_error_is_passed_on_briefly():
    with pytest.raises(promql.PromQLError, match=r"^bad_data: parse error"):
        shape_status({"status": "error", "errorType": "bad_data", "error": "parse error" + "x" * 5000})


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
    (g,) = shape(w, "variant", None, series, vector([]))["groups"]
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
    status = shape_status(answer)
    assert status["variants"] == [
        {"name": "canary", "up": False, "targets_up": 0, "targets": 1, "current": None},
        {"name": "production", "up": True, "targets_up": 2, "targets": 3, "current": {"in_flight": 4.0}},
    ]


def test_the_scrape_interval_is_the_median_gap_between_samples():
    def probe(*series: list[float]) -> dict:
        result = [{"metric": {"instance": str(i)}, "values": [[t, "0"] for t in ts]} for i, ts in enumerate(series)]
        return {"status": "success", "data": {"resultType": "matrix", "result": result}}

    assert scrape_interval_from(probe([0, 5, 10, 20, 25], [2.5, 7.5])) == 5  # one scrape missed
    assert scrape_interval_from(probe([100.0, 100.999, 102.001])) == 1.0  # jitter is not kept
    assert scrape_interval_from(probe([0, 59.98, 120.01])) == 60
    assert scrape_interval_from(probe([1.0], [])) is None  # a fresh target: nothing to tell
    assert scrape_interval_from(probe()) is None
    with pytest.raises(promql.PromQLError):
        scrape_interval_from({"status": "success", "data": {"resultType": "matrix", "result": [{"metric": {}}]}})


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
    (g,) = shape(w, "variant", None, matrix(w, []), tail)["groups"]
    assert g["metrics"]["request_rate"][-1] == 0.5 and g["metrics"]["latency_p50_ms"][-1] == 250
    assert g["metrics"]["request_rate"][-2] is None
    assert g["summary"]["requests"] == round(0.5 * w.current_seconds)
    assert g["summary"]["request_rate"] == 0.5  # over the seconds scraped, as the collector
    at_edge = promql.plan("7d", 1_800_000_000.0 - 1_800_000_000.0 % 3600, 15.0)
    assert promql.CURRENT not in promql.summary_query(at_edge, "variant", None)
