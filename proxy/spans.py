"""OpenTelemetry spans of proxied requests, named and attributed by the GenAI conventions.

``SpanObserver`` is an observer (see ``record``). One CLIENT span per request, started at
``on_start`` as the child of the client's W3C ``traceparent`` (if any). ``span_of`` hands
the context of a request's span to the ``TraceContext`` request hook, which sends it
upstream, so an upstream that traces (vLLM) joins the same trace. The first streamed token is a span
event at its own time (read off the record at the end: no hook per chunk); at ``on_end`` the span gets the response, usage and timing
attributes and, when content capture is on, the prompt and completion in the parts-based
``gen_ai.input.messages`` / ``gen_ai.output.messages`` format, both on the
``gen_ai.client.inference.operation.details`` event and as span attributes (Phoenix and
others do not show event attributes). The batching and export live in ``telemetry``.

No SDK span object is built on the event loop (issue 13): the span is a flat tuple made
at ``on_end`` (``span_process``) and the SDK's ``ReadableSpan``, its attribute checks and
the content JSON (``_span_content``) are made where it is exported (see ``SpanObserver``).

Content is capped per span (``_spancap``): the prompt and the completion each to
``content_bytes`` of JSON (64 KiB by default, ``--span-content-bytes``), and never beyond the
SDK's attribute value length limit (``OTEL_ATTRIBUTE_VALUE_LENGTH_LIMIT``, read by
``SpanLimits``), so the JSON stays whole rather than cut by the SDK mid-string; a cut sets
``tokentail.content.truncated``. A span is thus bounded, and so is an export batch.

Attribution (``tokentail.user``, ``tokentail.tags``, ``tokentail.client.key_fingerprint``),
the session (``tokentail.session.id`` = ``gen_ai.conversation.id``) and the route
(``tokentail.route``, ``tokentail.upstream.model``) are set at start; ``gen_ai.request.model``
stays the model the client asked for, as in the live feed; a routed request's
``server.*`` and provider are its route's upstream. ``tokentail.cost.usd`` is set at the end,
only when the cost is known.
"""

from __future__ import annotations

import time
from functools import partial
from typing import Any

from opentelemetry.context import Context
from opentelemetry.sdk.trace import SpanLimits
from opentelemetry.trace import (
    NonRecordingSpan,
    Span,
    SpanContext,
    SpanKind,
    StatusCode,
    TraceFlags,
    TraceState,
    get_current_span,
)
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from tokentail import semconv as S

from ._genai import (
    endpoint_label,
    error_type,
    host_provider,
    operation_name,
    output_messages,
    parse_opt_in,
    provider_for,
    upstream_address,
)
from ._span_content import Content
from ._spancap import DEFAULT_SPAN_CONTENT_BYTES
from .record import CANCELLED, RequestRecord
from .span_process import FlatSpan, rebuild
from .telemetry import DropCountingSpanProcessor

_SPAN_NAME_MODEL_MAX = 100
_PROPAGATOR = TraceContextTextMapPropagator()
_EMPTY = Context()
_SCOPE = "tokentail.proxy"  # the instrumentation scope's name

# rec.params key -> (attribute, type check). Client-supplied values of the wrong type are skipped.
_NUM = (int, float)
_PARAMS: tuple[tuple[str, str, tuple[type, ...]], ...] = (
    ("temperature", "gen_ai.request.temperature", _NUM),
    ("top_p", "gen_ai.request.top_p", _NUM),
    ("top_k", "gen_ai.request.top_k", _NUM),
    ("max_tokens", "gen_ai.request.max_tokens", (int,)),
    ("max_completion_tokens", "gen_ai.request.max_tokens", (int,)),
    ("max_output_tokens", "gen_ai.request.max_tokens", (int,)),
    ("frequency_penalty", "gen_ai.request.frequency_penalty", _NUM),
    ("presence_penalty", "gen_ai.request.presence_penalty", _NUM),
    ("seed", "gen_ai.request.seed", (int,)),
    ("dimensions", "gen_ai.embeddings.dimension.count", (int,)),
)
_OUTPUT_TYPES = {"text": "text", "json_object": "json", "json_schema": "json"}


