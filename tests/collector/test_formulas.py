"""formulas.py: which series plays which role, and the values computed from summed increases."""

from __future__ import annotations

import math

import pytest

from tokentail.collector.formulas import INTERVAL, KNOWN_BUCKETS, UP, Agg, compute, counts, role_of, usable_bounds
from tokentail.proxy import metrics as proxy_metrics


@pytest.mark.parametrize(
    "name, labels, role",
    [
        ("tokentail_requests_total", {"status_class": "2xx"}, "req_other"),
        ("tokentail_requests_total", {"status_class": "4xx"}, "req_error"),
        ("tokentail_requests_total", {"status_class": "5xx"}, "req_error"),
        ("tokentail_requests_total", {"status_class": "upstream_error"}, "req_error"),
        ("tokentail_requests_total", {"status_class": "cancelled"}, "req_cancelled"),
        ("tokentail_tokens_total", {"type": "input"}, "tokens_in"),
        ("tokentail_tokens_total", {"type": "output"}, "tokens_out"),
        ("tokentail_tokens_total", {"type": "weird"}, None),
        ("tokentail_cached_input_tokens_total", {}, "tokens_cached"),
        ("tokentail_request_duration_seconds_bucket", {"le": "1.0"}, "latency"),
        ("tokentail_request_duration_seconds_sum", {}, None),
        ("tokentail_time_to_first_token_seconds_bucket", {"le": "1.0"}, "ttft"),
        ("tokentail_output_tokens_per_second_bucket", {"le": "1.0"}, "tps"),
        ("tokentail_output_tokens_per_second_sum", {}, "tps_sum"),
        ("tokentail_output_tokens_per_second_count", {}, "tps_count"),
        ("tokentail_in_flight_requests", {}, "in_flight"),
        ("tokentail_upstream_errors_total", {"reason": "connect"}, None),
        (UP, {}, "up"),
        (INTERVAL, {}, "interval"),
    ],
)
def test_roles(name, labels, role):
    assert role_of(name, labels) == role


def test_compute_rates_ratios_and_quantiles():
    a = Agg()
    a.add("req_other", 6)
    a.add("req_error", 3)
    a.add("req_cancelled", 1)
    a.add("tokens_in", 100)
    a.add("tokens_out", 50)
    a.add("tps_sum", 90.0)
    a.add("tps_count", 3)
    for le, c in ((0.1, 2), (1.0, 8), (math.inf, 10)):
        a.add("latency", c, le)
    v = compute(a, coverage=5.0, in_flight=2.0, up=1.0)
    assert v["request_rate"] == 2.0 and v["input_tokens_rate"] == 20.0 and v["output_tokens_rate"] == 10.0
    assert v["error_rate"] == 0.3 and v["cancel_rate"] == 0.1
    assert v["output_tps"] == 30.0
    assert v["latency_p50_ms"] == pytest.approx((0.1 + 0.9 * 3 / 6) * 1000)
    assert v["ttft_p50_ms"] is None  # no TTFT observations: null, not 0
    assert v["in_flight"] == 2.0 and v["up"] == 1.0
    assert counts(a)["requests"] == 10 and counts(a)["errors"] == 3


def test_no_coverage_means_null_rates_and_no_requests_null_ratios():
    v = compute(Agg(), coverage=None)
    assert v["request_rate"] is None and v["error_rate"] is None and v["output_tps"] is None
    idle = compute(Agg(), coverage=5.0)
    assert idle["request_rate"] == 0.0 and idle["error_rate"] is None


def test_agg_merge_sums_buckets_by_bound():
    a, b = Agg(), Agg()
    a.add("latency", 1, 0.5)
    b.add("latency", 2, 0.5)
    b.add("latency", 4, math.inf)
    b.add("req_other", 4)
    a.merge(b)
    assert a.buckets["latency"] == {0.5: 3, math.inf: 4} and a.sums["req_other"] == 4


# --- bucket sets of mixed proxy versions ---------------------------------------------------


OLD = set(proxy_metrics.GENAI_DURATION_BUCKETS) | {math.inf}
NEW = set(proxy_metrics.TOKENTAIL_DURATION_BUCKETS) | {math.inf}


def test_known_bucket_sets_are_the_proxys():
    assert KNOWN_BUCKETS["latency"] == (proxy_metrics.GENAI_DURATION_BUCKETS, proxy_metrics.TOKENTAIL_DURATION_BUCKETS)
    assert KNOWN_BUCKETS["tps"] == (proxy_metrics.TPS_BUCKETS,)
    assert OLD <= NEW  # the fine set refines the GenAI one: a mixed fleet sums on the old bounds


def test_usable_bounds_of_old_new_and_mixed_fleets():
    seen_old = {0.32, 0.64, math.inf}  # only what had increases is stored
    seen_new = {0.226, 0.32, 0.453, math.inf}
    assert usable_bounds("latency", [seen_old]) == OLD
    assert usable_bounds("latency", [seen_new]) == NEW
    assert usable_bounds("latency", [seen_new, {120.0, math.inf}]) == NEW
    assert usable_bounds("ttft", [seen_old, seen_new]) == OLD
    assert usable_bounds("latency", [{0.5, 1.0, math.inf}, {0.5, 2.0, math.inf}]) == {0.5, math.inf}  # unknown sets
    assert usable_bounds("latency", []) == set()
