"""Erase selectors, the erase ledger and capture levels (tokentail.erasure, pure)."""

from __future__ import annotations

import pytest

from tokentail.erasure import (
    CaptureError,
    Ledger,
    Selector,
    SelectorError,
    lowest,
    parse_capture,
    parse_time,
    stream_entries_to_erase,
)

ROW = {"request_id": "r1", "session_id": "s1", "user_id": "u1", "key_fingerprint": "fp1", "start_time": 100.0}


def test_each_field_and_combinations_must_all_match():
    assert Selector(session="s1").matches_row(ROW)
    assert not Selector(session="s2").matches_row(ROW)
    assert Selector(user="u1", key="fp1").matches_row(ROW)
    assert not Selector(user="u1", key="fp2").matches_row(ROW)
    assert Selector(before=100.5).matches_row(ROW) and not Selector(before=100.0).matches_row(ROW)
    assert Selector(session="s1", before=50.0).matches_row(ROW) is False
    assert not Selector(before=1e9).matches_row({**ROW, "start_time": None})


def test_where_is_parameterised_and_combines_with_and():
    where, args = Selector(session="x' OR 1=1 --", before=5.0).where()
    assert where == "session_id = ? AND start_time < ?" and args == ["x' OR 1=1 --", 5.0]


def test_from_json_accepts_the_fields_and_refuses_the_rest():
    sel = Selector.from_json({"request": "r1", "before": "2026-01-01T00:00:00Z"})
    assert sel.request == "r1" and sel.before == 1767225600.0
    assert Selector.from_json({"before": "7d"}, now=1_000_000.0).before == 1_000_000.0 - 7 * 86400
    for body, field in [
        ({}, "body"),  # everything is never implied
        ([], "body"),
        ({"session": ""}, "session"),
        ({"session": 5}, "session"),
        ({"user": "u" * 201}, "user"),
        ({"sessions": "s"}, "sessions"),
        ({"before": "yesterday"}, "before"),
        ({"before": True}, "before"),
        ({"before": float("nan")}, "before"),
        ({"before": -1}, "before"),
    ]:
        with pytest.raises(SelectorError) as exc:
            Selector.from_json(body, now=0.0)
        assert exc.value.field == field, body


def test_parse_time_forms():
    assert parse_time(12.5) == 12.5 and parse_time("12.5") == 12.5
    assert parse_time("2026-01-01") == 1767225600.0  # no zone: UTC
    assert parse_time("2026-01-01T01:00:00+01:00") == 1767225600.0
    assert parse_time("2h", now=10_000.0) == 10_000.0 - 7200


def test_describe_names_fields_only():
    assert Selector(session="s1", before=3.0).describe() == "session='s1' before=3.0"


def test_ledger_single_fields_combinations_and_before():
    led = Ledger([(Selector(session="s1"), 1000.0)])
    assert led.erased(ROW) and not led.erased({**ROW, "session_id": "s2"})
    led.add(Selector(user="u9", key="fp9"), 1000.0)
    assert led.erased({**ROW, "session_id": None, "user_id": "u9", "key_fingerprint": "fp9"})
    assert not led.erased({**ROW, "session_id": None, "user_id": "u9"})
    led.add(Selector(before=50.0), 1000.0)
    assert led.erased({**ROW, "session_id": None, "start_time": 49.0})
    assert not led.erased({**ROW, "session_id": None, "start_time": 51.0})


def test_a_request_started_after_the_erase_is_new_data():
    led = Ledger([(Selector(session="s1"), 1000.0), (Selector(user="u1", key="fp1"), 1000.0)])
    late = 1000.0 + Ledger.SKEW
    assert led.erased({**ROW, "start_time": late})  # in flight then, or the exporter's clock is behind
    assert not led.erased({**ROW, "start_time": late + 1})  # the session went on after the erase
    led.add(Selector(before=1e12), 1000.0)  # "everything until now": not the future
    assert not led.erased({**ROW, "session_id": None, "user_id": None, "start_time": late + 1})


def test_ledger_is_bounded_oldest_first():
    led = Ledger(limit=3)
    for i in range(5):
        led.add(Selector(request=f"r{i}"), 10.0)
    assert len(led) == 3
    assert not led.erased({"request_id": "r0", "start_time": 1.0}) and not led.erased(
        {"request_id": "r1", "start_time": 1.0}
    )
    assert led.erased({"request_id": "r4", "start_time": 1.0})
    assert len(Ledger([(Selector(request=f"r{i}"), 1.0) for i in range(5)], limit=2)) == 2


def test_capture_levels_only_go_down():
    assert lowest([None, None]) == "full"
    assert lowest(["full", "metadata", None]) == "metadata"
    assert lowest(["none", "full"]) == "none"
    assert lowest(["full", "bogus"]) == "full"  # an unknown value never raises the level either
    assert parse_capture(" Metadata ") == "metadata"
    with pytest.raises(CaptureError, match="--capture"):
        parse_capture("all", "--capture")


def test_stream_entries_of_selected_requests_across_pages():
    def start(rid, session, t=100.0):
        return {"id": rid, "session_id": session, "user": None, "key_fingerprint": "fp", "time": t}

    page1 = [
        ("1-0", "request.start", start("a", "s-gone")),
        ("1-1", "request.start", start("b", "s-kept")),
        ("1-2", "request.delta", {"id": "a", "text": "x"}),
        ("1-3", "request.delta", {"id": "b", "text": "y"}),
        ("1-4", "snapshot", {"source": "live_redis"}),  # no request id: never deleted
    ]
    page2 = [("2-0", "request.end", {"id": "a"}), ("2-1", "request.end", {"id": "b"})]
    erased: set[str] = set()
    sel = Selector(session="s-gone")
    assert stream_entries_to_erase(page1, sel, erased) == ["1-0", "1-2"]
    assert stream_entries_to_erase(page2, sel, erased) == ["2-0"]  # found by the id its start gave
    # A request whose start was trimmed: only a request selector alone can still name it.
    tail = [("3-0", "request.delta", {"id": "c"}), ("3-1", "request.end", {"id": "c"})]
    assert stream_entries_to_erase(tail, Selector(request="c"), set()) == ["3-0", "3-1"]
    assert stream_entries_to_erase(tail, Selector(request="c", session="s"), set()) == []
    assert stream_entries_to_erase(page1, Selector(before=50.0), set()) == []  # started after
