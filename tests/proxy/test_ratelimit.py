"""Rate-limit headers (pure): recorded header sets from each provider, durations, dates, junk."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tokentail.proxy.ratelimit import headroom, parse_duration, parse_headers, parse_reset, parse_retry_after

FIXTURES = Path(__file__).parent / "fixtures"
NOW = 1796119200.0  # 2026-12-01T10:00:00Z, the Date of the recorded responses


def headers(name: str) -> dict[str, str]:
    return json.loads((FIXTURES / f"ratelimit_{name}_headers.json").read_text())


def test_openai_headers():
    got = parse_headers(headers("openai"), NOW)
    assert set(got.kinds) == {"requests", "tokens"}
    req, tok = got.kinds["requests"], got.kinds["tokens"]
    assert (req.limit, req.remaining, req.reset_seconds) == (10000, 9999, pytest.approx(0.006))
    assert (tok.limit, tok.remaining, tok.reset_seconds) == (30000000, 29999977, 0.0)
    assert req.headroom() == pytest.approx(0.9999)
    assert got.retry_after is None


def test_openai_near_the_limit():
    got = parse_headers(headers("openai_low"), NOW)
    assert got.kinds["requests"].headroom() == pytest.approx(12 / 500)
    assert got.kinds["requests"].reset_seconds == pytest.approx(86.4)
    assert got.kinds["tokens"].reset_seconds == 360.0
    assert got.kinds["tokens"].headroom() == pytest.approx(0.07)


def test_anthropic_headers_with_rfc3339_resets():
    got = parse_headers(headers("anthropic"), NOW)
    assert set(got.kinds) == {"requests", "tokens", "input_tokens", "output_tokens"}
    assert got.kinds["input_tokens"].limit == 400000
    assert got.kinds["input_tokens"].remaining == 398000
    assert got.kinds["input_tokens"].reset_seconds == pytest.approx(3.0)
    assert got.kinds["requests"].reset_seconds == pytest.approx(0.015, abs=1e-5)
    assert got.kinds["output_tokens"].headroom() == 1.0


def test_429_with_retry_after():
    got = parse_headers(headers("429"), NOW)
    assert got.retry_after == 20.0
    assert got.kinds["requests"].headroom() == 0.0
    assert got.kinds["requests"].reset_seconds == 20.0


def test_junk_is_ignored_never_raised():
    got = parse_headers(headers("junk"), NOW)
    assert not got  # nothing usable: no kinds with values, no retry-after
    assert all(v.limit is None and v.remaining is None for v in got.kinds.values())


def test_header_names_any_case_and_pairs():
    got = parse_headers([("X-RateLimit-Limit-Requests", "10"), ("X-RateLimit-Remaining-Requests", "4")], NOW)
    assert got.kinds["requests"].headroom() == pytest.approx(0.4)


@pytest.mark.parametrize(
    "text,seconds",
    [
        ("6m0s", 360.0),
        ("1.5s", 1.5),
        ("20ms", 0.02),
        ("1h2m3.5s", 3723.5),
        ("0s", 0.0),
        ("250us", 0.00025),
        ("17", 17.0),
        ("0.5", 0.5),
    ],
)
def test_durations(text, seconds):
    assert parse_duration(text) == pytest.approx(seconds)


@pytest.mark.parametrize("text", ["", "6m0", "soon", "1x", "m", "-1s", "1s2", "nan", "inf", "1e999"])
def test_bad_durations(text):
    assert parse_duration(text) is None


def test_reset_as_time_in_the_past_is_zero():
    assert parse_reset("2026-12-01T09:59:00Z", NOW) == 0.0
    assert parse_reset("2026-12-01T10:01:00+00:00", NOW) == 60.0
    assert parse_reset("2026-12-01T10:01:00", NOW) is None  # no zone: ambiguous, ignored


def test_retry_after_http_date_and_seconds():
    assert parse_retry_after("Tue, 01 Dec 2026 10:00:30 GMT", NOW) == 30.0
    assert parse_retry_after("120", NOW) == 120.0
    assert parse_retry_after("Tue, 01 Dec 2026 09:00:00 GMT", NOW) == 0.0
    assert parse_retry_after("garbage", NOW) is None


def test_retry_after_ms_wins():
    got = parse_headers({"retry-after": "1", "retry-after-ms": "250"}, NOW)
    assert got.retry_after == 0.25


def test_headroom_edges():
    assert headroom(0, 0) is None
    assert headroom(None, 5) is None
    assert headroom(10, 20) == 1.0  # a remaining above the limit (a raised limit mid-window) is capped


@given(st.dictionaries(st.sampled_from(list(headers("anthropic")) + list(headers("openai"))), st.text(max_size=30)))
def test_any_values_never_raise(hs):
    got = parse_headers(hs, NOW)
    for lim in got.kinds.values():
        ratio = lim.headroom()
        assert ratio is None or 0.0 <= ratio <= 1.0
