"""The child-process span exporter: spans cross the pipe unchanged, answers are bounded."""

from __future__ import annotations

import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor, SpanExportResult
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, Status, StatusCode, set_span_in_context

from tokentail.proxy.span_process import ProcessSpanExporter, flatten, rebuild


def _spans():
    mem = InMemorySpanExporter()
    tp = TracerProvider(resource=Resource.create({"service.name": "t", "team": "a"}))
    tp.add_span_processor(SimpleSpanProcessor(mem))
    tracer = tp.get_tracer("tokentail.proxy", "1.2.3")
    parent = tracer.start_span("parent")
    span = tracer.start_span(
        "chat m",
        context=set_span_in_context(parent),
        kind=SpanKind.CLIENT,
        attributes={"gen_ai.request.model": "m", "n": 3, "f": 0.5, "ok": True, "tags": ["x", "y"]},
    )
    span.add_event("first", {"tokentail.ttft_ms": 12.5}, timestamp=123)
    span.add_event("gen_ai.client.inference.operation.details", {"gen_ai.output.messages": "[é]"})
    span.set_status(Status(StatusCode.ERROR, "boom"))
    span.end()
    parent.end()
    return mem.get_finished_spans()


def test_flatten_then_rebuild_encodes_to_the_same_otlp_bytes():
    spans = _spans()
    again = [rebuild(flatten(s)) for s in spans]
    assert encode_spans(again).SerializeToString() == encode_spans(spans).SerializeToString()


class _Sink(BaseHTTPRequestHandler):
    got: list[bytes] = []

    def do_POST(self):
        body = self.rfile.read(int(self.headers["Content-Length"]))
        _Sink.got.append(body)
        self.send_response(200)
        self.send_header("Content-Type", "application/x-protobuf")
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args):
        pass


def test_exports_through_the_child_to_a_loopback_receiver():
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Sink)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    exporter = ProcessSpanExporter("http/protobuf", f"http://127.0.0.1:{server.server_port}/v1/traces", None, 5.0)
    try:
        spans = _spans()
        assert exporter.export(spans) is SpanExportResult.SUCCESS
        assert exporter.export(spans[:1]) is SpanExportResult.SUCCESS  # the same child, again
        req = ExportTraceServiceRequest.FromString(_Sink.got[0])
        (rs,) = req.resource_spans
        names = sorted(s.name for ss in rs.scope_spans for s in ss.spans)
        assert names == ["chat m", "parent"]
        assert {kv.key: kv.value.string_value for kv in rs.resource.attributes}["team"] == "a"
    finally:
        exporter.shutdown()
        server.shutdown()
    assert exporter.export(_spans()) is SpanExportResult.FAILURE  # after shutdown


def test_an_unreachable_endpoint_fails_the_batch_and_a_dead_child_is_replaced():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    exporter = ProcessSpanExporter("http/protobuf", f"http://127.0.0.1:{port}/v1/traces", None, 1.0)
    try:
        assert exporter.export(_spans()) is SpanExportResult.FAILURE
        first = exporter._proc
        assert first is not None
        first.kill()
        first.wait()
        assert exporter.export(_spans()) is SpanExportResult.FAILURE  # a new child answered
        assert exporter._proc is not None and exporter._proc is not first
    finally:
        exporter.shutdown()


def test_shutdown_ends_the_child_in_bounded_time():
    exporter = ProcessSpanExporter("http/protobuf", "http://127.0.0.1:9/v1/traces", None, 1.0)
    exporter.export(_spans())
    proc = exporter._proc
    t = time.monotonic()
    exporter.shutdown()
    assert time.monotonic() - t < 3.0
    assert proc is not None and proc.poll() is not None
