"""ProxyMetrics driven with hand-built records, on a fresh registry per test."""

from __future__ import annotations

import gzip
import itertools
import threading
import time

import pytest
from aiohttp import web
from hypothesis import given, settings
from hypothesis import strategies as st
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from tests.helpers.prom import promtool_check
from tokentail.proxy import record as R
from tokentail.proxy.metrics import ProxyMetrics, metrics_handler, sanitize_label
from tokentail.proxy.record import Delta, RequestRecord, Usage


def rec_(model="gpt-4o", endpoint="/chat/completions", stream=True, rid="r1", **kw) -> RequestRecord:
    return RequestRecord(id=rid, variant="a", method="POST", endpoint=endpoint, model=model, stream=stream, **kw)


def finish(
    m: ProxyMetrics,
    rec: RequestRecord,
    *,
    status=R.OK,
    http=200,
    usage=None,
    latency_ms=1500.0,
    ttft_ms=120.0,
    tps=40.0,
    error=None,
    deltas=0,
) -> RequestRecord:
    m.on_start(rec)
    rec.http_status = http  # the upstream's status is known before its first chunk
    for _ in range(deltas):
        m.on_delta(rec, Delta(text="x"))
    rec.status, rec.error = status, error
    rec.usage = usage if usage is not None else Usage()
    rec.latency_ms, rec.ttft_ms, rec.output_tps = latency_ms, ttft_ms, tps
    m.on_end(rec)
    return rec


@pytest.fixture
def reg() -> CollectorRegistry:
    return CollectorRegistry()


def val(reg, name, **labels):
    return reg.get_sample_value(name, labels)


def chat_requests(reg, model: str, status_class: str, stream: str = "true") -> float | None:
    """tokentail_requests_total of /chat/completions for one model and status class."""
    return val(
        reg,
        "tokentail_requests_total",
        model=model,
        endpoint="/chat/completions",
        status_class=status_class,
        stream=stream,
    )


GENAI = {"gen_ai_operation_name": "chat", "gen_ai_provider_name": "openai", "gen_ai_request_model": "gpt-4o"}


def test_streamed_request_counts_tokens_latency_ttft_and_speed(reg):
    m = ProxyMetrics(reg)
    finish(m, rec_(), usage=Usage(input_tokens=100, output_tokens=40, cached_input_tokens=30))
    assert chat_requests(reg, "gpt-4o", "2xx") == 1
    # input includes cached: summing type=input and type=output never double-counts
    assert val(reg, "tokentail_tokens_total", model="gpt-4o", type="input") == 100
    assert val(reg, "tokentail_tokens_total", model="gpt-4o", type="output") == 40
    assert val(reg, "tokentail_cached_input_tokens_total", model="gpt-4o") == 30
    assert val(reg, "tokentail_request_duration_seconds_sum", model="gpt-4o", endpoint="/chat/completions") == 1.5
    assert (
        val(reg, "tokentail_request_duration_seconds_bucket", model="gpt-4o", endpoint="/chat/completions", le="2.56")
        == 1
    )
    assert (
        val(reg, "tokentail_request_duration_seconds_bucket", model="gpt-4o", endpoint="/chat/completions", le="1.28")
        == 0
    )
    assert val(reg, "tokentail_time_to_first_token_seconds_sum", model="gpt-4o") == pytest.approx(0.12)
    assert val(reg, "tokentail_output_tokens_per_second_bucket", model="gpt-4o", le="50.0") == 1
    assert val(reg, "tokentail_output_tokens_per_second_bucket", model="gpt-4o", le="20.0") == 0
    assert val(reg, "tokentail_in_flight_requests") == 0
    # GenAI conventions, v1.41 names by default
    assert val(reg, "gen_ai_client_operation_duration_seconds_count", **GENAI, error_type="") == 1
    assert val(reg, "gen_ai_client_operation_time_to_first_chunk_seconds_count", **GENAI) == 1
    assert val(reg, "gen_ai_client_token_usage_sum", **GENAI, gen_ai_token_type="input") == 100
    assert val(reg, "gen_ai_client_token_usage_bucket", **GENAI, gen_ai_token_type="output", le="64.0") == 1
    assert val(reg, "gen_ai_client_token_usage_bucket", **GENAI, gen_ai_token_type="output", le="16.0") == 0


