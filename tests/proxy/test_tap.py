"""StreamTap: provider fixtures to records, any chunking, strip mode, caps, usage rules, bad input."""

from __future__ import annotations

import itertools
import json
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tokentail.proxy import record as R
from tokentail.proxy.record import RequestRecord
from tokentail.proxy.tap import StreamTap, _loads

FIXTURES = Path(__file__).parent / "fixtures"
FAST = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
REQ = {"model": "m", "stream": True, "messages": [{"role": "user", "content": "What is the weather in Paris?"}]}
REQ_TOKENS = 8  # ceil(29 chars / 4)


def make_rec(endpoint: str = "/chat/completions", http_status: int | None = 200) -> RequestRecord:
    rec = RequestRecord(id="r1", variant="v", method="POST", endpoint=endpoint)
    rec.http_status = http_status
    return rec


def run(chunks, endpoint="/chat/completions", request_json=REQ, *, streaming=True, http_status=200, **kw):
    """Feed ``chunks`` through a fresh tap; return (record, bytes sent, deltas)."""
    rec = make_rec(endpoint, http_status)
    tap = StreamTap(rec, request_json, streaming=streaming, **kw)
    out, deltas = [], []
    for c in chunks:
        sent, ds = tap.feed(c)
        out.append(sent)
        deltas += ds
    out.append(tap.finish())
    return rec, b"".join(out), deltas


def snapshot(rec: RequestRecord) -> tuple:
    return (
        rec.text,
        rec.reasoning,
        rec.tool_calls,
        rec.finish_reason,
        rec.usage.as_dict(),
        rec.response_model,
        rec.response_id,
        rec.deltas,
        rec.malformed,
        rec.truncated,
        rec.error_message,
        rec.upstream_timings,
        rec.status,
        rec.error,
    )


def sse(*objs) -> bytes:
    return b"".join(b"data: " + (o if isinstance(o, bytes) else json.dumps(o).encode()) + b"\n\n" for o in objs)


def delta(text: str) -> dict:
    return {"id": "c1", "model": "m", "choices": [{"index": 0, "delta": {"content": text}, "finish_reason": None}]}


USAGE = {"id": "c1", "model": "m", "choices": [], "usage": {"prompt_tokens": 3, "completion_tokens": 2}}


def split_at(data: bytes, cuts: list[int]) -> list[bytes]:
    points = sorted({0, len(data), *(c % (len(data) + 1) for c in cuts)})
    return [data[a:b] for a, b in itertools.pairwise(points)]


# --- provider fixtures ---------------------------------------------------------------------

