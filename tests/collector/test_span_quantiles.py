"""span_quantiles.py: /api/metrics percentiles exact from spans; bucket ones clamped to what spans saw."""

from __future__ import annotations

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.helpers.metrics_rounds import T0, fill, round_points
from tokentail.collector import span_quantiles
from tokentail.collector.derive import histogram_quantiles
from tokentail.collector.query import assemble, plan_metrics, run_metrics
from tokentail.collector.store import Store

OLD_BUCKETS = (0.01, 0.02, 0.04, 0.08, 0.16, 0.32, 0.64, 1.28, 2.56, 5.12, 10.24, 20.48, 40.96, 81.92)


@pytest.fixture
def store(tmp_path):
    s = Store.open(tmp_path / "sq.duckdb")
    yield s
    s.close()


def metrics(store, now, **params):
    plan = plan_metrics(params, store.catalog(), now=now, configured_variants=["production"])
    cur = store._con.cursor()
    return span_quantiles.apply(
        assemble(plan, run_metrics(cur, plan, store.watermark)), plan, span_quantiles.run(cur, plan)
    )


def add(store, values, *, at, variant="production", model="gpt-4o", ttft=None, tps=None, prefix="r"):
    rows = []
    for i, v in enumerate(values):
        rows.append(
            {
                "request_id": f"{prefix}{i}",
                "start_time": at - v / 1000.0,
                "end_time": at + i * 0.01,
                "variant": variant,
                "model": model,
                "status": "ok",
                "latency_ms": v,
                "ttft_ms": ttft[i] if ttft else None,
                "output_tps": tps[i] if tps else None,
            }
        )
    assert store.insert_spans(rows) == len(rows)


def test_every_ttft_200_to_204_ms_reads_as_such(store):
    fill(store, T0, T0 + 300, round_points())  # buckets alone would say p50 400 ms, p99 1950 ms
    lat = [200.0 + i * 0.04 for i in range(100)]
    add(store, lat, at=T0 + 100, ttft=lat, tps=[50.0 + i for i in range(100)])
    body = metrics(store, T0 + 299, range="5m")
    assert body["quantile_source"] == {"latency": "spans", "ttft": "spans", "tps": "spans"}
    (g,) = body["groups"]
    assert g["quantile_source"] == {"latency": "spans", "ttft": "spans", "tps": "spans"}
    m, s = g["metrics"], g["summary"]
    b = 20  # (T0 + 100 - origin T0) / 5
    for key in ("latency_p50_ms", "latency_p95_ms", "latency_p99_ms", "ttft_p50_ms", "ttft_p95_ms"):
        assert 200.0 <= m[key][b] <= 203.96, key
        assert 200.0 <= s[key] <= 203.96, key
    assert m["ttft_p50_ms"][b] == pytest.approx(201.98) and m["ttft_p95_ms"][b] == pytest.approx(203.762)
    assert m["output_tps_p50"][b] == pytest.approx(99.5)
    # Time buckets without spans keep their bucket value, clamped into what the spans saw.
    assert m["latency_p50_ms"][10] == pytest.approx(203.96) and m["latency_p99_ms"][10] == pytest.approx(203.96)
    assert m["ttft_p50_ms"][10] is None  # no TTFT buckets there either: nothing invented


def test_known_latencies_exact_percentiles(store):
    fill(store, T0, T0 + 300, round_points())
    add(store, [500.0, 100.0, 300.0, 200.0, 400.0], at=T0 + 200)
    g = metrics(store, T0 + 299, range="5m")["groups"][0]
    # quantile_cont: linear between the nearest observations (numpy's default)
    assert g["summary"]["latency_p50_ms"] == 300.0
    assert g["summary"]["latency_p95_ms"] == pytest.approx(480.0)
    assert g["summary"]["latency_p99_ms"] == pytest.approx(496.0)
    assert g["metrics"]["latency_p50_ms"][40] == 300.0
    assert g["quantile_source"]["ttft"] == "buckets"  # no TTFT on these spans


def test_without_spans_the_buckets_answer_and_say_so(store):
    fill(store, T0, T0 + 300, round_points())
    body = metrics(store, T0 + 299, range="5m")
    assert body["quantile_source"] == {"latency": "buckets", "ttft": "buckets", "tps": "buckets"}
    assert body["groups"][0]["metrics"]["latency_p50_ms"][10] == pytest.approx(400.0)


def test_spans_of_another_variant_or_outside_the_window_do_not_count(store):
    fill(store, T0, T0 + 300, round_points())
    add(store, [9000.0], at=T0 + 100, variant="canary", prefix="c")
    add(store, [1.0], at=T0 - 1000, prefix="old")
    body = metrics(store, T0 + 299, range="5m", variant="production")
    assert body["quantile_source"]["latency"] == "buckets"
    assert body["groups"][0]["metrics"]["latency_p50_ms"][20] == pytest.approx(400.0)


def test_by_model_each_model_from_its_own_spans(store):
    fill(store, T0, T0 + 300, round_points(model="a"), round_points(model="b", target="http://b/metrics"))
    add(store, [100.0, 110.0], at=T0 + 50, model="a", prefix="a")
    body = metrics(store, T0 + 299, range="5m", by="model")
    groups = {g["name"]: g for g in body["groups"]}
    assert groups["a"]["quantile_source"]["latency"] == "spans"
    assert groups["a"]["summary"]["latency_p50_ms"] == pytest.approx(105.0)
    assert groups["b"]["quantile_source"]["latency"] == "buckets"
    assert groups["b"]["summary"]["latency_p50_ms"] == pytest.approx(400.0)
    assert body["quantile_source"]["latency"] == "buckets"  # not every series is exact


@settings(max_examples=200, deadline=None)
@given(
    obs=st.lists(st.floats(0.001, 100.0, allow_nan=False), min_size=1, max_size=200),
    q=st.sampled_from((0.5, 0.95, 0.99)),
)
def test_bucket_percentiles_clamped_never_leave_the_observed_range(obs, q):
    les = [*OLD_BUCKETS, math.inf]
    counts = [float(sum(1 for o in obs if o <= le)) for le in les]
    (value,) = histogram_quantiles((q,), zip(les, counts))
    clamped = span_quantiles.clamp(value, min(obs), max(obs))
    assert clamped is not None and min(obs) <= clamped <= max(obs)


@settings(max_examples=200, deadline=None)
@given(
    values=st.lists(st.one_of(st.none(), st.floats(0.0, 1e6, allow_nan=False)), min_size=3, max_size=3),
    lo=st.floats(0.0, 1e3),
    width=st.floats(0.0, 1e3),
)
def test_apply_clamps_every_bucket_value_into_the_window(values, lo, width):
    hi = lo + width

    class Plan:
        buckets = 3

    metrics_ = {"latency_p50_ms": list(values), "latency_p95_ms": list(values), "latency_p99_ms": list(values)}
    others = {k: [None] * 3 for k in ("ttft_p50_ms", "ttft_p95_ms", "output_tps_p50")}
    body = {"groups": [{"name": "v", "metrics": {**metrics_, **others}, "summary": {}}]}
    window = (None, "v", [lo, lo, hi], lo, hi, None, None, None, None, None, None)
    out = span_quantiles.apply(body, Plan(), [window])  # type: ignore[arg-type]
    for key in metrics_:
        for before, after in zip(values, out["groups"][0]["metrics"][key]):
            assert (after is None) == (before is None)
            if after is not None:
                assert round(lo, 4) <= after <= round(hi, 4)
    assert out["quantile_source"]["latency"] == "spans"
