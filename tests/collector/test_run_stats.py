"""run_stats.py: the run life cycle and stats from literal grouped rows (no database)."""

from __future__ import annotations

import pytest

from tokentail.collector import run_stats as rs


def group(
    model="m-a",
    endpoint="/chat/completions",
    status="ok",
    http=200,
    error=None,
    n=1,
    tin=10,
    tout=20,
    cached=0,
    usage=None,
    cost=None,
    priced=None,
    tps=None,
    lat=None,
    ttft=None,
):
    """One stats group as runs.stat_groups returns it (sums and counts)."""
    return {
        "model": model,
        "endpoint": endpoint,
        "status": status,
        "http_status": http,
        "error_type": error,
        "requests": n,
        "input_tokens": tin,
        "output_tokens": tout,
        "cached_input_tokens": cached,
        "with_usage": n if usage is None else usage,
        "cost_usd": cost,
        "priced": (n if cost is not None else 0) if priced is None else priced,
        "tps_sum": tps * n if tps is not None else None,
        "tps_n": n if tps is not None else 0,
        "latency_sum": lat * n if lat is not None else None,
        "latency_n": n if lat is not None else 0,
        "ttft_sum": ttft * n if ttft is not None else None,
        "ttft_n": n if ttft is not None else 0,
    }


@pytest.mark.parametrize(
    "status, action, after",
    [
        ("active", "pause", "paused"),
        ("paused", "resume", "active"),
        ("active", "end", "ended"),
        ("paused", "end", "ended"),
    ],
)
def test_allowed_transitions(status, action, after):
    assert rs.transition(7, status, action) == after


@pytest.mark.parametrize(
    "status, action, words",
    [
        ("active", "resume", "it is active (it is not paused)"),
        ("paused", "pause", "it is paused (it is already paused)"),
        ("ended", "pause", "it is ended"),
        ("ended", "resume", "start a new run"),
        ("ended", "end", "already ended"),
    ],
)
def test_refused_transitions_name_the_current_state(status, action, words):
    with pytest.raises(rs.TransitionError) as info:
        rs.transition(7, status, action)
    assert words in str(info.value) and f"cannot {action} run 7" in str(info.value)
    assert info.value.status == status
    with pytest.raises(ValueError, match="unknown action"):
        rs.transition(7, "active", "explode")


def test_wall_time_sums_intervals_and_counts_an_open_one_up_to_now():
    assert rs.wall_time([(100.0, 130.0), (200.0, 205.5)], now=1e9) == 35.5
    assert rs.wall_time([(100.0, 130.0), (200.0, None)], now=260.0) == 90.0
    assert rs.wall_time([(100.0, 90.0)], now=0.0) == 0.0  # a clock that went back never subtracts
    assert rs.wall_time([], now=5.0) == 0.0


def test_summarize_totals_breakdowns_and_exact_means():
    groups = [
        group("m-a", n=3, tin=30, tout=300, cached=6, cost=0.03, tps=50.0, lat=1000.0, ttft=100.0),
        group("m-a", "/embeddings", n=1, tin=8, tout=0, cost=0.001, lat=50.0),
        group("m-b", n=1, tin=10, tout=90, cost=None, tps=10.0, lat=3000.0, ttft=400.0),  # no price for m-b
        group("m-b", status="error", http=500, error="status", n=2, tin=None, tout=None, usage=0, lat=20.0),
        group("m-a", status="cancelled", http=200, n=1, tin=5, tout=3, cost=0.0001, lat=400.0),
    ]
    s = rs.summarize(groups, wall_time_s=60.0)
    assert s["requests"] == 8
    assert s["statuses"] == {"cancelled": 1, "error": 2, "ok": 5}
    assert s["errors"] == {"total": 2, "rate": 0.25, "by_type": {"status": 2}, "by_http_status": {"500": 2}}
    assert s["tokens"] == {"input": 53, "output": 393, "cached_input": 6, "requests_with_usage": 6}
    assert s["cost"]["usd"] == pytest.approx(0.0311)
    assert s["cost"]["priced_requests"] == 5 and s["cost"]["unknown_requests"] == 3  # never summed as zero
    # Means are sums over counts across groups, not means of means: (3*50 + 10) / 4.
    assert s["output_tps_mean"] == pytest.approx(40.0)
    assert s["latency_ms_mean"] == pytest.approx((3000 + 50 + 3000 + 40 + 400) / 8)
    assert s["ttft_ms_mean"] == pytest.approx((300 + 400) / 4)
    assert s["output_tokens_per_wall_second"] == pytest.approx(393 / 60)
    models = {m["model"]: m for m in s["by_model"]}
    assert [m["model"] for m in s["by_model"]] == ["m-a", "m-b"]  # busiest first
    assert models["m-b"]["cost"]["usd"] is None and models["m-b"]["cost"]["unknown_requests"] == 3
    assert models["m-a"]["requests"] == 5 and models["m-a"]["tokens"]["output"] == 303
    endpoints = {e["endpoint"]: e for e in s["by_endpoint"]}
    assert endpoints["/embeddings"]["requests"] == 1 and endpoints["/chat/completions"]["requests"] == 7


