"""What each value of ``/api/metrics`` is, computed from summed increases (pure).

A stored series plays at most one *role* (``role_of``): requests by outcome, token
counts, the buckets of the latency / TTFT / TPS histograms, the in-flight gauge,
and two series the collector writes itself per target: ``up`` and ``interval``
(seconds covered by the scrape). An ``Agg`` sums the rows of one time bucket and
one group (a variant or a model) by role; ``compute`` turns it into the API's
values. Rates divide by the seconds actually covered, so a bucket where a target
was just (re)discovered, or the current half-filled bucket, is not understated.
The query API and the live snapshots (SSE, /api/status) share this code.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from .derive import histogram_quantiles, sorted_histogram_quantiles

# Sample names of the series the collector writes itself, per target.
UP = "tokentail_collector_up"  # gauge: 1 scrape ok, 0 failed (1m: availability)
INTERVAL = "tokentail_collector_interval_seconds"  # delta: seconds covered by the increases

ERROR_CLASSES = frozenset({"4xx", "5xx", "upstream_error"})
CANCELLED_CLASS = "cancelled"

# Histogram bucket roles: role -> sample name.
BUCKET_ROLES = {
    "latency": "tokentail_request_duration_seconds_bucket",
    "ttft": "tokentail_time_to_first_token_seconds_bucket",
    "tps": "tokentail_output_tokens_per_second_bucket",
}
_BUCKET_BY_NAME = {v: k for k, v in BUCKET_ROLES.items()}
_SIMPLE = {
    "tokentail_cached_input_tokens_total": "tokens_cached",
    "tokentail_output_tokens_per_second_sum": "tps_sum",
    "tokentail_output_tokens_per_second_count": "tps_count",
    "tokentail_in_flight_requests": "in_flight",
    UP: "up",
    INTERVAL: "interval",
}
GAUGE_ROLES = frozenset({"in_flight", "up"})
ALL_ROLES = frozenset(
    {"req_error", "req_cancelled", "req_other", "tokens_in", "tokens_out", *BUCKET_ROLES, *_SIMPLE.values()}
)
# Roles that are not per model: in a by=model query they are read across all targets.
UNMODELLED_ROLES = frozenset({"in_flight", "up", "interval"})

# Values of /api/metrics, in order, with units (the dashboard labels axes from these).
UNITS = {
    "request_rate": "req/s",
    "input_tokens_rate": "tokens/s",
    "output_tokens_rate": "tokens/s",
    "cached_input_tokens_rate": "tokens/s",
    "latency_p50_ms": "ms",
    "latency_p95_ms": "ms",
    "latency_p99_ms": "ms",
    "ttft_p50_ms": "ms",
    "ttft_p95_ms": "ms",
    "output_tps": "tokens/s",
    "output_tps_p50": "tokens/s",
    "error_rate": "ratio",
    "cancel_rate": "ratio",
    "in_flight": "requests",
    "up": "ratio",
}
METRICS = tuple(UNITS)


# The bucket sets tokentail proxies have shipped, per histogram role, each a superset of
# the one before (copied from proxy/metrics.py: the collector reads proxies of any version;
# a test checks they match). See ``usable_bounds``.
_GENAI_DURATION = (0.01, 0.02, 0.04, 0.08, 0.16, 0.32, 0.64, 1.28, 2.56, 5.12, 10.24, 20.48, 40.96, 81.92)
_FINE_DURATION = (
    0.01, 0.0141, 0.02, 0.0283, 0.04, 0.0566, 0.08, 0.113, 0.16, 0.226, 0.32, 0.453, 0.64, 0.905,
    1.28, 1.81, 2.56, 3.62, 5.12, 7.24, 10.24, 14.48, 20.48, 28.96, 40.96, 57.93, 81.92, 120.0,
)  # fmt: skip
KNOWN_BUCKETS: dict[str, tuple[tuple[float, ...], ...]] = {
    "latency": (_GENAI_DURATION, _FINE_DURATION),
    "ttft": (_GENAI_DURATION, _FINE_DURATION),
    "tps": ((1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000),),
}


def usable_bounds(role: str, seen: Iterable[set[float]]) -> set[float]:
    """The bucket bounds on which the histograms of several targets can be summed.

    ``seen``: per target, the bounds stored for ``role`` (a bucket whose increase was always
    zero is never stored, but a stored bound implies every higher bound of its set is stored
    too). A target's full set is the smallest known set holding what it showed (its own
    bounds when none does); the result is the intersection over targets. A fleet that mixes
    proxies with the GenAI buckets and the finer ones is summed on the GenAI bounds (exact
    counts, coarser); an all-new fleet keeps the fine ones. Summing on a bound one target
    lacks would count that target's observations below it as zero."""
    inf = math.inf
    out: set[float] | None = None
    for bounds in seen:
        full = set(bounds)
        for known in KNOWN_BUCKETS.get(role, ()):
            candidate = {float(b) for b in known} | {inf}
            if full <= candidate:
                full = candidate
                break
        out = full if out is None else out & full
    return out or set()


