"""Tests for tokentail/messages.py: content → text (one separator rule), previews, one shape."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tokentail.messages import (
    PREVIEW_CHARS,
    content_text,
    last_turn_text,
    message,
    message_from_parts,
    messages_from_prompt,
    parts_text,
    preview,
    prompt_preview,
    prompt_text,
)

IMAGE = {"type": "image_url", "image_url": {"url": "data:..."}}


@pytest.mark.parametrize(
    "content, text",
    [
        ("plain", "plain"),
        (None, ""),
        ([], ""),
        # text parts of every API concatenate with no separator
        ([{"type": "text", "text": "Hel"}, {"type": "text", "text": "lo"}], "Hello"),  # OpenAI chat
        ([{"type": "input_text", "text": "a "}, {"type": "output_text", "text": "b"}], "a b"),  # Responses
        ([{"type": "text", "text": "x", "cache_control": {"type": "ephemeral"}}, "y"], "xy"),  # Anthropic, bare str
        ([{"type": "refusal", "refusal": "no"}], "no"),  # Responses refusal part
        # a tool result's text stands on a line of its own
        (
            [{"type": "tool_result", "tool_use_id": "t", "content": [{"type": "text", "text": "42"}]}, "then"],
            "42\nthen",
        ),
        ([{"type": "text", "text": "see"}, {"type": "tool_result", "content": "r1"}], "see\nr1"),
        # without placeholders, what is not text gives nothing
        ([{"type": "text", "text": "Look:"}, IMAGE, {"type": "tool_use", "id": "t", "input": {}}], "Look:"),
        ({"odd": 1}, ""),
        (7, ""),
    ],
)
def test_content_text(content: Any, text: str) -> None:
    assert content_text(content) == text


def test_nested_tool_results_are_bounded() -> None:
    deep: Any = "bottom"
    for _ in range(5000):  # deeper than Python's recursion limit
        deep = [{"type": "tool_result", "content": deep}]
    assert content_text(deep) == "" and content_text(deep, placeholders=True) == ""
    shallow = [{"type": "tool_result", "content": [{"type": "tool_result", "content": "x"}]}]
    assert content_text(shallow) == "x"


def test_placeholders_stand_on_lines_of_their_own() -> None:
    content = [{"type": "text", "text": "Look:"}, IMAGE, {"type": "text", "text": "and"}, {"type": "input_audio"}]
    assert content_text(content, placeholders=True) == "Look:\n[image_url]\nand\n[input_audio]"
    assert content_text([{"type": "tool_use", "id": "t"}, {"no": "type"}], placeholders=True) == "[part]"
    assert content_text({"odd": 1}, placeholders=True) == '{"odd": 1}'


@given(st.lists(st.text(max_size=10), max_size=6))
def test_text_parts_concatenate_like_a_streamed_reply(pieces: list[str]) -> None:
    """A reply sent back as parts reads exactly as the tap captured it from its deltas."""
    assert content_text([{"type": "text", "text": p} for p in pieces]) == "".join(pieces)
    assert parts_text([{"type": "text", "content": p} for p in pieces]) == "".join(pieces)


def test_preview_cuts_with_an_ellipsis() -> None:
    assert preview("short") == "short"
    cut = preview("x" * 500)
    assert len(cut) == PREVIEW_CHARS and cut.endswith("…")
    assert preview("abcdef", 4) == "abc…" and preview("abc", 0) == ""


def test_prompt_text_is_the_last_user_turn_with_text() -> None:
    chat = {
        "system": "Be brief.",
        "messages": [
            {"role": "user", "content": "first"},
            {"role": "assistant", "content": "ok"},
            {"role": "user", "content": [{"type": "text", "text": "Look "}, {"type": "text", "text": "here"}]},
            {"role": "user", "content": ""},  # no text: skipped
            {"role": "tool", "tool_call_id": "c", "content": "42"},
        ],
    }
    assert prompt_text(chat) == "Look here"
    assert prompt_text({"messages": [{"role": "assistant", "content": "prefill"}]}) == "prefill"  # no user turn
    assert prompt_text({"input": "hi"}) == "hi"  # Responses, a string
    assert prompt_text({"input": [{"role": "user", "content": [{"type": "input_text", "text": "q"}]}]}) == "q"
    assert prompt_text({"prompt": ["once", "upon"]}) == "once\nupon"  # Completions, a batch
    assert prompt_text({"system": "only a system prompt"}) == "only a system prompt"
    assert prompt_text({}) == ""
    assert prompt_preview({"input": "y" * 1000}) == "y" * (PREVIEW_CHARS - 1) + "…"


def test_message_of_each_api_in_one_shape() -> None:
    assert message({"role": "developer", "content": "Rules."}) == {
        "role": "system",
        "text": "Rules.",
        "tool_calls": [],
        "tool_call_id": None,
        "reasoning": "",
    }
    chat_tool = message(
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [{"id": "c1", "function": {"name": "f", "arguments": "{}"}}],
        }
    )
    assert chat_tool["tool_calls"] == [{"id": "c1", "name": "f", "arguments": "{}"}] and chat_tool["text"] == ""
    anthropic = message(
        {
            "role": "assistant",
            "content": [
                {"type": "text", "text": "Let me check."},
                {"type": "tool_use", "id": "t", "name": "g", "input": {"x": 1}},
            ],
        }
    )
    assert anthropic["text"] == "Let me check." and anthropic["tool_calls"][0]["arguments"] == '{\n  "x": 1\n}'
    assert (
        message({"type": "function_call", "name": "h", "arguments": "{}", "call_id": "k"})["tool_calls"][0]["id"] == "k"
    )
    out = message({"type": "function_call_output", "call_id": "k", "output": "done"})
    assert (out["role"], out["text"], out["tool_call_id"]) == ("tool", "done", "k")
    assert message("bare")["text"] == "bare"


def test_message_from_parts_same_rule() -> None:
    m = message_from_parts(
        {
            "role": "assistant",
            "parts": [
                {"type": "reasoning", "content": "think "},
                {"type": "reasoning", "content": "more"},
                {"type": "text", "content": "A"},
                {"type": "text", "content": "B"},
                {"type": "tool_call", "id": "c", "name": "f", "arguments": {"a": 1}},
            ],
        }
    )
    assert (m["text"], m["reasoning"]) == ("AB", "think more") and m["tool_calls"][0]["name"] == "f"
    assert message_from_parts({"role": "user", "parts": [{"type": "blob"}, {"type": "uri"}]})["text"] == "[blob]\n[uri]"
    resp = message_from_parts({"role": "tool", "parts": [{"type": "tool_call_response", "id": "c", "response": "42"}]})
    assert (resp["text"], resp["tool_call_id"]) == ("42", "c")
    assert message_from_parts('[{"role": "user"}]')["text"] == '[{"role": "user"}]'


def test_messages_from_prompt_system_first_and_last_turn() -> None:
    msgs = messages_from_prompt({"instructions": "Sys.", "input": [{"role": "user", "content": "hi"}]})
    assert [(m["role"], m["text"]) for m in msgs] == [("system", "Sys."), ("user", "hi")]
    assert last_turn_text(reversed(msgs)) == "hi"
    assert last_turn_text([]) == ""
