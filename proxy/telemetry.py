"""Span export wiring, used only by the proxy's ``main``: provider, batching, drop counting, shutdown.

Spans are exported only when the environment asks (``OTEL_EXPORTER_OTLP_ENDPOINT``,
``OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`` or ``OTEL_TRACES_EXPORTER``), over OTLP http/protobuf
(default) or grpc, through a batch processor. The request path never waits on an exporter:
ending a span only appends to a bounded queue, and a full queue drops the span and counts it
(``on_drop("spans", n)``), as does a failed export for every span of its batch. The Python
SDK's ``BatchSpanProcessor`` counts nothing unless its internal metrics are enabled, so a
gate in front of it keeps our own count of queued spans and never lets its queue overflow.
Encoding and sending run in a child process (``span_process``), never holding the
proxy's GIL. Exports are bounded by a short timeout (2 s unless ``OTEL_EXPORTER_OTLP_TIMEOUT`` says
otherwise) and ``shutdown_bounded`` never waits longer than it is told.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Mapping, Sequence
from typing import Any
from urllib.parse import unquote

from opentelemetry.environment_variables import OTEL_TRACES_EXPORTER
from opentelemetry.sdk.environment_variables import (
    OTEL_BSP_MAX_EXPORT_BATCH_SIZE,
    OTEL_BSP_MAX_QUEUE_SIZE,
    OTEL_BSP_SCHEDULE_DELAY,
    OTEL_EXPORTER_OTLP_ENDPOINT,
    OTEL_EXPORTER_OTLP_HEADERS,
    OTEL_EXPORTER_OTLP_PROTOCOL,
    OTEL_EXPORTER_OTLP_TIMEOUT,
    OTEL_EXPORTER_OTLP_TRACES_ENDPOINT,
    OTEL_EXPORTER_OTLP_TRACES_HEADERS,
    OTEL_EXPORTER_OTLP_TRACES_PROTOCOL,
    OTEL_EXPORTER_OTLP_TRACES_TIMEOUT,
    OTEL_RESOURCE_ATTRIBUTES,
    OTEL_SDK_DISABLED,
    OTEL_SERVICE_NAME,
)
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, SpanLimits, SpanProcessor, TracerProvider
from opentelemetry.sdk.trace.export import (
    BatchSpanProcessor,
    ConsoleSpanExporter,
    SpanExporter,
    SpanExportResult,
)
from opentelemetry.util.re import parse_env_headers

from .span_process import Flat, FlatSpan, ProcessSpanExporter, readable

log = logging.getLogger("tokentail.proxy.telemetry")

OnDrop = Callable[[str, int], None]

# Not the SDK's (instrumentation conventions), so not in its constants.
ENV_CAPTURE_CONTENT = "OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT"
ENV_SEMCONV_OPT_IN = "OTEL_SEMCONV_STABILITY_OPT_IN"
# Every environment variable read here (``tokentail config`` and the compose checks list them).
ENV_READ = frozenset(
    {
        OTEL_SDK_DISABLED,
        OTEL_TRACES_EXPORTER,
        OTEL_EXPORTER_OTLP_ENDPOINT,
        OTEL_EXPORTER_OTLP_TRACES_ENDPOINT,
        OTEL_EXPORTER_OTLP_PROTOCOL,
        OTEL_EXPORTER_OTLP_TRACES_PROTOCOL,
        OTEL_EXPORTER_OTLP_TIMEOUT,
        OTEL_EXPORTER_OTLP_TRACES_TIMEOUT,
        OTEL_EXPORTER_OTLP_HEADERS,
        OTEL_EXPORTER_OTLP_TRACES_HEADERS,
        OTEL_SERVICE_NAME,
        OTEL_RESOURCE_ATTRIBUTES,
        OTEL_BSP_MAX_QUEUE_SIZE,
        OTEL_BSP_SCHEDULE_DELAY,
        OTEL_BSP_MAX_EXPORT_BATCH_SIZE,
        ENV_CAPTURE_CONTENT,
        ENV_SEMCONV_OPT_IN,
    }
)

DEFAULT_SERVICE_NAME = "tokentail-proxy"
# The SDK's 10 s default, with retries, held force_flush(3000) for 33 s against an
# unreachable endpoint; 2 s per export keeps shutdown and drops prompt.
DEFAULT_EXPORT_TIMEOUT_S = 2.0
DEFAULT_MAX_QUEUE = 2048
DEFAULT_SCHEDULE_DELAY_MS = 5000
# Spans per export request. A span carries at most about 4 x 64 KiB of content (``_spancap``)
# plus its other attributes (measured: 257 KiB at worst): 32 stay near 8 MiB, half the OTLP
# body limit of tokentail's collector (``max_otlp_bytes``, 16 MiB; see ``collector/receiver.py``;
# the OTel Collector's HTTP receiver takes 20 MiB), so no batch is refused (413) for its size.
# With the SDK's 512, ~84 spans of 100 KB prompts were.
DEFAULT_MAX_BATCH = 32

_OFF = {"false", "0", "no", "off", "none", "no_content"}


def capture_content(env: Mapping[str, str]) -> bool:
    """``OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT``: on unless set to false (or no_content).

    tokentail captures content by default (redacted), unlike OTel instrumentations; the newer
    values (``span_only``, ``span_and_event``, ...) all mean on here.
    """
    value = env.get(ENV_CAPTURE_CONTENT)
    return value is None or value.strip().lower() not in _OFF


def semconv_opt_in(env: Mapping[str, str]) -> str | None:
    """The raw ``OTEL_SEMCONV_STABILITY_OPT_IN`` value, for ``ProxyMetrics`` and ``SpanObserver``."""
    return env.get(ENV_SEMCONV_OPT_IN)


class DropCountingSpanProcessor(SpanProcessor):
    """A ``BatchSpanProcessor`` behind a gate that counts what is dropped.

    The gate counts spans handed to the batch processor and spans its worker has taken for
    export (seen by the wrapping exporter); when ``max_queue_size`` are waiting, a new span
    is dropped and counted here instead of being silently evicted from the SDK's deque.
    A batch whose export fails or raises counts all of its spans.
    """

    def __init__(
        self,
        exporter: SpanExporter,
        on_drop: OnDrop,
        *,
        max_queue_size: int = DEFAULT_MAX_QUEUE,
        schedule_delay_millis: float = DEFAULT_SCHEDULE_DELAY_MS,
        max_export_batch_size: int = DEFAULT_MAX_BATCH,
    ) -> None:
        self._on_drop = on_drop
        self._max = max_queue_size
        self._lock = threading.Lock()
        self._submitted = 0  # spans handed to the batch processor
        self._taken = 0  # spans its worker took for export
        self._inflight = 0  # spans of the export in progress
        self._closed = False
        self._leftover_counted = False
        self._abandoned = False
        self._batch = BatchSpanProcessor(
            _CountingExporter(exporter, self),
            max_queue_size=max_queue_size,
            schedule_delay_millis=schedule_delay_millis,
            max_export_batch_size=min(max_export_batch_size, max_queue_size),
        )

    def on_start(self, span, parent_context=None) -> None:
        pass

    def on_end(self, span: ReadableSpan) -> None:
        if not (span.context and span.context.trace_flags.sampled):
            return
        with self._lock:
            accepted = not self._closed and self._submitted - self._taken < self._max
            if accepted:
                self._submitted += 1
        if accepted:
            self._batch.on_end(span)
        else:
            self._drop(1)

    def pending(self) -> int:
        """Spans queued and not yet taken by an export."""
        with self._lock:
            return self._submitted - self._taken

    def shutdown(self) -> None:
        with self._lock:
            self._closed = True
        try:
            self._batch.shutdown()
        finally:
            self.count_leftover()

    def count_leftover(self) -> None:
        """Count, once, the spans that will never be exported: at shutdown, or when it is abandoned.

        Spans still queued and the batch being exported right now both count; should that
        export still succeed (an abandoned shutdown goes on in its thread), it was counted
        as dropped anyway: over-counting at exit beats a silent loss.
        """
        with self._lock:
            if self._leftover_counted:
                return
            self._leftover_counted = True
            self._closed = True
            left = self._submitted - self._taken + self._inflight
            self._taken = self._submitted
            self._abandoned = True
        self._drop(left)

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return self._batch.force_flush(timeout_millis)

    # Called by the exporter wrapper, on the export worker thread.
    def _took(self, n: int) -> None:
        with self._lock:
            self._taken += n
            self._inflight += n

    def _exported(self, n: int, ok: bool) -> None:
        with self._lock:
            self._inflight -= n
            counted = self._abandoned
        if not ok and not counted:
            self._drop(n)

    def _drop(self, n: int) -> None:
        if n <= 0:
            return
        try:
            self._on_drop("spans", n)
        except Exception:  # a broken counter must not break span processing
            log.exception("span drop counter failed")


class _CountingExporter(SpanExporter):
    """Wraps the real exporter: tells the gate what was taken, counts failed batches."""

    def __init__(self, inner: SpanExporter, gate: DropCountingSpanProcessor) -> None:
        self._inner = inner
        self._gate = gate
        self._flat_ok = isinstance(inner, ProcessSpanExporter)

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        self._gate._took(len(spans))
        try:
            if not self._flat_ok:  # only the child-process exporter takes flat spans as they are
                limits = SpanLimits()
                spans = [readable(s, limits) for s in spans]
            result = self._inner.export(spans)
        except Exception:
            log.warning("span export raised; %d spans dropped", len(spans), exc_info=True)
            result = SpanExportResult.FAILURE
        self._gate._exported(len(spans), result is SpanExportResult.SUCCESS)
        return result

    def shutdown(self) -> None:
        self._inner.shutdown()

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return self._inner.force_flush(timeout_millis)


class GatedTracerProvider(TracerProvider):
    """A ``TracerProvider`` that keeps its ``DropCountingSpanProcessor`` gates, so
    ``shutdown_bounded`` can count what they abandon without reaching into the SDK's private
    composite processor (or a module-level map from providers to gates)."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.gates: list[DropCountingSpanProcessor] = []

    def add_gate(self, gate: DropCountingSpanProcessor) -> None:
        self.add_span_processor(gate)
        self.gates.append(gate)

    def submit_flat(self, flat: Flat) -> None:
        """A finished span as a flat tuple (``spans.SpanObserver``): queued as it is, for the
        export child to rebuild (no SDK span object on the event loop)."""
        span = FlatSpan(flat)
        for gate in self.gates:
            gate.on_end(span)  # type: ignore[arg-type]  # the gate reads only its context


