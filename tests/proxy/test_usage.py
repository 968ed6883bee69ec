"""Per-provider interpreters, the tool-call assembler, the registry and input estimation."""

from __future__ import annotations

import json

import pytest

from tokentail.proxy.record import Delta
from tokentail.proxy.usage import (
    GENERIC,
    INTERPRETERS,
    Extract,
    ToolCalls,
    chat_body,
    chat_event,
    completions_event,
    embeddings_body,
    error_message,
    estimate_input_tokens,
    interpreter_for,
    is_usage_chunk,
    messages_body,
    messages_event,
    responses_body,
    responses_event,
)


def chunk(delta=None, finish=None, **top):
    choice = {"index": 0, "delta": delta or {}, "finish_reason": finish}
    return {"id": "c1", "object": "chat.completion.chunk", "model": "m", "choices": [choice], **top}


# --- registry ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "endpoint, name",
    [
        ("/chat/completions", "chat"),
        ("/completions", "completions"),
        ("/responses", "responses"),
        ("/messages", "messages"),
        ("/embeddings", "embeddings"),
        ("/chat/completions/", "chat"),
        ("/openai/deployments/gpt4/chat/completions?api-version=2024-10-21", "chat"),
        ("/models", "generic"),
        ("/responses/resp_1", "generic"),
    ],
)
def test_interpreter_for_endpoint(endpoint, name):
    assert interpreter_for(endpoint).name == name


def test_only_openai_style_families_have_a_usage_chunk():
    assert {k for k, v in INTERPRETERS.items() if v.usage_chunk} == {"/chat/completions", "/completions"}
    assert not INTERPRETERS["/embeddings"].has_output


@pytest.mark.parametrize(
    "endpoint, done, ends, strict",
    [
        ("/chat/completions", True, [], True),
        ("/completions", True, [], True),
        ("/responses", False, ["response.completed", "response.incomplete", "response.failed"], True),
        ("/messages", False, ["message_stop"], True),
        ("/embeddings", False, [], False),
        ("/audio/speech", True, ["message_stop", "response.completed"], False),
    ],
)
def test_each_family_names_its_terminator(endpoint, done, ends, strict):
    interp = interpreter_for(endpoint)
    assert (interp.ends_with_done, interp.strict) == (done, strict)
    assert all(interp.is_end({"type": t}, None) and interp.is_end({}, t) for t in ends)
    assert not interp.is_end({"type": "response.output_text.delta"}, "message_stop")  # the type wins
    assert not interp.is_end({"type": 7}, None)