WEATHER = {"name": "get_weather", "arguments": '{"location": "Paris"}'}
CASES = [
    # fixture, endpoint, text, reasoning, tool functions, finish, (in, out, cached, source), model, id
    (
        "openai_chat_stream.sse",
        "/chat/completions",
        "Hello! Café ☕ time?",
        "",
        [],
        "stop",
        (1534, 6, 1280, "reported"),
        "gpt-4o-mini-2024-07-18",
        "chatcmpl-AYx1fK2",
    ),
    (
        "openai_chat_tools.sse",
        "/chat/completions",
        "",
        "",
        [
            ("call_Wz7mB1", {"name": "get_weather", "arguments": '{"city": "Paris"}'}),
            ("call_Qp4dX9", {"name": "get_time", "arguments": '{"tz": "CET"}'}),
        ],
        "tool_calls",
        (REQ_TOKENS, 5, None, "estimated"),
        "gpt-4o-2024-08-06",
        "chatcmpl-AYx2T00l",
    ),
    (
        "openai_completions_stream.sse",
        "/completions",
        " Once upon a time",
        "",
        [],
        "length",
        (5, 4, None, "reported"),
        "gpt-3.5-turbo-instruct",
        "cmpl-AYx3aa",
    ),
    (
        "openai_responses_stream.sse",
        "/responses",
        "Checking now.",
        "Need the weather.",
        [("call_Kx81", {"name": "get_weather", "arguments": '{"city":"Oslo"}'})],
        "completed",
        (321, 58, 256, "reported"),
        "o4-mini-2025-04-16",
        "resp_68a1c0ffee",
    ),
    (
        "anthropic_messages_stream.sse",
        "/messages",
        "Let me check — one moment.",
        "User wants weather.",
        [("toolu_01T1x1fJ34qAmk2tNTrN7Up6", WEATHER)],
        "tool_use",
        (472 + 100 + 2048, 89, 2048, "reported"),
        "claude-sonnet-4-5-20250929",
        "msg_01XFDUDYJgAACzvnptvVoYEL",
    ),
    (
        "vllm_chat_usage.sse",
        "/chat/completions",
        "4",
        "2+2 is basic.",
        [],
        "stop",
        (11, 4, None, "reported"),
        "deepseek-ai/DeepSeek-R1-Distill-Qwen-7B",
        "chatcmpl-8f1c2d",
    ),
    (
        "llamacpp_chat_timings.sse",
        "/chat/completions",
        "Bonjour !",
        "",
        [],
        "stop",
        (24, 3, 16, "reported"),
        "qwen2.5-7b-instruct-q4_k_m.gguf",
        "chatcmpl-Nq2rF8",
    ),
    (
        "ollama_chat.sse",
        "/chat/completions",
        "The sky is blue.",
        "",
        [],
        "stop",
        (REQ_TOKENS, 3, None, "estimated"),
        "llama3.2",
        "chatcmpl-472",
    ),
    (
        "deepseek_chat_stream.sse",
        "/chat/completions",
        "Hi!",
        "Greeting.",
        [],
        "stop",
        (13, 9, 0, "reported"),
        "deepseek-reasoner",
        "5c2a7f3e-1b9d-4a8e-9f00-3d6b1c0e2a11",
    ),
    # Non-streamed bodies.
    (
        "openai_chat.json",
        "/chat/completions",
        "",
        "",
        [("call_a1", {"name": "get_weather", "arguments": '{"city":"Paris"}'})],
        "tool_calls",
        (82, 17, 64, "reported"),
        "gpt-4o-2024-08-06",
        "chatcmpl-AYx9QnG",
    ),
    (
        "deepseek_chat.json",
        "/chat/completions",
        "Paris.",
        "The capital of France is Paris.",
        [],
        "stop",
        (15, 12, 0, "reported"),
        "deepseek-reasoner",
        "930c60df-bf64-41c9-a88e-3ec75f81e00e",
    ),
    (
        "llamacpp_chat.json",
        "/chat/completions",
        "A llama is a",
        "",
        [],
        "length",
        (18, 5, 10, "reported"),
        "gpt-3.5-turbo",
        "chatcmpl-Zc0Lq7",
    ),
    (
        "openai_responses.json",
        "/responses",
        "In a galaxy far",
        "Short.",
        [("call_9", {"name": "lookup", "arguments": '{"q":"x"}'})],
        "incomplete",
        (36, 16, 0, "reported"),
        "gpt-4.1-2025-04-14",
        "resp_67ccd3a9da748190",
    ),
    (
        "anthropic_message.json",
        "/messages",
        "I'll look that up.",
        "",
        [("toolu_01A09q90qw90lq917835lq9", {"name": "get_weather", "arguments": '{"location": "San Francisco, CA"}'})],
        "tool_use",
        (2095, 503, 0, "reported"),
        "claude-3-5-haiku-20241022",
        "msg_013Zva2CMHLNnXjNJJKqJ2EF",
    ),
    (
        "openai_embeddings.json",
        "/embeddings",
        "",
        "",
        [],
        None,
        (8, 0, None, "reported"),
        "text-embedding-3-small",
        None,
    ),
]
STREAMS = [c for c in CASES if c[0].endswith(".sse")]


@pytest.mark.parametrize("case", CASES, ids=lambda c: c[0])
def test_fixture_record(case):
    name, endpoint, text, reasoning, tools, finish, usage, model, rid = case
    data = (FIXTURES / name).read_bytes()
    streaming = name.endswith(".sse")
    rec, out, deltas = run([data[:100], data[100:]], endpoint, streaming=streaming)
    assert out == data
    assert (rec.text, rec.reasoning, rec.finish_reason) == (text, reasoning, finish)
    assert [(t["id"], t["function"]) for t in rec.tool_calls] == tools
    assert all(t["type"] == "function" for t in rec.tool_calls)
    u = rec.usage
    assert (u.input_tokens, u.output_tokens, u.cached_input_tokens, u.source) == usage
    assert (rec.response_model, rec.response_id) == (model, rid)
    assert not rec.malformed and not rec.truncated
    assert rec.deltas == len(deltas) and (rec.deltas > 0) == (streaming and bool(text or tools or reasoning))
    assert (rec.status, rec.error) == (R.IN_FLIGHT, None)  # complete: the handler decides ok
    if streaming:
        assert "".join(d.text for d in deltas) == text
        assert "".join(d.reasoning for d in deltas) == reasoning