def build_tracer_provider(env: Mapping[str, str], on_drop: OnDrop) -> GatedTracerProvider | None:
    """A TracerProvider exporting as the environment says, or None when it asks for no traces.

    ``OTEL_TRACES_EXPORTER`` (``otlp``, ``console``, ``none``, comma-separated) or an OTLP
    endpoint variable turns export on; ``OTEL_SDK_DISABLED=true`` turns it off. The sampler
    is the SDK's (``OTEL_TRACES_SAMPLER``, parent-based always-on by default). ``on_drop(sink, count)`` is told of every dropped
    span (``ProxyMetrics.dropped``). Certificates and compression are read by the OTLP
    exporters from the process environment.
    """
    names_raw = env.get(OTEL_TRACES_EXPORTER, "").strip().lower()
    has_endpoint = bool(env.get(OTEL_EXPORTER_OTLP_ENDPOINT) or env.get(OTEL_EXPORTER_OTLP_TRACES_ENDPOINT))
    disabled = env.get(OTEL_SDK_DISABLED, "").strip().lower() == "true"
    if disabled or names_raw == "none" or (not names_raw and not has_endpoint):
        return None
    names = [n.strip() for n in names_raw.split(",") if n.strip()] or ["otlp"]
    provider = GatedTracerProvider(resource=_resource(env))
    queue = _int(env.get(OTEL_BSP_MAX_QUEUE_SIZE), DEFAULT_MAX_QUEUE)
    delay = _int(env.get(OTEL_BSP_SCHEDULE_DELAY), DEFAULT_SCHEDULE_DELAY_MS)
    batch = _int(env.get(OTEL_BSP_MAX_EXPORT_BATCH_SIZE), DEFAULT_MAX_BATCH)
    for name in names:
        if name == "otlp":
            exporter: SpanExporter = _otlp_exporter(env)
        elif name == "console":
            exporter = ConsoleSpanExporter()
        else:
            if name != "none":
                log.warning("%s=%s: unknown exporter ignored", OTEL_TRACES_EXPORTER, name)
            continue
        gate = DropCountingSpanProcessor(
            exporter,
            on_drop,
            max_queue_size=queue,
            schedule_delay_millis=delay,
            max_export_batch_size=batch,
        )
        provider.add_gate(gate)
    return provider if provider.gates else None


