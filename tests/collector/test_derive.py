"""derive.py: increases across counter resets, and histogram_quantile as Prometheus computes it."""

from __future__ import annotations

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.helpers.fakes import ProxyMetrics
from tokentail.collector.derive import Deriver, counter_increase, histogram_quantile
from tokentail.collector.parse import parse_exposition


def _values(derived, name):
    return {labels: v for n, labels, _, v in derived.values if n == name}


def test_counter_increase():
    assert counter_increase(None, 5) == 5
    assert counter_increase(3, 10) == 7
    assert counter_increase(10, 4) == 4  # reset: counted up from zero again
    assert counter_increase(10, 10) == 0


def test_first_scrape_is_a_baseline_then_increases():
    m = ProxyMetrics()
    for _ in range(100):
        m.request()
    d = Deriver()
    first = d.observe("t", parse_exposition(m.exposition().decode()), 100.0)
    assert first.interval is None
    assert not _values(first, "tokentail_requests_total")  # no spike from history we did not see
    m.request()
    m.request()
    second = d.observe("t", parse_exposition(m.exposition().decode()), 105.0)
    assert second.interval == 5.0
    assert sum(_values(second, "tokentail_requests_total").values()) == 2
    assert sum(_values(second, "tokentail_tokens_total").values()) == 2 * (10 + 20)


def test_counter_reset_across_a_proxy_restart_never_goes_negative():
    m = ProxyMetrics()
    for _ in range(10):
        m.request()
    d = Deriver()
    d.observe("t", parse_exposition(m.exposition().decode()), 0.0)
    m = ProxyMetrics()  # the proxy restarted: a fresh registry, counters from zero
    for _ in range(3):
        m.request(duration=5.0)
    out = d.observe("t", parse_exposition(m.exposition().decode()), 5.0)
    assert out.reset
    assert sum(_values(out, "tokentail_requests_total").values()) == 3
    assert all(v >= 0 for _, _, _, v in out.values)
    inf = [
        v
        for (n, labels, _, v) in out.values
        if n.endswith("_bucket") and ("le", "+Inf") in labels and n.startswith("tokentail_request_duration")
    ]
    assert inf == [3.0]


def test_reset_detected_by_created_even_when_value_grew():
    """A restart followed by more traffic than before: the value went up, _created says reset."""
    text = 'tokentail_requests_total{{m="a"}} {v}\ntokentail_requests_created{{m="a"}} {c}\n'
    head = "# TYPE tokentail_requests_total counter\n# TYPE tokentail_requests_created gauge\n"
    d = Deriver()
    d.observe("t", parse_exposition(head + text.format(v=5, c=1000.0)), 0.0)
    out = d.observe("t", parse_exposition(head + text.format(v=9, c=2000.0)), 5.0)
    assert _values(out, "tokentail_requests_total") == {(("m", "a"),): 9.0}


def test_reset_detected_by_process_start_time():
    body = (
        "# TYPE process_start_time_seconds gauge\nprocess_start_time_seconds {p}\n"
        "# TYPE tokentail_requests_total counter\ntokentail_requests_total 7\n"
    )
    d = Deriver()
    d.observe("t", parse_exposition(body.format(p=1.0)), 0.0)
    same = d.observe("t", parse_exposition(body.format(p=1.0)), 5.0)
    assert _values(same, "tokentail_requests_total") == {(): 0.0}
    restarted = d.observe("t", parse_exposition(body.format(p=2.0)), 10.0)
    assert _values(restarted, "tokentail_requests_total") == {(): 7.0}


def test_histogram_resets_as_a_whole():
    """One bucket dropping means the whole histogram restarted, even buckets that grew."""
    tpl = (
        "# TYPE tokentail_request_duration_seconds histogram\n"
        'tokentail_request_duration_seconds_bucket{{le="1"}} {a}\n'
        'tokentail_request_duration_seconds_bucket{{le="+Inf"}} {b}\n'
        "tokentail_request_duration_seconds_count {b}\ntokentail_request_duration_seconds_sum {s}\n"
    )
    d = Deriver()
    d.observe("t", parse_exposition(tpl.format(a=5, b=6, s=3)), 0.0)
    out = d.observe("t", parse_exposition(tpl.format(a=1, b=8, s=20)), 5.0)  # le=1 dropped: restart
    got = {dict(lab).get("le", n): v for n, lab, _, v in out.values}
    assert got["1"] == 1 and got["+Inf"] == 8 and got["tokentail_request_duration_seconds_sum"] == 20


