"""query.py: /api/metrics values against hand-computed ones, at 5s and 1m resolution alike."""

from __future__ import annotations

import pytest

from tests.helpers.metrics_rounds import EXPECTED, LAT, ROUND_BUCKETS, T0, fill, round_points
from tokentail.collector.formulas import INTERVAL, UP
from tokentail.collector.query import QueryError, assemble, plan_metrics, plan_spans, run_metrics
from tokentail.collector.store import Store


@pytest.fixture
def store(tmp_path):
    s = Store.open(tmp_path / "q.duckdb")
    yield s
    s.close()


def query(store, now, **params):
    plan = plan_metrics(params, store.catalog(), now=now, configured_variants=["production"])
    return assemble(plan, run_metrics(store._con.cursor(), plan, store.watermark))


def test_5s_resolution_hand_computed(store):
    fill(store, T0, T0 + 3600, round_points())
    body = query(store, T0 + 3599, range="1h")
    assert body["source"] == "metrics_5s" and body["step"] == 30 and len(body["timestamps"]) == 120
    (g,) = body["groups"]
    assert g["name"] == "production"
    m = g["metrics"]
    for key, value in EXPECTED.items():
        assert m[key][10] == pytest.approx(value)
    assert m["request_rate"][10] == pytest.approx(1.0)  # 5 requests per 5 s
    assert m["error_rate"][10] == pytest.approx(0.2) and m["cancel_rate"][10] == pytest.approx(0.2)
    assert m["output_tokens_rate"][10] == pytest.approx(4.0)
    assert m["in_flight"][10] == pytest.approx(2.0) and m["up"][10] == 1.0
    assert g["summary"]["requests"] == 5 * 720 and g["summary"]["latency_p95_ms"] == pytest.approx(1750.0)
    body5 = query(store, T0 + 3599, range="5m")
    assert body5["step"] == 5 and body5["groups"][0]["metrics"]["latency_p99_ms"][-1] == pytest.approx(1950.0)


def test_1m_resolution_gives_the_same_values(store):
    fill(store, T0, T0 + 6 * 3600, round_points())
    now = T0 + 6 * 3600 - 1
    while store.rollup_step(now, settle=6.0):
        pass
    store._con.execute("DELETE FROM metrics_5s WHERE ts < ?", [store.watermark])  # as retention would
    body = query(store, now, range="6h")
    assert body["source"] == "metrics_1m" and body["step"] == 180
    m = body["groups"][0]["metrics"]
    for i in (0, 50, 119):  # the last bucket comes from the not-yet-rolled-up 5s tail
        for key, value in EXPECTED.items():
            assert m[key][i] == pytest.approx(value), (i, key)
        assert m["request_rate"][i] == pytest.approx(1.0)
        assert m["in_flight"][i] == pytest.approx(2.0)


def test_two_targets_of_a_variant_add_up_rates_but_not_time(store):
    fill(store, T0, T0 + 300, round_points(in_flight=2.0), round_points(target="http://b/metrics", in_flight=3.0))
    m = query(store, T0 + 299, range="5m")["groups"][0]["metrics"]
    assert m["request_rate"][30] == pytest.approx(2.0)
    assert m["in_flight"][30] == pytest.approx(5.0)
    assert m["latency_p50_ms"][30] == pytest.approx(400.0)


def test_by_model_and_filters(store):
    fill(
        store,
        T0,
        T0 + 300,
        round_points(model="a"),
        round_points(variant="canary", target="http://c/metrics", model="b", scale=2),
    )
    body = query(store, T0 + 299, range="5m", by="model")
    got = {g["name"]: g["metrics"]["request_rate"][30] for g in body["groups"]}
    assert got == {"a": pytest.approx(1.0), "b": pytest.approx(2.0)}
    assert all(g["metrics"]["in_flight"][30] is None for g in body["groups"])  # in-flight is not per model
    only = query(store, T0 + 299, range="5m", variant="canary")
    assert [g["name"] for g in only["groups"]] == ["canary"]
    assert only["groups"][0]["metrics"]["request_rate"][30] == pytest.approx(2.0)
    per_model = query(store, T0 + 299, range="5m", model="a")
    rates = {g["name"]: g["metrics"]["request_rate"][30] for g in per_model["groups"]}
    assert rates["production"] == pytest.approx(1.0) and rates.get("canary") in (None, 0.0)


def test_first_scrape_and_gaps_are_null_not_zero(store):
    fill(store, T0 + 100, T0 + 200, round_points())
    m = query(store, T0 + 299, range="5m")["groups"][0]["metrics"]
    assert m["request_rate"][0] is None  # before the data: unknown, not 0 req/s
    assert m["request_rate"][25] == pytest.approx(1.0)
    assert m["latency_p50_ms"][-1] is None