def _otlp_exporter(env: Mapping[str, str]) -> SpanExporter:
    """The OTLP exporter the environment asks for, run in a child process (``span_process``:
    encoding and sending never hold the proxy's GIL)."""
    protocol = (
        (env.get(OTEL_EXPORTER_OTLP_TRACES_PROTOCOL) or env.get(OTEL_EXPORTER_OTLP_PROTOCOL) or "http/protobuf")
        .strip()
        .lower()
    )
    timeout = export_timeout(env)
    headers = otlp_headers(env)
    if protocol == "grpc":
        endpoint = (
            env.get(OTEL_EXPORTER_OTLP_TRACES_ENDPOINT)
            or env.get(OTEL_EXPORTER_OTLP_ENDPOINT)
            or "http://localhost:4317"
        )
        return ProcessSpanExporter("grpc", endpoint, headers, timeout)
    if protocol != "http/protobuf":
        log.warning("OTLP protocol %r is not supported by the Python exporter; using http/protobuf", protocol)
    endpoint = env.get(OTEL_EXPORTER_OTLP_TRACES_ENDPOINT) or ""
    if not endpoint:  # the signal path is appended only to the generic endpoint, as the spec says
        base = env.get(OTEL_EXPORTER_OTLP_ENDPOINT) or "http://localhost:4318"
        endpoint = base.rstrip("/") + "/v1/traces"
    return ProcessSpanExporter("http/protobuf", endpoint, headers, timeout)


