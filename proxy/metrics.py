"""Prometheus metrics of the proxy: every series declared here, on a registry the app passes in.

``ProxyMetrics`` is an observer (see ``record``): it counts requests, tokens, durations,
time to first token and output speed per model, and the GenAI semantic-convention
histograms under their OTel-to-Prometheus names (v1.41 names by default; the
``semantic-conventions-genai`` names when ``OTEL_SEMCONV_STABILITY_OPT_IN`` contains
``gen_ai_latest_experimental``). The ``tokentail_*`` series never rename: the collector,
the dashboard and the Grafana dashboards read them.

Labels stay bounded: model names beyond ``model_cap`` fold into ``other``, endpoints outside a
known set into ``other``, and no label carries a user id, prompt text or URL query.

A model name takes one of the ``model_cap`` label slots only once the upstream has answered
a request for it with a 2xx: fifty junk names that only ever got 404s cannot push every real
model into ``other`` until the next restart. Until then, and for every failing request of a
name never admitted, the request counts under ``other``. The label is decided when it is
first needed: at the end of the request (counters and histograms are observed then, with the
status known), or at the first streamed chunk for the time-per-chunk histogram (the response
status is known by then). The in-flight gauge has no model label. So a request that started
before its model was admitted still ends under the model's own label.
"""

from __future__ import annotations

import asyncio
import gzip
import time
from bisect import bisect_left
from typing import Any

from aiohttp import hdrs, web
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.exposition import choose_encoder, gzip_accepted

from ._genai import (
    endpoint_label,
    error_type,
    host_provider,
    operation_name,
    parse_opt_in,
    provider_for,
    upstream_address,
)
from .record import (
    CANCELLED,
    ERR_CONNECT,
    ERR_DISCONNECT,
    ERR_INCOMPLETE,
    ERR_STATUS,
    ERR_TIMEOUT,
    Delta,
    RequestRecord,
)

# Recommended bucket boundaries of the GenAI conventions (seconds, and tokens).
GENAI_DURATION_BUCKETS = (0.01, 0.02, 0.04, 0.08, 0.16, 0.32, 0.64, 1.28, 2.56, 5.12, 10.24, 20.48, 40.96, 81.92)
GENAI_TOKEN_BUCKETS = (1, 4, 16, 64, 256, 1024, 4096, 16384, 65536, 262144, 1048576, 4194304, 16777216, 67108864)
TPS_BUCKETS = (1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000)
# tokentail_* latency and TTFT: the GenAI bounds with a sqrt(2) step between each pair, up to
# 120 s (~1.41x steps: a bucket-based percentile is off by at most ~41% instead of 100%). A
# superset of GENAI_DURATION_BUCKETS, so the collector can merge a fleet of old and new
# proxies on the old bounds (collector.formulas.usable_bounds). 29 series per label set, not 15.
TOKENTAIL_DURATION_BUCKETS = (
    0.01, 0.0141, 0.02, 0.0283, 0.04, 0.0566, 0.08, 0.113, 0.16, 0.226, 0.32, 0.453, 0.64, 0.905,
    1.28, 1.81, 2.56, 3.62, 5.12, 7.24, 10.24, 14.48, 20.48, 28.96, 40.96, 57.93, 81.92, 120.0,
)  # fmt: skip

MODEL_LABEL_MAX = 100  # characters kept of a model name
OTHER = "other"
UNKNOWN = "unknown"

# record.error -> upstream_errors_total{reason}
_REASONS = {
    ERR_CONNECT: "connect",
    ERR_TIMEOUT: "timeout",
    ERR_DISCONNECT: "disconnect",
    ERR_STATUS: "status",
    ERR_INCOMPLETE: "incomplete",
}
# A 200 whose stream never completed failed upstream too (status_class upstream_error).
_UPSTREAM_FAILURES = {ERR_CONNECT, ERR_TIMEOUT, ERR_DISCONNECT, ERR_INCOMPLETE}
_GENAI = ("gen_ai_operation_name", "gen_ai_provider_name", "gen_ai_request_model")