def test_non_streamed_has_no_ttft(reg):
    m = ProxyMetrics(reg)
    finish(m, rec_(stream=False), usage=Usage(5, 6))
    assert chat_requests(reg, "gpt-4o", "2xx", stream="false") == 1
    assert val(reg, "tokentail_time_to_first_token_seconds_count", model="gpt-4o") is None
    assert val(reg, "gen_ai_client_operation_time_to_first_chunk_seconds_count", **GENAI) is None


def test_time_per_output_chunk_is_recorded_per_chunk_after_the_first(reg):
    m = ProxyMetrics(reg)
    finish(m, rec_(), deltas=4)
    assert val(reg, "gen_ai_client_operation_time_per_output_chunk_seconds_count", **GENAI) == 3


def test_unknown_usage_is_never_recorded_as_zero(reg):
    m = ProxyMetrics(reg)
    finish(m, rec_(), usage=Usage(input_tokens=None, output_tokens=None, source="reported"))
    assert val(reg, "tokentail_tokens_total", model="gpt-4o", type="input") is None
    assert val(reg, "tokentail_tokens_total", model="gpt-4o", type="output") is None
    assert val(reg, "gen_ai_client_token_usage_count", **GENAI, gen_ai_token_type="input") is None
    assert chat_requests(reg, "gpt-4o", "2xx") == 1


@pytest.mark.parametrize(
    ("error", "http", "status_class", "reason", "error_type"),
    [
        (R.ERR_CONNECT, 502, "upstream_error", "connect", "connect"),
        (R.ERR_TIMEOUT, 504, "upstream_error", "timeout", "timeout"),
        (R.ERR_DISCONNECT, 200, "upstream_error", "disconnect", "upstream_disconnect"),
        (R.ERR_STATUS, 503, "5xx", "status", "503"),
        (R.ERR_STATUS, 429, "4xx", "status", "429"),
    ],
)
def test_errors_by_class_and_reason(reg, error, http, status_class, reason, error_type):
    m = ProxyMetrics(reg)
    finish(m, rec_(rid="admits", stream=False))  # a 2xx gives gpt-4o its label; failures then count under it
    finish(m, rec_(), status=R.ERROR, http=http, error=error, ttft_ms=None, tps=None)
    assert chat_requests(reg, "gpt-4o", status_class) == 1
    assert val(reg, "tokentail_upstream_errors_total", reason=reason) == 1
    others = {"connect", "timeout", "disconnect", "status"} - {reason}
    assert all(val(reg, "tokentail_upstream_errors_total", reason=o) == 0 for o in others)
    assert val(reg, "gen_ai_client_operation_duration_seconds_count", **GENAI, error_type=error_type) == 1


def test_cancelled_is_its_own_class_not_an_upstream_error(reg):
    m = ProxyMetrics(reg)
    finish(m, rec_(), status=R.CANCELLED, http=200, tps=None)
    assert chat_requests(reg, "gpt-4o", "cancelled") == 1
    assert (
        sum(
            val(reg, "tokentail_upstream_errors_total", reason=r)
            for r in ("connect", "timeout", "disconnect", "status")
        )
        == 0
    )


def test_in_flight_gauge(reg):
    m = ProxyMetrics(reg)
    a, b = rec_(rid="a"), rec_(rid="b")
    m.on_start(a)
    m.on_start(b)
    assert val(reg, "tokentail_in_flight_requests") == 2
    a.status, a.http_status, a.latency_ms = R.OK, 200, 5.0
    m.on_end(a)
    assert val(reg, "tokentail_in_flight_requests") == 1
    m.on_end(a)  # a second on_end must not drive the gauge below the truth
    assert val(reg, "tokentail_in_flight_requests") == 1