def otlp_headers(env: Mapping[str, str]) -> dict[str, str] | None:
    """``OTEL_EXPORTER_OTLP_(TRACES_)HEADERS``, parsed as the SDK's exporters parse them when
    they read the process environment themselves (names lower-cased, values percent-decoded)."""
    raw = env.get(OTEL_EXPORTER_OTLP_TRACES_HEADERS) or env.get(OTEL_EXPORTER_OTLP_HEADERS) or ""
    return dict(parse_env_headers(raw, liberal=True)) or None


def export_timeout(env: Mapping[str, str]) -> float:
    """Seconds per export: ``OTEL_EXPORTER_OTLP_(TRACES_)TIMEOUT`` or 2 s.

    The Python exporters read the variable as seconds, the specification as milliseconds; a
    value above 300 can only mean milliseconds, and is read so (never a multi-hour wait).
    """
    raw = env.get(OTEL_EXPORTER_OTLP_TRACES_TIMEOUT) or env.get(OTEL_EXPORTER_OTLP_TIMEOUT)
    if not raw:
        return DEFAULT_EXPORT_TIMEOUT_S
    try:
        value = float(raw)
    except ValueError:
        log.warning("invalid OTLP timeout %r; using %ss", raw, DEFAULT_EXPORT_TIMEOUT_S)
        return DEFAULT_EXPORT_TIMEOUT_S
    if value <= 0:
        return DEFAULT_EXPORT_TIMEOUT_S
    return value / 1000.0 if value > 300 else value


def _resource(env: Mapping[str, str]) -> Resource:
    attrs: dict[str, str] = {}
    for item in env.get(OTEL_RESOURCE_ATTRIBUTES, "").split(","):
        key, sep, value = item.partition("=")
        if sep and key.strip():
            attrs[unquote(key.strip())] = unquote(value.strip())
    attrs["service.name"] = env.get(OTEL_SERVICE_NAME) or attrs.get("service.name") or DEFAULT_SERVICE_NAME
    return Resource.create(attrs)


def _int(raw: str | None, default: int) -> int:
    try:
        value = int(raw) if raw else default
    except ValueError:
        return default
    return value if value > 0 else default


def shutdown_bounded(provider: TracerProvider | None, timeout_s: float) -> bool:
    """Flush and shut the provider down, waiting at most ``timeout_s``; True if it finished.

    The SDK's shutdown waits on the exporter (its ``force_flush`` ignores timeouts), so it runs
    in a daemon thread that is abandoned when time is up; spans still queued then are
    counted as dropped.
    """
    if provider is None:
        return True
    done = threading.Event()

    def run() -> None:
        try:
            provider.shutdown()
        except Exception:
            log.exception("tracer provider shutdown failed")
        finally:
            done.set()

    threading.Thread(target=run, name="tokentail-otel-shutdown", daemon=True).start()
    finished = done.wait(max(0.0, timeout_s))
    if not finished:
        log.warning("span export did not finish within %.1fs; giving up on queued spans", timeout_s)
        for gate in provider.gates if isinstance(provider, GatedTracerProvider) else ():
            gate.count_leftover()
    return finished
