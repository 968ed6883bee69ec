"""parse.py: real prometheus_client output and literal text -> stored samples."""

from __future__ import annotations

import pytest
from prometheus_client import CollectorRegistry, Counter, generate_latest
from prometheus_client.openmetrics.exposition import generate_latest as generate_openmetrics

from tests.helpers.fakes import ProxyMetrics
from tokentail.collector.parse import COUNTER, GAUGE, ParseError, parse_exposition


def _by_name(exp):
    out = {}
    for s in exp.samples:
        out.setdefault(s.name, []).append(s)
    return out


def test_real_proxy_exposition_kinds_and_filter():
    m = ProxyMetrics()
    m.request("gpt-4o", duration=0.3, tokens_in=7, tokens_out=11)
    m.in_flight.set(3)
    exp = parse_exposition(m.exposition().decode())
    names = _by_name(exp)
    assert names["tokentail_requests_total"][0].value == 1.0
    assert names["tokentail_requests_total"][0].kind == COUNTER
    assert dict(names["tokentail_requests_total"][0].labels) == {
        "model": "gpt-4o",
        "endpoint": "/chat/completions",
        "status_class": "2xx",
        "stream": "true",
    }
    assert names["tokentail_in_flight_requests"][0].kind == GAUGE
    assert names["tokentail_in_flight_requests"][0].value == 3.0
    buckets = names["tokentail_request_duration_seconds_bucket"]
    assert {s.kind for s in buckets} == {COUNTER}
    assert len(buckets) == 15  # 14 bounds + +Inf
    assert all(s.group == buckets[0].group for s in buckets)  # a histogram resets as a whole
    assert "le" not in dict(buckets[0].group[1])
    assert names["tokentail_request_duration_seconds_sum"][0].value == pytest.approx(0.3)
    # _created series feed reset detection, they are not stored; gen_ai_* is filtered out.
    assert not any(n.endswith("_created") for n in names)
    assert not any(n.startswith("gen_ai") for n in names)
    assert buckets[0].created is not None and names["tokentail_requests_total"][0].created is not None


def test_literal_text_and_process_start():
    text = """# TYPE process_start_time_seconds gauge
process_start_time_seconds 1.7e9
# TYPE tokentail_requests_total counter
tokentail_requests_total{model="a",status_class="5xx"} 4
# TYPE tokentail_in_flight_requests gauge
tokentail_in_flight_requests NaN
# TYPE tokentail_other untyped
tokentail_other 2
"""
    exp = parse_exposition(text)
    assert exp.process_start == 1.7e9
    assert [(s.name, s.value, s.kind) for s in exp.samples] == [
        ("tokentail_requests_total", 4.0, COUNTER),
        ("tokentail_other", 2.0, GAUGE),
    ]
    assert exp.dropped == 1  # the NaN gauge
    assert exp.samples[0].created is None


def test_openmetrics_created_inline():
    r = CollectorRegistry()
    Counter("tokentail_requests", "r", ["model"], registry=r).labels("m").inc(2)
    exp = parse_exposition(generate_openmetrics(r).decode(), openmetrics=True)
    (s,) = exp.samples
    assert s.name == "tokentail_requests_total" and s.value == 2.0 and s.created is not None


@pytest.mark.parametrize(
    "body",
    [
        "<html><body>Welcome</body></html>",
        '{"status": "ok"}',
        "tokentail_x 1\ntokentail_y garbage here",
        'tokentail_requests_total{model="a" 1',
        "\x00\x01\x02 binary",
    ],
)
def test_garbage_raises_short_parse_error(body):
    with pytest.raises(ParseError) as info:
        parse_exposition(body)
    assert str(info.value).startswith("unparseable exposition:")
    assert "\n" not in str(info.value) and len(str(info.value)) < 200


def test_an_exposition_without_our_series_is_an_error_not_an_empty_success():
    r = CollectorRegistry()
    Counter("node_cpu_seconds", "x", ["cpu"], registry=r).labels("0").inc()
    with pytest.raises(ParseError, match="no tokentail_\\* series"):
        parse_exposition(generate_latest(r).decode())


def test_families_we_never_store_are_skipped_before_parsing():
    """gen_ai_* lines (as many as ours on a real proxy) never reach the parser, even if odd."""
    m = ProxyMetrics()
    m.request()
    text = (
        m.exposition().decode()
        + "# TYPE gen_ai_client_token_usage histogram\n"
        + 'gen_ai_client_token_usage_bucket{le="1.0"} not-even-a-number\n'
    )
    exp = parse_exposition(text)
    assert exp.samples and not any(s.name.startswith("gen_ai") for s in exp.samples)
    om = parse_exposition(generate_openmetrics(m.registry).decode(), openmetrics=True)
    assert {s.name for s in om.samples} == {s.name for s in parse_exposition(m.exposition().decode()).samples}


def test_series_cap_bounds_what_one_target_can_store():
    r = CollectorRegistry()
    c = Counter("tokentail_requests", "r", ["model"], registry=r)
    for i in range(50):
        c.labels(f"m{i}").inc()
    exp = parse_exposition(generate_latest(r).decode(), max_series=20)
    assert len(exp.samples) == 20 and exp.dropped == 30