def test_model_cap_folds_a_thousand_names_into_other(reg):
    m = ProxyMetrics(reg, model_cap=50)
    for i in range(1000):
        finish(m, rec_(model=f"model-{i}", rid=str(i)), usage=Usage(1, 1))
    models = {
        s.labels["model"]
        for fam in text_string_to_metric_families(generate_latest(reg).decode())
        if fam.name == "tokentail_requests"
        for s in fam.samples
    }
    assert len(models) == 51
    assert "other" in models and "model-0" in models and "model-49" in models and "model-50" not in models
    assert chat_requests(reg, "other", "2xx") == 950
    assert val(reg, "tokentail_tokens_total", model="other", type="input") == 950


def test_endpoint_label_is_bounded_and_never_carries_a_query(reg):
    m = ProxyMetrics(reg)
    for i, ep in enumerate(["/chat/completions/", "/models/gpt-4o", "/files?key=sk-secret", "/x/y/z", "/embeddings"]):
        finish(m, rec_(endpoint=ep, rid=str(i), stream=False))
    text = generate_latest(reg).decode()
    endpoints = {
        s.labels["endpoint"]
        for fam in text_string_to_metric_families(text)
        if fam.name == "tokentail_requests"
        for s in fam.samples
    }
    assert endpoints == {"/chat/completions", "/models", "other", "/embeddings"}
    assert "sk-secret" not in text and "/x/y/z" not in text
    # /models is not a GenAI operation; /embeddings is
    ops = {
        s.labels["gen_ai_operation_name"]
        for fam in text_string_to_metric_families(text)
        if fam.name == "gen_ai_client_operation_duration_seconds"
        for s in fam.samples
    }
    assert ops == {"chat", "embeddings"}


def test_provider_from_upstream_and_endpoint(reg):
    m = ProxyMetrics(reg, upstream_url="https://api.anthropic.com/v1")
    finish(m, rec_(endpoint="/messages", rid="1", model="claude"))
    m2 = ProxyMetrics(CollectorRegistry(), upstream_url="http://127.0.0.1:8000/v1")
    assert m2._provider == "openai"
    assert (
        val(
            reg,
            "gen_ai_client_operation_duration_seconds_count",
            gen_ai_operation_name="chat",
            gen_ai_provider_name="anthropic",
            gen_ai_request_model="claude",
            error_type="",
        )
        == 1
    )


def test_opt_in_switches_to_the_genai_repository_names(reg):
    m = ProxyMetrics(reg, semconv_opt_in="http/dup, gen_ai_latest_experimental")
    finish(m, rec_(), usage=Usage(100, 40, 30), deltas=3)
    assert val(reg, "gen_ai_client_inference_usage_input_tokens_total", **GENAI, gen_ai_token_modality="unknown") == 100
    assert val(reg, "gen_ai_client_inference_usage_output_tokens_total", **GENAI, gen_ai_token_modality="unknown") == 40
    assert (
        val(
            reg, "gen_ai_client_inference_usage_cache_read_input_tokens_total", **GENAI, gen_ai_token_modality="unknown"
        )
        == 30
    )
    assert val(reg, "gen_ai_client_inference_operation_input_tokens_sum", **GENAI, error_type="") == 100
    assert val(reg, "gen_ai_client_inference_duration_seconds_count", **GENAI, error_type="") == 1
    assert val(reg, "gen_ai_client_inference_time_to_first_chunk_seconds_count", **GENAI) == 1
    assert val(reg, "gen_ai_client_inference_time_per_output_chunk_seconds_count", **GENAI) == 2
    text = generate_latest(reg).decode()
    assert "gen_ai_client_token_usage" not in text and "gen_ai_client_operation_duration" not in text
    # tokentail_* never rename
    assert val(reg, "tokentail_tokens_total", model="gpt-4o", type="input") == 100