def sanitize_label(value: str, limit: int = MODEL_LABEL_MAX) -> str:
    """A label value that always encodes: capped, control characters and lone surrogates replaced.

    prometheus_client escapes quotes, backslashes and newlines itself; a lone surrogate (legal
    in JSON, ``"\\ud800"``) would make every later scrape raise UnicodeEncodeError.
    """
    value = value[:limit]
    if not value.isprintable():
        value = "".join(c if c.isprintable() else "?" for c in value)
    return value.encode("utf-8", "replace").decode("utf-8")


# Chunk intervals are counted per request into local buckets and added to the histogram
# every this many chunks and at the end: one locked update per bucket touched instead of
# two per chunk (``Histogram.observe``: ~1.5 us idle, the largest per-chunk cost of the
# metrics). A scrape may see a running stream's last few intervals late, never lost.
TPOC_FLUSH_CHUNKS = 64
_TPOC_BOUNDS = (*GENAI_DURATION_BUCKETS, float("inf"))


class _Req:
    """Per-request state between on_start and on_end."""

    __slots__ = ("chunked", "counts", "last", "n", "op", "provider", "sum", "tpoc")

    def __init__(self, op: str | None, provider: str, chunked: bool) -> None:
        self.op = op
        self.provider = provider
        self.chunked = chunked  # a streamed GenAI operation: time per output chunk is observed
        self.tpoc: Any = None  # its histogram child, chosen at the first chunk
        self.last: float | None = None
        self.counts: list[int] | None = None  # chunk intervals per bucket, not yet in tpoc
        self.n = 0
        self.sum = 0.0

    def flush_tpoc(self) -> None:
        """Add the counted intervals to the histogram child (as ``observe`` would, one by one)."""
        if not self.n or self.counts is None:
            return
        child = self.tpoc
        # prometheus_client's own value holders of the child (constraints.txt pins it): the
        # same increments observe() makes, summed.
        child._sum.inc(self.sum)
        for i, k in enumerate(self.counts):
            if k:
                child._buckets[i].inc(k)
                self.counts[i] = 0
        self.n, self.sum = 0, 0.0


def answered_2xx(rec: RequestRecord) -> bool:
    """True once the upstream has answered this request with a 2xx status."""
    return rec.http_status is not None and 200 <= rec.http_status < 300