def test_llamacpp_timings_are_kept():
    rec, _, _ = run([(FIXTURES / "llamacpp_chat_timings.sse").read_bytes()])
    assert rec.upstream_timings["predicted_per_second"] == 56.7 and rec.upstream_timings["cache_n"] == 16


def test_tool_call_deltas_carry_fragments_for_the_live_feed():
    _, _, deltas = run([(FIXTURES / "anthropic_messages_stream.sse").read_bytes()], "/messages")
    frags = [f for d in deltas if d.tool_calls for f in d.tool_calls]
    assert frags[0]["function"]["name"] == "get_weather" and frags[0]["id"].startswith("toolu_")
    assert "".join(f["function"]["arguments"] for f in frags) == '{"location": "Paris"}'


@pytest.mark.parametrize("case", STREAMS, ids=lambda c: c[0])
@pytest.mark.parametrize("eol", [b"\n", b"\r\n"])
def test_fixture_byte_by_byte_matches_whole(case, eol):
    data = (FIXTURES / case[0]).read_bytes().replace(b"\n", eol)
    whole, _, _ = run([data], case[1])
    one, out, _ = run([data[i : i + 1] for i in range(len(data))], case[1])
    assert snapshot(one) == snapshot(whole) and out == data


@FAST
@given(st.sampled_from(STREAMS), st.lists(st.integers(0, 10_000), max_size=20), st.booleans())
def test_fixture_split_anywhere_gives_the_same_record(case, cuts, crlf):
    data = (FIXTURES / case[0]).read_bytes()
    if crlf:
        data = data.replace(b"\n", b"\r\n")
    whole, _, whole_deltas = run([data], case[1])
    rec, out, deltas = run(split_at(data, cuts), case[1])
    assert snapshot(rec) == snapshot(whole) and deltas == whole_deltas and out == data


# --- pass-through and strip mode -------------------------------------------------------------


def test_without_strip_the_chunk_object_itself_is_returned():
    tap = StreamTap(make_rec(), REQ, streaming=True)
    chunk = sse(delta("a"), USAGE)
    assert tap.feed(chunk)[0] is chunk
    tap = StreamTap(make_rec(), REQ, streaming=False)
    assert tap.feed(chunk)[0] is chunk


def test_strip_removes_exactly_the_usage_chunk_and_still_records_it():
    body = sse(delta("Hel"), delta("lo"), USAGE, b"[DONE]")
    rec, out, _ = run([body], strip_usage_chunk=True)
    assert out == sse(delta("Hel"), delta("lo"), b"[DONE]")
    assert (rec.usage.input_tokens, rec.usage.output_tokens, rec.usage.source) == (3, 2, "reported")
    assert rec.text == "Hello"


def test_strip_returns_the_chunk_itself_when_it_holds_whole_events_and_no_usage():
    tap = StreamTap(make_rec(), REQ, streaming=True, strip_usage_chunk=True)
    chunk = sse(delta("a"), delta("b"))
    assert tap.feed(chunk)[0] is chunk


def test_strip_holds_an_incomplete_event_until_it_completes():
    tap = StreamTap(make_rec(), REQ, streaming=True, strip_usage_chunk=True)
    first, partial = sse(delta("a")), sse(delta("b"))
    out, deltas = tap.feed(first + partial[:10])
    assert out == first and [d.text for d in deltas] == ["a"]
    out, deltas = tap.feed(partial[10:])
    assert out == partial and [d.text for d in deltas] == ["b"]
    out, _ = tap.feed(b"data: [DO")
    assert out == b"" and tap.finish() == b"data: [DO"  # the tail is never lost


def test_strip_is_only_for_openai_style_families():
    body = sse({"type": "response.output_text.delta", "delta": "x"}, {"choices": [], "usage": {"input_tokens": 1}})
    _, out, _ = run([body], "/responses", strip_usage_chunk=True)
    assert out == body