def role_of(name: str, labels: dict[str, str]) -> str | None:
    """The role a stored series plays in /api/metrics, or None when it plays none."""
    if name == "tokentail_requests_total":
        sc = labels.get("status_class", "")
        if sc in ERROR_CLASSES:
            return "req_error"
        return "req_cancelled" if sc == CANCELLED_CLASS else "req_other"
    if name == "tokentail_tokens_total":
        return {"input": "tokens_in", "output": "tokens_out"}.get(labels.get("type", ""))
    if name in _BUCKET_BY_NAME:
        return _BUCKET_BY_NAME[name]
    return _SIMPLE.get(name)


@dataclass(slots=True)
class Agg:
    """Summed values of one (time bucket, group), by role; histogram buckets by bound."""

    sums: dict[str, float] = field(default_factory=dict)
    buckets: dict[str, dict[float, float]] = field(default_factory=dict)

    def add(self, role: str, value: float, le: float | None = None) -> None:
        if le is None:
            self.sums[role] = self.sums.get(role, 0.0) + value
        else:
            b = self.buckets.get(role)
            if b is None:
                b = self.buckets[role] = {}
            b[le] = b.get(le, 0.0) + value

    def merge(self, other: Agg) -> None:
        for role, v in other.sums.items():
            self.sums[role] = self.sums.get(role, 0.0) + v
        for role, bs in other.buckets.items():
            for le, v in bs.items():
                self.add(role, v, le)


def _finite(x: float | None, scale: float = 1.0) -> float | None:
    if x is None or math.isnan(x) or math.isinf(x):
        return None
    return x * scale


def quantiles(
    agg: Agg, role: str, qs: tuple[float, ...], scale: float = 1.0, bounds: Mapping[str, list[float]] | None = None
) -> list[float | None]:
    """``histogram_quantile`` of ``role``'s summed buckets for each q (None when undefined).

    ``bounds``: every bound of the role's buckets in the group, ascending. Zero increases
    are not stored, so a bucket below the observations may be missing from ``agg``;
    without it the interpolation would start from the wrong lower bound. (Cumulative
    buckets only grow with le: a bucket missing below a present one had no increase.)
    """
    bs = agg.buckets.get(role)
    if not bs:
        return [None] * len(qs)
    les = bounds.get(role) if bounds else None
    if les is not None and bs.keys() <= set(les):
        values = sorted_histogram_quantiles(qs, les, [bs.get(le, 0.0) for le in les])
    else:
        values = histogram_quantiles(qs, bs.items())
    return [_finite(v, scale) for v in values]


def compute(
    agg: Agg,
    *,
    coverage: float | None,
    in_flight: float | None = None,
    up: float | None = None,
    bounds: Mapping[str, list[float]] | None = None,
) -> dict[str, Any]:
    """The /api/metrics values of one bucket and group.

    ``coverage``: seconds the summed increases cover (None or 0: no data, rates are
    null). ``in_flight`` and ``up`` are given apart because how gauges combine
    (mean over time, sum over targets) depends on where they come from. ``bounds``:
    every bucket bound of each histogram role in the group, ascending (see ``quantiles``).
    """
    s = agg.sums
    b = bounds
    covered = coverage is not None and coverage > 0
    errors, cancelled = s.get("req_error", 0.0), s.get("req_cancelled", 0.0)
    total = errors + cancelled + s.get("req_other", 0.0)

    def rate(v: float) -> float | None:
        return v / coverage if covered and coverage is not None else None

    tps_count = s.get("tps_count", 0.0)
    lat = quantiles(agg, "latency", (0.5, 0.95, 0.99), 1000.0, b)
    ttft = quantiles(agg, "ttft", (0.5, 0.95), 1000.0, b)
    values = {
        "request_rate": rate(total),
        "input_tokens_rate": rate(s.get("tokens_in", 0.0)),
        "output_tokens_rate": rate(s.get("tokens_out", 0.0)),
        "cached_input_tokens_rate": rate(s.get("tokens_cached", 0.0)),
        "latency_p50_ms": lat[0],
        "latency_p95_ms": lat[1],
        "latency_p99_ms": lat[2],
        "ttft_p50_ms": ttft[0],
        "ttft_p95_ms": ttft[1],
        "output_tps": s.get("tps_sum", 0.0) / tps_count if tps_count > 0 else None,
        "output_tps_p50": quantiles(agg, "tps", (0.5,), 1.0, b)[0],
        "error_rate": errors / total if total > 0 else None,
        "cancel_rate": cancelled / total if total > 0 else None,
        "in_flight": _finite(in_flight),
        "up": _finite(up),
    }
    return {k: None if v is None else round(v, 4) for k, v in values.items()}  # no float noise in JSON


def counts(agg: Agg) -> dict[str, Any]:
    """Absolute counts behind the rates (for summaries): requests, errors, tokens."""
    s = agg.sums
    return {
        "requests": s.get("req_error", 0.0) + s.get("req_cancelled", 0.0) + s.get("req_other", 0.0),
        "errors": s.get("req_error", 0.0),
        "cancelled": s.get("req_cancelled", 0.0),
        "input_tokens": s.get("tokens_in", 0.0),
        "output_tokens": s.get("tokens_out", 0.0),
        "cached_input_tokens": s.get("tokens_cached", 0.0),
    }
