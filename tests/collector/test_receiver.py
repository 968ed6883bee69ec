"""POST /v1/traces refusals (receiver.py): never a 500; 413 names the limit; counted; logged once per interval."""

from __future__ import annotations

import asyncio
import gzip
import json
import logging
import uuid

import pytest
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor, SpanExportResult
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from tests.helpers.fakes import Clock, make_config
from tests.helpers.otel import DEEP, genai_spans, protobuf_body
from tokentail import semconv as sc
from tokentail.collector import receiver
from tokentail.collector.app import CONFIG, create_app

CAP = 64 << 10  # the proxy's default cap on prompt and completion per span


async def _app(aiohttp_client, tmp_path, **overrides):
    return await aiohttp_client(create_app(make_config(tmp_path, **overrides), scrape=False, maintain=False))


async def _status(client):
    return (await (await client.get("/api/status")).json())["otlp"]


def _no_server_errors(caplog):
    return [r for r in caplog.records if r.levelno >= logging.ERROR or r.exc_info]


@pytest.mark.parametrize("name", sorted(DEEP))
async def test_deep_json_is_a_400_json_error_never_a_500(aiohttp_client, tmp_path, caplog, name):
    client = await _app(aiohttp_client, tmp_path)
    with caplog.at_level(logging.WARNING):
        resp = await client.post("/v1/traces", data=DEEP[name], headers={"Content-Type": "application/json"})
        assert resp.status == 400
        body = await resp.json()
    assert body["error"]["code"] == "invalid_request" and "nested too deep" in body["error"]["message"]
    assert _no_server_errors(caplog) == [] and "Traceback" not in caplog.text
    stats = await _status(client)
    assert stats["refused"]["too_deep"] == 1 and stats["errors"] == 1


async def test_a_declared_body_over_the_limit_is_a_413_naming_it(aiohttp_client, tmp_path):
    client = await _app(aiohttp_client, tmp_path, max_otlp_bytes=100_000)
    resp = await client.post("/v1/traces", data=b"\x00" * 300_000, headers={"Content-Type": "application/x-protobuf"})
    assert resp.status == 413
    err = (await resp.json())["error"]
    assert err["code"] == "request_too_large" and err["max_bytes"] == 100_000
    assert "300000 bytes" in err["message"] and "100000" in err["message"]
    assert "OTEL_BSP_MAX_EXPORT_BATCH_SIZE" in err["message"]
    stats = await _status(client)
    assert stats["refused"]["too_large"] == 1 and stats["max_body_bytes"] == 100_000


async def test_chunked_or_compressed_bodies_over_the_limit_are_a_413_too(aiohttp_client, tmp_path):
    client = await _app(aiohttp_client, tmp_path, max_otlp_bytes=100_000)

    async def chunks():
        for _ in range(30):
            yield b"\x00" * 10_000

    resp = await client.post("/v1/traces", data=chunks(), headers={"Content-Type": "application/x-protobuf"})
    assert resp.status == 413 and (await resp.json())["error"]["max_bytes"] == 100_000
    bomb = gzip.compress(b"\x00" * 2_000_000)  # small on the wire, over the limit once inflated
    resp = await client.post(
        "/v1/traces", data=bomb, headers={"Content-Type": "application/x-protobuf", "Content-Encoding": "gzip"}
    )
    assert resp.status == 413 and (await resp.json())["error"]["code"] == "request_too_large"
    assert (await _status(client))["refused"]["too_large"] == 2
    spans, _ = genai_spans(1)  # the connection and the app still serve
    ok = await client.post("/v1/traces", data=protobuf_body(spans), headers={"Content-Type": "application/x-protobuf"})
    assert ok.status == 200