STRIP_FIXTURES = {
    "openai_chat_stream.sse": ("/chat/completions", 6),
    "vllm_chat_usage.sse": ("/chat/completions", 4),
    "openai_completions_stream.sse": ("/completions", 4),
}


@FAST
@given(st.sampled_from(sorted(STRIP_FIXTURES)), st.lists(st.integers(0, 10_000), max_size=20), st.booleans())
def test_strip_output_is_input_minus_the_usage_event_for_any_split(name, cuts, crlf):
    eol = b"\r\n" if crlf else b"\n"
    data = (FIXTURES / name).read_bytes().replace(b"\n", eol)
    usage_events = [e + eol + eol for e in data.split(eol + eol) if b'"choices":[],' in e]
    assert len(usage_events) == 1
    endpoint, output_tokens = STRIP_FIXTURES[name]
    rec, out, _ = run(split_at(data, cuts), endpoint, strip_usage_chunk=True)
    assert out == data.replace(usage_events[0], b"")
    assert (rec.usage.output_tokens, rec.usage.source) == (output_tokens, "reported")


# --- malformed input ---------------------------------------------------------------------------


def test_bad_json_among_good_events_flags_and_keeps_reading():
    body = sse(delta("a"), b"{not json", delta("b"), b"[1, 2]", delta("c"))
    rec, out, deltas = run([body])
    assert out == body and rec.malformed and rec.text == "abc" and len(deltas) == 3


def test_no_done_is_not_malformed_but_incomplete():
    rec, _, _ = run([sse(delta("a"))])
    assert not rec.malformed and rec.text == "a"
    assert (rec.status, rec.error) == (R.ERROR, R.ERR_INCOMPLETE)


def test_unexpected_shape_is_flagged_not_raised():
    odd = {"choices": [{"index": 0, "delta": {"tool_calls": [{"index": 0, "function": "not an object"}]}}]}
    rec, _, _ = run([sse(odd, {"choices": "nope"}, {"choices": [None]}, delta("ok"))])
    assert rec.malformed and rec.text == "ok"


def test_overflowing_event_is_malformed_and_skipped():
    body = sse(delta("a"), {"x": "y" * 5000}, delta("b"))
    rec, out, _ = run([body[i : i + 512] for i in range(0, len(body), 512)], max_event_bytes=1024)
    assert out == body and rec.malformed and rec.text == "ab"


def test_truncated_last_event_is_malformed_but_earlier_ones_count():
    rec, _, _ = run([sse(delta("par"), delta("tial")) + b'data: {"choices": [{"delta": {"content": "nev'])
    assert rec.text == "partial" and rec.malformed


@FAST
@given(st.binary(max_size=300), st.lists(st.integers(0, 10_000), max_size=8), st.booleans())
def test_arbitrary_bytes_never_raise_and_pass_through(data, cuts, strip):
    _rec, out, _ = run(split_at(data, cuts), strip_usage_chunk=strip)
    assert out == data  # no usage-only chunk in random bytes, so nothing is removed


def test_multibyte_text_split_across_chunks():
    body = sse(delta("naïve 😀"))
    rec, _, _ = run([body[i : i + 1] for i in range(len(body))])
    assert rec.text == "naïve 😀" and not rec.malformed


# --- errors ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "body, message",
    [
        (
            b'event: error\ndata: {"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}\n\n',
            "overloaded_error: Overloaded",
        ),
        (
            sse(delta("a"), {"error": {"message": "server had an error", "type": "server_error"}}),
            "server_error: server had an error",
        ),
        (b"event: error\ndata: upstream exploded\n\n", "upstream exploded"),
    ],
)
def test_stream_errors_set_a_short_message(body, message):
    rec, _, _ = run([body], "/messages" if b"overloaded" in body else "/chat/completions")
    assert rec.error_message == message


def test_proxy_error_message_is_not_overwritten():
    rec = make_rec()
    tap = StreamTap(rec, REQ, streaming=True)
    tap.feed(sse({"error": {"message": "late", "type": "x"}}))
    rec.error_message = "upstream closed the connection"
    tap.finish()
    assert rec.error_message == "upstream closed the connection"


# --- capture caps --------------------------------------------------------------------------------