@pytest.mark.parametrize(
    "params, param, allowed",
    [
        ({"range": "2h"}, "range", ["5m", "15m", "1h", "6h", "24h", "7d"]),
        ({"by": "endpoint"}, "by", ["variant", "model"]),
        ({"variant": "staging"}, "variant", ["all", "production"]),
        ({"model": "nope"}, "model", ["all"]),
        ({"rnage": "1h"}, "rnage", ["range", "variant", "model", "by"]),
    ],
)
def test_bad_parameters_list_the_allowed_values(store, params, param, allowed):
    with pytest.raises(QueryError) as info:
        plan_metrics(params, store.catalog(), now=T0, configured_variants=["production"])
    body = info.value.as_json()["error"]
    assert body["param"] == param and body["allowed"] == allowed and body["code"] == "invalid_parameter"


@pytest.mark.parametrize(
    "params, param",
    [
        ({"limit": "0"}, "limit"),
        ({"limit": "5000"}, "limit"),
        ({"limit": "x"}, "limit"),
        ({"since": "yesterday"}, "since"),
        ({"status": "weird"}, "status"),
        ({"foo": "1"}, "foo"),
        ({"order": "sideways"}, "order"),
        ({"run": "0"}, "run"),
        ({"run": "x"}, "run"),
    ],
)
def test_bad_span_parameters(params, param):
    with pytest.raises(QueryError) as info:
        plan_spans(params)
    assert info.value.param == param and info.value.allowed


def test_span_parameters_build_the_filter():
    plan = plan_spans({"since": "10.5", "limit": "7", "model": "m", "status": "error", "messages": "false"})
    assert plan.limit == 7 and plan.messages is False and plan.ascending is False
    assert plan.args == [10.5, "error", "m", "m"] and "start_time >= ?" in plan.where
    attributed = plan_spans({"session": "s", "user": "u", "tag": "t", "key": "k", "run": "3", "order": "asc"})
    assert attributed.args == ["s", "u", "t", "k", 3] and attributed.ascending
    assert "list_contains(tags, ?)" in attributed.where and "run_intervals" in attributed.where


def test_missing_zero_buckets_below_the_observations_do_not_shift_quantiles(store):
    """Zero increases are not stored: a quiet bucket below must still bound the interpolation."""
    fill(store, T0, T0 + 60, round_points())  # every bound seen once
    slow = [p for p in round_points() if p[2] != LAT] + [
        (
            "production",
            "http://a/metrics",
            LAT,
            (("endpoint", "/chat/completions"), ("le", le), ("model", "gpt-4o")),
            "counter",
            0.0 if le in ("0.1", "0.5", "1.0") else 4.0,
        )
        for le in ROUND_BUCKETS
    ]
    fill(store, T0 + 120, T0 + 180, slow)  # all four observations per round in (1, 2]
    m = query(store, T0 + 299, range="5m")["groups"][0]["metrics"]
    assert m["latency_p50_ms"][30] == pytest.approx(1500.0)  # 1 + 1 * 2/4, not 0 + 2 * 2/4
    assert m["latency_p50_ms"][5] == pytest.approx(400.0)


def ttft_round(target, bounds, counts, variant="production"):
    """A round of one target: TTFT buckets (cumulative increases; zero ones not stored, as scrapes do)."""
    pts = [(variant, target, UP, (), "gauge", 1.0), (variant, target, INTERVAL, (), "counter", 5.0)]
    for le, c in zip([*bounds, "+Inf"], counts):
        if c:
            pts.append(
                (variant, target, "tokentail_time_to_first_token_seconds_bucket", (("le", str(le)), ("model", "m")),
                 "counter", float(c))
            )  # fmt: skip
    return pts


def test_200ms_ttft_in_old_buckets_interpolates_from_the_real_lower_bound(store):
    from tokentail.proxy.metrics import GENAI_DURATION_BUCKETS as OLD

    counts = [0 if le < 0.2 else 10 for le in OLD] + [10]  # ten TTFTs of ~200 ms
    store.append_metrics(T0, ttft_round("http://a/metrics", OLD, counts))
    m = query(store, T0 + 4, range="5m")["groups"][0]["metrics"]
    assert m["ttft_p50_ms"][-1] == pytest.approx(240.0)  # in (160, 320]; 160 when 0 was taken as its floor


def test_old_and_new_proxies_are_summed_on_the_common_bounds(store):
    from tokentail.proxy.metrics import GENAI_DURATION_BUCKETS as OLD
    from tokentail.proxy.metrics import TOKENTAIL_DURATION_BUCKETS as NEW

    # 10 observations of 0.2 s on each target
    store.append_metrics(T0, ttft_round("http://old/metrics", OLD, [0 if le < 0.2 else 10 for le in OLD] + [10]))
    store.append_metrics(T0, ttft_round("http://new/metrics", NEW, [0 if le < 0.2 else 10 for le in NEW] + [10]))
    m = query(store, T0 + 4, range="5m")["groups"][0]["metrics"]
    assert m["ttft_p50_ms"][-1] == pytest.approx(240.0)  # on the old bounds: both targets counted in full
    store2_rounds = ttft_round("http://new/metrics", NEW, [0 if le < 0.2 else 10 for le in NEW] + [10], variant="v2")
    store.append_metrics(T0 + 5, store2_rounds)
    m2 = query(store, T0 + 9, range="5m", variant="v2")["groups"][0]["metrics"]
    assert m2["ttft_p50_ms"][-1] == pytest.approx(193.0)  # new proxies alone: (160, 226]