def test_new_series_on_a_known_target_counts_from_zero_and_vanished_series_are_forgotten():
    d = Deriver()
    t = "# TYPE tokentail_requests_total counter\n"
    d.observe("t", parse_exposition(t + 'tokentail_requests_total{m="a"} 1\n'), 0.0)
    out = d.observe(
        "t", parse_exposition(t + 'tokentail_requests_total{m="a"} 1\ntokentail_requests_total{m="b"} 4\n'), 5.0
    )
    assert _values(out, "tokentail_requests_total") == {(("m", "a"),): 0.0, (("m", "b"),): 4.0}
    d.observe("t", parse_exposition(t + 'tokentail_requests_total{m="a"} 1\n'), 10.0)
    back = d.observe(
        "t", parse_exposition(t + 'tokentail_requests_total{m="a"} 1\ntokentail_requests_total{m="b"} 2\n'), 15.0
    )
    assert _values(back, "tokentail_requests_total")[(("m", "b"),)] == 2.0


def test_targets_are_independent():
    d = Deriver()
    t = "# TYPE tokentail_requests_total counter\ntokentail_requests_total {v}\n"
    d.observe("a", parse_exposition(t.format(v=10)), 0.0)
    out_b = d.observe("b", parse_exposition(t.format(v=3)), 0.0)
    assert out_b.interval is None
    out_a = d.observe("a", parse_exposition(t.format(v=12)), 5.0)
    assert _values(out_a, "tokentail_requests_total") == {(): 2.0}


# --- histogram_quantile: hand-computed values ------------------------------------------

B = [(0.1, 10.0), (0.5, 30.0), (1.0, 40.0), (math.inf, 50.0)]


@pytest.mark.parametrize(
    "q, expected",
    [
        (0.0, 0.0),  # rank 0 lands in the first bucket: interpolated from 0
        (0.1, 0.05),  # rank 5 of 10 in (0, 0.1]
        (0.2, 0.1),  # rank 10: top of the first bucket
        (0.5, 0.1 + 0.4 * (15 / 20)),  # rank 25: 15 of 20 into (0.1, 0.5]
        (0.7, 0.5 + 0.5 * (5 / 10)),  # rank 35: 5 of 10 into (0.5, 1]
        (0.8, 1.0),  # rank 40 exactly at the top of (0.5, 1]
        (0.95, 1.0),  # rank 47.5 in +Inf: the highest finite bound
        (1.0, 1.0),
    ],
)
def test_quantile_hand_computed(q, expected):
    assert histogram_quantile(q, B) == pytest.approx(expected, rel=1e-12)


def test_quantile_special_cases():
    assert math.isnan(histogram_quantile(0.5, [(0.1, 1.0), (1.0, 2.0)]))  # no +Inf bucket
    assert math.isnan(histogram_quantile(0.5, [(math.inf, 5.0)]))  # fewer than two buckets
    assert math.isnan(histogram_quantile(0.5, [(1.0, 0.0), (math.inf, 0.0)]))  # no observations
    assert math.isnan(histogram_quantile(0.5, []))
    assert math.isnan(histogram_quantile(math.nan, B))
    assert histogram_quantile(-0.1, B) == -math.inf
    assert histogram_quantile(1.1, B) == math.inf
    # q=0 with an empty first bucket: Prometheus computes 0/0, which is NaN.
    assert math.isnan(histogram_quantile(0.0, [(0.01, 0.0), (0.02, 1.0), (math.inf, 1.0)]))
    # Lowest bound <= 0: returned as is when the rank falls in the first bucket.
    assert histogram_quantile(0.1, [(-1.0, 5.0), (1.0, 10.0), (math.inf, 10.0)]) == -1.0
    # Unordered input, duplicate bounds merged (summed), non-monotonic counts forced monotonic.
    assert histogram_quantile(0.5, [(math.inf, 10.0), (1.0, 2.0), (1.0, 2.0), (0.5, 1.0)]) == histogram_quantile(
        0.5, [(0.5, 1.0), (1.0, 4.0), (math.inf, 10.0)]
    )
    assert histogram_quantile(0.5, [(0.5, 6.0), (1.0, 4.0), (math.inf, 10.0)]) == histogram_quantile(
        0.5, [(0.5, 6.0), (1.0, 6.0), (math.inf, 10.0)]
    )


@settings(max_examples=200, deadline=None)
@given(st.lists(st.integers(0, 50), min_size=1, max_size=12), st.floats(1e-9, 1), st.floats(1e-9, 1))
def test_quantile_properties(increments, q1, q2):
    bounds = [0.01 * 2**i for i in range(len(increments))]
    cum, buckets = 0, []
    for le, inc in zip(bounds, increments):
        cum += inc
        buckets.append((le, float(cum)))
    buckets.append((math.inf, float(cum)))
    a, b = histogram_quantile(min(q1, q2), buckets), histogram_quantile(max(q1, q2), buckets)
    if cum == 0:
        assert math.isnan(a)
        return
    assert 0.0 <= a <= b <= bounds[-1]  # monotonic in q, within the finite bounds