def request_attributes(params: dict[str, Any]) -> dict[str, Any]:
    """``gen_ai.request.*`` attributes from the record's request parameters."""
    out: dict[str, Any] = {}
    for key, attr, types in _PARAMS:
        v = params.get(key)
        if v is not None and isinstance(v, types) and not isinstance(v, bool):
            out[attr] = v
    stop = params.get("stop", params.get("stop_sequences"))
    if isinstance(stop, str):
        out["gen_ai.request.stop_sequences"] = [stop]
    elif isinstance(stop, list) and all(isinstance(s, str) for s in stop):
        out["gen_ai.request.stop_sequences"] = stop
    n = params.get("n")
    if isinstance(n, int) and not isinstance(n, bool) and n != 1:
        out["gen_ai.request.choice.count"] = n
    fmt = params.get("response_format")
    if isinstance(fmt, dict) and fmt.get("type") in _OUTPUT_TYPES:
        out["gen_ai.output.type"] = _OUTPUT_TYPES[fmt["type"]]
    enc = params.get("encoding_format")
    if isinstance(enc, str):
        out["gen_ai.request.encoding_formats"] = [enc]
    return out


def _version() -> str | None:
    try:
        from importlib.metadata import version

        return version("tokentail")
    except Exception:  # not installed as a distribution (e.g. run from a source tree)
        return None


_SECRET_ROOM = 4096  # past the content cap, text kept for redaction (a secret across the cut)


class _Open:
    """A request's span between ``on_start`` and ``on_end``: what the flat span will need."""

    __slots__ = ("attrs", "ctx", "name", "op", "parent", "provider", "sampled")

    def __init__(
        self, name: str, attrs: dict[str, Any], ctx: tuple[Any, ...], parent: Any, op: str | None, provider: str
    ) -> None:
        self.name = name
        self.attrs = attrs
        self.ctx = ctx  # (trace id, span id, flags, trace state items)
        self.parent = parent  # (trace id, span id, flags, is remote) or None
        self.op = op
        self.provider = provider
        self.sampled = bool(ctx[2] & TraceFlags.SAMPLED)


