"""capped_json: content within a byte budget, valid JSON, the shape kept, never in place."""

from __future__ import annotations

import copy
import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tokentail.proxy._spancap import TRUNCATION_MARK, capped_json


def msg(text, role="user"):
    return {"role": role, "parts": [{"type": "text", "content": text}]}


def size(s: str) -> int:
    return len(s.encode())


def test_small_values_are_untouched():
    v = [msg("hi")]
    assert capped_json(v, 1000) == (json.dumps(v, separators=(",", ":")), False)


@pytest.mark.parametrize("text", ["x" * (1 << 20), "é\n" * (1 << 18), '"\\' * (1 << 18), "😀" * 100_000])
def test_one_huge_string_is_cut_to_the_budget_and_marked(text):
    s, cut = capped_json([msg(text), msg("latest", "assistant")], 64 << 10)
    assert cut and (64 << 10) - 64 <= size(s) <= 64 << 10  # cut close to the budget, not far below
    first, last = json.loads(s)
    assert first["parts"][0]["content"].endswith(TRUNCATION_MARK) and text.startswith(
        first["parts"][0]["content"][:-12]
    )
    assert last == msg("latest", "assistant")  # short strings are kept whole


def test_the_longest_strings_are_cut_first():
    s, cut = capped_json([msg("a" * 10_000), msg("b" * 100), msg("c" * 20_000)], 8_000)
    a, b, c = (m["parts"][0]["content"] for m in json.loads(s))
    assert cut and size(s) <= 8_000 and b == "b" * 100 and a.endswith(TRUNCATION_MARK) and c.endswith(TRUNCATION_MARK)


def test_too_many_items_keep_the_latest():
    v = [msg(f"m{i}") for i in range(20_000)]
    s, cut = capped_json(v, 4096)
    out = json.loads(s)
    assert cut and size(s) <= 4096 and out == v[len(v) - len(out) :] and len(out) > 50


def test_nested_tool_arguments_are_cut_and_the_input_is_not_changed():
    v = [{"role": "assistant", "parts": [{"type": "tool_call", "arguments": {"q": "z" * 50_000, "n": 1}}]}]
    before = copy.deepcopy(v)
    s, cut = capped_json(v, 2000)
    assert cut and size(s) <= 2000 and json.loads(s)[0]["parts"][0]["arguments"]["n"] == 1
    assert v == before


@settings(max_examples=60, deadline=None)
@given(
    st.lists(st.tuples(st.sampled_from(["user", "assistant"]), st.text(max_size=3000)), max_size=12),
    st.integers(2, 6000),
)
def test_any_content_fits_any_budget_as_valid_json(items, cap):
    v = [msg(t, r) for r, t in items]
    s, cut = capped_json(v, cap)
    out = json.loads(s)
    assert size(s) <= max(cap, 2) and isinstance(out, list)
    assert cut == (out != v)
