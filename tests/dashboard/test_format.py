"""Numbers with units (dashboard/_format.py)."""

import math

import pytest

from tokentail.dashboard import _format as fmt


@pytest.mark.parametrize(
    "value, text",
    [
        (None, "—"),
        (math.nan, "—"),
        (0, "0 ms"),
        (4.234, "4.23 ms"),
        (312.4, "312 ms"),
        (999.4, "999 ms"),
        (1520, "1.52 s"),
        (12_345, "12.3 s"),
        (150_000, "2.5 min"),
    ],
)
def test_ms(value, text):
    assert fmt.ms(value) == text


@pytest.mark.parametrize(
    "value, unit, text",
    [
        (0.75, "req/s", "0.75 req/s"),
        (42.123, "tok/s", "42.1 tok/s"),
        (1234.6, "tok/s", "1,235 tok/s"),
        (0.000123, "req/s", "0.000123 req/s"),
        (None, "req/s", "—"),
    ],
)
def test_rate(value, unit, text):
    assert fmt.rate(value, unit) == text


def test_percent_count_and_units():
    assert fmt.percent(0.025) == "2.5 %"
    assert fmt.percent(0) == "0 %"
    assert fmt.percent(None) == "—"
    assert fmt.count(17) == "17"
    assert fmt.count(1234.0) == "1,234"
    assert fmt.count(123_456) == "123 k"
    assert fmt.count(4_500_000) == "4.5 M"
    assert fmt.value(0.1, "ratio") == "10 %"
    assert fmt.value(3.0, "requests") == "3"
    assert fmt.value(12.5, "tokens/s") == "12.5 tok/s"
    assert fmt.value(1500, "ms") == "1.5 s"


def test_stamp_has_milliseconds():
    assert fmt.stamp(1_700_000_000.512).endswith(".512")
    assert fmt.stamp(None) == "—"


@pytest.mark.parametrize(
    "value, text",
    [
        (None, "unknown"),
        (math.nan, "unknown"),
        (0, "$0"),
        (0.000423, "$0.000423"),
        (0.01384, "$0.0138"),
        (1.2345, "$1.23"),
        (1234.5, "$1,234"),
    ],
)
def test_usd_unknown_is_never_zero(value, text):
    assert fmt.usd(value) == text


def test_cost_totals_and_durations():
    assert fmt.cost(0.42, 3) == "$0.42 + 3 unknown"
    assert fmt.cost(0.42) == "$0.42"
    assert fmt.cost(None, 3) == "unknown"
    assert fmt.duration(4.25) == "4.25 s" and fmt.duration(42.4) == "42 s"
    assert fmt.duration(185) == "3 min 05 s" and fmt.duration(7620) == "2 h 07 min"
    assert fmt.duration(None) == "—"
