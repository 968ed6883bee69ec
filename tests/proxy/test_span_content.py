"""content_attributes: the GenAI content of a span, built from what the observer captured."""

from __future__ import annotations

import json

from tokentail import semconv as S
from tokentail.proxy._span_content import content_attributes
from tokentail.proxy._spancap import TT_CONTENT_TRUNCATED

OUT = [{"role": "assistant", "parts": [{"type": "text", "content": "Hi!"}], "finish_reason": "stop"}]


def test_small_content_whole_on_the_span_and_the_event():
    prompt = {"messages": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi"}]}
    a, details, at = content_attributes(
        (1 << 16, "chat", "openai", "gpt-4o", None, prompt, "/chat/completions", OUT, 7)
    )
    assert at == 7
    assert json.loads(a[S.INPUT_MESSAGES])[1] == {"role": "user", "parts": [{"type": "text", "content": "Hi"}]}
    assert json.loads(a[S.OUTPUT_MESSAGES]) == OUT
    assert details[S.INPUT_MESSAGES] == a[S.INPUT_MESSAGES] and details[S.REQUEST_MODEL] == "gpt-4o"
    assert TT_CONTENT_TRUNCATED not in a and S.ERROR_TYPE not in details


def test_anthropic_system_and_messages_share_the_cap_and_the_cut_is_marked():
    prompt = {"system": "s" * 5000, "messages": [{"role": "user", "content": "u" * 5000}]}
    a, details, _ = content_attributes((4096, "chat", "anthropic", None, "timeout", prompt, "/messages", [], None))
    sizes = [len(a[k].encode()) for k in (S.SYSTEM_INSTRUCTIONS, S.INPUT_MESSAGES)]
    assert sizes[0] <= 2048 and sum(sizes) <= 4096
    json.loads(a[S.SYSTEM_INSTRUCTIONS]), json.loads(a[S.INPUT_MESSAGES])  # still valid JSON
    assert a[TT_CONTENT_TRUNCATED] is True and details[TT_CONTENT_TRUNCATED] is True
    assert details[S.ERROR_TYPE] == "timeout" and S.OUTPUT_MESSAGES not in a