def test_without_opt_in_only_v141_names(reg):
    ProxyMetrics(reg, semconv_opt_in="http,database")
    text = generate_latest(reg).decode()
    assert "gen_ai_client_operation_duration_seconds" in text
    assert "gen_ai_client_inference" not in text


def test_dropped_counts_per_sink(reg):
    m = ProxyMetrics(reg)
    assert val(reg, "tokentail_telemetry_dropped_total", sink="spans") == 0
    assert val(reg, "tokentail_telemetry_dropped_total", sink="live_subscriber") == 0
    m.dropped("spans", 3)
    m.dropped("live_subscriber")
    m.dropped("spans", 0)
    assert val(reg, "tokentail_telemetry_dropped_total", sink="spans") == 3
    assert val(reg, "tokentail_telemetry_dropped_total", sink="live_subscriber") == 1


NASTY = [
    'with "quotes"',
    "new\nline",
    "back\\slash",
    "x" * 10_000,
    "lone \ud800 surrogate",
    "nul\x00byte",
    "tab\tand\r",
    "ünïcödé-模型",
    "",
    "}{,=",
    "# HELP fake",
]


def test_label_sanitizer():
    assert sanitize_label("x" * 10_000) == "x" * 100
    s = sanitize_label("lone \ud800 surrogate\n")
    s.encode("utf-8")  # would raise if the surrogate survived
    assert "\n" not in s


def test_nasty_model_names_keep_the_exposition_parseable(reg):
    m = ProxyMetrics(reg)
    for i, name in enumerate(NASTY):
        finish(m, rec_(model=name, rid=str(i)), usage=Usage(1, 1))
    text = generate_latest(reg).decode("utf-8")
    models = {
        s.labels["model"]
        for fam in text_string_to_metric_families(text)
        if fam.name == "tokentail_requests"
        for s in fam.samples
    }
    assert 'with "quotes"' in models and "back\\slash" in models and "ünïcödé-模型" in models
    assert "unknown" in models  # the empty name
    assert max(len(x) for x in models) == 100


@pytest.mark.prometheus
def test_promtool_accepts_the_exposition_with_nasty_labels(reg):
    m = ProxyMetrics(reg)
    for i, name in enumerate(NASTY):
        finish(
            m,
            rec_(model=name, rid=str(i)),
            usage=Usage(1, 1, 0),
            error=R.ERR_STATUS if i % 2 else None,
            http=500 if i % 2 else 200,
            status=R.ERROR if i % 2 else R.OK,
            deltas=2,
        )
    m.dropped("spans")
    out = promtool_check(generate_latest(reg))
    assert out.returncode == 0, out.stdout + out.stderr
    opt = CollectorRegistry()
    m2 = ProxyMetrics(opt, semconv_opt_in="gen_ai_latest_experimental")
    finish(m2, rec_(model='a"b\nc'), usage=Usage(1, 1, 1), deltas=2)
    out = promtool_check(generate_latest(opt))
    assert out.returncode == 0, out.stdout + out.stderr


async def test_handler_serves_text_or_openmetrics(reg, aiohttp_client):
    m = ProxyMetrics(reg)
    finish(m, rec_(), usage=Usage(3, 4))
    app = web.Application()
    app.router.add_get("/metrics", metrics_handler(reg))
    client = await aiohttp_client(app)
    r = await client.get("/metrics")
    body = await r.text()
    assert r.status == 200 and r.content_type == "text/plain"
    assert 'tokentail_tokens_total{model="gpt-4o",type="output"} 4.0' in body
    r = await client.get(
        "/metrics", headers={"Accept": "application/openmetrics-text;version=1.0.0,text/plain;version=0.0.4;q=0.5"}
    )
    body = await r.text()
    assert r.content_type == "application/openmetrics-text"
    assert body.rstrip().endswith("# EOF")
    assert 'tokentail_tokens_total{model="gpt-4o",type="output"} 4.0' in body


