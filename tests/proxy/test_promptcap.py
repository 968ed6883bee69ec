"""Tests for proxy/_promptcap.py: the captured prompt capped before anything reads it."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from tokentail.proxy._promptcap import NESTED, cap_prompt
from tokentail.proxy.redact import strip_media


def test_small_prompt_kept_as_is() -> None:
    p = {"messages": [{"role": "user", "content": "hello"}], "system": "be brief"}
    out, cut, used = cap_prompt(p, 1024)
    assert out == p and out is not p and not cut and 0 < used < 1024


def test_long_string_cut_and_the_rest_dropped() -> None:
    p = {"messages": [{"role": "user", "content": "x" * 5000}, {"role": "user", "content": "later"}]}
    out, cut, used = cap_prompt(p, 1000)
    assert cut and used <= 1000
    assert out["messages"][0]["content"] == "x" * len(out["messages"][0]["content"])
    assert 900 < len(out["messages"][0]["content"]) < 1000
    assert len(out["messages"]) == 1  # what follows the cut is dropped
    assert p["messages"][0]["content"] == "x" * 5000  # the input is not changed


def test_many_small_nodes_are_bounded_too() -> None:
    out, cut, _ = cap_prompt({"input": list(range(1_000_000))}, 4096)
    assert cut and len(out["input"]) < 1000


def test_cut_never_splits_a_character() -> None:
    out, cut, used = cap_prompt({"prompt": "é" * 100}, 51)
    assert cut and out["prompt"] == "é" * 21 and used == 8 + 42  # the object costs a node


def test_depth_is_bounded() -> None:
    deep: object = "leaf"
    for _ in range(300):
        deep = [deep]
    out, cut, _ = cap_prompt({"messages": deep}, 1 << 20, max_depth=256)
    assert cut
    node = out["messages"]
    for _ in range(255):
        node = node[0]
    assert node == NESTED


def test_media_kept_whole_for_strip_media_then_capped() -> None:
    b64 = "A" * 200_000
    p = {
        "messages": [
            {"role": "user", "content": [{"type": "image_url", "image_url": {"url": "data:image/png;base64," + b64}}]}
        ]
    }
    first, cut1, _ = cap_prompt(p, 1024, keep_media=True)
    assert not cut1 and first["messages"][0]["content"][0]["image_url"]["url"].endswith(b64)
    out, cut, _ = cap_prompt(strip_media(first), 1024)
    url = out["messages"][0]["content"][0]["image_url"]["url"]
    assert not cut and "image/png" in url and "146" in url  # the placeholder tells the real size (~146 KiB)


@settings(max_examples=40, deadline=None)
@given(
    st.recursive(
        st.text(max_size=50) | st.integers(),
        lambda c: st.lists(c, max_size=5) | st.dictionaries(st.text(max_size=5), c, max_size=5),
    ),
    st.integers(0, 400),
)
def test_never_over_budget(obj: object, budget: int) -> None:
    out, cut, used = cap_prompt({"messages": obj}, budget)
    assert used <= budget + 8 * 2 or cut  # a node's own cost may cross the line once
    if not cut:
        assert out == {"messages": obj}
