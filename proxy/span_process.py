"""Span export in a child process: the OTLP encoding and the HTTP/gRPC call never hold the proxy's GIL.

Profiled at 32 concurrent streams (README, "where the time goes"), the SDK's export thread
(protobuf encoding, then ``requests``) took about a tenth of the proxy's samples, all of it
holding the GIL the relay needs. ``ProcessSpanExporter`` is the ``SpanExporter`` the batch
processor calls on its worker thread: it hands the batch of flat spans (plain tuples, see
``flatten``) to a child process over a pipe (length-prefixed pickle), and waits, without the
GIL, for the child's one-byte answer. The child rebuilds ``ReadableSpan`` objects and exports
them with the SDK's own OTLP exporter, configured as before (endpoint, headers, timeout;
certificates and compression from the inherited environment), so what reaches the wire is
unchanged.

The proxy's own spans never exist as SDK objects in the proxy: ``spans.SpanObserver`` builds
the flat tuple from the finished request record and queues it as a ``FlatSpan`` (the SDK's
attribute checks, ~40 % of the observer's cost, and the GenAI content JSON then run in the
child, in ``rebuild``). A span from anywhere else (an SDK ``ReadableSpan``) is flattened here.

What stays the same for the caller: ``export`` returns SUCCESS or FAILURE per batch (the
drop-counting gate in ``telemetry`` counts failures), an answer takes at most the export
timeout plus a grace period (a child that goes silent past it is killed, its batch failed,
and a new child started on the next batch), and ``shutdown`` is bounded. The child ends when
its pipe closes, so it never outlives the proxy.
"""

from __future__ import annotations

import logging
import os
import pickle
import select
import struct
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from typing import IO, Any

from opentelemetry.attributes import BoundedAttributes
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import Event, ReadableSpan, SpanLimits
from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult
from opentelemetry.sdk.util.instrumentation import InstrumentationScope
from opentelemetry.trace import SpanContext, SpanKind, TraceFlags, TraceState
from opentelemetry.trace.status import Status, StatusCode

from tokentail.semconv import EVENT_OPERATION_DETAILS

from ._span_content import content_attributes

log = logging.getLogger("tokentail.proxy.telemetry")

_LEN = struct.Struct("<Q")
# Time for a fresh child to import the exporter (a loaded machine: seconds), on top of the timeout.
_GRACE_S = 15.0

Flat = tuple[Any, ...]


class _Sampled:
    """What the SDK's batch processor reads of a span before queueing it (``context.trace_flags.sampled``)."""

    __slots__ = ()
    trace_flags = TraceFlags(TraceFlags.SAMPLED)


class FlatSpan:
    """A finished span as a flat tuple (``flatten``'s shape, plus the deferred GenAI content),
    queued by the SDK's ``BatchSpanProcessor`` in place of a ``ReadableSpan``. Only sampled
    spans are made, so ``context`` is a shared sampled stand-in: all the processor reads."""

    __slots__ = ("flat",)
    context = _Sampled()

    def __init__(self, flat: Flat) -> None:
        self.flat = flat


def flat_of(span: Any) -> Flat:
    """A ``FlatSpan``'s tuple, or an SDK span flattened."""
    return span.flat if type(span) is FlatSpan else flatten(span)


def readable(span: Any, limits: Any = None) -> ReadableSpan:
    """An SDK ``ReadableSpan`` for an exporter that wants one (``FlatSpan``s are rebuilt)."""
    return rebuild(span.flat, limits) if type(span) is FlatSpan else span


def flatten(span: ReadableSpan) -> Flat:
    """A finished span as plain values the child can rebuild it from (``rebuild``)."""
    ctx = span.context
    parent = span.parent
    scope = span.instrumentation_scope
    status = span.status
    return (
        span.name,
        (ctx.trace_id, ctx.span_id, int(ctx.trace_flags), list(ctx.trace_state.items())) if ctx else None,
        (parent.trace_id, parent.span_id, int(parent.trace_flags), parent.is_remote) if parent else None,
        span.kind.value,
        span.start_time,
        span.end_time,
        dict(span.attributes or {}),
        [(e.name, dict(e.attributes or {}), e.timestamp) for e in span.events],
        (status.status_code.value, status.description),
        (scope.name, scope.version, scope.schema_url) if scope else None,
        (dict(span.resource.attributes), span.resource.schema_url),
    )


