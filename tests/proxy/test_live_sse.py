"""Tests for proxy/live_sse.py: one SSE message, whole or in slices, the same bytes."""

from __future__ import annotations

import json
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from tokentail.proxy.live_sse import SLICE_CHARS, SSE_HEARTBEAT, encode_sse, finite, sse_slices

_leaves = st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=40)
_json = st.recursive(
    _leaves,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=20,
)


def test_encode_sse_one_line_of_compact_json() -> None:
    raw = encode_sse("b:7", "request.delta", {"id": "r1", "text": "line1\nline2 – ü", "x": float("nan")})
    assert raw.count(b"\n") == 4 and raw.endswith(b"\n\n")
    data = json.loads(raw.decode().split("data: ", 1)[1])
    assert data == {"id": "r1", "text": "line1\nline2 – ü", "x": None}
    assert raw.startswith(b"id: b:7\nevent: request.delta\ndata: ")
    assert encode_sse("a:1", "e", {"t": "\ud800"}).endswith(b'"?"}\n\n')  # a lone surrogate survives
    assert SSE_HEARTBEAT.startswith(b":") and finite([1.0, float("inf")]) == [1.0, None]


@settings(max_examples=200, deadline=None)
@given(data=st.dictionaries(st.text(max_size=8), _json, max_size=6), size=st.integers(1, 64))
def test_slices_join_into_the_whole_message(data: dict[str, Any], size: int) -> None:
    assert b"".join(sse_slices("b:1", "request.start", data, size)) == encode_sse("b:1", "request.start", data)


def test_a_long_string_is_cut_into_bounded_slices() -> None:
    text = ('Große "Wörter"\n\x00 \ud800 – ' * 40_000)[: 1 << 20]  # escapes, a lone surrogate, non-ASCII
    data = {"id": "r1", "seq": 3, "text": text, "snapshot": True, "nested": [{"t": text[:100_000]}]}
    pieces = list(sse_slices("b:9", "request.delta", data))
    assert b"".join(pieces) == encode_sse("b:9", "request.delta", data)
    assert len(pieces) >= len(text) // SLICE_CHARS
    # A piece is one slice of characters, escaped: at most 6 bytes per character (\u0000).
    assert max(len(p) for p in pieces) <= 6 * 2 * SLICE_CHARS


def test_a_small_event_is_one_slice() -> None:
    data = {"id": "r1", "seq": 1, "text": "hi"}
    assert list(sse_slices("b:2", "request.delta", data)) == [encode_sse("b:2", "request.delta", data)]


def test_odd_values_fall_back_to_whole_encoding() -> None:
    deep: Any = "x" * (SLICE_CHARS + 1)
    for _ in range(100):  # deeper than the slicer walks
        deep = [deep]
    data = {"deep": deep, 1: "int key", "obj": object(), "nan": float("nan")}
    assert b"".join(sse_slices("b:3", "e", data)) == encode_sse("b:3", "e", data)


def test_encode_small_is_the_one_slice_or_nothing_and_items_share_their_wire():
    from tokentail.proxy.live_sse import LiveItem, Wire, encode_small, item_slices

    small = {"id": "r", "text": "tok"}
    assert encode_small("b:1", "request.delta", small) == encode_sse("b:1", "request.delta", small)
    assert encode_small("b:2", "request.end", {"text": "x" * (2 * SLICE_CHARS)}) is None
    wire = Wire()
    one, two = LiveItem(("b:1", "request.delta", small)), LiveItem(("b:1", "request.delta", small))
    one.wire = two.wire = wire
    assert list(item_slices(one)) == [encode_sse("b:1", "request.delta", small)]
    wire.bytes = b"id: b:1\nevent: request.delta\ndata: {}\n\n"  # what the first reader left
    assert list(item_slices(two)) == [wire.bytes]  # shared bytes, as they are
    two.wire = None
    assert list(item_slices(two)) == [encode_sse("b:1", "request.delta", small)]
    assert two == ("b:1", "request.delta", small)  # still the plain 3-tuple to compare and unpack


def test_msgspec_and_json_agree_but_for_exponents():
    data = {"t": 'x\u0000\u001f\b\n"\\\x7f\u2028é😀', "n": [1, 2**70, 0.1, True, None], 1: "k", "o": object()}
    got = json.loads(encode_sse("b:1", "e", data).decode().split("data: ", 1)[1])
    assert got == json.loads(json.dumps(data, ensure_ascii=False, default=str))


def test_the_hub_marks_what_it_knows_is_one_slice_and_the_bytes_are_the_same():
    from tokentail.proxy.live import LiveHub
    from tokentail.proxy.live_sse import LiveItem, item_slices
    from tokentail.proxy.record import Delta, RequestRecord

    hub = LiveHub(boot_id="b", max_capture_bytes=8 * SLICE_CHARS)
    seen: list = []
    hub.add_sink(seen.append)
    small = RequestRecord(id="s", variant="v", method="POST", endpoint="/chat/completions", model="m")
    small.prompt = {"messages": [{"role": "user", "content": "hi"}]}
    big = RequestRecord(id="g", variant="v", method="POST", endpoint="/chat/completions", model="m")
    big.prompt = {"messages": [{"role": "user", "content": "y " * SLICE_CHARS}]}
    for r in (small, big):
        hub.on_start(r)
        hub.on_delta(r, Delta(text="tok "))
        hub.on_delta(r, Delta(text="z " * SLICE_CHARS))
    marks = [(ev[1], ev[2]["id"], ev[4].small) for ev in seen]
    assert marks == [
        ("request.start", "s", True),
        ("request.delta", "s", True),
        ("request.delta", "s", False),  # its text alone is a slice: walked and sliced as before
        ("request.start", "g", False),
        ("request.delta", "g", True),
        ("request.delta", "g", False),
    ]
    for ev in seen:  # a hinted event is encoded to the same bytes the walk would give
        item = LiveItem((f"b:{ev[0]}", ev[1], ev[2]))
        item.wire = ev[4]
        assert b"".join(item_slices(item)) == encode_sse(f"b:{ev[0]}", ev[1], ev[2])
