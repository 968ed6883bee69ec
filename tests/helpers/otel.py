"""Real OpenTelemetry SDK spans, encoded the way exporters send them (protobuf, OTLP/JSON)."""

from __future__ import annotations

import base64
import json
import uuid

from google.protobuf import json_format
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import Status, StatusCode

from tokentail import semconv as sc

__all__ = ["DEEP", "INPUT", "OUTPUT", "SECRETS", "genai_spans", "json_body", "protobuf_body"]

# The secrets ``genai_spans`` puts into attributes and the resource: none may reach DuckDB.
SECRETS = ("sk-live-123", "k-1", "sid=abc", "sk-2", "sk-in-query", "sk-resource-secret")
# OTLP/JSON bodies nested deeper than the decoder takes (well-formed or not).
DEEP = {
    "unclosed": b"[" * 100_000,
    "valid_50k_arrays": b"[" * 50_000 + b"]" * 50_000,
    "valid_50k_objects": b'{"a":' * 50_000 + b"1" + b"}" * 50_000,
    "deep_in_an_export": b'{"resourceSpans": ' + b"[" * 50_000 + b"]" * 50_000 + b"}",
}

INPUT = [{"role": "user", "parts": [{"type": "text", "content": "Say hi"}]}]
OUTPUT = [{"role": "assistant", "parts": [{"type": "text", "content": "Hi!"}], "finish_reason": "stop"}]


def genai_spans(n: int = 2, *, via_event: bool = False, error: bool = False, extra: dict | None = None):
    """``n`` finished chat spans as the proxy's exporter records them (plus one non-GenAI span)."""
    exporter = InMemorySpanExporter()
    provider = TracerProvider(
        resource=Resource.create({"service.name": "tokentail-proxy", "deployment.api_key": "sk-resource-secret"})
    )
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracer = provider.get_tracer("test")
    ids = []
    for i in range(n):
        rid = str(uuid.uuid4())
        ids.append(rid)
        attrs = {
            sc.TT_REQUEST_ID: rid,
            sc.OPERATION_NAME: "chat",
            sc.PROVIDER_NAME: "openai",
            sc.REQUEST_MODEL: "gpt-4o",
            sc.RESPONSE_MODEL: "gpt-4o-2024-08-06",
            sc.TT_VARIANT: "canary",
            sc.TT_ENDPOINT: "/chat/completions",
            sc.TT_STREAM: True,
            sc.TT_STATUS: "error" if error else "ok",
            sc.HTTP_STATUS_CODE: 500 if error else 200,
            sc.USAGE_INPUT_TOKENS: 12 + i,
            sc.USAGE_OUTPUT_TOKENS: 3,
            sc.USAGE_CACHE_READ_INPUT_TOKENS: 4,
            sc.TT_USAGE_SOURCE: "reported",
            sc.TT_TTFT_MS: 120.5,
            sc.TT_LATENCY_MS: 800.0,
            sc.TT_OUTPUT_TPS: 41.5,
            sc.RESPONSE_FINISH_REASONS: ("stop",),
            sc.TT_SESSION_ID: "sess-1",
            sc.CONVERSATION_ID: "conv-1",
            "gen_ai.request.max_tokens": 256,
            "gen_ai.request.temperature": 0.2,
            # Secrets and URL queries that must never reach DuckDB:
            "http.request.header.authorization": "Bearer sk-live-123",
            "http.request.header.x-api-key": "k-1",
            "http.request.header.cookie": "sid=abc",
            "tokentail.api_key": "sk-2",
            "app.client_secret": "s",
            "url.full": "https://api.example.com/v1/chat/completions?key=sk-in-query&x=1",
            "url.query": "key=sk-in-query",
            **(extra or {}),
        }
        if error:
            attrs[sc.ERROR_TYPE] = "500"
        if not via_event:
            attrs[sc.INPUT_MESSAGES] = json.dumps(INPUT)
            attrs[sc.OUTPUT_MESSAGES] = json.dumps(OUTPUT)
        with tracer.start_as_current_span("chat gpt-4o", attributes=attrs) as span:
            span.add_event(sc.TT_EVENT_FIRST_TOKEN, {"tokentail.ttft_ms": 120.5})
            if via_event:
                span.add_event(
                    sc.EVENT_OPERATION_DETAILS,
                    {sc.INPUT_MESSAGES: json.dumps(INPUT), sc.OUTPUT_MESSAGES: json.dumps(OUTPUT)},
                )
            if error:
                span.set_status(Status(StatusCode.ERROR, "upstream said 500"))
    with tracer.start_as_current_span("GET /healthz", attributes={"http.route": "/healthz"}):
        pass
    provider.shutdown()
    return exporter.get_finished_spans(), ids


def protobuf_body(spans) -> bytes:
    return encode_spans(spans).SerializeToString()


def json_body(spans) -> bytes:
    """OTLP/JSON as the spec (and the OTel Collector's otlphttp exporter) writes it: hex ids."""
    obj = json_format.MessageToDict(encode_spans(spans))
    for rs in obj["resourceSpans"]:
        for ss in rs["scopeSpans"]:
            for span in ss["spans"]:
                for k in ("traceId", "spanId", "parentSpanId"):
                    if k in span:
                        span[k] = base64.b64decode(span[k]).hex()
    return json.dumps(obj).encode()