async def test_handler_renders_off_the_event_loop_gzips_and_narrows_by_name(reg, aiohttp_client):
    """The page is rendered on a worker thread: rendered on the loop, each scrape held every
    stream the proxy relayed (30-60 ms a second for two proxies scraped every second)."""
    m = ProxyMetrics(reg)
    finish(m, rec_(), usage=Usage(3, 4))
    threads = []

    class Spy:
        def collect(self):
            threads.append(threading.get_ident())
            return []

    reg.register(Spy())
    app = web.Application()
    app.router.add_get("/metrics", metrics_handler(reg))
    client = await aiohttp_client(app)
    r = await client.get("/metrics", headers={"Accept-Encoding": "gzip"}, auto_decompress=False)
    assert r.status == 200 and r.headers["Content-Encoding"] == "gzip"
    body = gzip.decompress(await r.read()).decode()
    assert 'tokentail_tokens_total{model="gpt-4o",type="output"} 4.0' in body
    assert threads and threading.get_ident() not in threads, "the page was rendered on the event loop's thread"
    r = await client.get("/metrics?name[]=tokentail_tokens_total", headers={"Accept-Encoding": "identity"})
    assert "Content-Encoding" not in r.headers
    names = {f.name for f in text_string_to_metric_families(await r.text())}
    assert names == {"tokentail_tokens"}, names


def test_on_end_is_cheap(reg):
    m = ProxyMetrics(reg)
    recs = [rec_(model=f"m{i % 20}", rid=str(i)) for i in range(5000)]
    usage = Usage(100, 50, 10)
    for r in recs:
        r.status, r.http_status, r.usage, r.latency_ms, r.ttft_ms, r.output_tps = R.OK, 200, usage, 900.0, 80.0, 60.0
    t = time.perf_counter()
    for r in recs:
        m.on_start(r)
        m.on_end(r)
    elapsed = time.perf_counter() - t
    assert elapsed < 1.0, f"{elapsed / len(recs) * 1e6:.1f} µs per request"


def _model_labels(reg) -> set[str]:
    return {
        s.labels["model"]
        for fam in text_string_to_metric_families(generate_latest(reg).decode())
        for s in fam.samples
        if "model" in s.labels
    }


def _fail(m, model, rid, http=404):
    return finish(m, rec_(model=model, rid=rid), status=R.ERROR, http=http, error=R.ERR_STATUS, ttft_ms=None, tps=None)


def test_junk_names_that_fail_never_take_a_label_slot(reg):
    m = ProxyMetrics(reg, model_cap=50)
    for i in range(50):
        _fail(m, f"junk-{i}", f"j{i}")
    assert _model_labels(reg) == {"other"}
    finish(m, rec_(model="gpt-4o", rid="real"), usage=Usage(1, 1), deltas=3)
    assert _model_labels(reg) == {"other", "gpt-4o"}  # the real model keeps its own label
    assert chat_requests(reg, "other", "4xx") == 50
    assert val(reg, "gen_ai_client_operation_time_per_output_chunk_seconds_count", **GENAI) == 2
    for i in range(60):  # the cap still holds for names that do succeed
        finish(m, rec_(model=f"ok-{i}", rid=f"ok{i}"))
    labels = _model_labels(reg)
    assert len(labels - {"other"}) == 50 and "ok-48" in labels and "ok-49" not in labels


def test_an_admitted_model_keeps_its_label_when_it_fails(reg):
    m = ProxyMetrics(reg)
    a, b = rec_(rid="a"), rec_(rid="b")
    m.on_start(a)
    m.on_start(b)  # both in flight before gpt-4o was ever answered
    a.status, a.http_status, a.latency_ms = R.OK, 200, 5.0
    m.on_end(a)
    b.status, b.http_status, b.error, b.latency_ms = R.ERROR, 500, R.ERR_STATUS, 5.0
    m.on_end(b)  # ends after the admission: its own label
    assert chat_requests(reg, "gpt-4o", "5xx") == 1
    _fail(m, "gpt-4o", "c", http=404)
    assert chat_requests(reg, "gpt-4o", "4xx") == 1
    _fail(m, "never-answered", "d", http=502)
    _fail(m, "", "e", http=400)
    assert _model_labels(reg) == {"gpt-4o", "other", "unknown"}


