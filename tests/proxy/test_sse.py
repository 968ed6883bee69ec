"""The SSE decoder: WHATWG parsing, exact raw bytes whatever the chunking, bounded memory."""

from __future__ import annotations

import itertools
import re
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tokentail.proxy.sse import SSEDecoder, SSEEvent

FIXTURES = Path(__file__).parent / "fixtures"
SSE_FIXTURES = sorted(FIXTURES.glob("*.sse"))
# Short recorded failures and their event counts: llama.cpp's empty body and its ``error:``
# line (a field SSE ignores), a chat stream cut after three chunks.
TINY = {"llamacpp_empty_200.sse": 0, "llamacpp_error_line.sse": 1, "openai_chat_cut_midway.sse": 3}
FAST = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def decode(chunks: list[bytes], max_event_bytes: int = 1 << 20) -> list[SSEEvent]:
    d = SSEDecoder(max_event_bytes)
    out: list[SSEEvent] = []
    for c in chunks:
        out += d.feed(c)
    return out + d.flush()


def split_at(data: bytes, cuts: list[int]) -> list[bytes]:
    points = sorted({0, len(data), *(c % (len(data) + 1) for c in cuts)})
    return [data[a:b] for a, b in itertools.pairwise(points)]


def fields(events: list[SSEEvent]) -> list[tuple]:
    return [(e.event, e.data, e.id, e.overflow, e.complete) for e in events]


def reference(data: bytes) -> list[tuple]:
    """A literal, line-by-line reading of the WHATWG algorithm: (event, data, id) per blank line."""
    text = data.decode("utf-8", "replace")
    if text.startswith("\ufeff"):
        text = text[1:]
    out, event, buf, id_ = [], None, None, None
    for line in re.split(r"\r\n|\r|\n", text)[:-1]:  # the last piece has no line ending
        if line == "":
            out.append((event, None if buf is None else "\n".join(buf), id_))
            event, buf, id_ = None, None, None
        elif line.startswith(":"):
            continue
        else:
            name, colon, value = line.partition(":")
            if colon and value.startswith(" "):
                value = value[1:]
            if name == "data":
                buf = (buf or []) + [value]
            elif name == "event":
                event = value
            elif name == "id" and "\0" not in value:
                id_ = value
    return out


# --- parsing -----------------------------------------------------------------------------------


def test_fields_comments_and_multiline_data():
    raw = (
        b": a comment\nevent: update\nid: 42\ndata: first\ndata:second\ndata:  two spaces\n"
        b"retry: 100\nunknown: x\ndata\n\n"
    )
    [ev] = decode([raw])
    assert (ev.event, ev.id, ev.data) == ("update", "42", "first\nsecond\n two spaces\n")
    assert ev.raw == raw and ev.complete and not ev.overflow


def test_event_without_data_has_data_none_and_empty_data_is_empty_string():
    evs = decode([b"event: ping\n\ndata:\n\n: only a comment\n\n"])
    assert [(e.event, e.data) for e in evs] == [("ping", None), (None, ""), (None, None)]


def test_blank_lines_are_events_of_their_own():
    evs = decode([b"\n\r\ndata: x\n\n\n"])
    assert [e.raw for e in evs] == [b"\n", b"\r\n", b"data: x\n\n", b"\n"]
    assert [e.data for e in evs] == [None, None, "x", None]


def test_id_with_nul_is_ignored():
    [ev] = decode([b"id: a\x00b\ndata: x\n\n"])
    assert ev.id is None and ev.data == "x"


@pytest.mark.parametrize("eol", [b"\n", b"\r\n", b"\r"])
def test_each_line_ending(eol):
    raw = b"event: e" + eol + b"data: 1" + eol + b"data: 2" + eol + eol
    evs = decode([raw + raw])
    assert [(e.event, e.data, e.raw) for e in evs] == [("e", "1\n2", raw)] * 2


def test_cr_at_chunk_end_then_lf_is_one_line_ending():
    evs = decode([b"data: a\r\n\r", b"\ndata: b\r", b"\n\r", b"\n"])
    assert [(e.raw, e.data) for e in evs] == [(b"data: a\r\n\r\n", "a"), (b"data: b\r\n\r\n", "b")]