def test_text_is_capped_in_utf8_bytes_without_splitting_a_character():
    rec, _, deltas = run([sse(*[delta("€€") for _ in range(10)])], max_capture_bytes=16)
    assert rec.text == "€" * 5 and len(rec.text.encode()) <= 16 and rec.truncated
    assert rec.deltas == 10 == len(deltas)  # deltas still counted and reported


def test_long_text_is_exact_past_the_batching_threshold():
    pieces = [f"w{i} " for i in range(6000)]
    rec = make_rec()
    tap = StreamTap(rec, REQ, streaming=True)
    for i, p in enumerate(pieces):
        tap.feed(sse(delta(p)))
        if i % 997 == 0:
            assert "".join(pieces[: i + 1]).startswith(rec.text)  # in flight: a prefix, close behind
    tap.finish()
    assert rec.text == "".join(pieces) and not rec.truncated


def test_in_flight_tool_calls_are_visible():
    rec = make_rec()
    tap = StreamTap(rec, REQ, streaming=True)
    tap.feed((FIXTURES / "openai_chat_tools.sse").read_bytes()[:600])
    assert rec.tool_calls and rec.tool_calls[0]["function"]["name"] == "get_weather"


# --- non-streamed bodies ---------------------------------------------------------------------------


@pytest.mark.parametrize("body", [b"<html>502 Bad Gateway</html>", b'{"a": "\xff\xfe"}', b"[1, 2]", b"[" * 100_000])
def test_bad_bodies_are_malformed_not_raised(body):
    rec, out, _ = run([body], streaming=False, http_status=502)
    assert out == body and rec.malformed


def test_empty_body_is_not_malformed():
    rec, _, _ = run([], streaming=False, http_status=204)
    assert not rec.malformed and rec.text == "" and rec.usage.output_tokens is None


def test_error_body_sets_message_and_no_estimate():
    body = b'{"error": {"message": "Rate limit reached", "type": "requests", "code": "rate_limit_exceeded"}}'
    rec, _, _ = run([body], streaming=False, http_status=429)
    assert rec.error_message == "requests: Rate limit reached"
    assert (rec.usage.input_tokens, rec.usage.output_tokens) == (None, None)  # nothing was generated


def test_oversized_body_stops_buffering_and_still_finds_usage():
    vec = json.dumps([0.001] * 5000)
    body = (
        '{"object":"list","data":['
        + ",".join(f'{{"index":{i},"embedding":{vec}}}' for i in range(20))
        + '],"model":"e","usage":{"prompt_tokens":77,"total_tokens":77}}'
    ).encode()
    rec = make_rec("/embeddings")
    tap = StreamTap(rec, {"input": "x"}, streaming=False, max_body_bytes=100_000)
    for i in range(0, len(body), 8192):
        assert tap.feed(body[i : i + 8192])[0] == body[i : i + 8192]
    assert sum(map(len, tap._body)) <= 100_000
    tap.finish()
    assert rec.truncated and rec.malformed
    assert (rec.usage.input_tokens, rec.usage.output_tokens, rec.usage.source) == (77, 0, "reported")


# --- usage rules (RELIABILITY case 9) ------------------------------------------------------------


def test_missing_usage_is_estimated_never_zero():
    rec, _, _ = run([sse(delta("a"), delta("b"), b"[DONE]")])
    assert (rec.usage.input_tokens, rec.usage.output_tokens, rec.usage.source) == (REQ_TOKENS, 2, "estimated")


def test_nothing_to_estimate_stays_unknown():
    rec, _, _ = run([b"data: [DONE]\n\n"], request_json=None)
    assert (rec.usage.input_tokens, rec.usage.output_tokens, rec.usage.cached_input_tokens) == (None, None, None)
    assert rec.usage.source == "estimated"  # "reported" only ever means the upstream said so


def test_without_request_json_only_output_is_estimated():
    rec, _, _ = run([sse(delta("a"))], request_json=None)
    assert (rec.usage.input_tokens, rec.usage.output_tokens) == (None, 1)


def test_non_streamed_output_estimate_is_chars_over_four():
    body = json.dumps({"choices": [{"index": 0, "message": {"content": "x" * 10}, "finish_reason": "stop"}]})
    rec, _, _ = run([body.encode()], streaming=False)
    assert (rec.usage.output_tokens, rec.usage.input_tokens, rec.usage.source) == (3, REQ_TOKENS, "estimated")


