"""The Compare report (pure): two samples of requests in, one verdict per metric out.

A ``Sample`` is what ``compare_api`` read for one side: exact values from stored spans
when there are any, otherwise cumulative histogram buckets from the scraped metrics (the
proxy's ``tokentail_*_bucket`` series). ``report`` picks the test each metric's data fits
(see ``compare``): Mann–Whitney U on exact values, the same test on bucket counts when only
buckets exist for either side, the two-proportion z-test for the error rate; and ECDF points
for the overlaid plots.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from . import compare as st

SPANS, BUCKETS = "spans", "buckets"

# metric -> (label, span column, bucket role, scale from bucket unit to the span unit,
#            the statistic the summary reports, higher is better (None: neither))
METRICS: dict[str, tuple[str, str, str | None, float, str, bool | None]] = {
    "ttft_ms": ("TTFT", "ttft_ms", "ttft", 1000.0, "p95", False),
    "latency_ms": ("latency", "latency_ms", "latency", 1000.0, "p95", False),
    "output_tps": ("output tokens/s", "output_tps", "tps", 1.0, "p50", True),
    "output_tokens": ("output tokens", "output_tokens", None, 1.0, "p50", None),
    "input_tokens": ("input tokens", "input_tokens", None, 1.0, "p50", None),
    "cost_usd": ("cost per request", "cost_usd", None, 1.0, "mean", False),
}
ECDF_POINTS = 200


@dataclass
class Sample:
    label: str
    source: str = SPANS
    requests: int = 0
    errors: int = 0
    values: dict[str, list[float]] = field(default_factory=dict)  # span column -> exact values
    buckets: dict[str, list[tuple[float, float]]] = field(default_factory=dict)  # role -> cumulative (le, count)
    tokens: dict[str, float] = field(default_factory=dict)  # bucket source: input/output token totals
    sampled: bool = False  # the values are the newest of more requests (counts stay exact)


def _finite(x: float) -> float | None:
    return x if math.isfinite(x) else None


def ecdf(values: Sequence[float], points: int = ECDF_POINTS) -> list[tuple[float, float]]:
    """(x, fraction ≤ x) at up to ``points`` evenly spaced ranks: enough for a plot, bounded."""
    xs = sorted(values)
    n = len(xs)
    if n == 0:
        return []
    m = min(n, points)
    idx = sorted({round(i * (n - 1) / max(1, m - 1)) for i in range(m)})
    return [(xs[i], (i + 1) / n) for i in idx]


def bucket_ecdf(cumulative: Sequence[tuple[float, float]], scale: float) -> list[tuple[float, float]]:
    total = max((c for _, c in cumulative), default=0.0)
    if total <= 0:
        return []
    return [(le * scale, c / total) for le, c in sorted(cumulative) if math.isfinite(le)]


def _describe_values(values: list[float]) -> dict[str, Any]:
    xs = sorted(values)  # once, for every quantile and the ECDF
    return {
        "n": len(xs),
        "p50": _finite(st.sorted_quantile(xs, 0.5)) if xs else None,
        "p95": _finite(st.sorted_quantile(xs, 0.95)) if xs else None,
        "p99": _finite(st.sorted_quantile(xs, 0.99)) if xs else None,
        "mean": math.fsum(xs) / len(xs) if xs else None,
        "ecdf": ecdf(xs),
    }


def _describe_buckets(cum: list[tuple[float, float]], scale: float) -> dict[str, Any]:
    n = max((c for _, c in cum), default=0.0)

    def q(p: float) -> float | None:
        return _finite(st.bucket_quantile(cum, p) * scale) if n > 0 else None

    return {
        "n": int(round(n)),
        "p50": q(0.5),
        "p95": q(0.95),
        "p99": q(0.99),
        "mean": None,
        "ecdf": bucket_ecdf(cum, scale),
    }


def _metric(name: str, a: Sample, b: Sample) -> dict[str, Any] | None:
    label, column, role, scale, stat, higher = METRICS[name]
    exact = a.source == SPANS and b.source == SPANS
    if exact:
        xa, xb = a.values.get(column, []), b.values.get(column, [])
        da, db = _describe_values(xa), _describe_values(xb)
        result = st.mann_whitney_samples(xa, xb) if xa and xb else None
    elif role is not None:
        ca, cb = a.buckets.get(role, []), b.buckets.get(role, [])
        da, db = _describe_buckets(ca, scale), _describe_buckets(cb, scale)
        result = _bucket_test(ca, cb) if da["n"] and db["n"] else None
    else:
        return None  # only spans carry per-request tokens and cost
    out = st.verdict(
        label=label,
        stat=stat,
        a=da[stat],
        b=db[stat],
        n_a=da["n"],
        n_b=db["n"],
        result=result,
        higher_is_better=bool(higher),
        b_name=b.label,
    )
    if higher is None and out["verdict"] in ("better", "worse"):
        out["verdict"] = "higher" if (result is not None and result.direction > 0) else "lower"
    out.update(metric=name, label=label, stat=stat, source=SPANS if exact else BUCKETS, sides={"a": da, "b": db})
    return out


def _bucket_test(ca: list[tuple[float, float]], cb: list[tuple[float, float]]) -> st.TestResult | None:
    """Mann–Whitney U on two histograms with the same bounds (a bucket = tied observations)."""
    ba, bb = dict(st.bucket_counts(ca)), dict(st.bucket_counts(cb))
    les = sorted(set(ba) | set(bb))
    groups = [(ba.get(le, 0.0), bb.get(le, 0.0)) for le in les]
    if sum(g[0] for g in groups) <= 0 or sum(g[1] for g in groups) <= 0:
        return None
    return st.mann_whitney(groups)


def bucketize(values: Sequence[float], bounds: Sequence[float], scale: float) -> list[tuple[float, float]]:
    """Exact values (span units) as cumulative buckets on ``bounds`` (bucket units), +Inf included."""
    les = sorted(set(bounds) | {math.inf})
    out = []
    for le in les:
        out.append((le, float(sum(1 for v in values if v / scale <= le))))
    return out


def align(a: Sample, b: Sample) -> tuple[Sample, Sample]:
    """When one side has spans and the other only buckets, bucket the spans on the other's bounds,
    so both go through the same bucket test (comparing exact values with buckets is not a test)."""
    if a.source == b.source:
        return a, b
    spans_side, bucket_side = (a, b) if a.source == SPANS else (b, a)
    converted = Sample(
        spans_side.label, BUCKETS, spans_side.requests, spans_side.errors, dict(spans_side.values), {}, {}
    )
    for _, column, role, scale, _, _ in METRICS.values():
        if role is None or role not in bucket_side.buckets:
            continue
        bounds = [le for le, _ in bucket_side.buckets[role]]
        converted.buckets[role] = bucketize(spans_side.values.get(column, []), bounds, scale)
    return (converted, b) if a is spans_side else (a, converted)


def error_rate(a: Sample, b: Sample) -> dict[str, Any]:
    def side(s: Sample) -> dict[str, Any]:
        ci = st.wilson(s.errors, s.requests)
        rate = s.errors / s.requests if s.requests else None
        return {"n": s.requests, "errors": s.errors, "rate": rate, "ci95": [ci.low, ci.high] if s.requests else None}

    sa, sb = side(a), side(b)
    result = st.two_proportions(a.errors, a.requests, b.errors, b.requests) if a.requests and b.requests else None
    out = st.verdict(
        label="error rate",
        stat="",
        a=sa["rate"],
        b=sb["rate"],
        n_a=a.requests,
        n_b=b.requests,
        result=result,
        higher_is_better=False,
        minimum=st.MIN_REQUESTS,
        b_name=b.label,
    )
    if a.requests and b.requests:
        d = st.newcombe(a.errors, a.requests, b.errors, b.requests)
        out["difference"] = sb["rate"] - sa["rate"]
        out["difference_ci95"] = [d.low, d.high]
        if out["verdict"] != "not_enough_data":
            pts = (sb["rate"] - sa["rate"]) * 100
            out["summary"] = f"{b.label} error rate {pts:+.1f} points" + (
                "" if out["significant"] else " (within noise)"
            )
    out.update(metric="error_rate", label="error rate", stat="rate", source=a.source, sides={"a": sa, "b": sb})
    return out


def report(a: Sample, b: Sample) -> dict[str, Any]:
    """Every metric for A against B: ``{"a", "b", "metrics": [...], "minimum_sample"}``."""
    a2, b2 = align(a, b)
    metrics = [error_rate(a, b)]
    for name in METRICS:
        m = _metric(name, a2, b2)
        if m is not None:
            metrics.append(m)
    return {
        "a": {
            "label": a.label,
            "source": a.source,
            "requests": a.requests,
            "errors": a.errors,
            "tokens": a.tokens,
            "sampled": a.sampled,
        },
        "b": {
            "label": b.label,
            "source": b.source,
            "requests": b.requests,
            "errors": b.errors,
            "tokens": b.tokens,
            "sampled": b.sampled,
        },
        "source": SPANS if a2.source == b2.source == SPANS else BUCKETS,
        "minimum_sample": st.MIN_SAMPLE,
        "minimum_requests": st.MIN_REQUESTS,
        "alpha": st.ALPHA,
        "metrics": metrics,
    }
