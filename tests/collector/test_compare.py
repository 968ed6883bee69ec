"""collector.compare against scipy's values (computed once with scipy 1.17.1, pasted here)."""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as hs

from tokentail.collector import compare as st

# scipy.stats.mannwhitneyu(a, b, method="asymptotic") -> (statistic, pvalue)
SMALL_A = [1, 2, 2, 3, 3, 3, 4, 5, 5, 6]
SMALL_B = [2, 3, 4, 4, 5, 6, 6, 7, 8, 8, 9]
BIG_A = [11, 7, 8, 10, 6, 9, 10, 2, 0, 3, 3, 10, 10, 0, 5, 9, 1, 9, 1, 5, 9, 3, 4, 3, 8, 3, 11, 5, 5, 6]
BIG_A += [6, 6, 6, 11, 9, 9, 8, 7, 4, 11]
BIG_B = [7, 4, 12, 3, 12, 9, 3, 2, 7, 2, 3, 8, 13, 7, 11, 13, 11, 9, 7, 8, 5, 7, 6, 4, 13, 2, 3, 4, 13, 10]
BIG_B += [12, 4, 10, 6, 7, 2, 9, 11, 9, 3, 8, 5, 13, 12, 4]
FLOAT_X = [0.542, 1.039, 1.973, 0.461, 1.537, 1.061, 0.726, 2.719, 1.464, 0.549, 1.038, 1.334, 0.91, 1.407, 0.967]
FLOAT_X += [1.396, 2.053, 0.713, 1.107, 0.793, 1.066, 0.552, 0.749, 0.907, 1.567, 1.773, 0.516, 0.672, 1.382, 0.369]
FLOAT_Y = [1.071, 1.286, 2.531, 1.905, 1.146, 1.123, 1.191, 2.891, 1.09, 1.16, 1.61, 1.271, 1.223, 0.773, 1.342]
FLOAT_Y += [1.081, 2.418, 1.871, 1.334, 1.885, 1.139, 2.284, 1.346, 1.807, 0.708]


@pytest.mark.parametrize(
    ("a", "b", "u", "p"),
    [
        (SMALL_A, SMALL_B, 23.5, 0.027640884214298913),
        (BIG_A, BIG_B, 761.0, 0.2210083493548738),
        (FLOAT_X, FLOAT_Y, 216.5, 0.00756852326693995),
    ],
)
def test_mann_whitney_matches_scipy_with_ties(a: list[float], b: list[float], u: float, p: float) -> None:
    r = st.mann_whitney_samples(a, b)
    assert r.statistic == pytest.approx(u)
    assert r.p_value == pytest.approx(p, rel=1e-9)
    assert r.direction == 1  # B ranks higher in every case above
    assert r.test == "mann_whitney_u"


def test_mann_whitney_on_buckets_equals_scipy_on_the_expanded_ties() -> None:
    # scipy on [0]*5 + [1]*20 + ... (each bucket one tied value): U 1573.0, p 0.0003164315537210116
    groups = list(zip([5, 20, 30, 10, 3], [2, 10, 25, 25, 8], strict=True))
    r = st.mann_whitney(groups)
    assert r.statistic == pytest.approx(1573.0)
    assert r.p_value == pytest.approx(0.0003164315537210116, rel=1e-9)
    assert r.test == "mann_whitney_u_buckets"


def test_mann_whitney_all_tied_is_no_evidence() -> None:
    r = st.mann_whitney_samples([1.0] * 5, [1.0] * 7)
    assert (r.p_value, r.direction) == (1.0, 0)


def test_mann_whitney_needs_both_samples() -> None:
    with pytest.raises(ValueError):
        st.mann_whitney_samples([], [1.0])


@given(
    hs.lists(hs.integers(0, 6), min_size=1, max_size=30),
    hs.lists(hs.integers(0, 6), min_size=1, max_size=30),
)
def test_mann_whitney_is_symmetric(a: list[int], b: list[int]) -> None:
    ab, ba = st.mann_whitney_samples(a, b), st.mann_whitney_samples(b, a)
    assert ab.p_value == pytest.approx(ba.p_value)
    assert ab.statistic + ba.statistic == pytest.approx(len(a) * len(b))
    assert ab.direction == -ba.direction
    assert 0.0 <= ab.p_value <= 1.0


