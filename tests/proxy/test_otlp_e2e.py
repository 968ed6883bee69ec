"""A running proxy exports spans over OTLP/HTTP to a loopback receiver; a dead receiver costs nothing."""

from __future__ import annotations

import asyncio
import json
import os
import time

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from prometheus_client import CollectorRegistry

from tests.helpers import until
from tests.helpers.proxies import proxy_settings
from tokentail import semconv as S
from tokentail.proxy import telemetry
from tokentail.proxy.app import create_app
from tokentail.proxy.services import build_metrics, build_services

pytestmark = pytest.mark.slow

CLIENT_TRACE = "0af7651916cd43dd8448eb211c80319c"
CLIENT_SPAN = "b7ad6b7169203331"


class Receiver:
    """An OTLP/HTTP traces endpoint (protobuf) that keeps what it decodes."""

    def __init__(self) -> None:
        self.spans: list = []
        self.server: TestServer | None = None

    async def handle(self, request: web.Request) -> web.Response:
        msg = ExportTraceServiceRequest()
        msg.ParseFromString(await request.read())
        for rs in msg.resource_spans:
            for ss in rs.scope_spans:
                self.spans.extend((rs.resource, s) for s in ss.spans)
        return web.Response(
            body=ExportTraceServiceResponse().SerializeToString(), content_type="application/x-protobuf"
        )

    async def start(self) -> str:
        app = web.Application()
        app.router.add_post("/v1/traces", self.handle)
        self.server = TestServer(app, host="127.0.0.1")
        await self.server.start_server()
        return str(self.server.make_url("")).rstrip("/")


def attrs(kvs) -> dict:
    out = {}
    for kv in kvs:
        v = kv.value
        out[kv.key] = getattr(v, v.WhichOneof("value")) if v.WhichOneof("value") else None
    return out


@pytest.fixture
def sim_config():
    from tokentail.simulator.app import SimConfig

    return SimConfig(tokens_per_second=0, ttft=0.0, length=6, seed=5)


async def _proxy(upstream: str, endpoint: str, registry: CollectorRegistry, timeout_s: str = "2"):
    env = {
        "OTEL_EXPORTER_OTLP_ENDPOINT": endpoint,
        "OTEL_BSP_SCHEDULE_DELAY": "100",
        "OTEL_EXPORTER_OTLP_TIMEOUT": timeout_s,
    }
    # As the proxy's main does it: the metrics first, so the span export counts its drops on them.
    settings = proxy_settings(upstream)
    metrics = build_metrics(settings, registry, os.environ)
    provider = telemetry.build_tracer_provider(env, metrics.dropped)
    app = create_app(build_services(settings, registry=registry, metrics=metrics, tracer_provider=provider))
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    return server, provider


async def _chat(session, url: str, headers=None) -> tuple[int, str, float]:
    body = {"model": "sim-gpt-4o", "stream": True, "messages": [{"role": "user", "content": "say something"}]}
    t = time.perf_counter()
    text = []
    async with session.post(url, json=body, headers=headers or {}) as r:
        async for line in r.content:
            if line.startswith(b"data: {"):
                for ch in json.loads(line[6:]).get("choices") or ():
                    text.append((ch.get("delta") or {}).get("content") or "")
        return r.status, "".join(text), time.perf_counter() - t