class ProxyMetrics:
    """Declares every proxy metric on ``registry`` and updates them as an observer.

    ``semconv_opt_in`` is the value of ``OTEL_SEMCONV_STABILITY_OPT_IN``; ``upstream_url`` gives
    the ``gen_ai_provider_name`` label (``openai`` for OpenAI-compatible servers).
    """

    def __init__(
        self,
        registry: CollectorRegistry,
        model_cap: int = 50,
        semconv_opt_in: str | None = None,
        *,
        upstream_url: str | None = None,
    ) -> None:
        self.model_cap = model_cap
        self.latest_genai = parse_opt_in(semconv_opt_in)
        self._provider = host_provider(upstream_address(upstream_url)[0] if upstream_url else None)
        self._models: dict[str, str] = {}  # admitted raw model name -> label value
        self._live: dict[str, _Req] = {}
        self._children: dict[tuple, Any] = {}
        self._route_providers: dict[str, str] = {}  # a route's upstream URL -> provider name
        r = registry

        self.requests = Counter(
            "tokentail_requests",
            "Proxied requests by outcome.",
            ["model", "endpoint", "status_class", "stream"],
            registry=r,
        )
        self.tokens = Counter(
            "tokentail_tokens",
            "Tokens by type; input includes cached input, so a sum never double-counts.",
            ["model", "type"],
            registry=r,
        )
        self.cached_input = Counter(
            "tokentail_cached_input_tokens",
            "The cached part of input tokens.",
            ["model"],
            registry=r,
        )
        self.duration = Histogram(
            "tokentail_request_duration_seconds",
            "Request duration, start to last byte.",
            ["model", "endpoint"],
            buckets=TOKENTAIL_DURATION_BUCKETS,
            registry=r,
        )
        self.ttft = Histogram(
            "tokentail_time_to_first_token_seconds",
            "Time to the first streamed token.",
            ["model"],
            buckets=TOKENTAIL_DURATION_BUCKETS,
            registry=r,
        )
        self.tps = Histogram(
            "tokentail_output_tokens_per_second",
            "Output tokens per second of a request.",
            ["model"],
            buckets=TPS_BUCKETS,
            registry=r,
        )
        self.cost = Counter(
            "tokentail_cost_usd",
            "Cost in USD at the configured prices (requests of models without a price "
            "are not counted: their cost is unknown).",
            ["model"],
            registry=r,
        )
        self.in_flight = Gauge("tokentail_in_flight_requests", "Requests in flight.", registry=r)
        self.upstream_errors = Counter(
            "tokentail_upstream_errors",
            "Upstream failures by reason.",
            ["reason"],
            registry=r,
        )
        self.telemetry_dropped = Counter(
            "tokentail_telemetry_dropped",
            "Telemetry items dropped (spans, live-feed events, ...).",
            ["sink"],
            registry=r,
        )
        # Zero-initialised so rate() and absent() work before the first event.
        for reason in _REASONS.values():
            self.upstream_errors.labels(reason)
        for sink in ("spans", "live_subscriber"):
            self.telemetry_dropped.labels(sink)

        if self.latest_genai:
            self._declare_latest(r)
        else:
            self._declare_v141(r)

    # --- GenAI instruments ------------------------------------------------------------------

    def _declare_timings(self, r: CollectorRegistry, prefix: str, duration_help: str) -> None:
        # The duration / first-chunk / per-chunk trio; only the name prefix differs between versions.
        self.g_duration = Histogram(
            f"{prefix}_duration_seconds",
            duration_help,
            [*_GENAI, "error_type"],
            buckets=GENAI_DURATION_BUCKETS,
            registry=r,
        )
        self.g_ttfc = Histogram(
            f"{prefix}_time_to_first_chunk_seconds",
            "Time to receive the first chunk of a streamed response.",
            _GENAI,
            buckets=GENAI_DURATION_BUCKETS,
            registry=r,
        )
        self.g_tpoc = Histogram(
            f"{prefix}_time_per_output_chunk_seconds",
            "Time between consecutive chunks of a streamed response.",
            _GENAI,
            buckets=GENAI_DURATION_BUCKETS,
            registry=r,
        )

    def _declare_v141(self, r: CollectorRegistry) -> None:
        # OpenTelemetry semantic conventions v1.41 (gen_ai.client.*).
        self._declare_timings(r, "gen_ai_client_operation", "GenAI operation duration.")
        self.g_usage = Histogram(
            "gen_ai_client_token_usage",
            "Number of input and output tokens used.",
            [*_GENAI, "gen_ai_token_type"],
            buckets=GENAI_TOKEN_BUCKETS,
            registry=r,
        )

    def _declare_latest(self, r: CollectorRegistry) -> None:
        # open-telemetry/semantic-conventions-genai (client-inference.md, token-metrics.yaml).
        self._declare_timings(r, "gen_ai_client_inference", "GenAI client inference operation duration.")
        modality = [*_GENAI, "gen_ai_token_modality"]
        self.g_in = Counter(
            "gen_ai_client_inference_usage_input_tokens",
            "Input tokens used, including cached tokens.",
            modality,
            registry=r,
        )
        self.g_out = Counter(
            "gen_ai_client_inference_usage_output_tokens",
            "Output tokens used, including reasoning tokens.",
            modality,
            registry=r,
        )
        self.g_cache = Counter(
            "gen_ai_client_inference_usage_cache_read_input_tokens",
            "Input tokens served from a provider-managed cache.",
            modality,
            registry=r,
        )
        self.g_op_in = Histogram(
            "gen_ai_client_inference_operation_input_tokens",
            "Input tokens per inference operation.",
            [*_GENAI, "error_type"],
            buckets=GENAI_TOKEN_BUCKETS,
            registry=r,
        )
        self.g_op_out = Histogram(
            "gen_ai_client_inference_operation_output_tokens",
            "Output tokens per inference operation.",
            [*_GENAI, "error_type"],
            buckets=GENAI_TOKEN_BUCKETS,
            registry=r,
        )

    # --- labels ------------------------------------------------------------------------------

    def model_label(self, model: str | None, *, admit: bool = False) -> str:
        """The ``model`` label: sanitized for names admitted, ``other`` for the rest.

        ``admit`` (the upstream answered this name with a 2xx) gives a name not yet admitted one
        of the ``model_cap`` slots while any is free (see the module docstring).
        """
        if model is None or model == "":
            return UNKNOWN
        label = self._models.get(model)
        if label is not None:
            return label
        if not admit or len(self._models) >= self.model_cap:
            return OTHER
        label = sanitize_label(model)
        self._models[model] = label
        return label

    def _child(self, metric: Any, *labels: str) -> Any:
        # labels() costs ~1 µs of validation and locking; children never change once made.
        key = (id(metric), labels)
        child = self._children.get(key)
        if child is None:
            child = self._children[key] = metric.labels(*labels)
        return child

    # --- observer hooks ---------------------------------------------------------------------

    def on_start(self, rec: RequestRecord) -> None:
        self.in_flight.inc()
        op = operation_name(rec.endpoint)
        provider = provider_for(self._upstream_provider(rec.upstream_url), rec.endpoint)
        self._live[rec.id] = _Req(op, provider, bool(op and rec.stream))

    def on_delta(self, rec: RequestRecord, delta: Delta) -> None:
        st = self._live.get(rec.id)
        if st is None or not st.chunked or st.op is None:
            return
        now = time.perf_counter()
        last, st.last = st.last, now
        if last is None:  # the first chunk: the upstream's status is known now
            model = self.model_label(rec.model, admit=answered_2xx(rec))
            st.tpoc = self._child(self.g_tpoc, st.op, st.provider, model)
            st.counts = [0] * len(_TPOC_BOUNDS)
            return
        gap = now - last
        assert st.counts is not None  # set at the first chunk
        st.counts[bisect_left(_TPOC_BOUNDS, gap)] += 1  # the bucket observe() picks: first bound >= gap
        st.sum += gap
        st.n += 1
        if st.n >= TPOC_FLUSH_CHUNKS:
            st.flush_tpoc()

    def on_end(self, rec: RequestRecord) -> None:
        st = self._live.pop(rec.id, None)
        if st is None:  # on_start never ran (or on_end twice): count, but leave the gauge alone
            st = _Req(
                operation_name(rec.endpoint),
                provider_for(self._upstream_provider(rec.upstream_url), rec.endpoint),
                False,
            )
        else:
            self.in_flight.dec()
            st.flush_tpoc()
        model, op, provider = self.model_label(rec.model, admit=answered_2xx(rec)), st.op, st.provider
        child = self._child
        endpoint = endpoint_label(rec.endpoint)

        child(self.requests, model, endpoint, _status_class(rec), "true" if rec.stream else "false").inc()
        if rec.error is not None and rec.status != CANCELLED:
            child(self.upstream_errors, _REASONS.get(rec.error, "other")).inc()

        latency = rec.latency_ms / 1000.0 if rec.latency_ms is not None else rec.elapsed_ms() / 1000.0
        child(self.duration, model, endpoint).observe(latency)
        streamed_ttft = rec.ttft_ms / 1000.0 if (rec.stream and rec.ttft_ms is not None) else None
        if streamed_ttft is not None:
            child(self.ttft, model).observe(streamed_ttft)
        if rec.output_tps is not None and rec.output_tps > 0:
            child(self.tps, model).observe(rec.output_tps)

        u = rec.usage  # None means unknown: never recorded as 0
        if u.input_tokens is not None:
            child(self.tokens, model, "input").inc(u.input_tokens)
        if u.output_tokens is not None:
            child(self.tokens, model, "output").inc(u.output_tokens)
        if u.cached_input_tokens is not None:
            child(self.cached_input, model).inc(u.cached_input_tokens)
        if rec.cost_usd is not None:  # unknown cost is not counted (never as 0)
            child(self.cost, model).inc(rec.cost_usd)

        if op is None:
            return
        err = error_type(rec) or ""
        child(self.g_duration, op, provider, model, err).observe(latency)
        if streamed_ttft is not None:
            child(self.g_ttfc, op, provider, model).observe(streamed_ttft)
        if self.latest_genai:
            self._genai_latest_tokens(rec, op, provider, model, err)
        else:
            if u.input_tokens is not None:
                child(self.g_usage, op, provider, model, "input").observe(u.input_tokens)
            if u.output_tokens is not None:
                child(self.g_usage, op, provider, model, "output").observe(u.output_tokens)

    def _upstream_provider(self, url: str | None) -> str:
        """The provider of the default upstream, or of a route's upstream (bounded: routes are configured)."""
        if url is None:
            return self._provider
        provider = self._route_providers.get(url)
        if provider is None:
            provider = self._route_providers[url] = host_provider(upstream_address(url)[0])
        return provider

    def _genai_latest_tokens(self, rec: RequestRecord, op: str, provider: str, model: str, err: str) -> None:
        u, child = rec.usage, self._child
        # Providers we proxy do not break usage down by modality: "unknown", as the conventions say.
        if u.input_tokens is not None:
            child(self.g_in, op, provider, model, "unknown").inc(u.input_tokens)
            child(self.g_op_in, op, provider, model, err).observe(u.input_tokens)
        if u.output_tokens is not None:
            child(self.g_out, op, provider, model, "unknown").inc(u.output_tokens)
            child(self.g_op_out, op, provider, model, err).observe(u.output_tokens)
        if u.cached_input_tokens is not None:
            child(self.g_cache, op, provider, model, "unknown").inc(u.cached_input_tokens)

    def dropped(self, sink: str, count: int = 1) -> None:
        """Count telemetry items a sink dropped (``spans``, ``live_subscriber``, ...). Thread-safe."""
        if count > 0:
            self.telemetry_dropped.labels(sanitize_label(sink, 40)).inc(count)


