"""Counter increases across resets, and quantiles from histogram buckets (pure).

``Deriver`` turns each scrape's raw counter values into the increase since the
previous scrape of the same target, the quantity stored in ``metrics_5s``: a 1m
row is then a plain sum of its 5s rows, buckets included, and percentiles over
any range come from summed bucket increases, exactly as ``histogram_quantile(q,
increase(...[range]))`` would compute them in Prometheus.

A counter is taken to have reset (a proxy restart) when its value went down, its
``_created`` timestamp changed, or the target's ``process_start_time_seconds``
changed; the increase is then the new value (it counted up from zero). A
histogram resets as a whole. The first scrape of a target after the collector
starts is a baseline only, so a restart of the collector never invents a spike.
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Iterable
from dataclasses import dataclass, field

from .parse import COUNTER, GAUGE, Exposition, Labels

SeriesId = tuple[str, Labels]  # (sample name, labels)


def counter_increase(prev: float | None, cur: float) -> float:
    """Increase of a counter from ``prev`` to ``cur``; after a reset, ``cur`` itself."""
    if prev is None or cur < prev:
        return cur
    return cur - prev


@dataclass(slots=True)
class Derived:
    """What one successful scrape of one target contributes."""

    values: list[tuple[str, Labels, str, float]] = field(default_factory=list)  # name, labels, kind, value
    interval: float | None = None  # seconds since the previous successful scrape; None for a baseline
    reset: bool = False  # some series reset since the previous scrape


@dataclass(slots=True)
class _TargetState:
    ts: float
    last: dict[SeriesId, float]
    created: dict[tuple[str, Labels], float | None]
    process_start: float | None


class Deriver:
    """Keeps the last raw value of every counter, per target, in memory."""

    def __init__(self) -> None:
        self._targets: dict[str, _TargetState] = {}

    def forget(self, target: str) -> None:
        self._targets.pop(target, None)

    def observe(self, target: str, exp: Exposition, ts: float) -> Derived:
        """Derive per-interval increases (counters) and values (gauges) for ``target`` at ``ts``."""
        prev = self._targets.get(target)
        out = Derived()
        last: dict[SeriesId, float] = {}
        created: dict[tuple[str, Labels], float | None] = {}
        counters = []
        for s in exp.samples:
            if s.kind == GAUGE:
                out.values.append((s.name, s.labels, GAUGE, s.value))
            else:
                last[(s.name, s.labels)] = s.value
                created[s.group] = s.created
                counters.append(s)
        self._targets[target] = _TargetState(ts, last, created, exp.process_start)
        if prev is None:
            return out  # baseline: nothing known about what happened before
        if ts <= prev.ts:
            return out  # clock went backwards or same tick twice: no interval to speak of
        out.interval = ts - prev.ts

        restarted = (
            exp.process_start is not None and prev.process_start is not None and exp.process_start != prev.process_start
        )
        reset_groups: set[tuple[str, Labels]] = set()
        for s in counters:
            before = prev.last.get((s.name, s.labels))
            old_created = prev.created.get(s.group)
            if (
                restarted
                or (before is not None and s.value < before)
                or (s.created is not None and old_created is not None and s.created != old_created)
            ):
                reset_groups.add(s.group)
        out.reset = bool(reset_groups)
        for s in counters:
            if s.group in reset_groups:
                inc = s.value
            else:
                # A series first seen on a target we already knew started from zero since then.
                inc = counter_increase(prev.last.get((s.name, s.labels)), s.value)
            out.values.append((s.name, s.labels, COUNTER, inc))
        return out


# --- histogram_quantile ---------------------------------------------------------

_PRECISION_TOLERANCE = 1e-12


def histogram_quantile(q: float, buckets: Iterable[tuple[float, float]]) -> float:
    """The q-quantile of cumulative ``(upper_bound, count)`` buckets, as Prometheus computes it.

    Mirrors ``bucketQuantile`` in prometheus/promql/quantile.go: buckets with the same
    bound are merged, counts are made monotonic, the result is interpolated linearly
    inside the bucket holding the rank (from 0 when the lowest bound is positive); a
    rank in the +Inf bucket returns the highest finite bound. NaN without a +Inf bucket,
    with fewer than two buckets or no observations; -Inf/+Inf for q < 0 / q > 1.
    """
    return histogram_quantiles((q,), buckets)[0]


def histogram_quantiles(qs: Iterable[float], buckets: Iterable[tuple[float, float]]) -> list[float]:
    """``histogram_quantile`` for several q over the same buckets (sorted and checked once)."""
    merged: list[list[float]] = []
    for le, c in sorted((float(le), float(c)) for le, c in buckets):
        if merged and merged[-1][0] == le:
            merged[-1][1] += c  # coalesce buckets with the same bound
        else:
            merged.append([le, c])
    return sorted_histogram_quantiles(qs, [le for le, _ in merged], [c for _, c in merged])


def sorted_histogram_quantiles(qs: Iterable[float], les: list[float], counts: list[float]) -> list[float]:
    """The same, for bounds already unique and ascending (``counts`` is changed in place)."""
    valid = bool(les) and les[-1] == math.inf
    if valid:
        _correct_precision(counts)
        _ensure_monotonic(counts)
    return [_quantile(q, les, counts, valid) for q in qs]


def _quantile(q: float, les: list[float], counts: list[float], valid: bool) -> float:
    if math.isnan(q):
        return math.nan
    if q < 0:
        return -math.inf
    if q > 1:
        return math.inf
    if not valid or len(les) < 2:
        return math.nan
    observations = counts[-1]
    if observations == 0:
        return math.nan
    rank = q * observations
    last = len(les) - 1
    b = bisect.bisect_left(counts, rank, 0, last)  # first i < last with counts[i] >= rank (monotonic)
    if b == last:
        return les[-2]
    if b == 0 and les[0] <= 0:
        return les[0]
    start, end, count = 0.0, les[b], counts[b]
    if b > 0:
        start = les[b - 1]
        count -= counts[b - 1]
        rank -= counts[b - 1]
    if count == 0:
        return math.nan  # only for rank 0 in an empty first bucket: Go's 0/0 is NaN, Python's raises
    return start + (end - start) * (rank / count)


def _correct_precision(counts: list[float]) -> None:
    prev = counts[0]
    for i in range(1, len(counts)):
        cur = counts[i]
        delta = abs(cur - prev)
        if delta == 0:
            continue
        if cur != 0 and delta / cur <= _PRECISION_TOLERANCE:
            counts[i] = prev
        else:
            prev = cur


def _ensure_monotonic(counts: list[float]) -> None:
    top = counts[0]
    for i in range(1, len(counts)):
        if counts[i] > top:
            top = counts[i]
        elif counts[i] < top:
            counts[i] = top


def parse_le(text: str) -> float:
    """A bucket's ``le`` label as a float (``+Inf`` included)."""
    return float(text)
