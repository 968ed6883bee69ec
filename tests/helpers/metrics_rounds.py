"""Scraped rounds of a proxy's metrics, hand-computed, for the collector's query tests."""

from __future__ import annotations

from typing import Any

from tokentail.collector.formulas import INTERVAL, UP

__all__ = ["EXPECTED", "LAT", "ROUND_BUCKETS", "T0", "fill", "round_points"]

LAT = "tokentail_request_duration_seconds_bucket"
T0 = 1_700_006_400.0  # a multiple of 3600: buckets line up in every range
# Per 5s round: cumulative latency bucket increases (1 obs <= 0.1, 2 in (0.1, 0.5], 1 in (0.5, 1],
# 1 in (1, 2]) and 5 requests (3 ok, 1 error, 1 cancelled).
ROUND_BUCKETS = {"0.1": 1, "0.5": 3, "1.0": 4, "2.0": 5, "+Inf": 5}
# Over any whole number of rounds, ranks scale with the counts, so the quantiles are
#   p50: rank 0.5*5n in (0.1, 0.5]: 0.1 + 0.4 * (2.5 - 1) / 2 = 0.4 s
#   p95: rank 4.75n in (1, 2]: 1 + 1 * (4.75 - 4) / 1 = 1.75 s
#   p99: 1 + (4.95 - 4) = 1.95 s
EXPECTED = {"latency_p50_ms": 400.0, "latency_p95_ms": 1750.0, "latency_p99_ms": 1950.0}


def round_points(variant="production", target="http://a/metrics", model="gpt-4o", scale=1, in_flight=2.0):
    pts = [
        (variant, target, UP, (), "gauge", 1.0),
        (variant, target, INTERVAL, (), "counter", 5.0),
        (variant, target, "tokentail_in_flight_requests", (), "gauge", in_flight),
    ]
    for sc, n in (("2xx", 3), ("5xx", 1), ("cancelled", 1)):
        pts.append(
            (
                variant,
                target,
                "tokentail_requests_total",
                (("endpoint", "/chat/completions"), ("model", model), ("status_class", sc), ("stream", "true")),
                "counter",
                float(n * scale),
            )
        )
    for le, c in ROUND_BUCKETS.items():
        pts.append(
            (
                variant,
                target,
                LAT,
                (("endpoint", "/chat/completions"), ("le", le), ("model", model)),
                "counter",
                float(c * scale),
            )
        )
    pts.append(
        (variant, target, "tokentail_tokens_total", (("model", model), ("type", "output")), "counter", 20.0 * scale)
    )
    return pts


def fill(store: Any, start: float, end: float, *rounds: Any) -> None:
    """The same rounds every 5 s from ``start`` to ``end``: the first through the store, the
    rest copied in SQL (hours of rounds one by one would make the test slow)."""
    for r in rounds:
        store.append_metrics(start, r)
    n = int((end - start) // 5)
    store._con.execute(
        "INSERT INTO metrics_5s SELECT ts + 5 * r, series_id, value FROM metrics_5s, "
        "range(1, ?) t(r) WHERE ts = ? ORDER BY 1",
        [n, start],
    )