def _worst_case_spans(n):
    """Spans at the proxy's caps: prompt, system instructions and completion of 64 KiB each,
    every one both as an attribute and in the operation-details event, as the proxy sends them."""
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracer = provider.get_tracer("test")
    text = json.dumps(
        [{"role": "user", "parts": [{"type": "text", "content": "é" * (CAP // 2 - 64)}]}], ensure_ascii=False
    )
    content = {sc.INPUT_MESSAGES: text, sc.SYSTEM_INSTRUCTIONS: text, sc.OUTPUT_MESSAGES: text}
    assert len(text.encode()) <= CAP
    for _ in range(n):
        attrs = {sc.TT_REQUEST_ID: str(uuid.uuid4()), sc.OPERATION_NAME: "chat", sc.REQUEST_MODEL: "m", **content}
        with tracer.start_as_current_span("chat m", attributes=attrs) as span:
            span.add_event(sc.EVENT_OPERATION_DETAILS, content)
    provider.shutdown()
    return exporter.get_finished_spans()


async def test_the_default_limit_takes_a_full_batch_of_worst_case_spans(aiohttp_client, tmp_path):
    """The agreement with the proxy: EXPORT_BATCH spans at the content caps fit the default limit."""
    client = await _app(aiohttp_client, tmp_path)
    assert client.app[CONFIG].max_otlp_bytes == receiver.DEFAULT_MAX_BYTES
    spans = _worst_case_spans(receiver.EXPORT_BATCH)
    one = len(protobuf_body(spans[:1]))
    assert one <= receiver.WORST_SPAN_BYTES
    assert receiver.EXPORT_BATCH * receiver.WORST_SPAN_BYTES <= receiver.DEFAULT_MAX_BYTES - (2 << 20)
    exporter = OTLPSpanExporter(endpoint=str(client.make_url("/v1/traces")), timeout=10)
    try:
        assert await asyncio.to_thread(exporter.export, spans) == SpanExportResult.SUCCESS
    finally:
        exporter.shutdown()
    stats = await _status(client)
    assert stats["spans_stored"] == receiver.EXPORT_BATCH and sum(stats["refused"].values()) == 0


async def test_an_sdk_batch_over_the_limit_is_refused_and_counted_not_hidden(aiohttp_client, tmp_path, caplog):
    client = await _app(aiohttp_client, tmp_path, max_otlp_bytes=1 << 20)
    spans = _worst_case_spans(8)  # ~3 MiB
    exporter = OTLPSpanExporter(endpoint=str(client.make_url("/v1/traces")), timeout=10)
    try:
        with caplog.at_level(logging.WARNING, logger="tokentail.collector"):
            for _ in range(3):
                assert await asyncio.to_thread(exporter.export, spans) == SpanExportResult.FAILURE
    finally:
        exporter.shutdown()
    stats = await _status(client)
    assert stats["refused"]["too_large"] == 3 and stats["spans_stored"] == 0
    said = [r for r in caplog.records if r.name == "tokentail.collector" and "refused" in r.getMessage()]
    assert len(said) == 1  # once per interval, not once per request


def test_refusals_are_logged_once_per_interval_with_what_was_missed(caplog):
    clock = Clock(100.0)
    stats = {"errors": 0}
    log = receiver.RefusalLog(stats, interval=60.0, clock=clock)
    with caplog.at_level(logging.WARNING, logger="tokentail.collector"):
        log.refused("too_large", "first")
        for _ in range(4):
            clock.t += 10
            log.refused("invalid", "again")
        assert caplog.text.count("OTLP receiver refused") == 1 and "since start" in caplog.text
        clock.t += 30  # 70 s after the first line
        log.refused("too_deep", "latest one")
    lines = [r.getMessage() for r in caplog.records]
    assert len(lines) == 2 and "4 invalid, 1 too_deep" in lines[1] and "in the last 70s" in lines[1]
    assert stats["refused"]["invalid"] == 4 and stats["errors"] == 6


@pytest.mark.slow
async def test_300_capped_spans_through_the_sdk_batch_processor_all_land(aiohttp_client, tmp_path):
    """The proxy's side of the agreement: spans at the content caps, exported by the SDK's batch
    processor at EXPORT_BATCH spans a batch, all land at the default limit; nothing refused."""
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    client = await _app(aiohttp_client, tmp_path)
    spans = _worst_case_spans(300)
    exporter = OTLPSpanExporter(endpoint=str(client.make_url("/v1/traces")), timeout=30)
    exported: list[SpanExportResult] = []

    class Recording:  # the batches as the SDK cuts them
        def export(self, batch):
            exported.append(exporter.export(batch))
            return exported[-1]

        def shutdown(self):
            exporter.shutdown()

        def force_flush(self, timeout_millis=30_000):
            return True

    bsp = BatchSpanProcessor(Recording(), max_export_batch_size=receiver.EXPORT_BATCH, max_queue_size=512)
    for s in spans:
        bsp.on_end(s)
    assert await asyncio.to_thread(bsp.force_flush, 120_000)
    await asyncio.to_thread(bsp.shutdown)
    stats = await _status(client)
    assert stats["spans_stored"] == 300 and sum(stats["refused"].values()) == 0
    assert len(exported) >= 300 // receiver.EXPORT_BATCH and set(exported) == {SpanExportResult.SUCCESS}