def _status_class(rec: RequestRecord) -> str:
    if rec.status == CANCELLED:
        return "cancelled"
    if rec.error in _UPSTREAM_FAILURES:
        return "upstream_error"
    code = rec.http_status
    if code is not None and 100 <= code <= 599:
        return f"{code // 100}xx"
    return "upstream_error"


def metrics_handler(registry: CollectorRegistry):
    """aiohttp handler for ``GET /metrics``: Prometheus text, or OpenMetrics when ``Accept`` asks,
    gzipped when the scraper accepts it, ``name[]`` narrowing it as in prometheus_client.

    The page is rendered and compressed on a worker thread, not the event loop: rendered on
    the loop (prometheus_client's own aiohttp adapter), two proxies' ~85 KB pages held every
    stream they relayed for 30-60 ms at each scrape (measured in the browser tests' stack,
    scraped every second). On a thread the loop keeps its turns (the proxy's 1 ms GIL
    switch interval, see app.py). prometheus_client's metrics are thread-safe.
    """

    async def handler(request: web.Request) -> web.Response:
        accept = ",".join(request.headers.getall(hdrs.ACCEPT, []))
        gzipped = gzip_accepted(",".join(request.headers.getall(hdrs.ACCEPT_ENCODING, [])))
        names = request.query.getall("name[]", [])
        body, content_type = await asyncio.get_running_loop().run_in_executor(
            None, _render_metrics, registry, accept, names, gzipped
        )
        response = web.Response(body=body, headers={hdrs.CONTENT_TYPE: content_type})
        if gzipped:
            response.headers[hdrs.CONTENT_ENCODING] = "gzip"
        return response

    return handler


def _render_metrics(registry: CollectorRegistry, accept: str, names: list[str], gzipped: bool) -> tuple[bytes, str]:
    encoder, content_type = choose_encoder(accept)
    body = encoder(registry.restricted_registry(names) if names else registry)
    return (gzip.compress(body, compresslevel=6) if gzipped else body), content_type