def test_partly_reported_usage_keeps_the_reported_part():
    # An Anthropic stream cut after message_start: input is known, output must be estimated.
    data = (FIXTURES / "anthropic_messages_stream.sse").read_bytes()
    cut = data.index(b"event: message_delta")
    rec, _, _ = run([data[:cut]], "/messages")
    assert (rec.usage.input_tokens, rec.usage.output_tokens, rec.usage.source) == (2620, 6, "estimated")


def test_embeddings_without_usage_leave_output_unknown():
    rec, _, _ = run([b'{"object":"list","data":[],"model":"e"}'], "/embeddings", {"input": "abcdefgh"}, streaming=False)
    assert (rec.usage.input_tokens, rec.usage.output_tokens, rec.usage.source) == (2, None, "estimated")


# --- lifecycle -------------------------------------------------------------------------------------


def test_finish_is_idempotent_and_later_feeds_pass_through():
    rec = make_rec()
    tap = StreamTap(rec, REQ, streaming=True, strip_usage_chunk=True)
    tap.feed(sse(delta("a")) + b"data: {")
    assert tap.finish() == b"data: {"
    snap = snapshot(rec)
    assert tap.finish() == b"" and snapshot(rec) == snap
    assert tap.feed(b"more") == (b"more", [])


def test_done_is_recognised():
    tap = StreamTap(make_rec(), REQ, streaming=True)
    tap.feed(b"data: [DONE]\n\n")
    tap.finish()
    assert tap.saw_done and not tap.rec.malformed


# --- incomplete streams (RELIABILITY case 32) ------------------------------------------------------

# fixture, endpoint, text kept, finish reason, error message
INCOMPLETE = [
    (
        "llamacpp_empty_200.sse",
        "/chat/completions",
        "",
        None,
        "the upstream ended the stream without sending any event",
    ),
    # llama.cpp streams its error as an ``error:`` line, a field SSE ignores: no data, the message kept.
    (
        "llamacpp_error_line.sse",
        "/chat/completions",
        "",
        None,
        "exceed_context_size_error: the request exceeds the available context size, try increasing it",
    ),
    (
        "openai_chat_cut_after_finish.sse",
        "/chat/completions",
        "Hello! Café ☕ time?",
        "stop",
        "the upstream ended the stream without data: [DONE]",
    ),
    (
        "openai_chat_cut_midway.sse",
        "/chat/completions",
        "Hello! Café",
        None,
        "the upstream ended the stream without data: [DONE]",
    ),
    (
        "openai_responses_cut.sse",
        "/responses",
        "Checking now.",
        None,
        "the upstream ended the stream without response.completed or response.failed or response.incomplete",
    ),
    (
        "anthropic_messages_cut.sse",
        "/messages",
        "Let me check — one moment.",
        "tool_use",
        "the upstream ended the stream without message_stop",
    ),
    ("anthropic_messages_overloaded.sse", "/messages", "", None, "overloaded_error: Overloaded"),
]
COMPLETE = [c[:2] for c in STREAMS] + [("openai_responses_incomplete.sse", "/responses")]


@pytest.mark.parametrize("case", INCOMPLETE, ids=lambda c: c[0])
def test_stream_without_terminator_is_incomplete_at_every_split(case):
    name, endpoint, text, finish, message = case
    data = (FIXTURES / name).read_bytes()
    for i in range(len(data) + 1):
        rec, out, _ = run([data[:i], data[i:]], endpoint)
        assert out == data  # the client's bytes are unchanged
        assert (rec.status, rec.error, rec.error_message) == (R.ERROR, R.ERR_INCOMPLETE, message), i
        assert (rec.text, rec.finish_reason) == (text, finish)


@pytest.mark.parametrize("case", COMPLETE, ids=lambda c: c[0])
@pytest.mark.parametrize("strip", [False, True])
def test_complete_stream_stays_unjudged_at_every_split(case, strip):
    name, endpoint = case
    data = (FIXTURES / name).read_bytes()
    for i in range(len(data) + 1):
        rec, _, _ = run([data[:i], data[i:]], endpoint, strip_usage_chunk=strip)
        assert (rec.status, rec.error) == (R.IN_FLIGHT, None), i