def test_lone_cr_blank_line_is_held_until_the_next_byte():
    d = SSEDecoder()
    assert d.feed(b"data: a\r\r") == []  # an LF may still follow
    [ev] = d.feed(b"data: b")
    assert (ev.raw, ev.data) == (b"data: a\r\r", "a")
    [tail] = d.flush()
    assert (tail.raw, tail.data, tail.complete) == (b"data: b", "b", False)


def test_flush_ends_a_trailing_cr_blank_line():
    d = SSEDecoder()
    assert d.feed(b"data: a\n\r") == []
    [ev] = d.flush()
    assert (ev.raw, ev.data, ev.complete) == (b"data: a\n\r", "a", True)


def test_bom_is_skipped_once_and_kept_in_raw():
    bom = b"\xef\xbb\xbf"
    evs = decode([bom[:2], bom[2:] + b"data: x\n\n" + bom + b"data: y\n\n"])
    assert evs[0].raw == bom + b"data: x\n\n" and evs[0].data == "x"
    assert evs[1].data is None  # a second BOM is not a BOM: the line's field name is "\ufeffdata"


def test_utf8_split_across_chunks_decodes_whole():
    raw = "data: café ☕ 😀\n\n".encode()
    for i in range(1, len(raw)):
        [ev] = decode([raw[:i], raw[i:]])
        assert ev.data == "café ☕ 😀"


def test_invalid_utf8_is_replaced_not_raised():
    [ev] = decode([b"data: \xff\xfe\x00ok\n\n"])
    assert ev.data == "\ufffd\ufffd\x00ok" and ev.raw == b"data: \xff\xfe\x00ok\n\n"


def test_unterminated_tail_comes_back_from_flush():
    d = SSEDecoder()
    assert d.feed(b'data: done\n\ndata: {"partial') == [SSEEvent(b"data: done\n\n", None, "done")]
    assert d.buffered == len(b'data: {"partial')
    [tail] = d.flush()
    assert (tail.raw, tail.data, tail.complete) == (b'data: {"partial', '{"partial', False)
    assert d.buffered == 0 and d.flush() == []


def test_hot_path_many_events_per_chunk_with_and_without_the_space():
    d = SSEDecoder()
    d.feed(b"data: first\n\n")
    evs = d.feed(b'data:{"a":1}\n\ndata: two\ndata: lines\n\n\nevent: e\ndata:  x\n\ndata: par')
    assert [(e.event, e.data) for e in evs] == [(None, '{"a":1}'), (None, "two\nlines"), (None, None), ("e", " x")]
    assert evs[2].raw == b"\n"
    assert d.feed(b"tial\n\n")[0].data == "partial"


def test_one_event_chunk_is_returned_without_a_copy():
    d = SSEDecoder()
    d.feed(b"data: first\n\n")
    chunk = b"data: hello\n\n"
    assert d.feed(chunk)[0].raw is chunk


def test_empty_chunks_are_harmless():
    d = SSEDecoder()
    assert d.feed(b"") == [] and d.feed(bytearray(b"data: x\n\n"))[0].data == "x"


# --- overflow --------------------------------------------------------------------------------


def test_overflow_returns_bytes_unparsed_and_keeps_memory_bounded():
    d = SSEDecoder(max_event_bytes=64)
    out = d.feed(b"data: ok\n\n")
    big = b"data: " + b"x" * 1000 + b"\n\n"
    for i in range(0, len(big), 7):
        out += d.feed(big[i : i + 7])
        assert d.buffered <= 64 + 7
    out += d.feed(b"data: after\n\n") + d.flush()
    assert b"".join(e.raw for e in out) == b"data: ok\n\n" + big + b"data: after\n\n"
    assert out[0].data == "ok" and out[-1].data == "after" and not out[-1].overflow
    middle = out[1:-1]
    assert middle and all(e.overflow and e.data is None for e in middle)


def test_overflow_is_the_same_whole_or_split():
    data = b"data: a\n\n" + b"data: " + b"y" * 100 + b"\r\n\r\n" + b"data: b\n\n"
    whole = decode([data], max_event_bytes=50)
    split = decode([data[i : i + 3] for i in range(0, len(data), 3)], max_event_bytes=50)
    for evs in (whole, split):
        assert [e.data for e in evs if not e.overflow] == ["a", "b"]
        assert b"".join(e.raw for e in evs if e.overflow) == b"data: " + b"y" * 100 + b"\r\n\r\n"


def test_unterminated_overflow_at_end_of_stream():
    evs = decode([b"data: " + b"z" * 200], max_event_bytes=50)
    assert b"".join(e.raw for e in evs) == b"data: " + b"z" * 200
    assert all(e.overflow for e in evs) and not evs[-1].complete


