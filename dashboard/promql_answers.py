"""Prometheus's answers to ``promql``'s queries as the collector's JSON (pure).

``shape`` gives ``/api/metrics`` (per group: a value per bucket of every metric, and the
range's summary), ``shape_status`` ``/api/status``'s variants, ``scrape_interval_from`` the
interval the samples show. An answer not shaped like Prometheus's HTTP API raises
``PromQLError`` with a short reason; NaN and ±Inf are no value.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Mapping
from typing import Any

from ..collector.formulas import UNITS  # the values of /api/metrics, in order: the same answers
from .promql import (
    CURRENT,
    HISTOGRAM_MEANS,
    QUANTILES,
    TAG,
    UNLABELLED,
    PromQLError,
    Window,
    duration,
)

# Rates summed over time into the summary's counts (requests, errors, tokens, ...).
_COUNTED = {
    "request_rate": "requests",
    "errors_rate": "errors",
    "cancelled_rate": "cancelled",
    "input_tokens_rate": "input_tokens",
    "output_tokens_rate": "output_tokens",
    "cached_input_tokens_rate": "cached_input_tokens",
    "tps_sum_rate": "tps_sum",
    "tps_count_rate": "tps_count",
}
QUANTILE_SOURCE = {"latency": "buckets", "ttft": "buckets", "tps": "buckets"}


def _number(raw: Any) -> float | None:
    """A sample value (Prometheus sends strings; NaN and ±Inf are no value)."""
    try:
        v = float(raw)
    except (TypeError, ValueError):
        raise PromQLError(f"sample value {str(raw)[:40]!r} is not a number") from None
    return v if math.isfinite(v) else None


def _data(answer: Any, kind: str) -> list[dict[str, Any]]:
    """The result list of a successful ``kind`` ("matrix" or "vector") answer."""
    if not isinstance(answer, dict):
        raise PromQLError("the answer is not a JSON object")
    if answer.get("status") != "success":
        what = str(answer.get("errorType") or "error")
        raise PromQLError(f"{what}: {str(answer.get('error') or 'no reason given')[:300]}")
    data = answer.get("data")
    if not isinstance(data, dict) or data.get("resultType") != kind or not isinstance(data.get("result"), list):
        raise PromQLError(f"the answer holds no {kind}")
    out = [s for s in data["result"] if isinstance(s, dict) and isinstance(s.get("metric"), dict)]
    if len(out) != len(data["result"]):
        raise PromQLError("a series of the answer has no labels")
    return out


def _group(labels: Mapping[str, Any], by: str) -> str:
    name = labels.get(by)
    if isinstance(name, str) and name:
        return name
    return UNLABELLED if by == "variant" else ""


def _by_metric(series: list[dict[str, Any]], by: str) -> dict[str, dict[str, dict[str, Any]]]:
    """metric -> group -> series; series of the whole fleet (no group label) under ``*``."""
    out: dict[str, dict[str, dict[str, Any]]] = {}
    for s in series:
        labels = s["metric"]
        metric = labels.get(TAG)
        if not isinstance(metric, str):
            continue
        grp = "*" if metric.endswith("covered") and by == "model" else _group(labels, by)
        if grp:
            out.setdefault(metric, {})[grp] = s
    return out


def _points(s: dict[str, Any], w: Window) -> list[float | None]:
    """One value per bucket: the sample evaluated at the bucket's end, None where none is."""
    ys: list[float | None] = [None] * w.buckets
    values = s.get("values")
    if not isinstance(values, list):
        raise PromQLError("a series of the matrix has no values")
    for pair in values:
        if not (isinstance(pair, list) and len(pair) == 2):
            raise PromQLError("a sample is not a [time, value] pair")
        try:
            t = float(pair[0])
        except (TypeError, ValueError):
            raise PromQLError("a sample time is not a number") from None
        i = round((t - w.eval_start) / w.step)
        if 0 <= i < w.buckets and math.isfinite(t):
            ys[i] = _number(pair[1])
    return ys


def _instant(s: dict[str, Any] | None) -> float | None:
    if s is None:
        return None
    value = s.get("value")
    if not (isinstance(value, list) and len(value) == 2):
        raise PromQLError("a sample of the vector is not a [time, value] pair")
    return _number(value[1])


def _round(v: float | None) -> float | None:
    return None if v is None else round(v, 4)  # no float noise in JSON, as the collector


# Percentiles that are exact when their histogram saw one observation: (sum, count, scale).
_EXACT_WHEN_ONE = {
    "latency": (
        ("latency_p50_ms", "latency_p95_ms", "latency_p99_ms"),
        "latency_sum_rate",
        "latency_count_rate",
        1000.0,
    ),
    "ttft": (("ttft_p50_ms", "ttft_p95_ms"), "ttft_sum_rate", "ttft_count_rate", 1000.0),
}


def clamp_single(values: dict[str, float | None], seconds: float) -> None:
    """Percentiles of a histogram that saw a single observation over ``seconds`` (its count
    rate times the seconds rounds to 1) are that observation, its sum: the only clamp a
    Prometheus histogram allows (it keeps no min or max). ``values`` holds rates and
    percentiles of one bucket (or of the whole range) and is changed in place."""
    for keys, sum_key, count_key, scale in _EXACT_WHEN_ONE.values():
        total, count = values.get(sum_key), values.get(count_key)
        if total is None or not count or round(count * seconds) != 1:
            continue
        for key in keys:
            if values.get(key) is not None:
                values[key] = total / count * scale