@pytest.mark.parametrize(
    ("x_a", "n_a", "x_b", "n_b", "z", "p"),
    # |z| = sqrt(chi2) and p from scipy.stats.chi2_contingency(..., correction=False)
    [
        (10, 200, 25, 210, 2.5010111333903344, 0.012383928521974405),
        (3, 100, 4, 100, 0.38475770298644046, 0.7004169392035927),
        (0, 50, 5, 50, 2.2941573387056176, 0.021781462791119595),
    ],
)
def test_two_proportions_matches_scipy(x_a: int, n_a: int, x_b: int, n_b: int, z: float, p: float) -> None:
    r = st.two_proportions(x_a, n_a, x_b, n_b)
    assert r.z == pytest.approx(z, rel=1e-9)
    assert r.p_value == pytest.approx(p, rel=1e-9)
    assert r.direction == 1
    assert st.two_proportions(x_b, n_b, x_a, n_a).z == pytest.approx(-z)


def test_two_proportions_without_variance() -> None:
    assert st.two_proportions(0, 10, 0, 20).p_value == 1.0


@pytest.mark.parametrize(
    ("k", "n", "low", "high"),
    # scipy.stats.binomtest(k, n).proportion_ci(method="wilson")
    [
        (0, 10, 0.0, 0.27753279986288926),
        (3, 10, 0.10779126740630102, 0.6032218525388546),
        (56, 70, 0.6918335550374693, 0.8769526075163704),
        (48, 80, 0.490454650051604, 0.7003817240412907),
        (10, 200, 0.02738264560076392, 0.08957814813877599),
    ],
)
def test_wilson_matches_scipy(k: int, n: int, low: float, high: float) -> None:
    ci = st.wilson(k, n)
    assert ci.low == pytest.approx(low, abs=1e-12)
    assert ci.high == pytest.approx(high, rel=1e-9)


def test_newcombe_matches_the_published_example() -> None:
    # Newcombe (1998), Statistics in Medicine 17:873, example (a): 56/70 - 48/80, method 10: 0.0524 to 0.3339.
    ci = st.newcombe(48, 80, 56, 70)
    assert (round(ci.low, 4), round(ci.high, 4)) == (0.0524, 0.3339)


def test_normal_sf_matches_scipy() -> None:
    assert st.normal_sf(1.5) == pytest.approx(0.06680720126885807, rel=1e-12)
    assert st.normal_sf(3.2) == pytest.approx(0.0006871379379158471, rel=1e-9)


def test_quantile_interpolates_like_numpy() -> None:
    xs = [5.0, 1.0, 3.0, 2.0, 4.0]
    assert st.quantile(xs, 0.5) == 3.0
    assert st.quantile(xs, 0.95) == pytest.approx(4.8)  # numpy.quantile(xs, 0.95)
    assert math.isnan(st.quantile([], 0.5))


def test_bucket_counts_from_cumulative() -> None:
    assert st.bucket_counts([(1.0, 2), (0.5, 1), (math.inf, 2)]) == [(0.5, 1), (1.0, 1), (math.inf, 0)]


def test_effect_is_relative_change() -> None:
    assert st.effect(100.0, 138.0) == pytest.approx(0.38)
    assert st.effect(0.0, 1.0) is None
    assert st.effect(None, 1.0) is None


def test_verdict_below_the_minimum_is_not_enough_data() -> None:
    r = st.mann_whitney_samples(list(range(19)), list(range(100, 140)))
    v = st.verdict(label="TTFT", stat="p95", a=1.0, b=2.0, n_a=19, n_b=40, result=r, higher_is_better=False)
    assert v["verdict"] == "not_enough_data"
    assert "not enough data" in str(v["summary"])
    assert "p_value" not in v


def test_verdict_worse_and_summary_reads_as_effect() -> None:
    a, b = [100.0 + i for i in range(30)], [138.0 + i for i in range(30)]
    r = st.mann_whitney_samples(a, b)
    v = st.verdict(
        label="TTFT", stat="p95", a=100.0, b=138.0, n_a=30, n_b=30, result=r, higher_is_better=False, b_name="canary"
    )
    assert v["verdict"] == "worse"
    assert v["summary"] == "canary TTFT p95 +38%"
    v2 = st.verdict(label="TPS", stat="p50", a=100.0, b=138.0, n_a=30, n_b=30, result=r, higher_is_better=True)
    assert v2["verdict"] == "better"


def test_verdict_within_noise() -> None:
    r = st.mann_whitney_samples(SMALL_A * 3, SMALL_A * 3)
    v = st.verdict(label="latency", stat="p95", a=5.0, b=5.0, n_a=30, n_b=30, result=r, higher_is_better=False)
    assert v["verdict"] == "no_difference"
    assert v["significant"] is False