def rebuild(flat: Flat, limits: Any = None) -> ReadableSpan:
    """The ``ReadableSpan`` a flat span stands for (in the child), with the SDK's attribute
    checks and limits (``limits``: a ``SpanLimits``, by default read from the environment as
    the SDK does) applied as its ``Span`` applies them, and the deferred GenAI content
    (``_span_content``) turned into its attributes and details event."""
    name, ctx, parent, kind, start, end, attrs, events, status, scope, resource = flat[:11]
    if len(flat) > 11 and flat[11] is not None:
        extra, details, at = content_attributes(flat[11])
        attrs = {**attrs, **extra}
        events = [*events, (EVENT_OPERATION_DETAILS, details, at)]
    lim = limits if limits is not None else SpanLimits()
    context = (
        SpanContext(ctx[0], ctx[1], is_remote=False, trace_flags=TraceFlags(ctx[2]), trace_state=TraceState(ctx[3]))
        if ctx
        else None
    )
    parent_ctx = (
        SpanContext(parent[0], parent[1], is_remote=parent[3], trace_flags=TraceFlags(parent[2])) if parent else None
    )
    return ReadableSpan(
        name=name,
        context=context,
        parent=parent_ctx,
        resource=Resource(resource[0], resource[1]),
        attributes=BoundedAttributes(
            lim.max_span_attributes, attrs, immutable=False, max_value_len=lim.max_span_attribute_length
        ),
        events=[
            Event(
                n,
                BoundedAttributes(lim.max_event_attributes, a, max_value_len=lim.max_attribute_length),
                timestamp=t,
            )
            for n, a, t in events  # at most two of ours: within any max_events
        ],
        kind=SpanKind(kind),
        status=Status(StatusCode(status[0]), status[1]),
        start_time=start,
        end_time=end,
        instrumentation_scope=InstrumentationScope(*scope) if scope else None,
    )


class ProcessSpanExporter(SpanExporter):
    """Exports through a child process running the SDK's OTLP exporter (see the module docstring).

    ``protocol`` is ``http/protobuf`` or ``grpc``; ``endpoint``, ``headers`` and ``timeout``
    (seconds) are the exporter's. ``export`` is called by one batch worker at a time.
    """

    def __init__(self, protocol: str, endpoint: str, headers: dict[str, str] | None, timeout: float) -> None:
        self.protocol = protocol
        self.endpoint = endpoint
        self.headers = headers
        self.timeout = timeout
        self._lock = threading.Lock()
        self._proc: subprocess.Popen[bytes] | None = None
        self._fresh = True  # the child has not answered yet (it may still be importing)
        self._closed = False

    def export(self, spans: Sequence[ReadableSpan | FlatSpan]) -> SpanExportResult:
        if not spans:
            return SpanExportResult.SUCCESS
        body = pickle.dumps([flat_of(s) for s in spans], protocol=pickle.HIGHEST_PROTOCOL)
        with self._lock:
            if self._closed:
                return SpanExportResult.FAILURE
            proc = self._child()
            if proc is None:
                return SpanExportResult.FAILURE
            assert proc.stdin is not None and proc.stdout is not None  # both piped
            try:
                proc.stdin.write(_LEN.pack(len(body)))
                proc.stdin.write(body)
                proc.stdin.flush()
            except (OSError, ValueError):
                self._kill("the span export process went away")
                return SpanExportResult.FAILURE
            wait = self.timeout + (_GRACE_S if self._fresh else 2.0)
            answer = _read_byte(proc.stdout, wait)
            if answer is None:
                self._kill(f"the span export process did not answer within {wait:.0f}s")
                return SpanExportResult.FAILURE
            self._fresh = False
            return SpanExportResult.SUCCESS if answer == b"1" else SpanExportResult.FAILURE

    def shutdown(self) -> None:
        with self._lock:  # an export in progress finishes (bounded) first
            self._closed = True
            proc, self._proc = self._proc, None
        if proc is None:
            return
        try:
            assert proc.stdin is not None
            proc.stdin.close()  # end of input: the child exits
            proc.wait(2.0)
        except (OSError, ValueError, subprocess.TimeoutExpired):
            proc.kill()
            proc.wait()

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return True  # every export is answered before the next; nothing is held here

    def _child(self) -> subprocess.Popen[bytes] | None:
        if self._proc is not None and self._proc.poll() is None:
            return self._proc
        config = pickle.dumps((self.protocol, self.endpoint, self.headers, self.timeout))
        try:
            self._proc = subprocess.Popen(
                [sys.executable, "-m", "tokentail.proxy._span_child"],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                close_fds=True,
            )
            assert self._proc.stdin is not None
            self._proc.stdin.write(_LEN.pack(len(config)) + config)
            self._proc.stdin.flush()
        except OSError:
            log.exception("cannot start the span export process")
            self._proc = None
            return None
        self._fresh = True
        return self._proc

    def _kill(self, why: str) -> None:
        log.warning("%s; its batch is dropped and a new one starts with the next", why)
        proc, self._proc = self._proc, None
        if proc is not None:
            proc.kill()
            proc.wait()


def _read_byte(pipe: IO[bytes], timeout: float) -> bytes | None:
    """One byte from ``pipe`` within ``timeout`` seconds (None: nothing, or the pipe closed)."""
    fd = pipe.fileno()
    deadline = time.monotonic() + timeout
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            return None
        ready, _, _ = select.select([fd], [], [], left)
        if ready:
            got = os.read(fd, 1)
            return got or None
