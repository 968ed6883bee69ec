"""otlp.py: real SDK spans as protobuf and OTLP/JSON -> rows, secrets dropped."""

from __future__ import annotations

import json

import pytest

from tests.helpers.otel import DEEP, INPUT, OUTPUT, SECRETS, genai_spans, json_body, protobuf_body
from tokentail.collector.otlp import OTLPError, decode, encode_response, is_secret_key, spans_to_rows


def _rows(body, ctype):
    return spans_to_rows(decode(body, ctype), received_at=123.0)


@pytest.mark.parametrize("encode, ctype", [(protobuf_body, "application/x-protobuf"), (json_body, "application/json")])
def test_genai_spans_become_rows(encode, ctype):
    spans, ids = genai_spans(2)
    rows, skipped = _rows(encode(spans), ctype)
    assert skipped == 1  # the /healthz span is not a GenAI span
    assert [r["request_id"] for r in rows] == ids
    r = rows[0]
    sdk = spans[0]
    assert r["trace_id"] == format(sdk.context.trace_id, "032x") and r["span_id"] == format(sdk.context.span_id, "016x")
    assert r["start_time"] == pytest.approx(sdk.start_time / 1e9) and isinstance(r["start_time"], float)
    assert r["end_time"] == pytest.approx(sdk.end_time / 1e9)
    assert (r["model"], r["response_model"], r["variant"], r["endpoint"]) == (
        "gpt-4o",
        "gpt-4o-2024-08-06",
        "canary",
        "/chat/completions",
    )
    assert r["stream"] is True and r["status"] == "ok" and r["http_status"] == 200
    assert (r["input_tokens"], r["output_tokens"], r["cached_input_tokens"]) == (12, 3, 4)
    assert r["usage_source"] == "reported" and r["ttft_ms"] == 120.5 and r["latency_ms"] == 800.0
    assert r["output_tps"] == 41.5 and json.loads(r["finish_reasons"]) == ["stop"]
    assert r["session_id"] == "sess-1" and r["conversation_id"] == "conv-1"
    assert json.loads(r["input_messages"]) == INPUT and json.loads(r["output_messages"]) == OUTPUT
    assert r["service_name"] == "tokentail-proxy" and r["received_at"] == 123.0
    attrs = json.loads(r["attributes"])
    assert attrs["gen_ai.request.max_tokens"] == 256 and attrs["gen_ai.request.temperature"] == 0.2
    assert attrs["url.full"] == "https://api.example.com/v1/chat/completions"
    events = json.loads(r["events"])
    assert events[0]["name"] == "tokentail.first_token"
    flat = json.dumps(rows)
    for secret in SECRETS:
        assert secret not in flat
    assert "url.query" not in flat and "authorization" not in flat.lower()


def test_messages_from_the_operation_details_event_and_error_status():
    spans, _ = genai_spans(1, via_event=True, error=True)
    (r,), _ = _rows(protobuf_body(spans), "application/x-protobuf")
    assert json.loads(r["input_messages"]) == INPUT and json.loads(r["output_messages"]) == OUTPUT
    assert r["status"] == "error" and r["http_status"] == 500 and r["error_type"] == "500"
    assert "gen_ai.client.inference.operation.details" not in (r["events"] or "")  # nothing left in it


def test_a_span_without_request_id_gets_trace_and_span_id():
    spans, _ = genai_spans(1, extra={"tokentail.request.id": ""})
    (r,), _ = _rows(protobuf_body(spans), "application/x-protobuf")
    assert r["request_id"] == f"{r['trace_id']}-{r['span_id']}"


@pytest.mark.parametrize(
    "key, secret",
    [
        ("http.request.header.authorization", True),
        ("http.request.header.x-api-key", True),
        ("http.request.header.x-goog-api-key", True),
        ("http.response.header.set-cookie", True),
        ("db.password", True),
        ("app.client_secret", True),
        ("tokentail.api_key", True),
        ("oauth.access_token", True),
        ("x.api_tokens", True),
        ("url.query", True),
        ("gen_ai.usage.input_tokens", False),
        ("gen_ai.usage.output_tokens", False),
        ("gen_ai.usage.cache_read.input_tokens", False),
        ("gen_ai.request.max_tokens", False),
        ("tokentail.request.id", False),
        ("tokentail.ttft_ms", False),
        ("tokentail.usage.source", False),
        ("gen_ai.request.model", False),
        ("url.full", False),
        ("tokentail.client.key_fingerprint", False),
        ("tokentail.client.key", True),
        ("app.key_fingerprint", True),
    ],
)
def test_secret_keys(key, secret):
    assert is_secret_key(key) is secret


def test_bad_bodies():
    with pytest.raises(OTLPError) as info:
        decode(b"\xff\xff\xff garbage", "application/x-protobuf")
    assert not info.value.unsupported
    with pytest.raises(OTLPError):
        decode(b"{not json", "application/json")
    with pytest.raises(OTLPError) as info:
        decode(b"x", "text/plain")
    assert info.value.unsupported


def test_responses():
    assert encode_response(True) == (b"{}", "application/json")
    body, ctype = encode_response(False)
    assert ctype == "application/x-protobuf" and body == b""


def test_cost_and_attribution_become_columns():
    spans, _ = genai_spans(
        1,
        extra={
            "tokentail.cost.usd": 0.00123,
            "tokentail.user": "alice",
            "tokentail.tags": ("exp-7", "batch", "exp-7", ""),
            "tokentail.client.key_fingerprint": "kf-9a8b7c",
            "tokentail.route": "local",
        },
    )
    (r,), _ = _rows(protobuf_body(spans), "application/x-protobuf")
    assert r["cost_usd"] == 0.00123 and r["user_id"] == "alice" and r["route"] == "local"
    assert r["tags"] == ["exp-7", "batch"]  # distinct, no empty tag
    assert r["key_fingerprint"] == "kf-9a8b7c"  # a keyed hash, not a key: kept (the key itself never is)
    for k in ("tokentail.cost.usd", "tokentail.user", "tokentail.tags", "tokentail.client.key_fingerprint"):
        assert k not in json.loads(r["attributes"])  # columns, not duplicated in the JSON
    assert "sk-live-123" not in json.dumps(r)


@pytest.mark.parametrize("cost", [None, -1.0, float("nan"), "free"])
def test_a_missing_or_nonsense_cost_is_unknown_never_zero(cost):
    extra = {} if cost is None else {"tokentail.cost.usd": cost}
    spans, _ = genai_spans(1, extra=extra)
    (r,), _ = _rows(protobuf_body(spans), "application/x-protobuf")
    assert r["cost_usd"] is None and r["tags"] is None and r["user_id"] is None


@pytest.mark.parametrize("name", sorted(DEEP))
def test_json_nested_too_deep_is_an_otlp_error_not_a_recursion_error(name):
    with pytest.raises(OTLPError) as info:
        decode(DEEP[name], "application/json")
    assert info.value.reason == "too_deep" and "nested too deep" in str(info.value)


@pytest.mark.parametrize(
    "body", [b"[1]", b'"x"', b"null", b"3", b'{"resourceSpans": NaN}', b'{"resourceSpans": "\xff"}']
)
def test_odd_json_is_an_otlp_error(body):
    with pytest.raises(OTLPError) as info:
        decode(body, "application/json")
    assert info.value.reason == "invalid" and not info.value.unsupported