def _group_json(
    w: Window,
    by: str,
    name: str,
    per: dict[str, dict[str, dict[str, Any]]],
    tails: dict[str, dict[str, dict[str, Any]]],
) -> dict[str, Any]:
    n = w.buckets
    metrics: dict[str, list[float | None]] = {}
    for key in {*UNITS, *_COUNTED, *HISTOGRAM_MEANS}:
        s = per.get(key, {}).get(name)
        metrics[key] = _points(s, w) if s is not None else [None] * n
    key_of_group = "*" if by == "model" else name
    cov_series = per.get("covered", {}).get(key_of_group)
    covered: list[float | None] = _points(cov_series, w) if cov_series is not None else [None] * n
    if w.current_seconds > 0:  # the current bucket, evaluated now over what has passed of it
        for key, values in metrics.items():
            values[w.complete] = _instant(tails.get(CURRENT + key, {}).get(name))
        covered[w.complete] = _instant(tails.get(CURRENT + "covered", {}).get(key_of_group))
    for i in range(n):
        bucket = {k: v[i] for k, v in metrics.items()}
        clamp_single(bucket, w.current_seconds if i == w.complete else w.step)
        for k in QUANTILES:
            metrics[k][i] = bucket[k]
    # The summary: rates summed over the buckets a target of the group was scraped in.
    seconds = [(w.current_seconds if i == w.complete else w.step) if c else 0.0 for i, c in enumerate(covered)]
    total_s = sum(seconds)
    sums = {out: sum((v or 0.0) * s for v, s in zip(metrics[key], seconds)) for key, out in _COUNTED.items()}
    requests = sums["requests"]

    def per_second(v: float) -> float | None:
        return v / total_s if total_s else None

    summary: dict[str, float | None] = {
        "request_rate": per_second(requests),
        "input_tokens_rate": per_second(sums["input_tokens"]),
        "output_tokens_rate": per_second(sums["output_tokens"]),
        "cached_input_tokens_rate": per_second(sums["cached_input_tokens"]),
        "output_tps": sums["tps_sum"] / sums["tps_count"] if sums["tps_count"] > 0 else None,
        "error_rate": sums["errors"] / requests if requests > 0 else None,
        "cancel_rate": sums["cancelled"] / requests if requests > 0 else None,
        "in_flight": _mean(metrics.get("in_flight")),
        "up": None,
    }
    tail = {k: _instant(tails.get(k, {}).get(name)) for k in [*QUANTILES, *HISTOGRAM_MEANS]}
    clamp_single(tail, w.summary_window)
    summary.update({k: tail[k] for k in QUANTILES})
    out: dict[str, Any] = {k: _round(summary.get(k)) for k in UNITS}
    # Counts from summed rates are estimates (Prometheus extrapolates): whole ones.
    out.update({k: round(v) for k, v in sums.items() if k not in ("tps_sum", "tps_count")})
    return {"name": name, "metrics": {k: [_round(v) for v in metrics[k]] for k in UNITS}, "summary": out}


def shape(w: Window, by: str, model: str | None, series_answer: Any, summary_answer: Any) -> dict[str, Any]:
    """``/api/metrics``'s JSON from a ``range_query`` and a ``summary_query`` answer."""
    per = _by_metric(_data(series_answer, "matrix"), by)
    tails = _by_metric(_data(summary_answer, "vector"), by)
    hidden = {"covered", *HISTOGRAM_MEANS}
    names = sorted(
        {g for metric, groups in per.items() if metric not in hidden for g in groups}
        | {g for metric, groups in tails.items() if metric.removeprefix(CURRENT) not in hidden for g in groups}
    )
    return {
        "range": w.range,
        "by": by,
        "variant": "all",
        "model": model or "all",
        "step": w.step,
        "source": "prometheus",
        "resolution": duration(w.scrape_interval),
        "start": w.origin,
        "end": w.end,
        "now": w.now,
        "timestamps": w.timestamps(),
        "units": UNITS,
        "groups": [_group_json(w, by, name, per, tails) for name in names],
        "quantile_source": QUANTILE_SOURCE,
    }


def _mean(xs: list[float | None] | None) -> float | None:
    vals = [x for x in xs or () if x is not None]
    return sum(vals) / len(vals) if vals else None


def shape_status(answer: Any) -> dict[str, Any]:
    """``/api/status``'s ``variants`` (what the Overview's cards read) from a ``status_query``."""
    per = _by_metric(_data(answer, "vector"), "variant")
    variants = []
    for name in sorted({g for groups in per.values() for g in groups}):
        up = _instant(per.get("targets_up", {}).get(name)) or 0.0
        targets = _instant(per.get("targets", {}).get(name)) or 0.0
        in_flight = _instant(per.get("in_flight", {}).get(name))
        variants.append(
            {
                "name": name,
                "up": up > 0,
                "targets_up": int(up),
                "targets": int(targets),
                "current": {"in_flight": in_flight} if up > 0 else None,
            }
        )
    return {"variants": variants}


def scrape_interval_from(answer: Any) -> float | None:
    """The scrape interval an ``INTERVAL_PROBE`` answer shows (the median gap between samples
    of a series, so a missed scrape does not double it, without the jitter), or None without
    two samples."""
    gaps: list[float] = []
    for s in _data(answer, "matrix"):
        values = s.get("values")
        if not isinstance(values, list):
            raise PromQLError("a series of the matrix has no values")
        times = []
        for pair in values:
            if not (isinstance(pair, list) and len(pair) == 2):
                raise PromQLError("a sample is not a [time, value] pair")
            try:
                times.append(float(pair[0]))
            except (TypeError, ValueError):
                raise PromQLError("a sample time is not a number") from None
        times.sort()
        gaps += [b - a for a, b in itertools.pairwise(times) if b > a and math.isfinite(b - a)]
    if not gaps:
        return None
    gaps.sort()
    median = gaps[len(gaps) // 2]
    # Scrapes are scheduled every configured interval, give or take milliseconds of jitter.
    return max(0.1, round(median, 1)) if median < 10 else float(round(median))