def test_generic_interpreter_reads_by_shape():
    st = Extract()
    assert (
        GENERIC.event(
            {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": "hi"}}, None, st
        ).text
        == "hi"
    )
    assert GENERIC.event({"type": "response.output_text.delta", "delta": "yo"}, None, st).text == "yo"
    assert GENERIC.event({"choices": [{"index": 0, "text": "t"}]}, None, st).text == "t"
    assert GENERIC.event(chunk({"content": "c"}), None, st).text == "c"


def test_is_usage_chunk():
    assert is_usage_chunk({"choices": [], "usage": {"prompt_tokens": 1}})
    assert not is_usage_chunk(chunk({"content": "x"}, usage={"prompt_tokens": 1}))  # vLLM continuous stats
    assert not is_usage_chunk({"choices": [], "usage": None})


# --- OpenAI chat and friends -----------------------------------------------------------------


def test_chat_text_reasoning_and_finish():
    st = Extract()
    assert chat_event(chunk({"role": "assistant", "content": ""}), None, st) is None
    assert chat_event(chunk({"content": "Hi"}), None, st) == Delta("Hi", None, "")
    assert chat_event(chunk({"reasoning_content": "hmm"}), None, st) == Delta("", None, "hmm")
    assert chat_event(chunk({"reasoning": "ollama"}), None, st) == Delta("", None, "ollama")
    assert chat_event(chunk({"content": [{"type": "text", "text": "parts"}]}), None, st).text == "parts"
    assert chat_event(chunk({"refusal": "no"}), None, st).text == "no"
    assert chat_event(chunk({}, "stop"), None, st) is None
    assert (st.model, st.id, st.finish_reason) == ("m", "c1", "stop")


def test_chat_model_and_id_may_arrive_late():
    st = Extract()
    chat_event({"id": "a", "choices": []}, None, st)
    chat_event({"id": "a", "model": "m2", "choices": []}, None, st)
    assert (st.id, st.model) == ("a", "m2")


def test_chat_tool_calls_that_are_not_a_list_are_ignored():
    st = Extract()
    assert chat_event(chunk({"tool_calls": {"index": 0}}), None, st) is None and not st.tools


def test_chat_only_choice_zero_is_kept():
    st = Extract()
    other = {"choices": [{"index": 1, "delta": {"content": "B"}, "finish_reason": "length"}]}
    assert chat_event(other, None, st) is None and st.finish_reason is None
    both = {"choices": [other["choices"][0], {"index": 0, "delta": {"content": "A"}}]}
    assert chat_event(both, None, st).text == "A"


def test_chat_usage_null_is_ignored_and_usage_chunk_is_read():
    st = Extract()
    chat_event(chunk({"content": "x"}, usage=None), None, st)
    assert (st.input_tokens, st.output_tokens) == (None, None)
    chat_event(
        {
            "choices": [],
            "usage": {"prompt_tokens": 10, "completion_tokens": 3, "prompt_tokens_details": {"cached_tokens": 8}},
        },
        None,
        st,
    )
    assert (st.input_tokens, st.output_tokens, st.cached_tokens) == (10, 3, 8)


def test_chat_usage_ignores_garbage_counts():
    st = Extract()
    chat_event(
        {"choices": [], "usage": {"prompt_tokens": "10", "completion_tokens": -1, "prompt_tokens_details": None}},
        None,
        st,
    )
    assert (st.input_tokens, st.output_tokens, st.cached_tokens) == (None, None, None)
    chat_event({"choices": [], "usage": {"prompt_tokens": 7.0, "completion_tokens": True}}, None, st)
    assert (st.input_tokens, st.output_tokens) == (7, None)


def test_deepseek_cache_hit_and_llamacpp_cache_n_stand_in_for_cached_tokens():
    st = Extract()
    chat_event({"choices": [], "usage": {"prompt_tokens": 5, "prompt_cache_hit_tokens": 3}}, None, st)
    assert st.cached_tokens == 3
    st = Extract()
    chat_event(
        chunk(
            {},
            "stop",
            usage={"prompt_tokens": 9, "completion_tokens": 1},
            timings={"cache_n": 4, "predicted_per_second": 50.0},
        ),
        None,
        st,
    )
    assert (st.cached_tokens, st.timings["predicted_per_second"]) == (4, 50.0)


def test_chat_tool_call_fragments_merge_by_index():
    st = Extract()
    frags = [
        [{"index": 0, "id": "call_1", "type": "function", "function": {"name": "f", "arguments": ""}}],
        [{"index": 0, "function": {"arguments": '{"a":'}}],
        [{"index": 1, "id": "call_2", "type": "function", "function": {"name": "g", "arguments": "{}"}}],
        [{"index": 0, "function": {"arguments": " 1}"}}],
    ]
    deltas = [chat_event(chunk({"tool_calls": f}), None, st) for f in frags]
    assert [d.tool_calls for d in deltas] == frags  # fragments pass through for the live feed
    assert st.tools.result() == [
        {"id": "call_1", "type": "function", "function": {"name": "f", "arguments": '{"a": 1}'}},
        {"id": "call_2", "type": "function", "function": {"name": "g", "arguments": "{}"}},
    ]


def test_chat_legacy_function_call():
    st = Extract()
    chat_event(chunk({"function_call": {"name": "f", "arguments": '{"x"'}}), None, st)
    chat_event(chunk({"function_call": {"arguments": ": 2}"}}), None, st)
    assert st.tools.result()[0]["function"] == {"name": "f", "arguments": '{"x": 2}'}


def test_chat_stream_error_objects():
    st = Extract()
    chat_event({"object": "error", "message": "boom", "type": "BadRequestError", "code": 400}, None, st)
    assert st.error == "BadRequestError: boom"


def test_chat_body_with_tools_reasoning_and_usage():
    st = Extract()
    body = {
        "id": "x",
        "model": "m",
        "choices": [
            {
                "index": 0,
                "finish_reason": "tool_calls",
                "message": {
                    "content": "ok",
                    "reasoning_content": "why",
                    "tool_calls": [{"id": "c", "type": "function", "function": {"name": "f", "arguments": {"a": 1}}}],
                },
            }
        ],
        "usage": {"prompt_tokens": 4, "completion_tokens": 2},
    }
    assert chat_body(body, st) == Delta("ok", None, "why")
    assert st.tools.result()[0]["function"] == {"name": "f", "arguments": '{"a": 1}'}
    assert (st.finish_reason, st.input_tokens, st.output_tokens) == ("tool_calls", 4, 2)


def test_completions_text():
    st = Extract()
    assert completions_event({"choices": [{"text": " hi", "index": 0, "finish_reason": None}]}, None, st).text == " hi"
    assert completions_event({"choices": [{"text": "", "index": 0, "finish_reason": "length"}]}, None, st) is None
    assert st.finish_reason == "length"


# --- Responses -------------------------------------------------------------------------------


def test_responses_events():
    st = Extract()
    ev = lambda t, **kw: responses_event({"type": t, **kw}, t, st)
    assert ev("response.created", response={"id": "r1", "model": "m", "status": "in_progress"}) is None
    assert st.finish_reason is None and st.id == "r1"
    assert ev("response.output_text.delta", delta="Hel").text == "Hel"
    assert ev("response.reasoning_summary_text.delta", delta="think").reasoning == "think"
    added = ev(
        "response.output_item.added",
        output_index=2,
        item={"type": "function_call", "call_id": "call_1", "name": "f", "arguments": ""},
    )
    assert added.tool_calls[0]["id"] == "call_1" and added.tool_calls[0]["function"]["name"] == "f"
    assert ev("response.function_call_arguments.delta", output_index=2, delta='{"q":').tool_calls
    ev("response.function_call_arguments.delta", output_index=2, delta='"x"}')
    assert st.tools.result()[0]["function"]["arguments"] == '{"q":"x"}'
    ev(
        "response.output_item.done",
        output_index=2,
        item={"type": "function_call", "call_id": "call_1", "name": "f", "arguments": '{"q": "final"}'},
    )
    assert st.tools.result()[0]["function"]["arguments"] == '{"q": "final"}'  # the done item wins
    ev(
        "response.incomplete",
        response={
            "id": "r1",
            "status": "incomplete",
            "usage": {"input_tokens": 9, "output_tokens": 4, "input_tokens_details": {"cached_tokens": 5}},
        },
    )
    assert (st.finish_reason, st.input_tokens, st.output_tokens, st.cached_tokens) == ("incomplete", 9, 4, 5)


def test_responses_failed_and_error_events():
    st = Extract()
    responses_event(
        {
            "type": "response.failed",
            "response": {"status": "failed", "error": {"code": "server_error", "message": "oops"}},
        },
        None,
        st,
    )
    assert (st.finish_reason, st.error) == ("failed", "server_error: oops")
    responses_event({"type": "error", "code": "rate_limit_exceeded", "message": "slow"}, "error", st)
    assert st.error == "rate_limit_exceeded: slow"


def test_responses_body():
    st = Extract()
    d = responses_body(
        {
            "id": "r",
            "model": "m",
            "status": "completed",
            "output": [
                {
                    "type": "message",
                    "content": [{"type": "output_text", "text": "A"}, {"type": "refusal", "refusal": "B"}],
                },
                {"type": "reasoning", "summary": [{"type": "summary_text", "text": "R"}]},
                {"type": "function_call", "call_id": "c", "name": "f", "arguments": "{}"},
            ],
        },
        st,
    )
    assert (d.text, d.reasoning, st.finish_reason) == ("AB", "R", "completed")
    assert st.tools.result() == [{"id": "c", "type": "function", "function": {"name": "f", "arguments": "{}"}}]


# --- Anthropic -------------------------------------------------------------------------------


def test_anthropic_usage_counts_cache_in_input_and_ignores_start_output():
    st = Extract()
    messages_event(
        {
            "type": "message_start",
            "message": {
                "id": "msg",
                "model": "claude",
                "usage": {
                    "input_tokens": 10,
                    "cache_read_input_tokens": 100,
                    "cache_creation_input_tokens": 5,
                    "output_tokens": 1,
                },
            },
        },
        "message_start",
        st,
    )
    assert (st.input_tokens, st.cached_tokens, st.output_tokens) == (115, 100, None)
    messages_event(
        {"type": "message_delta", "delta": {"stop_reason": "end_turn"}, "usage": {"output_tokens": 42}},
        "message_delta",
        st,
    )
    assert (st.input_tokens, st.output_tokens, st.finish_reason) == (115, 42, "end_turn")
    assert (st.model, st.id) == ("claude", "msg")


def test_anthropic_blocks():
    st = Extract()
    ev = lambda obj: messages_event(obj, obj["type"], st)
    start = ev(
        {
            "type": "content_block_start",
            "index": 1,
            "content_block": {"type": "tool_use", "id": "toolu_1", "name": "f", "input": {}},
        }
    )
    assert start.tool_calls[0]["id"] == "toolu_1"
    assert (
        ev({"type": "content_block_delta", "index": 1, "delta": {"type": "input_json_delta", "partial_json": ""}})
        is None
    )
    assert ev(
        {"type": "content_block_delta", "index": 1, "delta": {"type": "input_json_delta", "partial_json": '{"a":1}'}}
    ).tool_calls
    assert (
        ev({"type": "content_block_delta", "index": 0, "delta": {"type": "thinking_delta", "thinking": "t"}}).reasoning
        == "t"
    )
    assert (
        ev({"type": "content_block_delta", "index": 0, "delta": {"type": "signature_delta", "signature": "sig"}})
        is None
    )
    assert ev({"type": "content_block_delta", "index": 2, "delta": {"type": "text_delta", "text": "x"}}).text == "x"
    assert st.tools.result() == [
        {"id": "toolu_1", "type": "function", "function": {"name": "f", "arguments": '{"a":1}'}}
    ]
    ev({"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}})
    assert st.error == "overloaded_error: Overloaded"


def test_anthropic_body():
    st = Extract()
    d = messages_body(
        {
            "id": "m1",
            "model": "c",
            "stop_reason": "max_tokens",
            "content": [
                {"type": "thinking", "thinking": "T"},
                {"type": "text", "text": "A"},
                {"type": "tool_use", "id": "t1", "name": "f", "input": {"k": "v"}},
            ],
            "usage": {"input_tokens": 3, "output_tokens": 7, "cache_read_input_tokens": 2},
        },
        st,
    )
    assert (d.text, d.reasoning, st.finish_reason) == ("A", "T", "max_tokens")
    assert (st.input_tokens, st.output_tokens, st.cached_tokens) == (5, 7, 2)
    assert json.loads(st.tools.result()[0]["function"]["arguments"]) == {"k": "v"}


# --- embeddings ------------------------------------------------------------------------------


def test_embeddings_output_is_zero_only_when_usage_is_reported():
    st = Extract()
    embeddings_body({"object": "list", "model": "e", "data": [], "usage": {"prompt_tokens": 8}}, st)
    assert (st.model, st.input_tokens, st.output_tokens) == ("e", 8, 0)
    st = Extract()
    embeddings_body({"object": "list", "model": "e", "data": []}, st)
    assert (st.input_tokens, st.output_tokens) == (None, None)


# --- ToolCalls -------------------------------------------------------------------------------


def test_tool_fragments_without_index_split_on_new_ids():
    t = ToolCalls()
    t.add_openai([{"id": "a", "function": {"name": "f", "arguments": "{"}}])
    t.add_openai([{"function": {"arguments": "}"}}])
    t.add_openai([{"id": "b", "function": {"name": "g", "arguments": "[]"}}])
    assert [(c["id"], c["function"]["arguments"]) for c in t.result()] == [("a", "{}"), ("b", "[]")]


def test_tool_arguments_are_capped():
    t = ToolCalls(budget=10)
    t.add(0, "a", "f", "x" * 8)
    t.add(0, args="y" * 8)
    t.add(0, args="z")
    assert t.result()[0]["function"]["arguments"] == "x" * 8 + "yy" and t.truncated


def test_tool_calls_ignore_junk_fragments():
    t = ToolCalls()
    t.add_openai("nope")
    t.add_openai([None, 3, {"index": 0, "function": {"name": "f", "arguments": 5}}])
    assert t.result() == [{"id": None, "type": "function", "function": {"name": "f", "arguments": ""}}]


# --- errors and estimation ---------------------------------------------------------------------


@pytest.mark.parametrize(
    "obj, text",
    [
        ({"error": {"message": "bad key", "type": "invalid_request_error"}}, "invalid_request_error: bad key"),
        ({"error": "plain"}, "plain"),
        ({"type": "error", "error": {"type": "api_error", "message": "x" * 500}}, "api_error: " + "x" * 189),
        ({"error": {}}, "error"),
    ],
)
def test_error_message(obj, text):
    assert error_message(obj) == text


@pytest.mark.parametrize(
    "req, tokens",
    [
        ({"messages": [{"role": "user", "content": "abcdefgh"}]}, 2),
        (
            {
                "messages": [
                    {
                        "role": "user",
                        "content": [
                            {"type": "text", "text": "abcde"},
                            {"type": "image_url", "image_url": {"url": "data:" + "A" * 999}},
                        ],
                    }
                ]
            },
            2,
        ),
        ({"system": "abcd", "messages": [{"role": "user", "content": [{"type": "text", "text": "abcd"}]}]}, 2),
        ({"prompt": ["ab", "cd"]}, 1),
        ({"prompt": [1, 2, 3]}, 3),  # token ids
        ({"instructions": "abcd", "input": "abcd"}, 2),
        ({"input": [{"role": "user", "content": [{"type": "input_text", "text": "abcdefghi"}]}]}, 3),
        ({"messages": [{"role": "assistant", "tool_calls": [{"function": {"name": "f", "arguments": "abcd"}}]}]}, 1),
    ],
)
def test_estimate_input_tokens(req, tokens):
    assert estimate_input_tokens(req) == tokens


@pytest.mark.parametrize(
    "req", [None, [], {}, {"model": "m"}, {"messages": []}, {"messages": [{"role": "user", "content": ""}]}]
)
def test_nothing_to_estimate_is_none_never_zero(req):
    assert estimate_input_tokens(req) is None


def test_estimate_counts_tool_definitions_and_survives_deep_nesting():
    tools = [{"type": "function", "function": {"name": "f", "parameters": {"type": "object"}}}]
    base = estimate_input_tokens({"messages": [{"role": "user", "content": "hi"}]})
    assert estimate_input_tokens({"messages": [{"role": "user", "content": "hi"}], "tools": tools}) > base
    deep: list = ["abcd"]
    for _ in range(500):
        deep = [deep]
    assert estimate_input_tokens({"prompt": deep}) is None  # past the depth bound: nothing, no crash


def test_estimate_of_a_huge_message_list_walks_a_bounded_sample():
    # 140,000 messages: the walk stops after _WALK_NODES values and extrapolates the rest.
    many = {"messages": [{"role": "user", "content": "abcd" * (1 + i % 3)} for i in range(140_000)]}
    exact = sum(4 * (1 + i % 3) for i in range(140_000)) // 4
    assert abs(estimate_input_tokens(many) - exact) <= exact // 100
    few = {"messages": [{"role": "user", "content": "abcd" * (1 + i % 3)} for i in range(3000)]}
    assert estimate_input_tokens(few) == sum(1 + i % 3 for i in range(3000))  # under the bound: exact
    long_text = {"messages": [{"role": "user", "content": "x" * (4 << 20)}]}
    assert estimate_input_tokens(long_text) == 1 << 20  # one long string is one value
