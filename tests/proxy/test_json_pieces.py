"""json_pieces: a body parsed value by value gives what ``json.loads`` gives, errors included."""

from __future__ import annotations

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tokentail.proxy.hooks import parse_json_object
from tokentail.proxy.json_pieces import loads_object

_scalars = st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text()
_values = st.recursive(
    _scalars,
    lambda inner: st.lists(inner, max_size=5) | st.dictionaries(st.text(max_size=8), inner, max_size=5),
    max_leaves=40,
)
_objects = st.dictionaries(st.text(max_size=10), _values, max_size=8)


@settings(max_examples=300, deadline=None)
@given(_objects, st.sampled_from([None, 0, 2, "\t"]), st.sampled_from([(",", ":"), (", ", ": "), (" ,\n", " :\r\n")]))
def test_any_object_in_any_layout_parses_as_json_loads_does(obj, indent, separators):
    body = json.dumps(obj, indent=indent, separators=separators, ensure_ascii=False).encode()
    assert loads_object(body) == json.loads(body) == obj


# Bodies that are almost JSON objects: every place the piecewise parser checks a delimiter.
_ALMOST = [
    b'{"a": [1, 2,]}',
    b'{"a": [1 2]}',
    b'{"a": [1, 2}',
    b'{"a": 1,}',
    b'{"a" 1}',
    b"{a: 1}",
    b'{"a": 1} x',
    b'{"a": 1}{}',
    b'{"a": [',
    b'{"a": [1,',
    b'{"a":',
    b"{",
    b'{"a": [1, , 2]}',
    b'{"a": "\x01"}',  # a raw control character: strict JSON refuses it
    b'{"a": [NaN, Infinity, -Infinity]}',  # json.loads takes these; so must we
    b'  \n{"a": [ ] , "b" : { } }\r\n ',
    b'{"a": []}',
    b"{}",
    b"[1, 2]",
    b'"a string"',
    b"",
    b"\xef\xbb\xbf{}",  # a UTF-8 BOM, as json.loads(bytes) accepts it
    '{"a": "é"}'.encode("utf-16"),
    '{"a": ["é", 1]}'.encode("utf-32-le"),
    b'{"a": "\xff"}',  # not UTF-8
]


@pytest.mark.parametrize("body", _ALMOST)
def test_almost_objects_succeed_or_fail_as_with_json_loads(body):
    assert parse_json_object(body, in_pieces=True) == parse_json_object(body)


@settings(max_examples=500, deadline=None)
@given(st.text(alphabet='{}[]:," \n\tab01.-eE\\ntrufalsNI', max_size=40))
def test_arbitrary_text_succeeds_or_fails_as_with_json_loads(text):
    body = ("{" + text).encode()
    assert parse_json_object(body, in_pieces=True) == parse_json_object(body)


def test_a_failure_says_where_as_json_loads_does():
    body = b'{"messages": [{"role": "user"}, {"role": "user",}]}'
    with pytest.raises(json.JSONDecodeError) as ours:
        loads_object(body)
    with pytest.raises(json.JSONDecodeError) as theirs:
        json.loads(body)
    assert (ours.value.msg, ours.value.pos) == (theirs.value.msg, theirs.value.pos)


@pytest.mark.parametrize("depth", [10_000, 100_000])
def test_deep_nesting_inside_a_member_is_refused_not_a_crash(depth):
    body = b'{"messages": [' + b"[" * depth + b"]" * depth + b"]}"
    assert parse_json_object(body, in_pieces=True) is None  # RecursionError, caught as json.loads's is


def test_megabytes_of_small_messages_and_one_huge_string():
    dense = {"model": "m", "messages": [{"role": "user", "content": "x"}] * 140_000}
    body = json.dumps(dense).encode()
    assert loads_object(body) == dense
    huge = {"model": "m", "messages": [{"role": "user", "content": "a." * (2 << 20) + "@"}]}
    assert loads_object(json.dumps(huge).encode()) == huge


def test_a_body_that_is_not_an_object_is_not_parsed():
    assert loads_object(b"[" + b"1," * 1_000_000 + b"1]") is None
