"""SpanObserver driven with hand-built records, exporting to an InMemorySpanExporter."""

from __future__ import annotations

import json

import pytest
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode
from yarl import URL

from tokentail import semconv as S
from tokentail.proxy import record as R
from tokentail.proxy.hooks import RequestContext, TraceContext, UpstreamPlan
from tokentail.proxy.record import RequestRecord, Usage
from tokentail.proxy.redact import Redactor
from tokentail.proxy.spans import SpanObserver

CLIENT_TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
CLIENT_SPAN = "00f067aa0ba902b7"
TRACEPARENT = f"00-{CLIENT_TRACE}-{CLIENT_SPAN}-01"


@pytest.fixture
def exporter() -> InMemorySpanExporter:
    return InMemorySpanExporter()


def observer(exporter, **kw) -> SpanObserver:
    tp = TracerProvider()
    tp.add_span_processor(SimpleSpanProcessor(exporter))
    kw.setdefault("upstream_url", "https://api.openai.com/v1")
    kw.setdefault("variant", "blue")
    return SpanObserver(tp, **kw)


CHAT_PROMPT = {"messages": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi there"}]}


def chat_rec(**kw) -> RequestRecord:
    base = dict(
        id="req-1",
        variant="blue",
        method="POST",
        endpoint="/chat/completions",
        model="gpt-4o",
        stream=True,
        prompt=CHAT_PROMPT,
        params={"temperature": 0.2, "max_tokens": 64},
    )
    base.update(kw)
    return RequestRecord(**base)


def run(
    obs: SpanObserver,
    rec: RequestRecord,
    *,
    deltas=("Hel", "lo"),
    status=R.OK,
    http=200,
    text="Hello",
    usage=Usage(12, 3, 4),  # noqa: B008 -- never mutated
    finish="stop",
    error=None,
    error_message=None,
) -> None:
    obs.on_start(rec)
    if deltas:  # as the forward handler does at the first delta (the observer has no delta hook)
        rec.ttft_ms = 50.0
    rec.status, rec.http_status, rec.text, rec.usage = status, http, text, usage
    rec.finish_reason, rec.error, rec.error_message = finish, error, error_message
    rec.response_model, rec.response_id = "gpt-4o-2024-08-06", "chatcmpl-1"
    rec.latency_ms, rec.output_tps = 800.0, 25.0
    obs.on_end(rec)


def only_span(exporter):
    spans = exporter.get_finished_spans()
    assert len(spans) == 1
    return spans[0]


def events(span, name):
    return [e for e in span.events if e.name == name]


def test_streamed_chat_span(exporter):
    obs = observer(exporter)
    rec = chat_rec(session_id="sess-9")
    run(obs, rec)
    span = only_span(exporter)
    a = span.attributes
    assert span.name == "chat gpt-4o" and span.kind is SpanKind.CLIENT
    assert a[S.OPERATION_NAME] == "chat" and a[S.PROVIDER_NAME] == "openai"
    assert a[S.REQUEST_MODEL] == "gpt-4o" and a[S.RESPONSE_MODEL] == "gpt-4o-2024-08-06"
    assert a[S.RESPONSE_ID] == "chatcmpl-1" and tuple(a[S.RESPONSE_FINISH_REASONS]) == ("stop",)
    assert a[S.USAGE_INPUT_TOKENS] == 12 and a[S.USAGE_OUTPUT_TOKENS] == 3 and a[S.USAGE_CACHE_READ_INPUT_TOKENS] == 4
    assert a[S.SERVER_ADDRESS] == "api.openai.com" and a[S.SERVER_PORT] == 443
    assert a["gen_ai.request.temperature"] == 0.2 and a["gen_ai.request.max_tokens"] == 64
    assert a[S.TT_REQUEST_ID] == "req-1" and a[S.TT_VARIANT] == "blue" and a[S.TT_STREAM] is True
    assert a[S.TT_TTFT_MS] == 50.0 and a[S.TT_OUTPUT_TPS] == 25.0 and a[S.TT_LATENCY_MS] == 800.0
    assert a[S.TT_STATUS] == "ok" and a[S.TT_CANCELLED] is False and a[S.TT_USAGE_SOURCE] == "reported"
    assert a[S.TT_SESSION_ID] == "sess-9" and a[S.CONVERSATION_ID] == "sess-9"
    assert S.ERROR_TYPE not in a and span.status.status_code is StatusCode.UNSET
    assert "gen_ai.request.stream" not in a  # only with the opt-in
    # timing: the span covers the request, the first token sits inside it
    assert span.start_time == int(rec.started_at * 1e9)
    assert span.end_time - span.start_time == pytest.approx(800e6, abs=1e3)
    (first,) = events(span, S.TT_EVENT_FIRST_TOKEN)
    assert first.timestamp == pytest.approx(span.start_time + 50_000_000, abs=1e3)
    assert first.attributes[S.TT_TTFT_MS] == 50.0
    # prompt and completion: on the details event and as span attributes, parts-based
    (details,) = events(span, S.EVENT_OPERATION_DETAILS)
    inp = json.loads(details.attributes[S.INPUT_MESSAGES])
    assert inp == [
        {"role": "system", "parts": [{"type": "text", "content": "Be brief."}]},
        {"role": "user", "parts": [{"type": "text", "content": "Hi there"}]},
    ]
    out = json.loads(details.attributes[S.OUTPUT_MESSAGES])
    assert out == [{"role": "assistant", "parts": [{"type": "text", "content": "Hello"}], "finish_reason": "stop"}]
    assert a[S.INPUT_MESSAGES] == details.attributes[S.INPUT_MESSAGES]
    assert a[S.OUTPUT_MESSAGES] == details.attributes[S.OUTPUT_MESSAGES]
    assert details.attributes[S.OPERATION_NAME] == "chat"


def test_non_streamed_has_no_first_token_event(exporter):
    obs = observer(exporter)
    run(obs, chat_rec(stream=False), deltas=())
    span = only_span(exporter)
    assert span.attributes[S.TT_STREAM] is False
    assert events(span, S.TT_EVENT_FIRST_TOKEN) == []
    assert len(events(span, S.EVENT_OPERATION_DETAILS)) == 1


def test_first_token_event_only_once(exporter):
    obs = observer(exporter)
    run(obs, chat_rec(), deltas=("a", "b", "c", "d"))
    assert len(events(only_span(exporter), S.TT_EVENT_FIRST_TOKEN)) == 1


def run_failed(exporter, http: int, error: str, message: str) -> None:
    """A chat that failed before any output: no deltas, no usage, no finish reason."""
    run(
        observer(exporter),
        chat_rec(),
        deltas=(),
        status=R.ERROR,
        http=http,
        text="",
        usage=Usage(),
        finish=None,
        error=error,
        error_message=message,
    )


def test_upstream_error_span(exporter):
    run_failed(exporter, 503, R.ERR_STATUS, "upstream said 503")
    span = only_span(exporter)
    assert span.status.status_code is StatusCode.ERROR and span.status.description == "upstream said 503"
    assert span.attributes[S.ERROR_TYPE] == "503" and span.attributes[S.HTTP_STATUS_CODE] == 503
    assert S.USAGE_INPUT_TOKENS not in span.attributes and S.TT_USAGE_SOURCE not in span.attributes
    (details,) = events(span, S.EVENT_OPERATION_DETAILS)
    assert details.attributes[S.ERROR_TYPE] == "503"
    assert S.OUTPUT_MESSAGES not in details.attributes  # nothing was generated


def test_connect_error_type(exporter):
    run_failed(exporter, 502, R.ERR_CONNECT, "cannot connect")
    assert only_span(exporter).attributes[S.ERROR_TYPE] == "connect"


def test_cancelled_span_keeps_partial_output(exporter):
    obs = observer(exporter)
    run(obs, chat_rec(), deltas=("Hel",), status=R.CANCELLED, text="Hel", usage=Usage(), finish=None)
    span = only_span(exporter)
    assert span.attributes[S.TT_CANCELLED] is True and span.attributes[S.TT_STATUS] == "cancelled"
    assert S.ERROR_TYPE not in span.attributes and span.status.status_code is StatusCode.UNSET
    out = json.loads(span.attributes[S.OUTPUT_MESSAGES])
    assert out[0]["parts"] == [{"type": "text", "content": "Hel"}] and out[0]["finish_reason"] == "error"


def test_tool_calls_in_and_out(exporter):
    obs = observer(exporter)
    prompt = {
        "messages": [
            {"role": "user", "content": [{"type": "text", "text": "Weather in Paris?"}]},
            {
                "role": "assistant",
                "content": None,
                "tool_calls": [
                    {
                        "id": "call_1",
                        "type": "function",
                        "function": {"name": "get_weather", "arguments": '{"city":"Paris"}'},
                    }
                ],
            },
            {"role": "tool", "tool_call_id": "call_1", "content": "rainy, 57F"},
        ]
    }
    rec = chat_rec(prompt=prompt)
    obs.on_start(rec)
    rec.status, rec.http_status, rec.finish_reason, rec.latency_ms = R.OK, 200, "tool_calls", 10.0
    rec.tool_calls = [
        {"id": "call_2", "type": "function", "function": {"name": "get_time", "arguments": '{"tz":"Europe/Paris"}'}},
        {"id": "call_3", "type": "function", "function": {"name": "broken", "arguments": "{not json"}},
    ]
    obs.on_end(rec)
    span = only_span(exporter)
    inp = json.loads(span.attributes[S.INPUT_MESSAGES])
    assert inp[1] == {
        "role": "assistant",
        "parts": [{"type": "tool_call", "id": "call_1", "name": "get_weather", "arguments": {"city": "Paris"}}],
    }
    assert inp[2] == {
        "role": "tool",
        "parts": [{"type": "tool_call_response", "id": "call_1", "response": "rainy, 57F"}],
    }
    out = json.loads(span.attributes[S.OUTPUT_MESSAGES])
    assert out == [
        {
            "role": "assistant",
            "finish_reason": "tool_call",
            "parts": [
                {"type": "tool_call", "id": "call_2", "name": "get_time", "arguments": {"tz": "Europe/Paris"}},
                {"type": "tool_call", "id": "call_3", "name": "broken", "arguments": "{not json"},
            ],
        }
    ]
    assert tuple(span.attributes[S.RESPONSE_FINISH_REASONS]) == ("tool_calls",)


def test_anthropic_messages(exporter):
    obs = observer(exporter, upstream_url="https://api.anthropic.com/v1")
    prompt = {
        "system": "You are terse.",
        "messages": [
            {"role": "user", "content": "Weather?"},
            {
                "role": "assistant",
                "content": [
                    {"type": "thinking", "thinking": "hmm"},
                    {"type": "tool_use", "id": "tu_1", "name": "w", "input": {"c": "P"}},
                ],
            },
            {
                "role": "user",
                "content": [
                    {"type": "tool_result", "tool_use_id": "tu_1", "content": [{"type": "text", "text": "sunny"}]}
                ],
            },
        ],
    }
    rec = chat_rec(endpoint="/messages", model="claude-x", prompt=prompt)
    obs.on_start(rec)
    rec.status, rec.http_status, rec.finish_reason, rec.text, rec.latency_ms = R.OK, 200, "end_turn", "Sunny.", 5.0
    obs.on_end(rec)
    a = only_span(exporter).attributes
    assert a[S.PROVIDER_NAME] == "anthropic" and a[S.OPERATION_NAME] == "chat"
    assert json.loads(a[S.SYSTEM_INSTRUCTIONS]) == [{"type": "text", "content": "You are terse."}]
    inp = json.loads(a[S.INPUT_MESSAGES])
    assert inp[1]["parts"] == [
        {"type": "reasoning", "content": "hmm"},
        {"type": "tool_call", "id": "tu_1", "name": "w", "arguments": {"c": "P"}},
    ]
    assert inp[2] == {"role": "tool", "parts": [{"type": "tool_call_response", "id": "tu_1", "response": "sunny"}]}
    assert json.loads(a[S.OUTPUT_MESSAGES])[0]["finish_reason"] == "stop"


def test_responses_input_and_text_completion(exporter):
    obs = observer(exporter)
    rec = chat_rec(
        endpoint="/responses",
        prompt={
            "instructions": "Be nice.",
            "input": [
                {
                    "role": "user",
                    "content": [
                        {"type": "input_text", "text": "hi"},
                        {"type": "input_image", "image_url": "https://x.test/a.png?sig=SECRET"},
                    ],
                },
                {"type": "function_call", "call_id": "fc_1", "name": "f", "arguments": "{}"},
                {"type": "function_call_output", "call_id": "fc_1", "output": "42"},
            ],
        },
        id="r1",
    )
    run(obs, rec, deltas=())
    rec2 = chat_rec(endpoint="/completions", prompt={"prompt": "Once upon"}, id="r2", model="davinci")
    run(obs, rec2, deltas=())
    s1, s2 = exporter.get_finished_spans()
    inp = json.loads(s1.attributes[S.INPUT_MESSAGES])
    assert inp[0]["parts"] == [
        {"type": "text", "content": "hi"},
        {"type": "uri", "modality": "image", "uri": "https://x.test/a.png"},
    ]
    assert inp[1] == {"role": "assistant", "parts": [{"type": "tool_call", "id": "fc_1", "name": "f", "arguments": {}}]}
    assert inp[2]["role"] == "tool" and inp[2]["parts"][0]["response"] == "42"
    assert json.loads(s1.attributes[S.SYSTEM_INSTRUCTIONS]) == [{"type": "text", "content": "Be nice."}]
    assert "SECRET" not in s1.attributes[S.INPUT_MESSAGES]
    assert s2.name == "text_completion davinci"
    assert json.loads(s2.attributes[S.INPUT_MESSAGES]) == [
        {"role": "user", "parts": [{"type": "text", "content": "Once upon"}]}
    ]


def test_content_capture_off(exporter):
    obs = observer(exporter, capture_content=False)
    run(obs, chat_rec())
    span = only_span(exporter)
    assert S.INPUT_MESSAGES not in span.attributes and S.OUTPUT_MESSAGES not in span.attributes
    assert events(span, S.EVENT_OPERATION_DETAILS) == []
    assert "Hi there" not in repr(span.to_json()) and "Hello" not in span.to_json()
    assert span.attributes[S.USAGE_OUTPUT_TOKENS] == 3  # metadata still there


def test_completion_is_redacted(exporter):
    obs = observer(exporter, redactor=Redactor())
    rec = chat_rec()
    obs.on_start(rec)
    rec.status, rec.http_status, rec.latency_ms = R.OK, 200, 1.0
    rec.text = "write to bob@example.com"
    rec.tool_calls = [{"id": "c", "function": {"name": "mail", "arguments": '{"to": "bob@example.com"}'}}]
    obs.on_end(rec)
    dumped = only_span(exporter).to_json()
    assert "bob@example.com" not in dumped and "REDACTED" in dumped


def test_parent_from_traceparent_and_context_injected_upstream(exporter):
    obs = observer(exporter)
    rec = chat_rec(trace_headers={"traceparent": TRACEPARENT, "tracestate": "vendor=abc"})
    obs.on_start(rec)
    assert rec.trace_id == CLIENT_TRACE
    up = upstream_headers(obs, rec)
    version, trace, span_id, flags = up["traceparent"].split("-")
    assert (version, trace, flags) == ("00", CLIENT_TRACE, "01") and span_id != CLIENT_SPAN
    assert up["tracestate"] == "vendor=abc"
    rec.status, rec.http_status, rec.latency_ms = R.OK, 200, 1.0
    obs.on_end(rec)
    span = only_span(exporter)
    assert format(span.context.trace_id, "032x") == CLIENT_TRACE
    assert format(span.parent.span_id, "016x") == CLIENT_SPAN and span.parent.is_remote
    assert format(span.context.span_id, "016x") == span_id  # the upstream's parent is our span


def test_without_traceparent_a_new_root_trace(exporter):
    obs = observer(exporter)
    rec = chat_rec(trace_headers={"traceparent": "garbage"})
    obs.on_start(rec)
    up = upstream_headers(obs, rec)
    rec.status, rec.http_status, rec.latency_ms = R.OK, 200, 1.0
    obs.on_end(rec)
    assert obs.span_of(rec.id) is None  # ended: nothing left to send upstream
    span = only_span(exporter)
    assert span.parent is None
    assert rec.trace_id == format(span.context.trace_id, "032x")
    assert up["traceparent"].split("-")[1] == rec.trace_id


def upstream_headers(obs: SpanObserver, rec: RequestRecord) -> dict[str, str]:
    """What the trace-context request hook sends upstream for ``rec`` (its span is live)."""
    ctx = RequestContext("POST", "chat/completions", "", {}, b"", rec, UpstreamPlan(URL("http://u/v1")))
    change = TraceContext(obs.span_of).upstream(ctx)
    assert change is not None
    return dict(change.headers)


def test_non_inference_endpoint_is_a_plain_client_span(exporter):
    obs = observer(exporter)
    rec = RequestRecord(id="m", variant="blue", method="GET", endpoint="/models?key=secret", model=None)
    run(obs, rec, deltas=(), text="", usage=Usage(), finish=None)
    span = only_span(exporter)
    assert span.name == "GET /models"
    assert S.OPERATION_NAME not in span.attributes and S.INPUT_MESSAGES not in span.attributes
    assert "secret" not in span.to_json()


def test_request_params_are_typed_or_skipped(exporter):
    obs = observer(exporter)
    rec = chat_rec(
        params={
            "temperature": "hot",
            "top_p": 0.9,
            "max_completion_tokens": 100,
            "stop": ["\n", "END"],
            "seed": True,
            "n": 2,
            "response_format": {"type": "json_schema"},
            "frequency_penalty": 0,
        }
    )
    run(obs, rec)
    a = only_span(exporter).attributes
    assert "gen_ai.request.temperature" not in a and "gen_ai.request.seed" not in a
    assert a["gen_ai.request.top_p"] == 0.9 and a["gen_ai.request.max_tokens"] == 100
    assert tuple(a["gen_ai.request.stop_sequences"]) == ("\n", "END") and a["gen_ai.request.choice.count"] == 2
    assert a["gen_ai.output.type"] == "json" and a["gen_ai.request.frequency_penalty"] == 0


def test_opt_in_adds_newer_attributes(exporter):
    obs = observer(exporter, semconv_opt_in="gen_ai_latest_experimental")
    run(obs, chat_rec())
    a = only_span(exporter).attributes
    assert a["gen_ai.request.stream"] is True and a["gen_ai.response.time_to_first_chunk"] == 0.05


def test_unknown_records_and_local_upstream_never_raise(exporter):
    obs = observer(exporter, upstream_url="http://127.0.0.1:8000/v1")
    assert not hasattr(obs, "on_delta")  # nothing per chunk
    obs.on_end(chat_rec(id="nope"))
    run(obs, chat_rec(prompt={"messages": ["odd", {"role": "user", "content": {"weird": 1}}, 3]}, model=None))
    span = only_span(exporter)
    assert span.name == "chat"
    assert span.attributes[S.SERVER_ADDRESS] == "127.0.0.1" and span.attributes[S.SERVER_PORT] == 8000
    assert span.attributes[S.PROVIDER_NAME] == "openai"
    assert len(json.loads(span.attributes[S.INPUT_MESSAGES])) == 3


def test_incomplete_stream_error_type(exporter):
    obs = observer(exporter)
    run(obs, chat_rec(), status=R.ERROR, error=R.ERR_INCOMPLETE, error_message="no [DONE]", finish=None)
    span = only_span(exporter)
    assert span.attributes[S.ERROR_TYPE] == "incomplete_stream" and span.status.status_code is StatusCode.ERROR
    (details,) = events(span, S.EVENT_OPERATION_DETAILS)
    assert details.attributes[S.ERROR_TYPE] == "incomplete_stream"
    assert json.loads(details.attributes[S.OUTPUT_MESSAGES])[0]["finish_reason"] == "error"


# --- content size (RELIABILITY case 34) ---------------------------------------------------------

BIG = 1 << 20


def _size(s: str) -> int:
    return len(s.encode())


def test_big_prompt_and_completion_are_capped_valid_and_marked(exporter):
    obs = observer(exporter, content_bytes=4096)
    prompt = {"messages": [{"role": "system", "content": "s" * BIG}, {"role": "user", "content": "é" * BIG}]}
    run(obs, chat_rec(prompt=prompt), text="x" * BIG)
    span = only_span(exporter)
    a = span.attributes
    (details,) = events(span, S.EVENT_OPERATION_DETAILS)
    for attrs in (a, details.attributes):
        assert attrs["tokentail.content.truncated"] is True
        assert _size(attrs[S.INPUT_MESSAGES]) <= 4096 and _size(attrs[S.OUTPUT_MESSAGES]) <= 4096
        inp = json.loads(attrs[S.INPUT_MESSAGES])
        assert [m["role"] for m in inp] == ["system", "user"]  # the shape stays, the text is cut
        assert inp[1]["parts"][0]["content"].startswith("ééé") and inp[1]["parts"][0]["content"].endswith("[truncated]")
        out = json.loads(attrs[S.OUTPUT_MESSAGES])
        assert out[0]["parts"][0]["content"].startswith("xxx") and out[0]["finish_reason"] == "stop"
    assert a[S.INPUT_MESSAGES] == details.attributes[S.INPUT_MESSAGES]


def test_instructions_and_messages_share_the_prompt_budget(exporter):
    obs = observer(exporter, content_bytes=4096)
    rec = chat_rec(
        endpoint="/messages", prompt={"system": "S" * BIG, "messages": [{"role": "user", "content": "u" * BIG}]}
    )
    run(obs, rec)
    a = only_span(exporter).attributes
    assert _size(a[S.SYSTEM_INSTRUCTIONS]) <= 2048
    assert _size(a[S.SYSTEM_INSTRUCTIONS]) + _size(a[S.INPUT_MESSAGES]) <= 4096
    assert json.loads(a[S.SYSTEM_INSTRUCTIONS])[0]["content"].startswith("SSS")


def test_small_content_is_not_marked(exporter):
    run(observer(exporter, content_bytes=4096), chat_rec())
    (details,) = events(only_span(exporter), S.EVENT_OPERATION_DETAILS)
    assert "tokentail.content.truncated" not in only_span(exporter).attributes
    assert "tokentail.content.truncated" not in details.attributes


def test_the_sdk_value_length_limit_lowers_the_cap_so_json_stays_whole(exporter, monkeypatch):
    monkeypatch.setenv("OTEL_ATTRIBUTE_VALUE_LENGTH_LIMIT", "1000")
    tp = TracerProvider()  # reads the limits from the environment, as the proxy's does
    tp.add_span_processor(SimpleSpanProcessor(exporter))
    obs = SpanObserver(tp, upstream_url="https://api.openai.com/v1")  # SpanLimits() from the same environment
    run(obs, chat_rec(prompt={"messages": [{"role": "user", "content": "p" * BIG}]}), text="c" * BIG)
    span = only_span(exporter)
    (details,) = events(span, S.EVENT_OPERATION_DETAILS)
    for attrs in (span.attributes, details.attributes):
        for key in (S.INPUT_MESSAGES, S.OUTPUT_MESSAGES):
            assert len(attrs[key]) <= 1000
            json.loads(attrs[key])  # cut by us, not mid-string by the SDK
        assert attrs["tokentail.content.truncated"] is True


def test_the_sdk_attribute_count_limit_applies_to_our_spans(exporter, monkeypatch):
    monkeypatch.setenv("OTEL_SPAN_ATTRIBUTE_COUNT_LIMIT", "6")
    monkeypatch.setenv("OTEL_EVENT_ATTRIBUTE_COUNT_LIMIT", "3")
    tp = TracerProvider()
    tp.add_span_processor(SimpleSpanProcessor(exporter))
    run(SpanObserver(tp, upstream_url="https://api.openai.com/v1"), chat_rec())
    span = only_span(exporter)
    assert len(span.attributes) == 6 and span.dropped_attributes > 0
    (details,) = events(span, S.EVENT_OPERATION_DETAILS)
    assert len(details.attributes) <= 3


# --- spans without SDK span objects on the loop (issue 13) ----------------------------------


def _view(span) -> tuple:
    """What an exporter reads of a span, in comparable form."""
    return (
        span.name,
        span.kind,
        span.context.trace_id,
        span.context.span_id,
        span.parent.span_id if span.parent else None,
        span.start_time,
        span.end_time,
        dict(span.attributes),
        [(e.name, dict(e.attributes), e.timestamp) for e in span.events],
        (span.status.status_code, span.status.description),
        span.instrumentation_scope.name,
        dict(span.resource.attributes),
    )


def test_sampled_out_parent_exports_nothing_and_propagates_unsampled(exporter):
    obs = observer(exporter)
    rec = chat_rec(trace_headers={"traceparent": f"00-{CLIENT_TRACE}-{CLIENT_SPAN}-00"})
    obs.on_start(rec)
    up = upstream_headers(obs, rec)
    _v, trace, span_id, flags = up["traceparent"].split("-")
    assert (trace, flags) == (CLIENT_TRACE, "00") and span_id != CLIENT_SPAN
    run(obs, rec)
    assert exporter.get_finished_spans() == ()  # the SDK's parent-based sampler: not sampled


def test_the_providers_sampler_decides(exporter):
    from opentelemetry.sdk.trace.sampling import ALWAYS_OFF

    tp = TracerProvider(sampler=ALWAYS_OFF)
    tp.add_span_processor(SimpleSpanProcessor(exporter))
    obs = SpanObserver(tp, upstream_url="https://api.openai.com/v1")
    rec = chat_rec()
    run(obs, rec)
    assert exporter.get_finished_spans() == ()
    assert rec.trace_id is not None and len(rec.trace_id) == 32  # still a trace to propagate


def test_the_gated_providers_queue_carries_the_same_span_as_a_plain_provider(exporter):
    """Through ``GatedTracerProvider`` the span is queued flat and rebuilt only by the export
    worker; what the exporter gets equals what a plain SDK provider's processor gets."""
    from opentelemetry.sdk.resources import Resource

    from tokentail.proxy.telemetry import DropCountingSpanProcessor, GatedTracerProvider, shutdown_bounded

    gated_mem = InMemorySpanExporter()
    resource = Resource.create({"service.name": "tt"})
    gated = GatedTracerProvider(resource=resource)
    gated.add_gate(DropCountingSpanProcessor(gated_mem, lambda sink, n: None, schedule_delay_millis=10))
    plain = TracerProvider(resource=resource)
    plain.add_span_processor(SimpleSpanProcessor(exporter))
    ids = iter(range(1, 100))

    class Ids:  # the same ids on both sides
        def generate_trace_id(self) -> int:
            return next(ids) << 64

        def generate_span_id(self) -> int:
            return next(ids)

    for tp in (gated, plain):
        tp.id_generator = Ids()
        ids = iter(range(1, 100))
        obs = SpanObserver(tp, upstream_url="https://api.openai.com/v1", redactor=Redactor())
        rec = chat_rec(started_at=1000.0, user="u1", tags=["a", "b"])
        run(obs, rec, text="mail me at jane.doe@example.com", error="status", error_message="boom", status=R.ERROR)
    assert shutdown_bounded(gated, 5)
    (g,) = gated_mem.get_finished_spans()
    p = only_span(exporter)
    gv, pv = _view(g), _view(p)
    assert [e[0] for e in gv[8]] == [S.TT_EVENT_FIRST_TOKEN, S.EVENT_OPERATION_DETAILS]
    assert gv == pv
    assert "jane.doe" not in json.dumps(gv[7]) and S.OUTPUT_MESSAGES in gv[7]
    assert p.status.status_code is StatusCode.ERROR and p.status.description == "boom"
