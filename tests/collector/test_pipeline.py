"""pipeline.py: one round's parse-and-derive step, and the live window behind 'current' values."""

from __future__ import annotations

import pytest

from tests.helpers.fakes import ProxyMetrics, make_config
from tokentail.collector.config import parse_target
from tokentail.collector.events import Broadcaster
from tokentail.collector.formulas import INTERVAL, UP
from tokentail.collector.pipeline import Collector, LiveWindow, _VariantRound
from tokentail.collector.scrape import FetchResult


class NoStore:
    """_derive never touches the store."""


@pytest.fixture
def collector(tmp_path):
    cfg = make_config(tmp_path, ["production=http://a:1", "canary=http://b:2"])
    return Collector(cfg, NoStore(), Broadcaster())


def _res(target, text=None, error=None):
    return FetchResult(parse_target(target), text=text, error=error)


def test_derive_step_points_and_live_parts(collector):
    m = ProxyMetrics()
    m.in_flight.set(4)
    first, _, _ = collector._derive(
        100.0, [_res("production=http://a:1", m.exposition().decode()), _res("canary=http://b:2", error="HTTP 500")]
    )
    names = {(p[0], p[2]) for p in first}
    assert ("production", UP) in names and ("canary", UP) in names
    assert ("production", INTERVAL) not in names  # a baseline covers no time yet
    m.request()
    m.request(status="5xx")
    points, outcomes, parts = collector._derive(
        105.0, [_res("production=http://a:1", m.exposition().decode()), _res("canary=http://b:2", "")]
    )
    assert [o[1] for o in outcomes] == [None, "empty response"]
    assert ("production", "http://a:1/metrics", INTERVAL, (), "counter", 5.0) in points
    assert ("canary", "http://b:2/metrics", UP, (), "gauge", 0.0) in points
    prod = parts["production"]
    assert prod.up == 1 and prod.targets == 1 and prod.interval == 5.0 and prod.in_flight == 4.0
    assert prod.agg.sums["req_other"] == 1 and prod.agg.sums["req_error"] == 1
    assert parts["canary"].up == 0


def test_series_cap_per_target(tmp_path):
    cfg = make_config(tmp_path, ["production=http://a:1"], max_series_per_target=50)
    collector = Collector(cfg, NoStore(), Broadcaster())
    m = ProxyMetrics()
    for i in range(20):
        m.request(f"model-{i}")
    _points, outcomes, _ = collector._derive(100.0, [_res("production=http://a:1", m.exposition().decode())])
    assert outcomes[0][3] == 50  # samples kept from this target


def test_live_window_sums_the_last_minute_and_keeps_the_latest_gauges():
    w = LiveWindow(60.0)
    for ts in range(0, 100, 5):
        part = _VariantRound(interval=5.0, in_flight=float(ts), up=1, targets=2)
        part.agg.add("req_other", 10.0)
        w.add(float(ts), {"production": part})
    cur = w.current()["production"]
    assert cur["current"]["request_rate"] == 2.0  # 12 rounds x 10 requests over 60 s
    assert cur["counts"]["requests"] == 120
    assert cur["current"]["in_flight"] == 95.0 and cur["current"]["up"] == 0.5
    assert cur["up"] is True and cur["targets_up"] == 1 and cur["targets"] == 2


def test_live_window_percentiles_interpolate_from_the_real_lower_bound():
    w = LiveWindow(60.0)
    part = _VariantRound(interval=5.0, up=1, targets=1)
    for le in (0.32, 0.64, 1.28, 2.56, 5.12, 10.24, 20.48, 40.96, 81.92, float("inf")):
        part.agg.add("ttft", 10.0, le)  # ten TTFTs of ~200 ms; lower buckets had no increase, so none stored
    w.add(0.0, {"production": part})
    assert w.current()["production"]["current"]["ttft_p50_ms"] == 240.0  # in (160, 320], not from 0