def test_responses_incomplete_is_a_complete_stream_that_ran_out():
    rec, _, _ = run([(FIXTURES / "openai_responses_incomplete.sse").read_bytes()], "/responses")
    assert (rec.status, rec.error, rec.finish_reason) == (R.IN_FLIGHT, None, "incomplete")


@FAST
@given(st.sampled_from(INCOMPLETE), st.lists(st.integers(0, 10_000), max_size=20), st.booleans(), st.booleans())
def test_incomplete_for_any_split_and_line_ending(case, cuts, crlf, strip):
    data = (FIXTURES / case[0]).read_bytes()
    if crlf:
        data = data.replace(b"\n", b"\r\n")
    rec, out, _ = run(split_at(data, cuts), case[1], strip_usage_chunk=strip)
    assert (rec.status, rec.error) == (R.ERROR, R.ERR_INCOMPLETE)
    if not strip:
        assert out == data


@pytest.mark.parametrize(
    "body",
    [b"", b": ping\n\n", b": keep-alive\n\n: keep-alive\n\n", b"\n\n", b"event: ping\n\n"],
    ids=["empty", "comment", "comments", "blank", "no-data"],
)
@pytest.mark.parametrize("endpoint", ["/chat/completions", "/responses", "/messages", "/v1beta/whatever"])
def test_a_stream_with_no_data_event_is_incomplete_for_every_family(body, endpoint):
    rec, out, _ = run([body], endpoint)
    assert out == body and (rec.status, rec.error) == (R.ERROR, R.ERR_INCOMPLETE)
    assert (rec.usage.input_tokens, rec.usage.output_tokens, rec.text) == (None, None, "")  # unknown, never estimated


def test_done_does_not_complete_anthropic_or_responses():
    rec, _, _ = run([sse({"type": "message_start", "message": {"id": "m"}}, b"[DONE]")], "/messages")
    assert rec.error == R.ERR_INCOMPLETE


def test_terminator_named_only_by_the_event_field_counts():
    body = b"event: message_stop\ndata: {}\n\n"
    rec, _, _ = run([body], "/messages")
    assert (rec.status, rec.error) == (R.IN_FLIGHT, None)


def test_unknown_endpoint_with_events_is_not_judged():
    rec, _, _ = run([b'event: transcript.text.delta\ndata: {"delta": "hi"}\n\n'], "/audio/transcriptions")
    assert (rec.status, rec.error) == (R.IN_FLIGHT, None)


@pytest.mark.parametrize("http_status", [400, 429, 500, 503, None])
def test_error_statuses_are_not_incomplete(http_status):
    rec, _, _ = run([b""], http_status=http_status)
    assert rec.error is None and rec.status == R.IN_FLIGHT


def test_non_streamed_bodies_are_not_judged():
    rec, _, _ = run([b""], streaming=False)
    assert rec.error is None


@pytest.mark.parametrize(
    "status, error",
    [(R.ERROR, R.ERR_DISCONNECT), (R.ERROR, R.ERR_TIMEOUT), (R.CANCELLED, None), (R.CANCELLED, R.ERR_OPERATOR)],
)
def test_a_record_that_ended_otherwise_keeps_its_reason(status, error):
    rec = make_rec()
    tap = StreamTap(rec, REQ, streaming=True)
    tap.feed(sse(delta("par")))
    rec.status, rec.error = status, error  # what the handler sets before the finally's finish()
    tap.finish()
    assert (rec.status, rec.error, rec.text) == (status, error, "par")


# --- the event parser: msgspec on the hot path, the same results as json.loads -------------------

_json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(),
    lambda kids: st.lists(kids, max_size=4) | st.dictionaries(st.text(max_size=8), kids, max_size=4),
    max_leaves=20,
)


@given(_json_values)
def test_loads_equals_json_loads_on_any_value(value):
    text = json.dumps(value)  # NaN and infinities included: json writes them, msgspec refuses them
    assert repr(_loads(text)) == repr(json.loads(text))


@given(st.text(alphabet='{}[]",:0123456789.eE+-tfnrulasN\\ u', max_size=40))
def test_loads_accepts_and_refuses_what_json_loads_does(text):
    try:
        expected = repr(json.loads(text))
    except (ValueError, RecursionError) as exc:
        with pytest.raises(type(exc)):
            _loads(text)
    else:
        assert repr(_loads(text)) == expected