async def test_span_with_events_arrives_and_joins_the_client_trace(sim_server):
    receiver = Receiver()
    endpoint = await receiver.start()
    registry = CollectorRegistry()
    proxy, provider = await _proxy(str(sim_server.make_url("/v1")), endpoint, registry)
    try:
        async with aiohttp.ClientSession() as s:
            status, text, _ = await _chat(
                s, str(proxy.make_url("/v1/chat/completions")), {"traceparent": f"00-{CLIENT_TRACE}-{CLIENT_SPAN}-01"}
            )
            assert status == 200 and text
            async with s.get(sim_server.make_url("/_sim/last")) as r:
                upstream_headers = {k.lower(): v for k, v in (await r.json())["headers"].items()}
        await until(lambda: receiver.spans, timeout=5)
        assert len(receiver.spans) == 1
        resource, span = receiver.spans[0]
        assert attrs(resource.attributes)["service.name"] == "tokentail-proxy"
        assert span.name == "chat sim-gpt-4o"
        assert span.trace_id.hex() == CLIENT_TRACE and span.parent_span_id.hex() == CLIENT_SPAN
        # the upstream got our span as its parent, in the client's trace
        _, trace, parent, _ = upstream_headers["traceparent"].split("-")
        assert trace == CLIENT_TRACE and parent == span.span_id.hex()
        a = attrs(span.attributes)
        assert a[S.OPERATION_NAME] == "chat" and a[S.SERVER_ADDRESS] == "127.0.0.1"
        assert a[S.USAGE_OUTPUT_TOKENS] > 0 and a[S.TT_STREAM] is True
        names = [e.name for e in span.events]
        assert names == [S.TT_EVENT_FIRST_TOKEN, S.EVENT_OPERATION_DETAILS]
        details = attrs(span.events[1].attributes)
        out = json.loads(details[S.OUTPUT_MESSAGES])
        assert out[0]["parts"][0]["content"] == text
        assert json.loads(a[S.OUTPUT_MESSAGES]) == out
        assert span.start_time_unix_nano <= span.events[0].time_unix_nano <= span.end_time_unix_nano
        assert registry.get_sample_value("tokentail_telemetry_dropped_total", {"sink": "spans"}) == 0
    finally:
        await proxy.close()
        telemetry.shutdown_bounded(provider, 2)
        await receiver.server.close()


async def test_dead_receiver_never_fails_requests_and_drops_are_counted(sim_server):
    receiver = Receiver()
    endpoint = await receiver.start()
    await receiver.server.close()  # the endpoint now refuses connections
    registry = CollectorRegistry()
    proxy, provider = await _proxy(str(sim_server.make_url("/v1")), endpoint, registry, timeout_s="0.5")
    try:
        async with aiohttp.ClientSession() as s:
            results = [await _chat(s, str(proxy.make_url("/v1/chat/completions"))) for _ in range(10)]
        assert all(status == 200 and text for status, text, _ in results)
        assert max(took for _, _, took in results) < 1.0  # no request waited on the exporter

        def dropped():
            return registry.get_sample_value("tokentail_telemetry_dropped_total", {"sink": "spans"}) or 0

        await until(lambda: dropped() >= 10, timeout=5)
        assert dropped() == 10
    finally:
        await proxy.close()
        t = time.monotonic()
        telemetry.shutdown_bounded(provider, 2)
        assert time.monotonic() - t < 2.5


# --- incomplete streams, every sink (RELIABILITY case 32) --------------------------------------


async def test_empty_200_stream_is_incomplete_everywhere_and_the_client_bytes_are_unchanged():
    """llama.cpp's answer to a prompt over its context: 200, text/event-stream, no body."""

    async def empty_200(request: web.Request) -> web.StreamResponse:
        await request.read()
        resp = web.StreamResponse(status=200, headers={"Content-Type": "text/event-stream"})
        await resp.prepare(request)
        await resp.write_eof()
        return resp

    upstream_app = web.Application()
    upstream_app.router.add_post("/v1/chat/completions", empty_200)
    upstream = TestServer(upstream_app, host="127.0.0.1")
    await upstream.start_server()
    receiver = Receiver()
    endpoint = await receiver.start()
    registry = CollectorRegistry()
    proxy, provider = await _proxy(str(upstream.make_url("/v1")), endpoint, registry)
    try:
        async with aiohttp.ClientSession() as s:
            body = {"model": "qwen", "stream": True, "messages": [{"role": "user", "content": "long prompt"}]}
            async with s.post(str(proxy.make_url("/v1/chat/completions")), json=body) as r:
                assert (r.status, await r.read()) == (200, b"")  # passed through as it came
                rid = r.headers["x-tokentail-request-id"]
            async with s.get(str(proxy.make_url(f"/api/requests/{rid}"))) as r:
                detail = await r.json()
        assert (detail["status"], detail["error"]) == ("error", "incomplete_stream"), detail
        assert registry.get_sample_value("tokentail_upstream_errors_total", {"reason": "incomplete"}) == 1
        labels = {"model": "qwen", "endpoint": "/chat/completions", "status_class": "upstream_error", "stream": "true"}
        assert registry.get_sample_value("tokentail_requests_total", labels) == 1
        await until(lambda: receiver.spans, timeout=5)
        ((_, span),) = receiver.spans
        a = attrs(span.attributes)
        assert (a[S.ERROR_TYPE], a[S.TT_STATUS]) == ("incomplete_stream", "error")
    finally:
        await proxy.close()
        telemetry.shutdown_bounded(provider, 2)
        await receiver.server.close()
        await upstream.close()