class SpanObserver:
    """Turns request records into GenAI CLIENT spans on ``tracer_provider``.

    ``upstream_url`` gives ``server.address``/``server.port`` and the provider name;
    ``capture_content`` (``OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT``) decides
    whether prompt and completion are recorded; ``redactor`` (any object with
    ``redact_text``) cleans the completion (the prompt on the record is redacted already);
    ``semconv_opt_in`` (``OTEL_SEMCONV_STABILITY_OPT_IN``) adds the newer attributes;
    ``content_bytes`` caps the prompt and the completion on a span, each; ``span_limits``
    are the provider's (by default ``SpanLimits()``, read from the same environment).

    No SDK span object is made on the event loop: ids and the sampling decision come from
    the provider's ``id_generator`` and ``sampler`` at ``on_start``, as the SDK's tracer
    would take them, and at ``on_end`` the span is one flat tuple (``span_process``) handed
    to the provider's processors: queued as is by a ``GatedTracerProvider`` (the export
    child builds the SDK span, applies the limits and encodes the content), or rebuilt
    into an SDK ``ReadableSpan`` right away for any other provider (tests' in-memory
    exporters), so every exporter sees the same span either way.
    """

    def __init__(
        self,
        tracer_provider: Any,
        *,
        upstream_url: str,
        capture_content: bool = True,
        redactor: Any = None,
        variant: str = "",
        semconv_opt_in: str | None = None,
        content_bytes: int = DEFAULT_SPAN_CONTENT_BYTES,
        span_limits: SpanLimits | None = None,
    ) -> None:
        limits = span_limits if span_limits is not None else SpanLimits()
        self._sampler = tracer_provider.sampler
        self._ids = tracer_provider.id_generator
        res = tracer_provider.resource
        self._resource = (dict(res.attributes), res.schema_url)
        self._scope = (_SCOPE, _version() or "", "")
        submit = getattr(tracer_provider, "submit_flat", None)
        if submit is None:  # a plain SDK provider: its processors want ReadableSpans
            processor = tracer_provider._active_span_processor  # the SDK's own entry point of a finished span
            submit = partial(_rebuild_and_end, processor, limits)
        self._submit = submit
        self._enabled = not getattr(tracer_provider, "_disabled", False)
        host, port = upstream_address(upstream_url)
        self._server: dict[str, Any] = {}
        if host:
            self._server[S.SERVER_ADDRESS] = host
        if port:
            self._server[S.SERVER_PORT] = port
        self._provider = host_provider(host)
        self._capture = capture_content
        self._redact = getattr(redactor, "redact_text", None)
        self._variant = variant
        self._latest = parse_opt_in(semconv_opt_in)
        self._content_cap = _content_cap(content_bytes, limits)
        self._precut_redact = _cut_redact(self._redact, self._content_cap + _SECRET_ROOM)
        self._live: dict[str, _Open] = {}
        self._routed: dict[str, tuple[dict[str, Any], str]] = {}  # route upstream URL -> (server attrs, provider)

    def _upstream(self, url: str | None) -> tuple[dict[str, Any], str]:
        if url is None:
            return self._server, self._provider
        hit = self._routed.get(url)
        if hit is None:
            host, port = upstream_address(url)
            server: dict[str, Any] = {}
            if host:
                server[S.SERVER_ADDRESS] = host
            if port:
                server[S.SERVER_PORT] = port
            hit = self._routed[url] = (server, host_provider(host))
        return hit

    def on_start(self, rec: RequestRecord) -> None:
        if not self._enabled:
            return
        op = operation_name(rec.endpoint)
        server, host_prov = self._upstream(rec.upstream_url)
        provider = provider_for(host_prov, rec.endpoint)
        model = rec.model[:_SPAN_NAME_MODEL_MAX] if rec.model else None
        if op:
            name = f"{op} {model}" if model else op
        else:  # not an inference call (GET /models, files, ...): a plain HTTP client span
            name = f"{rec.method} {endpoint_label(rec.endpoint)}"
        attrs: dict[str, Any] = dict(server)
        attrs[S.TT_REQUEST_ID] = rec.id
        attrs[S.TT_VARIANT] = rec.variant or self._variant
        attrs[S.TT_ENDPOINT] = endpoint_label(rec.endpoint)
        attrs[S.TT_STREAM] = rec.stream
        if op:
            attrs[S.OPERATION_NAME] = op
            attrs[S.PROVIDER_NAME] = provider
            if rec.model:
                attrs[S.REQUEST_MODEL] = rec.model
            attrs.update(request_attributes(rec.params))
            if self._latest:
                attrs["gen_ai.request.stream"] = rec.stream
        if rec.session_id:
            attrs[S.TT_SESSION_ID] = rec.session_id
            attrs[S.CONVERSATION_ID] = rec.session_id
        if rec.user:
            attrs[S.TT_USER] = rec.user
        if rec.tags:
            attrs[S.TT_TAGS] = list(rec.tags)
        if rec.key_fingerprint:
            attrs[S.TT_KEY_FINGERPRINT] = rec.key_fingerprint
        if rec.route:
            attrs[S.TT_ROUTE] = rec.route
        if rec.upstream_model:
            attrs[S.TT_UPSTREAM_MODEL] = rec.upstream_model
        if rec.replay_of:
            attrs[S.TT_REPLAY_OF] = rec.replay_of
        # An explicit empty Context: the parent is the client's traceparent or nothing, never
        # whatever span happens to be current in this task.
        parent_context = _PROPAGATOR.extract(rec.trace_headers, context=Context()) if rec.trace_headers else _EMPTY
        parent_sc = get_current_span(parent_context).get_span_context() if rec.trace_headers else None
        if parent_sc is not None and parent_sc.is_valid:
            trace_id = parent_sc.trace_id
            parent = (trace_id, parent_sc.span_id, int(parent_sc.trace_flags), parent_sc.is_remote)
        else:
            trace_id, parent = self._ids.generate_trace_id(), None
        # As the SDK's tracer: the sampler decides, and its attributes are the span's.
        result = self._sampler.should_sample(parent_context, trace_id, name, SpanKind.CLIENT, attrs, None)
        flags = TraceFlags.SAMPLED if result.decision.is_sampled() else TraceFlags.DEFAULT
        if result.attributes is not None and result.attributes is not attrs:
            attrs = dict(result.attributes)
        ctx = (
            trace_id,
            self._ids.generate_span_id(),
            flags,
            list(result.trace_state.items()) if result.trace_state else [],
        )
        rec.trace_id = format(trace_id, "032x")
        self._live[rec.id] = _Open(name, attrs, ctx, parent, op, provider)

    def span_of(self, request_id: str) -> Span | None:
        """The span of a request between ``on_start`` and ``on_end`` (for the trace-context hook):
        a non-recording span of its context, which is all a propagator reads."""
        live = self._live.get(request_id)
        if live is None:
            return None
        tid, sid, flags, state = live.ctx
        return NonRecordingSpan(SpanContext(tid, sid, False, TraceFlags(flags), TraceState(state)))

    def on_end(self, rec: RequestRecord) -> None:
        live = self._live.pop(rec.id, None)
        if live is None or not live.sampled:
            return  # not sampled: nothing is exported (the SDK's processors would skip it too)
        end_ns = int((rec.started_at + rec.latency_ms / 1000.0) * 1e9) if rec.latency_ms is not None else time.time_ns()
        a, status, content = self._finish(live, rec, end_ns)
        flat = (
            live.name,
            live.ctx,
            live.parent,
            SpanKind.CLIENT.value,
            int(rec.started_at * 1e9),
            end_ns,
            {**live.attrs, **a},
            _first_token(rec),
            status,
            self._scope,
            self._resource,
            content,
        )
        self._submit(flat)

    def _finish(
        self, live: _Open, rec: RequestRecord, end_ns: int
    ) -> tuple[dict[str, Any], tuple[int, str | None], Content | None]:
        """The end attributes, the status and the deferred content of a span."""
        a: dict[str, Any] = {S.TT_STATUS: rec.status, S.TT_CANCELLED: rec.status == CANCELLED}
        if rec.http_status is not None:
            a[S.HTTP_STATUS_CODE] = rec.http_status
        if rec.ttft_ms is not None:
            a[S.TT_TTFT_MS] = rec.ttft_ms
            if self._latest and rec.stream:
                a["gen_ai.response.time_to_first_chunk"] = rec.ttft_ms / 1000.0
        if rec.latency_ms is not None:
            a[S.TT_LATENCY_MS] = rec.latency_ms
        if rec.output_tps is not None:
            a[S.TT_OUTPUT_TPS] = rec.output_tps
        if rec.truncated:
            a[S.TT_TRUNCATED] = True
        if rec.malformed:
            a[S.TT_MALFORMED] = True
        if not rec.parsed:
            a[S.TT_UNPARSED] = True
        if rec.cost_usd is not None:
            a[S.TT_COST_USD] = rec.cost_usd
        if rec.response_model:
            a[S.RESPONSE_MODEL] = rec.response_model
        if rec.response_id:
            a[S.RESPONSE_ID] = rec.response_id
        if rec.finish_reason:
            a[S.RESPONSE_FINISH_REASONS] = [rec.finish_reason]
        u = rec.usage
        if u.input_tokens is not None:
            a[S.USAGE_INPUT_TOKENS] = u.input_tokens
        if u.output_tokens is not None:
            a[S.USAGE_OUTPUT_TOKENS] = u.output_tokens
        if u.cached_input_tokens is not None:
            a[S.USAGE_CACHE_READ_INPUT_TOKENS] = u.cached_input_tokens
        if u.input_tokens is not None or u.output_tokens is not None:
            a[S.TT_USAGE_SOURCE] = u.source
        err = error_type(rec)
        status: tuple[int, str | None] = (StatusCode.UNSET.value, None)
        if err is not None:
            a[S.ERROR_TYPE] = err
            status = (StatusCode.ERROR.value, rec.error_message or err)
        content: Content | None = None
        if self._capture and live.op in ("chat", "text_completion"):
            # Redaction stays here (the redactor is the proxy's); the message format and the
            # capped JSON are built where the span is rebuilt (``_span_content``).
            content = (
                self._content_cap,
                live.op,
                live.provider,
                rec.model,
                err,
                rec.prompt,
                rec.endpoint,
                output_messages(rec, self._precut_redact),
                end_ns,
            )
        return a, status, content