@settings(max_examples=60, deadline=None)
@given(
    calls=st.lists(
        st.tuples(st.sampled_from([f"m{i}" for i in range(8)]), st.sampled_from([200, 201, 404, 500, None]))
    ),
    cap=st.integers(1, 5),
)
def test_labels_go_to_the_first_names_answered_2xx_up_to_the_cap(calls, cap):
    reg = CollectorRegistry()
    m = ProxyMetrics(reg, model_cap=cap)
    admitted: list[str] = []
    for i, (model, http) in enumerate(calls):
        if http is None:
            finish(m, rec_(model=model, rid=str(i)), status=R.ERROR, http=None, error=R.ERR_CONNECT, tps=None)
        else:
            finish(m, rec_(model=model, rid=str(i)), http=http, status=R.OK if http < 300 else R.ERROR)
        if http is not None and http < 300 and model not in admitted and len(admitted) < cap:
            admitted.append(model)
    labels = _model_labels(reg) - {"other"}
    assert labels == set(admitted) and len(labels) <= cap


@pytest.mark.prometheus
def test_promtool_accepts_the_exposition_after_junk_names(reg):
    m = ProxyMetrics(reg, model_cap=5)
    for i, name in enumerate(NASTY):
        _fail(m, name, f"n{i}")
    finish(m, rec_(model='real "one"', rid="r"), usage=Usage(1, 1), deltas=2)
    out = promtool_check(generate_latest(reg))
    assert out.returncode == 0, out.stdout + out.stderr


# --- time per output chunk counted per request, added in batches (issue 13) -----------------


def test_chunk_intervals_in_batches_equal_one_observe_per_chunk(reg, monkeypatch):
    from prometheus_client import Histogram

    from tokentail.proxy import metrics as M

    # Gaps on and around bucket bounds, and past the last one; more chunks than one batch.
    gaps = [0.01, 0.02, 0.005, 0.04, 0.0400001, 100.0, 0.32] * 12
    clock = [1000.0]
    for g in gaps:
        clock.append(clock[-1] + g)
    ticks = iter(clock)
    monkeypatch.setattr(M.time, "perf_counter", lambda: next(ticks))
    m = ProxyMetrics(reg)
    rec = rec_()
    m.on_start(rec)
    rec.http_status = 200
    for i in range(len(clock)):
        m.on_delta(rec, Delta(text="x"))
        if i == M.TPOC_FLUSH_CHUNKS:  # a running stream shows its first batch
            name = "gen_ai_client_operation_time_per_output_chunk_seconds_count"
            assert val(reg, name, **GENAI) == M.TPOC_FLUSH_CHUNKS
    monkeypatch.undo()
    rec.status, rec.latency_ms = R.OK, 1.0
    m.on_end(rec)
    ref_reg = CollectorRegistry()
    ref = Histogram("ref", "r", buckets=M.GENAI_DURATION_BUCKETS, registry=ref_reg)
    for a, b in itertools.pairwise(clock):
        ref.observe(b - a)
    prefix = "gen_ai_client_operation_time_per_output_chunk_seconds"
    for le in [*map(str, M.GENAI_DURATION_BUCKETS), "+Inf"]:
        got = val(reg, f"{prefix}_bucket", **GENAI, le=le)
        assert got == ref_reg.get_sample_value("ref_bucket", {"le": le}), le
    assert val(reg, f"{prefix}_count", **GENAI) == len(gaps)
    assert val(reg, f"{prefix}_sum", **GENAI) == pytest.approx(ref_reg.get_sample_value("ref_sum", {}))