# --- spans never lost to size (RELIABILITY case 34) ---------------------------------------------


def _big_records(n: int, prompt_bytes: int, prefix: str):
    from tokentail.proxy.record import RequestRecord

    for i in range(n):
        rec = RequestRecord(id=f"{prefix}-{i}", variant="v", method="POST", endpoint="/chat/completions")
        rec.model, rec.stream, rec.http_status, rec.status = "m", True, 200, "ok"
        rec.prompt = {"messages": [{"role": "user", "content": chr(97 + i % 26) * prompt_bytes}]}
        rec.text, rec.latency_ms = "fine", 10.0
        yield rec


async def _export_to_collector(aiohttp_client, tmp_path, records, **observer_kw):
    """Spans of ``records`` through the proxy's real export pipeline (``build_tracer_provider``
    defaults: batching, OTLP/HTTP protobuf) into a real collector app; returns
    (collector client, spans stored, spans counted dropped)."""
    from tests.helpers.fakes import make_config
    from tokentail.collector.app import OTLP_STATS
    from tokentail.collector.app import create_app as create_collector
    from tokentail.proxy.spans import SpanObserver

    client = await aiohttp_client(create_collector(make_config(tmp_path), scrape=False, maintain=False))
    env = {
        "OTEL_EXPORTER_OTLP_ENDPOINT": str(client.make_url("")).rstrip("/"),
        "OTEL_BSP_SCHEDULE_DELAY": "50",
        "OTEL_EXPORTER_OTLP_TIMEOUT": "30",  # a shared CI machine: a 12 MiB batch may take a while
    }
    dropped = [0]

    def on_drop(sink: str, n: int) -> None:
        dropped[0] += n

    provider = telemetry.build_tracer_provider(env, on_drop)
    obs = SpanObserver(provider, upstream_url="http://127.0.0.1:1/v1", **observer_kw)
    n = 0
    for rec in records:
        obs.on_start(rec)
        obs.on_end(rec)
        n += 1
        if n % 24 == 0:
            await asyncio.sleep(0)  # let the collector answer meanwhile
    stats = client.app[OTLP_STATS]
    await until(lambda: stats["spans_stored"] + dropped[0] >= n, timeout=120, step=0.05)
    await asyncio.get_running_loop().run_in_executor(None, telemetry.shutdown_bounded, provider, 10)
    return client, stats["spans_stored"], dropped[0]


async def test_300_spans_with_1_mib_prompts_all_land_truncated(aiohttp_client, tmp_path):
    client, stored, dropped = await _export_to_collector(aiohttp_client, tmp_path, _big_records(300, 1 << 20, "big"))
    assert (stored, dropped) == (300, 0)  # none refused for its size, none lost
    async with client.get("/api/spans/big-7") as r:
        row = await r.json()
    text = json.dumps(row)
    assert "[truncated]" in text and '"tokentail.content.truncated": true' in text
    assert len(text.encode()) < 4 * (64 << 10) + (64 << 10)  # the 1 MiB prompt was cut to the cap


async def test_uncapped_giant_spans_are_refused_and_counted(aiohttp_client, tmp_path):
    """The control: without the cap a batch exceeds the collector's 16 MiB, is refused (413)
    and every span of it is counted as dropped, never silently lost. Each span alone is over the
    limit (a 9 MiB prompt, carried twice: 18 MiB), so however the processor batches them, all are refused."""
    _, stored, dropped = await _export_to_collector(
        aiohttp_client, tmp_path, _big_records(3, 9 << 20, "huge"), content_bytes=32 << 20
    )
    assert (stored, dropped) == (0, 3)