# --- properties ------------------------------------------------------------------------------

# Bytes that exercise the grammar: line endings, colons, field names, BOM pieces, NUL, bad UTF-8.
# Line endings come often, so that runs like "x\r\r\n" or "\n\r\n" turn up.
_atoms = st.sampled_from(
    [b"\r", b"\n", b"\r\n"] * 4
    + [
        b":",
        b" ",
        b"data",
        b"data:",
        b"data: ",
        b"event: e",
        b"id",
        b"x",
        b"\x00",
        b"\xff",
        b"\xef\xbb\xbf",
        b"\xe2\x82",
        b"\xac",
        b"retry",
    ]
)
grammar_bytes = st.lists(_atoms, max_size=60).map(b"".join)
any_bytes = st.one_of(grammar_bytes, st.binary(max_size=200))
cuts = st.lists(st.integers(min_value=0, max_value=10_000), max_size=12)


@FAST
@given(any_bytes, cuts, st.sampled_from([8, 64, 1 << 20]))
def test_raw_bytes_add_up_to_the_input_for_any_split(data, cut, limit):
    evs = decode(split_at(data, cut), max_event_bytes=limit)
    assert b"".join(e.raw for e in evs) == data
    assert all(e.raw for e in evs)


@FAST
@given(grammar_bytes, cuts)
def test_split_input_gives_the_same_events(data, cut):
    whole = decode([data])
    assert fields(decode(split_at(data, cut))) == fields(whole)
    assert [e.raw for e in decode(split_at(data, cut))] == [e.raw for e in whole]


@FAST
@given(grammar_bytes)
def test_byte_by_byte_matches_whole(data):
    whole = decode([data])
    one = decode([data[i : i + 1] for i in range(len(data))])
    assert [(e.raw, e.event, e.data, e.id) for e in one] == [(e.raw, e.event, e.data, e.id) for e in whole]


@FAST
@given(grammar_bytes, cuts)
def test_fields_match_a_literal_reading_of_the_spec(data, cut):
    complete = [(e.event, e.data, e.id) for e in decode(split_at(data, cut)) if e.complete]
    assert complete == reference(data)
    # Again after a first event, so chunks that start on an event boundary take the hot path.
    warm = b"data: w\n\n"
    complete = [(e.event, e.data, e.id) for e in decode([warm] + split_at(data, cut)) if e.complete]
    assert complete == reference(warm + data)


def _eol_runs(max_len: int = 4):
    runs = [[]]
    for _ in range(max_len):
        runs += [r + [e] for r in runs if len(r) == len(runs[-1]) for e in (b"\r", b"\n", b"\r\n")]
    return sorted({b"".join(r) for r in runs if r})


@pytest.mark.parametrize("run", _eol_runs(), ids=repr)
def test_every_run_of_line_endings_between_two_events(run):
    data = b"data: a" + run + b"data:b" + run + b"data: c\n\n"
    whole = decode([data])
    assert [(e.event, e.data, e.id) for e in whole if e.complete] == reference(data)
    assert [e.raw for e in decode([data[i : i + 1] for i in range(len(data))])] == [e.raw for e in whole]
    assert [e.raw for e in decode([b"data: w\n\n", data])][1:] == [e.raw for e in whole]


@pytest.mark.parametrize("path", SSE_FIXTURES, ids=lambda p: p.name)
@pytest.mark.parametrize("eol", [b"\n", b"\r\n", b"\r"])
def test_fixtures_split_at_every_offset(path: Path, eol: bytes) -> None:
    data = path.read_bytes().replace(b"\n", eol)
    whole = decode([data])
    assert all(e.complete for e in whole)
    assert len(whole) == TINY[path.name] if path.name in TINY else len(whole) >= 4
    for i in range(1, len(data), 13):
        assert fields(decode([data[:i], data[i:]])) == fields(whole)
    assert [e.raw for e in decode([data[i : i + 1] for i in range(len(data))])] == [e.raw for e in whole]


def test_llamacpp_error_line_is_one_event_without_data() -> None:
    data = (FIXTURES / "llamacpp_error_line.sse").read_bytes()
    (ev,) = decode([data])
    assert (ev.raw, ev.event, ev.data, ev.overflow) == (data, None, None, False)  # "error" is not an SSE field