def test_cost_is_unknown_not_zero_when_nothing_was_priced_and_zero_for_no_requests():
    assert rs.summarize([group(n=4, cost=None)], 10.0)["cost"] == {
        "usd": None,
        "priced_requests": 0,
        "unknown_requests": 4,
    }
    empty = rs.summarize([], 0.0)
    assert empty["cost"]["usd"] == 0.0 and empty["requests"] == 0 and empty["errors"]["rate"] is None
    assert empty["output_tps_mean"] is None and empty["output_tokens_per_wall_second"] is None
    assert empty["by_model"] == [] and empty["by_endpoint"] == []


def test_what_if_prices_the_runs_tokens_or_says_why_not():
    stats = rs.summarize(
        [
            group(n=2, tin=1000, tout=500, cached=200, cost=0.01),
            group(status="error", n=1, tin=None, tout=None, usage=0),
        ],
        30.0,
    )
    seen = []

    def price(usage, model):
        seen.append((usage, model))
        return usage["input_tokens"] * 1e-6 + usage["output_tokens"] * 4e-6

    out = rs.what_if(stats, "big-model", price, known=True)
    assert seen == [({"input_tokens": 1000, "output_tokens": 500, "cached_input_tokens": 200}, "big-model")]
    assert out["usd"] == pytest.approx(0.003) and out["actual_usd"] == pytest.approx(0.01)
    assert out["requests_without_usage"] == 1 and "without token counts" in out["reason"]
    assert out["actual_unknown_requests"] == 1  # the failed request had no price either
    unknown = rs.what_if(stats, "mystery", price, known=False)
    assert unknown["usd"] is None and unknown["reason"] == "no price for 'mystery' in the pricing table"
    assert len(seen) == 1  # an unknown model is not even asked
    refused = rs.what_if(stats, "odd", lambda u, m: None, known=True)
    assert refused["usd"] is None and "cannot price" in refused["reason"]


def test_compare_side_by_side_with_differences_and_ratios():
    a = rs.summarize([group(n=2, tin=100, tout=200, cost=0.02, tps=20.0, lat=1000.0)], 10.0)
    b = rs.summarize([group(n=4, tin=100, tout=600, cost=None, tps=40.0, lat=500.0)], 20.0)
    rows = {r["metric"]: r for r in rs.compare(a, b)}
    assert [r["metric"] for r in rs.compare(a, b)] == [name for name, _ in (*rs.COMPARED, *rs.COMPARED_DISTRIBUTIONS)]
    assert rows["requests"] == {
        "metric": "requests",
        "a": 2,
        "b": 4,
        "diff": 2,
        "ratio": 2.0,
        "better": None,
        "change": None,
    }
    assert rows["output_tps_mean"]["ratio"] == pytest.approx(2.0)
    assert rows["output_tps_mean"]["better"] == "higher" and rows["output_tps_mean"]["change"] == "better"
    assert rows["latency_ms_mean"]["better"] == "lower" and rows["latency_ms_mean"]["change"] == "better"
    assert rows["latency_ms_mean"]["diff"] == pytest.approx(-500.0)
    assert rows["cost_usd"] == {
        "metric": "cost_usd",
        "a": pytest.approx(0.02),
        "b": None,
        "diff": None,
        "ratio": None,
        "better": "lower",
        "change": None,
    }  # unknown stays unknown
    assert rows["wall_time_s"]["ratio"] == 2.0


@pytest.mark.parametrize(
    ("better", "a", "b", "expected"),
    [
        ("lower", 100.0, 50.0, "better"),  # latency halved
        ("lower", 100.0, 150.0, "worse"),
        ("higher", 20.0, 40.0, "better"),  # tokens/s doubled
        ("higher", 20.0, 10.0, "worse"),
        ("lower", 100.0, 101.9, "same"),  # within 2%
        ("higher", 100.0, 98.5, "same"),
        ("lower", 0.0, 0.0, "same"),
        ("lower", 0.0, 1.0, "worse"),
        ("lower", None, 1.0, None),
        (None, 1.0, 2.0, None),  # no direction: no colour
    ],
)
def test_change_colours_by_direction(better, a, b, expected):
    assert rs.change(better, a, b) == expected


def test_every_latency_ttft_tps_percentile_has_a_direction():
    names = [n for n, _ in rs.COMPARED_DISTRIBUTIONS]
    for d, way in (("latency_ms", "lower"), ("ttft_ms", "lower"), ("output_tps", "higher")):
        for p in ("p50", "p95"):
            assert f"{d}_{p}" in names and rs.BETTER[f"{d}_{p}"] == way
    assert len(names) == len(set(names)) and not set(names) & {n for n, _ in rs.COMPARED}


@pytest.mark.parametrize(
    ("scope", "field"),
    [
        ("tag", "scope"),
        ({"tags": "exp"}, "tags"),
        ({"tags": []}, "tags"),
        ({"tags": [""]}, "tags"),
        ({"user": 3}, "user"),
        ({"user": "x" * 201}, "user"),
        ({"colour": "red"}, "colour"),
    ],
)
def test_bad_scopes_name_their_field(scope, field):
    with pytest.raises(rs.ScopeError) as err:
        rs.validate_scope(scope)
    assert err.value.field == field


def test_scope_normalised():
    assert rs.validate_scope(None) is None and rs.validate_scope({}) is None
    assert rs.validate_scope({"tags": ["b", "a", "a"], "model": "m", "user": None}) == {
        "tags": ["a", "b"],
        "model": "m",
    }
