"""Span export wiring: env-driven provider, drop counting, bounded shutdown (RELIABILITY 18, 19)."""

from __future__ import annotations

import socket
import threading
import time
from collections import Counter

import pytest
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult

from tokentail.proxy import record as R
from tokentail.proxy import telemetry as T
from tokentail.proxy.record import RequestRecord, Usage
from tokentail.proxy.spans import SpanObserver


class Drops:
    def __init__(self) -> None:
        self.counts: Counter[str] = Counter()
        self.lock = threading.Lock()

    def __call__(self, sink: str, n: int) -> None:
        with self.lock:
            self.counts[sink] += n


class BlackHole(SpanExporter):
    """Takes a batch and holds it until released, like an endpoint that never answers."""

    def __init__(self, result=SpanExportResult.SUCCESS) -> None:
        self.release = threading.Event()
        self.exported = 0
        self.result = result

    def export(self, spans):
        self.release.wait(10)
        self.exported += len(spans)
        return self.result

    def shutdown(self):
        self.release.set()


class Failing(SpanExporter):
    def __init__(self, raise_: bool) -> None:
        self.raise_ = raise_

    def export(self, spans):
        if self.raise_:
            raise RuntimeError("boom")
        return SpanExportResult.FAILURE

    def shutdown(self):
        pass


def provider_with(exporter, drops, **kw) -> tuple[TracerProvider, T.DropCountingSpanProcessor]:
    tp = TracerProvider()
    gate = T.DropCountingSpanProcessor(exporter, drops, **kw)
    tp.add_span_processor(gate)
    return tp, gate


def records(n: int) -> list[RequestRecord]:
    out = []
    for i in range(n):
        r = RequestRecord(
            id=str(i),
            variant="a",
            method="POST",
            endpoint="/chat/completions",
            model="m",
            stream=True,
            prompt={"messages": [{"role": "user", "content": "hi"}]},
        )
        r.status, r.http_status, r.usage, r.latency_ms, r.text = R.OK, 200, Usage(3, 4), 5.0, "hello"
        out.append(r)
    return out


# --- configuration from the environment ---------------------------------------------------


def test_no_provider_unless_asked():
    drops = Drops()
    assert T.build_tracer_provider({}, drops) is None
    assert (
        T.build_tracer_provider(
            {"OTEL_TRACES_EXPORTER": "none", "OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:4318"}, drops
        )
        is None
    )
    assert T.build_tracer_provider({"OTEL_SERVICE_NAME": "x"}, drops) is None
    assert T.build_tracer_provider({"OTEL_SDK_DISABLED": "true", "OTEL_TRACES_EXPORTER": "console"}, drops) is None


def test_provider_from_endpoint_with_resource():
    env = {
        "OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:1",
        "OTEL_RESOURCE_ATTRIBUTES": "deployment.environment=dev,team=a%2Cb",
    }
    tp = T.build_tracer_provider(env, Drops())
    try:
        assert isinstance(tp, TracerProvider)
        attrs = tp.resource.attributes
        assert attrs["service.name"] == "tokentail-proxy"
        assert attrs["deployment.environment"] == "dev" and attrs["team"] == "a,b"
        (gate,) = tp.gates
        exporter = gate._batch.span_exporter._inner  # encoded and sent by a child process (span_process)
        assert (exporter.protocol, exporter.endpoint) == ("http/protobuf", "http://127.0.0.1:1/v1/traces")
    finally:
        T.shutdown_bounded(tp, 2)
    tp = T.build_tracer_provider({"OTEL_TRACES_EXPORTER": "console", "OTEL_SERVICE_NAME": "edge"}, Drops())
    assert tp.resource.attributes["service.name"] == "edge"
    T.shutdown_bounded(tp, 2)


def test_grpc_protocol_and_traces_endpoint():
    env = {"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://127.0.0.1:1", "OTEL_EXPORTER_OTLP_PROTOCOL": "grpc"}
    tp = T.build_tracer_provider(env, Drops())
    try:
        (gate,) = tp.gates
        exporter = gate._batch.span_exporter._inner
        assert (exporter.protocol, exporter.endpoint) == ("grpc", "http://127.0.0.1:1")
    finally:
        T.shutdown_bounded(tp, 2)


def test_otlp_headers_parsed_as_the_sdk_parses_them():
    env = {"OTEL_EXPORTER_OTLP_HEADERS": "Api-Key=a%20b,x-team=c=d, bad ,"}
    assert T.otlp_headers(env) == {"api-key": "a b", "x-team": "c=d"}
    assert T.otlp_headers({**env, "OTEL_EXPORTER_OTLP_TRACES_HEADERS": "only=this"}) == {"only": "this"}
    assert T.otlp_headers({}) is None


def test_the_names_read_are_the_sdks_own():
    from opentelemetry.sdk import environment_variables as sdk_env

    ours = {T.ENV_CAPTURE_CONTENT, T.ENV_SEMCONV_OPT_IN, "OTEL_TRACES_EXPORTER"}  # not SDK settings
    assert T.ENV_READ - ours <= {v for k, v in vars(sdk_env).items() if k.startswith("OTEL_")}


def test_export_timeout():
    assert T.export_timeout({}) == 2.0
    assert T.export_timeout({"OTEL_EXPORTER_OTLP_TIMEOUT": "5"}) == 5.0
    assert T.export_timeout({"OTEL_EXPORTER_OTLP_TIMEOUT": "10000"}) == 10.0  # the spec's milliseconds
    assert T.export_timeout({"OTEL_EXPORTER_OTLP_TRACES_TIMEOUT": "1", "OTEL_EXPORTER_OTLP_TIMEOUT": "9"}) == 1.0
    assert T.export_timeout({"OTEL_EXPORTER_OTLP_TIMEOUT": "soon"}) == 2.0