def _first_token(rec: RequestRecord) -> list[tuple[str, dict[str, Any], int]]:
    """The first-token event, read off the record at the end: ``ttft_ms`` is set at the first
    delta (``forward``), so the observer needs no hook per chunk. Its time is the request's
    wall-clock start plus the TTFT, as the record measured both."""
    if rec.ttft_ms is None:
        return []
    return [(S.TT_EVENT_FIRST_TOKEN, {S.TT_TTFT_MS: rec.ttft_ms}, int((rec.started_at + rec.ttft_ms / 1000.0) * 1e9))]


def _rebuild_and_end(processor: Any, limits: SpanLimits, flat: tuple[Any, ...]) -> None:
    """A flat span to a plain SDK provider's processors: as it is when they are all
    drop-counting gates (they queue it for their exporter), else rebuilt once for all."""
    procs = getattr(processor, "_span_processors", ())
    if procs and all(type(p) is DropCountingSpanProcessor for p in procs):
        span = FlatSpan(flat)
        for p in procs:
            p.on_end(span)
    else:
        processor.on_end(rebuild(flat, limits))


def _cut_redact(redact: Any, limit: int) -> Any:
    """``redact`` of a text cut first at ``limit`` characters: the span keeps at most the
    content cap in bytes (never more characters), so redacting the rest of a 1 MiB
    completion would be work on the event loop for nothing. The margin past the cap keeps
    a secret across the cut whole for redaction (``capped_json`` cuts at the cap after)."""
    if redact is None:
        return lambda s: s[:limit]
    return lambda s: redact(s[:limit])


def _content_cap(content_bytes: int, limits: SpanLimits) -> int:
    """Bytes of JSON per content attribute: ours, and never more than the SDK would keep (its
    limits count characters; a string of n UTF-8 bytes has at most n characters)."""
    cap = max(0, content_bytes)
    for limit in (limits.max_attribute_length, limits.max_span_attribute_length):
        if isinstance(limit, int) and limit >= 0:
            cap = min(cap, limit)
    return cap
