"""live_frames: Redis stream entries as SSE frames, stream ids, trimming; untrusted entries skipped."""

from __future__ import annotations

import json

import pytest

from tokentail.collector.live_frames import (
    MAX_DATA_BYTES,
    before,
    frame,
    frames,
    gap,
    parse_id,
    snapshot_frame,
    status_frame,
)


def _fields(event: bytes = b"request.delta", data: bytes = b'{"id":"a","seq":1,"text":"hi"}') -> dict:
    return {b"e": event, b"d": data, b"p": b"boot"}


def test_frame_writes_the_stored_json_as_is():
    assert frame(b"1700000000000-3", _fields()) == (
        b'id: 1700000000000-3\nevent: request.delta\ndata: {"id":"a","seq":1,"text":"hi"}\n\n'
    )


@pytest.mark.parametrize(
    "fields",
    [
        _fields(event=b"snapshot"),
        _fields(event=b"request.delta\nevent: x"),
        _fields(data=b'{"text":"a"}\n\ndata: {"injected":1}'),
        _fields(data=b'{"text":"a"}\r'),
        _fields(data=b"not json"),
        _fields(data=b"{" + b"x" * MAX_DATA_BYTES),
        {b"e": b"request.end"},
        {},
    ],
)
def test_malformed_entries_are_skipped(fields):
    assert frame(b"1-0", fields) is None


def test_a_malformed_entry_id_is_skipped():
    assert frame(b"1-0\nevent: x", _fields()) is None


def test_frames_join_into_writes_of_about_the_size_asked():
    entries = [(f"{i}-0".encode(), _fields(data=b'{"t":"' + b"x" * 100 + b'"}')) for i in range(1, 101)]
    entries.insert(50, (b"51-1", {b"e": b"bogus", b"d": b"{}"}))
    pieces = list(frames(entries, 1000))
    assert len(pieces) > 5
    assert all(len(p) < 1000 + 200 for p in pieces)
    joined = b"".join(pieces)
    assert joined.count(b"event: request.delta") == 100 and b"bogus" not in joined


def test_stream_ids():
    assert parse_id("1700000000000-0") == (1700000000000, 0)
    assert parse_id(b" 5-7 ") == (5, 7)
    for bad in (None, "", "abc:12", "5", "5-", "-5", "5-7-1", "1" * 25 + "-0", "99999999999999999999-0"):
        assert parse_id(bad) is None, bad
    assert before("10-5") == "10-4"
    assert before("10-0") == f"9-{(1 << 64) - 1}"
    assert before("0-0") == "0-0"


def test_gap_when_the_stream_was_trimmed_past_the_cursor():
    assert gap("10-0", b"12-0", trimmed=True) is True
    assert gap("10-0", b"12-0", trimmed=False) is False  # never trimmed: nothing lost
    assert gap("10-0", b"10-0", trimmed=True) is False  # the cursor is still there
    assert gap("10-0", b"9-0", trimmed=True) is False
    assert gap("10-4", b"10-5", trimmed=True) is False  # the first entry is the next one (a snapshot's id)
    assert gap("10-0", None, trimmed=True) is False
    assert gap("garbage", b"12-0", trimmed=True) is False


def test_snapshot_and_status_frames():
    assert snapshot_frame("9-1", 3) == b'id: 9-1\nevent: snapshot\ndata: {"source":"live_redis","events":3}\n\n'
    raw = status_frame(False, "Redis unavailable\nnew line")
    assert raw.startswith(b"event: status\ndata: ") and raw.count(b"\n") == 3
    assert json.loads(raw.split(b"data: ", 1)[1]) == {"live_redis": "down", "message": "Redis unavailable\nnew line"}
    assert b"id:" not in status_frame(True)
