"""Compare two samples of requests (pure): is B better or worse than A, by how much, beyond noise?

The statistics the Compare view and ``/api/compare`` report, with no I/O and no scipy
(the tests check every function against scipy's values, pasted as constants):

- ``mann_whitney``: Mann–Whitney U, two-sided, normal approximation with tie correction
  and continuity correction (scipy's ``mannwhitneyu(method="asymptotic")``). It works on
  *counts per distinct value*, so one implementation serves both exact span values and
  histogram buckets: a bucket is a group of tied observations (their order inside a bucket
  is unknown, which is exactly what a tie says). That is the bucket-based comparison.
- ``two_proportions``: the pooled two-proportion z-test (error rates), two-sided.
- ``wilson``: the Wilson score interval of a proportion; ``newcombe``: Newcombe's hybrid
  score interval of a difference of two proportions (his method 10).
- ``quantile`` (linear interpolation, numpy's default) for exact values;
  ``collector.derive.histogram_quantile`` (Prometheus' rule) for buckets.
- ``verdict``: the effect ("canary TTFT p95 +38%"), whether it is significant, and which
  side is better, or "not enough data" below ``MIN_SAMPLE`` observations a side.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from .derive import histogram_quantile

__all__ = [
    "ALPHA",
    "MIN_REQUESTS",
    "MIN_SAMPLE",
    "Interval",
    "TestResult",
    "bucket_counts",
    "effect",
    "mann_whitney",
    "mann_whitney_samples",
    "newcombe",
    "normal_sf",
    "quantile",
    "sorted_quantile",
    "two_proportions",
    "verdict",
    "wilson",
]

ALPHA = 0.05
Z95 = 1.959963984540054  # the 0.975 quantile of the standard normal
# Below these, a side reports "not enough data" rather than a verdict: the normal
# approximations here are poor on fewer observations, and a p95 of 10 values is one value.
MIN_SAMPLE = 20  # values per side for a distribution (latency, TTFT, TPS, tokens, cost)
MIN_REQUESTS = 30  # requests per side for an error rate


@dataclass(frozen=True, slots=True)
class TestResult:
    test: str  # "mann_whitney_u" | "mann_whitney_u_buckets" | "two_proportion_z"
    statistic: float  # U of the first sample, or z
    z: float
    p_value: float
    direction: int = 0  # +1: B tends to be higher than A, -1: lower, 0: neither


@dataclass(frozen=True, slots=True)
class Interval:
    low: float
    high: float


def normal_sf(z: float) -> float:
    """P(Z > z) for a standard normal Z."""
    return 0.5 * math.erfc(z / math.sqrt(2.0))


def _two_sided(z: float) -> float:
    return min(1.0, 2.0 * normal_sf(abs(z)))


def mann_whitney(groups: Iterable[tuple[float, float]], *, test: str = "mann_whitney_u_buckets") -> TestResult:
    """Mann–Whitney U from ``(count_a, count_b)`` per distinct value, in ascending value order.

    Each group holds tied observations: they share the mean of their ranks. Returns U of
    sample A (scipy's ``statistic``), the z of the larger U with the continuity correction,
    and the two-sided p-value (1.0 when every value is tied: no evidence either way).
    """
    n_a = n_b = 0.0
    rank_sum_a = 0.0
    ties = 0.0
    below = 0.0  # observations in earlier groups
    for ca, cb in groups:
        t = ca + cb
        if t <= 0:
            continue
        mid_rank = below + (t + 1) / 2.0
        rank_sum_a += ca * mid_rank
        ties += t**3 - t
        below += t
        n_a += ca
        n_b += cb
    if n_a == 0 or n_b == 0:
        raise ValueError("both samples need at least one observation")
    n = n_a + n_b
    u_a = rank_sum_a - n_a * (n_a + 1) / 2.0
    u = max(u_a, n_a * n_b - u_a)
    mu = n_a * n_b / 2.0
    var = n_a * n_b / 12.0 * ((n + 1) - ties / (n * (n - 1)))
    if var <= 0:
        return TestResult(test, u_a, 0.0, 1.0)
    z = (u - mu - 0.5) / math.sqrt(var)
    # U of A below its mean: A's values tend to rank lower, so B tends to be higher.
    direction = 0 if u_a == mu else (1 if u_a < mu else -1)
    return TestResult(test, u_a, z, _two_sided(z), direction)


def mann_whitney_samples(a: Sequence[float], b: Sequence[float]) -> TestResult:
    """Mann–Whitney U on exact values (equal values are ties)."""
    # Counts per distinct value: Counter, set and sorted do the per-value work in C, several
    # times faster than sorting (value, side) pairs, which matters at 10^5 values a side.
    ca, cb = Counter(a), Counter(b)
    values = sorted(ca.keys() | cb.keys())
    return mann_whitney(((ca.get(v, 0), cb.get(v, 0)) for v in values), test="mann_whitney_u")


def bucket_counts(cumulative: Sequence[tuple[float, float]]) -> list[tuple[float, float]]:
    """Cumulative ``(le, count)`` buckets (Prometheus style) → ``(le, count in this bucket)``, ascending."""
    out: list[tuple[float, float]] = []
    prev = 0.0
    for le, c in sorted(cumulative):
        c = max(c, prev)  # counts are monotonic; a scrape race must not make a negative bucket
        out.append((le, c - prev))
        prev = c
    return out


def two_proportions(x_a: int, n_a: int, x_b: int, n_b: int) -> TestResult:
    """Pooled two-proportion z-test of x_a/n_a against x_b/n_b (z of B minus A), two-sided."""
    if n_a <= 0 or n_b <= 0:
        raise ValueError("both samples need at least one request")
    p = (x_a + x_b) / (n_a + n_b)
    se = math.sqrt(p * (1 - p) * (1 / n_a + 1 / n_b))
    if se == 0:
        return TestResult("two_proportion_z", 0.0, 0.0, 1.0)  # both all-ok or both all-failed
    z = (x_b / n_b - x_a / n_a) / se
    return TestResult("two_proportion_z", z, z, _two_sided(z), (z > 0) - (z < 0))


def wilson(x: int, n: int, z: float = Z95) -> Interval:
    """The Wilson score interval of the proportion x/n (95% by default)."""
    if n <= 0:
        return Interval(0.0, 1.0)
    p = x / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z / denom * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    return Interval(max(0.0, centre - half), min(1.0, centre + half))


def newcombe(x_a: int, n_a: int, x_b: int, n_b: int, z: float = Z95) -> Interval:
    """Newcombe's hybrid score interval (method 10) of p_b - p_a, from each side's Wilson interval."""
    pa, pb = x_a / n_a, x_b / n_b
    wa, wb = wilson(x_a, n_a, z), wilson(x_b, n_b, z)
    la, ua, lb, ub = wa.low, wa.high, wb.low, wb.high
    d = pb - pa
    low = d - math.sqrt((pb - lb) ** 2 + (ua - pa) ** 2)
    high = d + math.sqrt((ub - pb) ** 2 + (pa - la) ** 2)
    return Interval(low, high)


def quantile(values: Sequence[float], q: float) -> float:
    """The q-quantile of exact values, linearly interpolated (numpy's default); NaN when empty."""
    if not values:
        return math.nan
    return sorted_quantile(sorted(values), q)


def sorted_quantile(xs: Sequence[float], q: float) -> float:
    """``quantile`` of values already in ascending order."""
    if not xs:
        return math.nan
    pos = q * (len(xs) - 1)
    lo = math.floor(pos)
    hi = min(lo + 1, len(xs) - 1)
    return xs[lo] + (xs[hi] - xs[lo]) * (pos - lo)


def bucket_quantile(buckets: Sequence[tuple[float, float]], q: float) -> float:
    """The q-quantile of cumulative buckets, as Prometheus computes it."""
    return histogram_quantile(q, buckets)


def effect(a: float | None, b: float | None) -> float | None:
    """B relative to A: +0.38 means B is 38% higher. None when undefined (A zero or unknown)."""
    if a is None or b is None or not math.isfinite(a) or not math.isfinite(b) or a == 0:
        return None
    return b / a - 1.0


def verdict(
    *,
    label: str,
    stat: str,
    a: float | None,
    b: float | None,
    n_a: int,
    n_b: int,
    result: TestResult | None,
    higher_is_better: bool,
    minimum: int = MIN_SAMPLE,
    b_name: str = "B",
) -> dict[str, object]:
    """One metric's verdict: ``better`` | ``worse`` | ``no_difference`` | ``not_enough_data``,
    with the effect and a sentence a person reads ("canary TTFT p95 +38%")."""
    rel = effect(a, b)
    out: dict[str, object] = {"a": a, "b": b, "n_a": n_a, "n_b": n_b, "effect": rel, "minimum": minimum}
    if n_a < minimum or n_b < minimum or result is None:
        out.update(
            verdict="not_enough_data",
            significant=False,
            summary=f"not enough data: {min(n_a, n_b)} of {minimum} needed a side",
        )
        return out
    out.update(test=result.test, statistic=result.statistic, z=result.z, p_value=result.p_value)
    significant = result.p_value < ALPHA
    out["significant"] = significant
    # The direction is the test's (which sample ranks higher), not the sign of the
    # effect on one statistic: a p95 can move against a shift of the whole distribution.
    if not significant or result.direction == 0:
        out["verdict"] = "no_difference"
    else:
        out["verdict"] = "better" if (result.direction > 0) == higher_is_better else "worse"
    change = "n/a" if rel is None else f"{rel:+.0%}"
    noise = "" if significant else " (within noise)"
    out["summary"] = f"{b_name} {label} {stat} {change}{noise}"
    return out