def test_capture_content_and_opt_in_from_env():
    assert T.capture_content({}) is True
    assert T.capture_content({"OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT": "False"}) is False
    assert T.capture_content({"OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT": "NO_CONTENT"}) is False
    assert T.capture_content({"OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT": "span_and_event"}) is True
    assert (
        T.semconv_opt_in({"OTEL_SEMCONV_STABILITY_OPT_IN": "gen_ai_latest_experimental"})
        == "gen_ai_latest_experimental"
    )


# --- drops (RELIABILITY 19) ------------------------------------------------------------------


def test_burst_larger_than_queue_drops_counted_and_never_blocks():
    drops = Drops()
    hole = BlackHole()
    tp, _gate = provider_with(hole, drops, max_queue_size=100, schedule_delay_millis=10, max_export_batch_size=10)
    obs = SpanObserver(tp, upstream_url="http://127.0.0.1:9/v1", variant="a")
    elapsed = 0.0
    for r in records(5000):
        obs.on_start(r)
        t = time.perf_counter()
        obs.on_end(r)
        elapsed += time.perf_counter() - t
    assert elapsed < 1.0, f"{elapsed:.2f}s for 5000 on_end calls"  # ~0.2 s measured: loose on purpose
    assert drops.counts["spans"] >= 5000 - 100 - 10 * 2
    hole.release.set()
    assert T.shutdown_bounded(tp, 5)
    # every span is accounted for: exported or counted as dropped, never both, never neither
    assert hole.exported + drops.counts["spans"] == 5000
    assert hole.exported >= 100


def test_on_end_stays_fast_while_the_exporter_hangs():
    drops = Drops()
    hole = BlackHole()
    tp, _gate = provider_with(hole, drops, max_queue_size=2048, schedule_delay_millis=5, max_export_batch_size=512)
    obs = SpanObserver(tp, upstream_url="http://127.0.0.1:9/v1", variant="a")
    took = []
    for r in records(5000):
        obs.on_start(r)
        t = time.perf_counter()
        obs.on_end(r)
        took.append(time.perf_counter() - t)
    took.sort()
    # A blocked call would take the exporter's whole hang (10 s); the percentile keeps an
    # OS preemption on a loaded CI machine from failing the test.
    assert took[int(len(took) * 0.99)] < 0.005, f"p99 on_end {took[int(len(took) * 0.99)] * 1000:.1f} ms"
    assert sum(took) < 1.0
    assert drops.counts["spans"] > 0
    hole.release.set()
    T.shutdown_bounded(tp, 5)


@pytest.mark.parametrize("raise_", [False, True])
def test_failed_exports_count_their_spans(raise_):
    drops = Drops()
    tp, _gate = provider_with(
        Failing(raise_), drops, max_queue_size=100, schedule_delay_millis=5000, max_export_batch_size=10
    )
    obs = SpanObserver(tp, upstream_url="http://127.0.0.1:9/v1", variant="a")
    for r in records(25):
        obs.on_start(r)
        obs.on_end(r)
    tp.force_flush()
    assert drops.counts["spans"] == 25
    assert T.shutdown_bounded(tp, 2)
    assert drops.counts["spans"] == 25


def test_spans_after_shutdown_are_counted():
    drops = Drops()
    tp, gate = provider_with(BlackHole(), drops)
    gate.shutdown()
    obs = SpanObserver(tp, upstream_url="http://127.0.0.1:9/v1", variant="a")
    for r in records(3):
        obs.on_start(r)
        obs.on_end(r)
    assert drops.counts["spans"] == 3


# --- bounded shutdown (RELIABILITY 18) ---------------------------------------------------------


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _emit(tp: TracerProvider, n: int) -> None:
    obs = SpanObserver(tp, upstream_url="http://127.0.0.1:9/v1", variant="a")
    for r in records(n):
        obs.on_start(r)
        obs.on_end(r)


def test_shutdown_bounded_with_an_unreachable_endpoint():
    drops = Drops()
    env = {"OTEL_EXPORTER_OTLP_ENDPOINT": f"http://127.0.0.1:{_closed_port()}", "OTEL_BSP_SCHEDULE_DELAY": "60000"}
    tp = T.build_tracer_provider(env, drops)
    _emit(tp, 50)
    t = time.monotonic()
    T.shutdown_bounded(tp, 3.0)
    assert time.monotonic() - t < 3.5
    assert drops.counts["spans"] == 50


def test_shutdown_bounded_with_an_endpoint_that_never_answers():
    drops = Drops()
    hole = socket.socket()
    hole.bind(("127.0.0.1", 0))
    hole.listen(64)  # accepts connections (kernel backlog), never reads or answers
    try:
        env = {
            "OTEL_EXPORTER_OTLP_ENDPOINT": f"http://127.0.0.1:{hole.getsockname()[1]}",
            "OTEL_EXPORTER_OTLP_TIMEOUT": "3",
            "OTEL_BSP_SCHEDULE_DELAY": "60000",
        }
        tp = T.build_tracer_provider(env, drops)
        _emit(tp, 40)
        t = time.monotonic()
        finished = T.shutdown_bounded(tp, 1.0)
        assert time.monotonic() - t < 1.5
        assert finished is False
        assert drops.counts["spans"] == 40  # the batch stuck in export is counted too
    finally:
        hole.close()
